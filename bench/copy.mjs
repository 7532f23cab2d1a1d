#!/usr/bin/env node
// Copy and layer-creation speed of Slipway against skopeo and umoci, measured in one run on
// this machine, with peak memory. Prints each figure and the ratio Slipway/peer.
//
//   npm run bench                     # builds a debootstrap stack and a 1 GiB tree, then measures
//   SLIPWAY_BENCH_ROOTFS=DIR npm run bench   # reuse an existing root filesystem
//   SLIPWAY_BENCH_GIB=0.25 npm run bench     # a smaller random tree
//   SLIPWAY_BENCH_RUNS=5 npm run bench       # runs per figure (the median is reported)
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, measure, median, randomTree, registry, rootfs, RUNS, sh, work } from './lib.mjs';

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));

const results = [];
function record(what, slipway, peer, peerName) {
  results.push({ what, slipway, peer, peerName, ratio: slipway.seconds / peer.seconds });
  log(`${what}: slipway ${slipway.seconds.toFixed(2)} s, ${peerName} ${peer.seconds.toFixed(2)} s`);
}

async function benchImage(label, tree) {
  const slug = label.replace(/\W+/g, '-');
  const home = join(work, `home-${slug}`);
  const env = { SLIPWAY_HOME: home };
  const sl = join(work, `sl-${slug}`);
  const fresh = async (dir) => rm(dir, { recursive: true, force: true });

  // dir → oci: (layer creation) against umoci repack of the same tree into an empty image.
  const dirToOci = await median(
    () => measure(process.execPath, [BIN, '-q', 'image', 'copy', `dir:${tree}`, `oci:${sl}:t`], env),
    () => fresh(sl),
  );
  const um = join(work, `um-${slug}`);
  const bundle = join(work, `bundle-${slug}`);
  const repack = await median(
    () => measure('umoci', ['repack', '--image', `${um}:t`, bundle]),
    async () => {
      await fresh(um);
      await fresh(bundle);
      sh('umoci', ['init', '--layout', um]);
      sh('umoci', ['new', '--image', `${um}:t`]);
      sh('umoci', ['unpack', '--image', `${um}:t`, bundle]);
      sh('cp', ['-a', `${tree}/.`, join(bundle, 'rootfs')]);
    },
  );
  record(`${label}: dir → oci: (layer creation)`, dirToOci, repack, 'umoci repack');
  await fresh(bundle);
  await fresh(um);

  // oci: → registry, each run into a fresh registry so nothing is there yet.
  let reg;
  const pushTo = (cmd) => median(
    () => measure(...cmd(reg.host)),
    async () => {
      await reg?.stop();
      reg = await registry();
    },
  );
  const push = await pushTo((host) => [process.execPath, [BIN, '-q', 'image', 'copy', `oci:${sl}:t`, `docker://${host}/bench/img:1`], env]);
  const skPush = await pushTo((host) => ['skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${sl}:t`, `docker://${host}/bench/img:1`]]);
  record(`${label}: oci: → registry`, push, skPush, 'skopeo copy');

  // registry → oci:, each run into a fresh directory.
  const out = join(work, `pull-${slug}`);
  const pull = await median(() => measure(process.execPath, [BIN, '-q', 'image', 'copy', `docker://${reg.host}/bench/img:1`, `oci:${out}:t`], env), () => fresh(out));
  const skPull = await median(() => measure('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/bench/img:1`, `oci:${out}:t`]), () => fresh(out));
  record(`${label}: registry → oci:`, pull, skPull, 'skopeo copy');
  await reg.stop();
  for (const d of [sl, out, home]) await fresh(d);
  return Math.max(dirToOci.peak, push.peak, pull.peak);
}

/** What a process costs before any work: the same tiny copy, timed for both tools. */
async function startup() {
  const tiny = join(work, 'tiny');
  await mkdir(join(tiny, 'etc'), { recursive: true });
  await writeFile(join(tiny, 'etc/hostname'), 'tiny\n');
  const layout = join(work, 'tiny-layout');
  await measure(process.execPath, [BIN, '-q', 'image', 'copy', `dir:${tiny}`, `oci:${layout}:t`], { SLIPWAY_HOME: join(work, 'home-tiny') });
  const out = join(work, 'tiny-out');
  const fresh = () => rm(out, { recursive: true, force: true });
  const ours = await median(() => measure(process.execPath, [BIN, '-q', 'image', 'copy', `oci:${layout}:t`, `oci:${out}:t`], { SLIPWAY_HOME: join(work, 'home-tiny') }), fresh);
  const theirs = await median(() => measure('skopeo', ['copy', '-q', `oci:${layout}:t`, `oci:${out}:t`]), fresh);
  record('tiny image: oci: → oci: (fixed cost per process)', ours, theirs, 'skopeo copy');
}

try {
  const stack = await rootfs();
  const gib = Number(process.env.SLIPWAY_BENCH_GIB ?? '1');
  log(`writing a ${gib} GiB random-ish tree...`);
  const tree = await randomTree(Math.round(gib * 1024 ** 3));
  await startup();
  const stackPeak = process.env.SLIPWAY_BENCH_SKIP_STACK ? 0 : await benchImage('debootstrap stack', stack);
  const bigPeak = await benchImage(`${gib} GiB tree`, tree);
  const mb = (n) => `${(n / 1024 ** 2).toFixed(0)} MB`;
  const rows = results.map((r) => [r.what, `${r.slipway.seconds.toFixed(2)} s`, `${r.peer.seconds.toFixed(2)} s (${r.peerName})`, r.ratio.toFixed(2), mb(r.slipway.peak), mb(r.peer.peak)]);
  const head = ['operation', 'slipway', 'peer', 'ratio', 'slipway peak RSS', 'peer peak RSS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log(`\npeak RSS of slipway: stack ${mb(stackPeak)}, ${gib} GiB tree ${mb(bigPeak)} (goal < 150 MB)`);
  console.log(`goals: copy ratio <= 1.0, layer creation ratio <= 1.5 (each figure: median of ${RUNS} runs)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
