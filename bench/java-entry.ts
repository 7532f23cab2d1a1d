// WAR boot figures, driven through Slipway's own container runtime (bundled by bench/java.mjs):
// dyno start → first HTTP 200 through the dyno's port, against `java -jar` of the same runner and
// WAR (the slug's JRE and Jetty) started straight on the host, interleaved, median of N each.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { ContainerRuntime } from '../src/runtime/container-dyno.js';
import { acceptsOn } from '../src/runtime/dyno.js';
import { builtRelease } from '../src/release/releases.js';
import { findStackByDigest } from '../src/stack/stacks.js';
import { unpackedStack } from '../src/stack/unpacked.js';
import { unpackedSlug } from '../src/slug/unpacked.js';
import { verifySlugManifest } from '../src/slug/slug.js';
import { OciLayout } from '../src/store/layout.js';
import { imageStorePath } from '../src/home.js';
import { openDb } from '../src/store/db.js';
import type { Digest } from '../src/oci/digest.js';

const [home, app, runsArg, hostPortArg] = process.argv.slice(2) as [string, string, string, string];
const RUNS = Number(runsArg);
const db = openDb(home);
const rel = builtRelease(db, app);
const layout = await OciLayout.open(imageStorePath(home), { create: false });
const web = (await verifySlugManifest(layout, rel.slug as Digest, app)).processTypes.web;
if (!web) throw new Error(`${app} has no web process type`);
const command: string = web;
const stack = findStackByDigest(db, rel.stack.digest)!;
const runtime = await ContainerRuntime.open(home, db, await unpackedStack(home, stack));
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
/** Often enough to resolve ~1 % of a boot, seldom enough not to slow the boot it watches. */
const POLL_MS = 10;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One GET; true on a 200. */
function ok200(target: { socketPath: string } | { port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ ...('port' in target ? { host: '127.0.0.1', port: target.port } : target), path: '/', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * The supervisor's readiness check on each side: for the dyno its runtime's own (the container's
 * /proc/PID/net/tcp), for the host process a TCP connect (as the process runtime does), polled
 * until the port listens; then GET / until a 200 comes back. Both are cheap: reading the host's
 * /proc/PID/net/tcp instead walks the host's whole TCP hash table (4 ms of kernel time a read
 * here) and, polled every 10 ms, slowed the JVM it watched by half.
 */
async function until200(listening: () => Promise<boolean>, target: { socketPath: string } | { port: number }): Promise<number> {
  const deadline = now() + 60_000;
  while (!(await listening())) {
    if (now() > deadline) throw new Error('not listening within 60 s');
    await sleep(POLL_MS);
  }
  const listened = now();
  while (!(await ok200(target))) {
    if (now() > deadline) throw new Error('no HTTP 200 within 60 s');
    await sleep(POLL_MS);
  }
  return listened;
}

/** Jetty's own "Started @N ms" (the JVM's uptime when the server is up), per side. */
const jettyStarted: { dyno: number[]; host: number[] } = { dyno: [], host: [] };
function jetty(side: 'dyno' | 'host', c: Buffer): void {
  const m = /Started @(\d+)ms/.exec(c.toString());
  if (m) jettyStarted[side].push(Number(m[1]));
}

/** Per boot: [process started, port listening] in ms after t0, to show where a difference lies. */
const phases: { dyno: [number, number][]; host: [number, number][] } = { dyno: [], host: [] };

async function dynoBoot(i: number): Promise<number> {
  const t0 = now();
  const d = await runtime.start(
    { app, name: `web.${i + 1}`, type: 'web', command, port: 5000, release: rel, env: { ...rel.config, PORT: '5000', DYNO: `web.${i + 1}` } },
    { stdio: 'pipe', onOutput: (c) => jetty('dyno', c) },
  );
  const started = now();
  const listening = await until200(d.listening, d.endpoint);
  const t = now() - t0;
  phases.dyno.push([started - t0, listening - t0]);
  await d.signal('SIGKILL');
  await d.exited;
  return t;
}

// The same slug's files, straight on the host: its JRE, its runner, its WAR, the same JAVA_OPTS.
const appDir = join(await unpackedSlug(home, rel.slug as Digest, 0), 'app');
const hostPort = Number(hostPortArg);
async function hostBoot(): Promise<number> {
  const args = [...(rel.config.JAVA_OPTS ?? '').split(' ').filter(Boolean), ...command.replace(/^java \$JAVA_OPTS /, '').split(' ')];
  const t0 = now();
  const java = spawn(join(appDir, '.jdk/bin/java'), args, { cwd: appDir, env: { PATH: '/usr/bin:/bin', HOME: appDir, PORT: String(hostPort) }, stdio: ['ignore', 'ignore', 'pipe'] });
  java.stderr.on('data', (c: Buffer) => jetty('host', c));
  const gone = new Promise((r) => java.once('exit', r));
  const started = now();
  const listening = await until200(() => acceptsOn(hostPort), { port: hostPort });
  const t = now() - t0;
  phases.host.push([started - t0, listening - t0]);
  java.kill('SIGKILL');
  await gone;
  return t;
}

const dyno: number[] = [];
const host: number[] = [];
await dynoBoot(-1); // the first start unpacks the slug for the app's uid range
await hostBoot();
for (const side of ['dyno', 'host'] as const) {
  phases[side].length = 0;
  jettyStarted[side].length = 0;
}
for (let i = 0; i < RUNS; i++) {
  dyno.push(await dynoBoot(i));
  host.push(await hostBoot());
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const phase = (ps: [number, number][], i: 0 | 1): number => median(ps.map((p) => p[i]));
const breakdown = (side: 'dyno' | 'host') => ({ started: phase(phases[side], 0), listening: phase(phases[side], 1), jettyStarted: median(jettyStarted[side]) });
process.stdout.write(`${JSON.stringify({ runtime: runtime.rt.name, command, javaOpts: rel.config.JAVA_OPTS ?? '', dyno: median(dyno), host: median(host), phases: { dyno: breakdown('dyno'), host: breakdown('host') }, dynoAll: dyno, hostAll: host })}\n`);
db.close();
