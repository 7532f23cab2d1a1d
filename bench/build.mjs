#!/usr/bin/env node
// Build speed of the example Node.js app: a first build with an empty cache against a second
// build of the unchanged app (cache reused, slug blob reused), on the Debian build stack, in
// the runc build container. Prints each figure and the speed-up; goal >= 5x.
//
//   npm run bench:build                       # bootstraps the stack (~45 s), then measures
//   SLIPWAY_BENCH_ROOTFS=DIR npm run bench:build   # a debootstrap tree with ca-certificates,curl,libatomic1
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../examples/node-web', import.meta.url));
const RUNS = Number(process.env.SLIPWAY_BENCH_RUNS ?? '3');
const home = await mkdtemp(join(tmpdir(), 'slipway-bench-build-'));
const env = { ...process.env, SLIPWAY_HOME: home };

function slipway(args) {
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, '-q', ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`slipway ${args.join(' ')}: ${r.stderr}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, stdout: r.stdout };
}

try {
  const rootfs = process.env.SLIPWAY_BENCH_ROOTFS;
  if (rootfs) slipway(['stack', 'import', 'bookworm', `dir:${rootfs}`]);
  else slipway(['stack', 'bootstrap', 'bookworm', '--include', 'ca-certificates,curl,libatomic1']);
  // Unpack the stack once, outside the figures (a host does this once per stack version).
  slipway(['build', EXAMPLE, '--app', 'warmup']);
  const rows = [];
  for (let i = 0; i < RUNS; i++) {
    const app = `bench-${i}`;
    await rm(join(home, 'cache', 'slug-layers'), { recursive: true, force: true });
    const first = slipway(['--json', 'build', EXAMPLE, '--app', app]);
    const second = slipway(['--json', 'build', EXAMPLE, '--app', app]);
    const same = JSON.parse(first.stdout).slug.digest === JSON.parse(second.stdout).slug.digest;
    rows.push({ first: first.seconds, second: second.seconds, same });
    process.stderr.write(`run ${i + 1}: first ${first.seconds.toFixed(2)} s, second ${second.seconds.toFixed(2)} s, same slug ${same}\n`);
  }
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const first = median(rows.map((r) => r.first));
  const second = median(rows.map((r) => r.second));
  console.log(`first build (empty cache)     ${first.toFixed(2)} s`);
  console.log(`second build (unchanged app)  ${second.toFixed(2)} s`);
  console.log(`speed-up                      ${(first / second).toFixed(1)}x (goal >= 5x), same slug digest: ${rows.every((r) => r.same)}`);
  console.log(`(median of ${RUNS} runs; downloads of Node.js and npm go to the npm registry)`);
} finally {
  await rm(home, { recursive: true, force: true });
}
