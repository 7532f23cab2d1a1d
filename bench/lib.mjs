// Helpers shared by the benchmarks: timing with peak memory, a throwaway docker-registry, test trees.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const work = await mkdtemp(join(tmpdir(), 'slipway-bench-'));
export const log = (s) => process.stderr.write(`${s}\n`);

/** Runs a command, sampling its peak RSS (VmHWM) from /proc while it runs. */
export function measure(cmd, args, env = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let peak = 0;
    child.stderr.on('data', (c) => (stderr += c));
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) * 1024);
      } catch {
        // exited between samples
      }
    };
    const timer = setInterval(sample, 20);
    child.on('exit', (code) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      else resolve({ seconds, peak });
    });
  });
}

export function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** A fresh docker-registry per measurement, so nothing is already there. */
export async function registry() {
  const dir = await mkdtemp(join(work, 'reg-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  await writeFile(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const fd = openSync(join(dir, 'log'), 'a');
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', fd, fd] });
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://127.0.0.1:${port}/v2/`).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host: `127.0.0.1:${port}`,
    async stop() {
      child.kill();
      await new Promise((r) => child.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function rootfs() {
  const reuse = process.env.SLIPWAY_BENCH_ROOTFS;
  if (reuse && existsSync(join(reuse, 'etc/debian_version'))) return reuse;
  const dir = join(work, 'debootstrap');
  log('building a debootstrap bookworm minbase root filesystem...');
  sh('debootstrap', ['--variant=minbase', 'bookworm', dir, 'http://deb.debian.org/debian']);
  return dir;
}

/** A tree of "random-ish" files: half random bytes, half compressible text, sizes 4 KiB to 8 MiB. */
export async function randomTree(bytes) {
  const dir = join(work, 'random');
  let left = bytes;
  let i = 0;
  const words = Buffer.from('slipway ships apps not containers; stacks are shared and read-only. ');
  while (left > 0) {
    const size = Math.min(left, [4096, 65536, 1 << 20, 8 << 20][i % 4]);
    const sub = join(dir, `d${i % 16}`, `e${i % 7}`);
    await mkdir(sub, { recursive: true });
    // Every size class alternates random and text, so about half the bytes are incompressible.
    const body = Math.floor(i / 4) % 2 === 0 ? randomBytes(size) : Buffer.alloc(size, words);
    await writeFile(join(sub, `f${i}`), body);
    left -= size;
    i++;
  }
  return dir;
}

export const RUNS = Number(process.env.SLIPWAY_BENCH_RUNS ?? '3');

/** Median time (and the highest peak RSS) of RUNS runs; `prepare` runs untimed before each. */
export async function median(run, prepare = async () => {}) {
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    await prepare(i);
    samples.push(await run(i));
  }
  samples.sort((a, b) => a.seconds - b.seconds);
  return { seconds: samples[Math.floor(samples.length / 2)].seconds, peak: Math.max(...samples.map((x) => x.peak)) };
}


/**
 * Bundles a bench entry that drives Slipway's own modules (bench/NAME-entry.ts) and returns the
 * file to run. Written inside node_modules, so its native addons resolve from there.
 */
export async function bundleEntry(name) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const outfile = join(root, 'node_modules', '.cache', `slipway-bench-${name}.mjs`);
  await build({ entryPoints: [join(root, 'bench', `${name}-entry.ts`)], bundle: true, platform: 'node', format: 'esm', outfile, external: ['better-sqlite3', 'fs-xattr'], logLevel: 'error', banner: { js: "import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);" } });
  return outfile;
}
