import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { addBuildPackages } from '../src/stack/build-variant.js';

declare module 'vitest' {
  export interface ProvidedContext {
    debootstrapRootfs: string;
    /** The same tree plus the stack build packages (compilers, headers): the build variant. */
    buildRootfs: string;
  }
}

const isRootfs = (dir: string | undefined): dir is string => dir !== undefined && dir !== '' && existsSync(join(dir, 'etc', 'debian_version'));

/**
 * Builds one real Debian root filesystem per test run (debootstrap minbase, ~25 s) and its
 * build variant (a copy plus apt-get install of the build packages, ~30 s), and shares both
 * read-only with every test file. SLIPWAY_TEST_ROOTFS and SLIPWAY_TEST_BUILD_ROOTFS reuse them.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cleanups: (() => Promise<void>)[] = [];
  const rootfs = await runRootfs(cleanups);
  project.provide('debootstrapRootfs', rootfs);
  const reuse = process.env.SLIPWAY_TEST_BUILD_ROOTFS;
  if (isRootfs(reuse)) {
    project.provide('buildRootfs', reuse);
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'slipway-build-rootfs-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await chmod(dir, 0o755);
    const started = Date.now();
    const r = spawnSync('cp', ['-a', rootfs, join(dir, 'rootfs')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cp -a ${rootfs}: ${r.stderr}`);
    await addBuildPackages(join(dir, 'rootfs'));
    process.stderr.write(`build variant (apt-get install in a chroot): ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    project.provide('buildRootfs', join(dir, 'rootfs'));
  }
  return async () => {
    for (const c of cleanups) await c();
  };
}

async function runRootfs(cleanups: (() => Promise<void>)[]): Promise<string> {
  const reuse = process.env.SLIPWAY_TEST_ROOTFS;
  if (isRootfs(reuse)) return reuse;
  const dir = await mkdtemp(join(tmpdir(), 'slipway-debootstrap-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // mkdtemp makes it 0700: containers that use the tree as their root run as an unprivileged host uid.
  await chmod(dir, 0o755);
  const rootfs = join(dir, 'rootfs');
  const started = Date.now();
  // With what the nodejs buildpack needs to fetch and run Node.js: the run image of the test stack.
  const r = spawnSync('debootstrap', ['--variant=minbase', '--include=ca-certificates,curl,libatomic1', 'bookworm', rootfs, 'http://deb.debian.org/debian'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`debootstrap failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  process.stderr.write(`debootstrap bookworm minbase: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  return rootfs;
}
