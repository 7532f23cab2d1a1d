#!/usr/bin/env node
// Fleet rebase at scale: N apps (default 200, small distinct slugs: app layers never move in a
// rebase, so their size does not change its cost) on the Debian stack, each exported to a local
// docker-registry, then all moved onto a new stack version with `slipway rebase --all --push`.
// Prints total time, images/s, bytes sent and received per image, against (a) rebuilding and
// re-pushing apps from source with Slipway's own build (these apps, and the example Node.js app,
// whose build installs Node.js and npm) and (b) `skopeo copy` of each image
// (a lower bound for any approach that moves layers); (a) and (b) are timed on a sample and scaled.
//
//   npm run bench:rebase
//   SLIPWAY_BENCH_ROOTFS=DIR SLIPWAY_BENCH_APPS=200 npm run bench:rebase
import { spawn, spawnSync } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const APPS = Number(process.env.SLIPWAY_BENCH_APPS ?? '200');
const SAMPLE = Math.min(APPS, Number(process.env.SLIPWAY_BENCH_SAMPLE ?? '10'));
const work = await mkdtemp(join(tmpdir(), 'slipway-bench-rebase-'));
const env = { ...process.env, SLIPWAY_HOME: join(work, 'home') };
const log = (s) => process.stderr.write(`${s}\n`);

function sh(cmd, args, extraEnv = {}) {
  const started = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...env, ...extraEnv }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, stdout: r.stdout };
}
const slipway = (...args) => sh(process.execPath, [BIN, ...args]);

async function registry(name) {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  await new Promise((r) => srv.close(r));
  await writeFile(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const fd = openSync(join(dir, 'log'), 'a');
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', fd, fd] });
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://127.0.0.1:${port}/v2/`).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { host: `127.0.0.1:${port}`, stop: () => child.kill() };
}

async function appSource(i) {
  const dir = join(work, 'src', `app${i}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Procfile'), 'web: node server.js\n');
  await writeFile(join(dir, 'server.js'), `require('http').createServer((q, s) => s.end('app ${i}\\n')).listen(process.env.PORT);\n`);
  return dir;
}

const reg = await registry('reg');
const other = await registry('other');
try {
  const rootfs = process.env.SLIPWAY_BENCH_ROOTFS;
  if (rootfs) slipway('-q', 'stack', 'import', 'bookworm', `dir:${rootfs}`);
  else slipway('-q', 'stack', 'bootstrap', 'bookworm', '--include', 'ca-certificates,curl,libatomic1');
  log(`building and exporting ${APPS} apps...`);
  for (let i = 0; i < APPS; i++) {
    const name = `app${String(i).padStart(3, '0')}`;
    slipway('-q', 'build', await appSource(i), '--app', name, '--runtime', 'process');
    slipway('-q', 'export', name, `docker://${reg.host}/fleet/${name}:v1`);
  }
  // The patched stack: one changed file, as a security update would be.
  const patched = join(work, 'patched');
  const v1 = JSON.parse(slipway('--json', 'stack', 'inspect', 'bookworm').stdout).digest.slice(7);
  sh('cp', ['-a', rootfs ?? join(work, 'home', 'stacks', v1, 'rootfs'), patched]);
  await writeFile(join(patched, 'etc', 'slipway-patch'), 'CVE-2014-0160 fixed\n');
  slipway('-q', 'stack', 'import', 'bookworm', `dir:${patched}`);

  log('rebasing the fleet...');
  const r = slipway('--json', 'rebase', '--all', '--push', `${reg.host}/fleet`);
  const out = JSON.parse(r.stdout);
  const n = out.push.images.length;
  const perImageSent = out.push.bytesSent / n;
  const perImageReceived = out.push.bytesReceived / n;

  log(`(a) rebuilding and re-exporting ${SAMPLE} apps from source...`);
  const rebuild = slipway('-q', 'build', await appSource(0), '--app', 'rebuild-warmup');
  void rebuild;
  let rebuildSeconds = 0;
  for (let i = 0; i < SAMPLE; i++) {
    const name = `app${String(i).padStart(3, '0')}`;
    rebuildSeconds += slipway('-q', 'build', await appSource(i), '--app', name).seconds;
    rebuildSeconds += slipway('-q', 'export', name, `docker://${reg.host}/rebuilt/${name}:v1`).seconds;
  }
  log(`(a') rebuilding and re-exporting the example Node.js app ${SAMPLE} times (warm cache)...`);
  const EXAMPLE = fileURLToPath(new URL('../examples/node-web', import.meta.url));
  slipway('-q', 'build', EXAMPLE, '--app', 'example');
  let exampleSeconds = 0;
  for (let i = 0; i < SAMPLE; i++) {
    exampleSeconds += slipway('-q', 'build', EXAMPLE, '--app', 'example').seconds;
    exampleSeconds += slipway('-q', 'export', 'example', `docker://${reg.host}/rebuilt/example:v${i}`).seconds;
  }
  log(`(b) skopeo copy of ${SAMPLE} images to another registry...`);
  let skopeoSeconds = 0;
  for (let i = 0; i < SAMPLE; i++) {
    const name = `app${String(i).padStart(3, '0')}`;
    skopeoSeconds += sh('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/fleet/${name}:v1`, `docker://${other.host}/copies/${name}:v1`]).seconds;
  }
  const rebuildTotal = (rebuildSeconds / SAMPLE) * n;
  const skopeoTotal = (skopeoSeconds / SAMPLE) * n;
  const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
  console.log(`fleet rebase of ${n} app images (slipway rebase --all --push), one process:`);
  console.log(`  rebases ${out.push.rebaseSeconds.toFixed(2)} s: ${(n / out.push.rebaseSeconds).toFixed(0)} images/s (goal >= 50); with the one-time stack push ${out.push.seconds.toFixed(2)} s; whole command ${r.seconds.toFixed(2)} s`);
  console.log(`  per image: ${kib(perImageSent)} sent, ${kib(perImageReceived)} received, ${(out.push.requests / n).toFixed(1)} requests (goal <= 16 KiB moved)`);
  console.log(`  the new stack pushed once beforehand: ${(out.push.stackPush.bytesSent / 1e6).toFixed(1)} MB`);
  console.log(`(a) rebuild + export from source: ${(rebuildSeconds / SAMPLE).toFixed(2)} s per app → ${rebuildTotal.toFixed(0)} s for ${n}: rebase is ${(rebuildTotal / r.seconds).toFixed(0)}x faster, whole command against whole rebuilds (goal >= 100x)`);
  const exampleTotal = (exampleSeconds / SAMPLE) * n;
  console.log(`(a') rebuild + export of the example Node.js app: ${(exampleSeconds / SAMPLE).toFixed(2)} s per app → ${exampleTotal.toFixed(0)} s for ${n}: rebase is ${(exampleTotal / r.seconds).toFixed(0)}x faster`);
  console.log(`(b) skopeo copy per image: ${(skopeoSeconds / SAMPLE).toFixed(2)} s → ${skopeoTotal.toFixed(0)} s for ${n}: rebase is ${(skopeoTotal / r.seconds).toFixed(0)}x faster`);
  console.log(`(a) and (b) timed on ${SAMPLE} apps and scaled to ${n}`);
} finally {
  reg.stop();
  other.stop();
  await rm(work, { recursive: true, force: true });
}
