#!/usr/bin/env node
// Fleet rebase at scale: N apps (default 200), each image = the Debian stack + the example Node.js
// app's slug + a distinct small layer of its own, in a local docker-registry, all moved onto a new
// stack version with `slipway rebase --all --push`. Prints total time, images/s, bytes sent and
// received per image, against (a) rebuilding and re-pushing the same apps from source with
// Slipway's own build and (b) `skopeo copy` of each image (a lower bound for any approach that
// moves layers); (a) and (b) are timed on a sample and scaled.
//
//   npm run bench:rebase
//   SLIPWAY_BENCH_ROOTFS=DIR SLIPWAY_BENCH_APPS=200 npm run bench:rebase
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, registry, work } from './lib.mjs';

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../examples/node-web', import.meta.url));
const APPS = Number(process.env.SLIPWAY_BENCH_APPS ?? '200');
const SAMPLE = Math.min(APPS, Number(process.env.SLIPWAY_BENCH_SAMPLE ?? '10'));
const env = { ...process.env, SLIPWAY_HOME: join(work, 'home') };

function sh(cmd, args, extraEnv = {}) {
  const started = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...env, ...extraEnv }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, stdout: r.stdout };
}
const slipway = (...args) => sh(process.execPath, [BIN, ...args]);
// The example app is built on a second host, so the fleet host holds only the 200 apps.
const builder = (...args) => sh(process.execPath, [BIN, ...args], { SLIPWAY_HOME: join(work, 'builder') });


// One app's source: the example app plus a file of its own (what the rebuild baseline builds).
async function appSource(i) {
  const dir = join(work, 'src', `app${i}`);
  await mkdir(join(work, 'src'), { recursive: true });
  sh('cp', ['-a', EXAMPLE, dir]);
  await writeFile(join(dir, 'app-id.txt'), `app ${i}\n`);
  return dir;
}
const appName = (i) => `app${String(i).padStart(3, '0')}`;

const reg = await registry();
const other = await registry();
try {
  const rootfs = process.env.SLIPWAY_BENCH_ROOTFS;
  if (rootfs) builder('-q', 'stack', 'import', 'bookworm', `dir:${rootfs}`);
  else builder('-q', 'stack', 'bootstrap', 'bookworm', '--include', 'ca-certificates,curl,libatomic1');
  const layout = join(work, 'images');
  builder('-q', 'image', 'copy', `stacks/bookworm:${JSON.parse(builder('--json', 'stack', 'inspect', 'bookworm').stdout).digest.slice(7)}`, `oci:${layout}:stack`);
  slipway('-q', 'stack', 'import', 'bookworm', `oci:${layout}:stack`);
  // The fleet: every app runs the example app's slug (released through `slug pull`, as a second host
  // would) and its image carries one more small layer of its own (added by umoci, not by Slipway).
  log(`building the example app and making ${APPS} app images (stack + example slug + a distinct layer)...`);
  builder('-q', 'build', EXAMPLE, '--app', 'example');
  builder('-q', 'slug', 'push', 'example', `oci:${layout}:slug`);
  builder('-q', 'export', 'example', `oci:${layout}:example`);
  await mkdir(join(work, 'ids'));
  for (let i = 0; i < APPS; i++) {
    const name = appName(i);
    slipway('-q', 'slug', 'pull', `oci:${layout}:slug`, '--app', name);
    const id = join(work, 'ids', name);
    await writeFile(id, `${name}\n`);
    sh('umoci', ['tag', '--image', `${layout}:example`, name]);
    sh('umoci', ['insert', '--image', `${layout}:${name}`, id, '/app/app-id.txt']);
    sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:${name}`, `docker://${reg.host}/fleet/${name}:v1`]);
  }
  // The patched stack: one changed file, as a security update would be.
  const patched = join(work, 'patched');
  const v1 = JSON.parse(slipway('--json', 'stack', 'inspect', 'bookworm').stdout).digest.slice(7);
  sh('cp', ['-a', rootfs ?? join(work, 'builder', 'stacks', v1, 'rootfs'), patched]);
  await writeFile(join(patched, 'etc', 'slipway-patch'), 'CVE-2014-0160 fixed\n');
  slipway('-q', 'stack', 'import', 'bookworm', `dir:${patched}`);

  log('rebasing the fleet...');
  const r = slipway('--json', 'rebase', '--all', '--stack', 'bookworm', '--push', `${reg.host}/fleet`);
  const out = JSON.parse(r.stdout);
  const n = out.push.images.length;
  const perImageSent = out.push.bytesSent / n;
  const perImageReceived = out.push.bytesReceived / n;
  const check = sh('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/fleet/${appName(n - 1)}:v2`]).stdout;
  const layers = JSON.parse(check).Layers.length;
  log(`rebased ${n} images in ${r.seconds.toFixed(2)} s (whole command)`);

  // (a) What a platform without rebase does: rebuild each app from source (its build cache warm,
  // as on a platform that built it before) and push the new image.
  log(`(a) rebuilding and re-exporting ${SAMPLE} of the apps from source (warm caches)...`);
  let rebuildSeconds = 0;
  for (let i = 0; i < SAMPLE; i++) {
    const src = await appSource(i);
    slipway('-q', 'build', src, '--app', `rebuild${i}`);
    rebuildSeconds += slipway('-q', 'build', src, '--app', `rebuild${i}`).seconds;
    rebuildSeconds += slipway('-q', 'export', `rebuild${i}`, `docker://${reg.host}/rebuilt/${appName(i)}:v2`).seconds;
  }
  log(`(b) skopeo copy of ${SAMPLE} images to another registry...`);
  let skopeoSeconds = 0;
  for (let i = 0; i < SAMPLE; i++) {
    const name = appName(i);
    skopeoSeconds += sh('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/fleet/${name}:v1`, `docker://${other.host}/copies/${name}:v1`]).seconds;
  }
  const rebuildTotal = (rebuildSeconds / SAMPLE) * n;
  const skopeoTotal = (skopeoSeconds / SAMPLE) * n;
  const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
  console.log(`fleet rebase of ${n} app images (slipway rebase --all --push), one process:`);
  console.log(`  rebases ${out.push.rebaseSeconds.toFixed(2)} s: ${(n / out.push.rebaseSeconds).toFixed(0)} images/s (goal >= 50); with the one-time stack push ${out.push.seconds.toFixed(2)} s; whole command ${r.seconds.toFixed(2)} s`);
  console.log(`  per image: ${kib(perImageSent)} sent, ${kib(perImageReceived)} received, ${(out.push.requests / n).toFixed(1)} requests (goal <= 16 KiB moved)`);
  console.log(`  the new stack pushed once beforehand: ${(out.push.stackPush.bytesSent / 1e6).toFixed(1)} MB`);
  console.log(`  the rebased image ${appName(n - 1)}:v2 has ${layers} layers (stack + slug + its own)`);
  console.log(`(a) rebuild + export from source: ${(rebuildSeconds / SAMPLE).toFixed(2)} s per app → ${rebuildTotal.toFixed(0)} s for ${n}: rebase is ${(rebuildTotal / r.seconds).toFixed(0)}x faster, whole command against whole rebuilds (goal >= 100x)`);
  console.log(`(b) skopeo copy per image: ${(skopeoSeconds / SAMPLE).toFixed(2)} s → ${skopeoTotal.toFixed(0)} s for ${n}: rebase is ${(skopeoTotal / r.seconds).toFixed(0)}x faster`);
  console.log(`(a) and (b) timed on ${SAMPLE} apps and scaled to ${n}`);
} finally {
  await reg.stop();
  await other.stop();
  await rm(work, { recursive: true, force: true });
}
