#!/usr/bin/env node
// Pushes through the registry gate against pushes straight to the registry, in one run: the Debian
// stack image and a 1 GiB image, each with `skopeo copy` to a fresh docker-registry, median of 3;
// the gate judges with `permissive` (every rule on, nothing refused), so every push is judged in full.
//
//   SLIPWAY_BENCH_ROOTFS=DIR npm run bench:gate
import { spawn, spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, log, measure, median, randomTree, registry, rootfs, work } from './lib.mjs';

const BIN = fileURLToPath(new URL('../bin/slipway.js', import.meta.url));
const home = join(work, 'home');
const slipway = (...args) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, SLIPWAY_HOME: home }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`slipway ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

async function gateFor(upstream) {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'gate', '--upstream', `http://${upstream}`, '--listen', `127.0.0.1:${port}`, '-r', 'permissive'], { env: { ...process.env, SLIPWAY_HOME: join(work, `gate-home-${port}`) }, stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((r) => child.stdout.once('data', r));
  return { host: `127.0.0.1:${port}`, stop: () => child.kill() };
}

try {
  const images = [];
  slipway('-q', 'image', 'copy', `dir:${await rootfs()}`, `oci:${join(work, 'oci')}:stack`);
  images.push(['debootstrap stack', `oci:${join(work, 'oci')}:stack`]);
  const gib = Number(process.env.SLIPWAY_BENCH_GIB ?? '1');
  log(`making a ${gib} GiB image...`);
  slipway('-q', 'image', 'copy', `dir:${await randomTree(gib * 1024 ** 3)}`, `oci:${join(work, 'oci')}:big`);
  images.push([`${gib} GiB tree`, `oci:${join(work, 'oci')}:big`]);
  for (const [label, ref] of images) {
    const push = async (viaGate) => {
      const reg = await registry();
      const gate = viaGate ? await gateFor(reg.host) : undefined;
      try {
        return await measure('skopeo', ['copy', '-q', '--dest-tls-verify=false', ref, `docker://${(gate ?? reg).host}/bench/img:1`]);
      } finally {
        gate?.stop();
        await reg.stop();
      }
    };
    const direct = await median(() => push(false));
    const gated = await median(() => push(true));
    console.log(`${label.padEnd(20)} direct ${direct.seconds.toFixed(2)} s  through the gate ${gated.seconds.toFixed(2)} s  ratio ${(gated.seconds / direct.seconds).toFixed(2)}x (goal <= 1.2x)`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
