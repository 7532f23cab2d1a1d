#!/usr/bin/env node
// The runtime's figures, in one run on this machine:
// (a) dyno launch latency (start → app process running and printing), median and p95 over 200
//     launches, against raw `runc run` of an equivalent hand-written bundle, and raw `crun run` of
//     it when Slipway runs crun;
// (b) sustained launches per minute on this machine, several in flight;
// (c) router throughput with wrk over 2 container dynos of the example Node.js app, against wrk
//     straight to the same app run as one plain process on the host, with the p99 overhead;
// (d) bytes fetched to start a new release of an app whose stack is cached: the slug only.
//
//   npm run bench:run
//   SLIPWAY_BENCH_ROOTFS=DIR SLIPWAY_BENCH_LAUNCHES=200 SLIPWAY_BENCH_SECONDS=20 npm run bench:run
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleEntry, freePort, log, registry, sh, work } from './lib.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/slipway.js');
const LAUNCHES = process.env.SLIPWAY_BENCH_LAUNCHES ?? '200';
const SECONDS = process.env.SLIPWAY_BENCH_SECONDS ?? '20';
const IN_FLIGHT = process.env.SLIPWAY_BENCH_IN_FLIGHT ?? '8';
const home = join(work, 'home');
const slipway = (h, ...args) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, SLIPWAY_HOME: h }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`slipway ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

function wrk(url) {
  const out = sh('wrk', ['-t2', '-c32', '-d10s', '--latency', url]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const ms = Number(p99[1]) * { us: 0.001, ms: 1, s: 1000 }[p99[2]];
  return { rps, p99: ms };
}

const bb = join(work, 'busybox');
try {
  // (a), (b): a busybox stack and an app whose process prints: launches measure the runtime, not an app.
  sh('mkdir', ['-p', join(bb, 'bin'), join(bb, 'etc'), join(bb, 'tmp'), join(work, 'launch-app')]);
  sh('cp', ['/bin/busybox', join(bb, 'bin/busybox')]);
  for (const a of sh('/bin/busybox', ['--list']).split('\n').filter((x) => x && x !== 'busybox')) spawnSync('ln', ['-s', 'busybox', join(bb, 'bin', a)]);
  writeFileSync(join(bb, 'etc/passwd'), 'root:x:0:0::/:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n');
  writeFileSync(join(work, 'launch-app', 'Procfile'), 'web: echo started\n');
  slipway(home, '-q', 'stack', 'import', 'tiny', `dir:${bb}`);
  slipway(home, '-q', 'build', join(work, 'launch-app'), '--app', 'launch', '--stack', 'tiny', '--runtime', 'process');
  const entry = await bundleEntry('run');
  log(`(a) ${LAUNCHES} launches each way, (b) ${SECONDS} s of sustained launches each way...`);
  const ran = spawnSync(process.execPath, [entry, home, 'launch', LAUNCHES, SECONDS, IN_FLIGHT], { encoding: 'utf8', cwd: ROOT });
  if (ran.status !== 0) throw new Error(`launch bench failed: ${ran.stderr}`);
  const launch = JSON.parse(ran.stdout.trim().split('\n').pop());

  const only = process.env.SLIPWAY_BENCH_ONLY === 'launch';
  // (c): the example app at web=2 behind the router, then the same slug as one host process.
  let routed = { rps: NaN, p99: NaN };
  let straight = { rps: NaN, p99: NaN };
  let fetched;
  if (!only) {
    log('(c) building the example Node.js app on the Debian stack...');
    const rootfs = process.env.SLIPWAY_BENCH_ROOTFS;
    if (rootfs) slipway(home, '-q', 'stack', 'import', 'bookworm', `dir:${rootfs}`);
    else slipway(home, '-q', 'stack', 'bootstrap', 'bookworm', '--include', 'ca-certificates,curl,libatomic1');
    slipway(home, '-q', 'build', join(ROOT, 'examples/node-web'), '--app', 'web', '--stack', 'bookworm');
    const port = JSON.parse(slipway(home, '--json', 'up', 'web', '--detach', '--scale', 'web=2')).port;
    try {
      wrk(`http://127.0.0.1:${port}/`); // warm up
      routed = wrk(`http://127.0.0.1:${port}/`);
    } finally {
      slipway(home, 'stop', 'web');
    }
    const slugDir = join(home, 'slugs', readdirSync(join(home, 'slugs')).find((d) => !d.startsWith('.') && readdirSync(join(home, 'slugs', d)).includes('app') && spawnSync('test', ['-e', join(home, 'slugs', d, 'app/server.js')]).status === 0));
    const directPort = await freePort();
    const direct = spawn(join(slugDir, 'app/.heroku/node/bin/node'), ['server.js'], { cwd: join(slugDir, 'app'), env: { PORT: String(directPort) }, stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 500));
      wrk(`http://127.0.0.1:${directPort}/`);
      straight = wrk(`http://127.0.0.1:${directPort}/`);
    } finally {
      direct.kill();
    }

    // (d): a second host with the stack cached pulls the new release's slug: what crosses the wire.
    log('(d) a second host with the stack cached pulls a new release...');
    const reg = await registry();
    try {
      slipway(home, '-q', 'slug', 'push', 'web', `docker://${reg.host}/slugs/web:1`);
      const host2 = join(work, 'host2');
      const stackDigest = JSON.parse(slipway(home, '--json', 'stack', 'inspect', 'bookworm')).digest;
      slipway(host2, '-q', 'stack', 'import', 'bookworm', `oci:${join(home, 'images')}:stacks/bookworm:${stackDigest.slice(7)}`);
      const blobs = () => new Set(readdirSync(join(host2, 'images', 'blobs', 'sha256')));
      const before = blobs();
      slipway(host2, '-q', 'slug', 'pull', `docker://${reg.host}/slugs/web:1`, '--app', 'web');
      const added = [...blobs()].filter((b) => !before.has(b));
      const sizes = added.map((b) => Number(sh('stat', ['-c', '%s', join(host2, 'images', 'blobs', 'sha256', b)])));
      const slugLayer = Math.max(...sizes);
      fetched = { blobs: added.length, bytes: sizes.reduce((a, b) => a + b, 0), slugLayer, stack: Number(JSON.parse(slipway(home, '--json', 'stack', 'inspect', 'bookworm')).size) };
    } finally {
      await reg.stop();
    }

  }
  const f = (x) => x.toFixed(1);
  console.log(`OCI runtime: ${launch.runtime}${launch.notes.length ? ` (${launch.notes.join('; ')})` : ''}`);
  console.log(`(a) launch latency over ${LAUNCHES} launches, start → the app's first output:`);
  console.log(`    slipway dyno (${launch.runtime})  median ${f(launch.ours.median)} ms  p95 ${f(launch.ours.p95)} ms`);
  for (const [k, r] of Object.entries(launch.raw)) {
    console.log(`    raw ${k} run   median ${f(r.median)} ms  p95 ${f(r.p95)} ms;  slipway/raw ${k}: median ${(launch.ours.median / r.median).toFixed(2)}x  p95 ${(launch.ours.p95 / r.p95).toFixed(2)}x  (goal <= 1.3x)`);
  }
  console.log(`(b) sustained launches, ${IN_FLIGHT} in flight: slipway ${launch.perMinute.toFixed(0)}/min, ${Object.entries(launch.raw).map(([k, r]) => `raw ${k} ${r.perMinute.toFixed(0)}/min`).join(', ')} (goal >= 3,000/min)`);
  if (!only) {
  console.log(`(c) wrk -t2 -c32 -d10s: router over 2 container dynos ${routed.rps.toFixed(0)} req/s p99 ${f(routed.p99)} ms; the app as one host process ${straight.rps.toFixed(0)} req/s p99 ${f(straight.p99)} ms`);
  console.log(`    ratio ${(routed.rps / straight.rps).toFixed(2)}x of direct (goal >= 0.8x), p99 overhead ${f(routed.p99 - straight.p99)} ms`);
  console.log(`(d) new release on a host with the stack cached: ${fetched.blobs} blobs, ${(fetched.bytes / 1e6).toFixed(1)} MB fetched (the slug layer is ${(fetched.slugLayer / 1e6).toFixed(1)} MB; the ${(fetched.stack / 1e6).toFixed(1)} MB stack: not fetched)`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
