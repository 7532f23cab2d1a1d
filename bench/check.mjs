#!/usr/bin/env node
// Restrictions check speed: `slipway check` of a 1 GiB (uncompressed) gzip image of 4 layers,
// against the floor for any streaming scan, `gzip -dc LAYER | tar -tv > /dev/null` over the same
// layers (one after another, as stated, and two at a time, as Slipway reads them), with peak memory;
// then the same image checked straight from a docker-registry, where only the blobs stream in.
//
//   npm run bench:check
//   SLIPWAY_BENCH_GIB=0.25 npm run bench:check
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, measure, median, randomTree, registry, sh, work } from './lib.mjs';

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const gib = Number(process.env.SLIPWAY_BENCH_GIB ?? '1');
const home = join(work, 'home');

try {
  log(`making a ${gib} GiB tree and a 4-layer image of it with umoci...`);
  const tree = await randomTree(gib * 1024 ** 3);
  const layout = join(work, 'oci');
  sh('umoci', ['init', '--layout', layout]);
  sh('umoci', ['new', '--image', `${layout}:big`]);
  for (let g = 0; g < 4; g++) {
    // d0..d15 in four groups of four: four layers of about a quarter each.
    const group = join(work, `group${g}`);
    sh('mkdir', ['-p', group]);
    for (let d = g * 4; d < g * 4 + 4; d++) sh('mv', [join(tree, `d${d}`), group]);
    sh('umoci', ['insert', '--image', `${layout}:big`, group, `/data/${g}`]);
  }
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  const layers = manifest.layers.map((l) => join(layout, 'blobs', 'sha256', l.digest.slice(7)));
  const compressed = manifest.layers.reduce((a, l) => a + l.size, 0);

  const floor = await median(() => measure('sh', ['-c', layers.map((l) => `gzip -dc ${l} | tar -tv > /dev/null`).join(' && ')]));
  const floor2 = await median(() => measure('sh', ['-c', `for l in ${layers.join(' ')}; do echo $l; done | xargs -P 2 -I{} sh -c 'gzip -dc {} | tar -tv > /dev/null'`]));
  const check = await median(() => measure(process.execPath, [BIN, '-q', 'check', `oci:${layout}:big`, '-r', 'permissive', '--no-cache', '--format', 'json'], { SLIPWAY_HOME: home }));
  const cached = await median(() => measure(process.execPath, [BIN, '-q', 'check', `oci:${layout}:big`, '-r', 'permissive', '--format', 'json'], { SLIPWAY_HOME: home }));

  const reg = await registry();
  let remote;
  try {
    sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${reg.host}/bench/big:1`]);
    remote = await median(() => measure(process.execPath, [BIN, '-q', 'check', `docker://${reg.host}/bench/big:1`, '-r', 'permissive', '--no-cache', '--format', 'json'], { SLIPWAY_HOME: home }));
  } finally {
    await reg.stop();
  }
  const mb = (n) => `${(n / 1e6).toFixed(0)} MB`;
  const row = (what, r, base) => console.log(`${what.padEnd(58)}${r.seconds.toFixed(2).padStart(7)} s${base ? `  ${(r.seconds / base.seconds).toFixed(2)}x the floor` : ''}  peak ${mb(r.peak)}`);
  console.log(`image: ${gib} GiB uncompressed in ${layers.length} gzip layers (${mb(compressed)} compressed), median of 3`);
  row('floor: gzip -dc | tar -tv, layer after layer', floor);
  row('floor: the same, two layers at a time', floor2);
  row('slipway check oci: (no cache: every layer streamed)', check, floor);
  row('slipway check oci: again (layer facts cached)', cached, floor);
  row('slipway check docker:// (layers streamed from the registry)', remote, floor);
  console.log('goal: <= 1.25x the floor, peak memory <= 100 MB');
} finally {
  await rm(work, { recursive: true, force: true });
}
