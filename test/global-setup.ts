import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    debootstrapRootfs: string;
  }
}

/**
 * Builds one real Debian root filesystem per test run (debootstrap minbase, ~25 s)
 * and shares it read-only with every test file. SLIPWAY_TEST_ROOTFS reuses one.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reuse = process.env.SLIPWAY_TEST_ROOTFS;
  if (reuse && existsSync(join(reuse, 'etc', 'debian_version'))) {
    project.provide('debootstrapRootfs', reuse);
    return async () => {};
  }
  const dir = await mkdtemp(join(tmpdir(), 'slipway-debootstrap-'));
  const rootfs = join(dir, 'rootfs');
  const started = Date.now();
  // With what the nodejs buildpack needs, so the same tree serves as the build stack.
  const r = spawnSync('debootstrap', ['--variant=minbase', '--include=ca-certificates,curl,libatomic1', 'bookworm', rootfs, 'http://deb.debian.org/debian'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`debootstrap failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  process.stderr.write(`debootstrap bookworm minbase: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  project.provide('debootstrapRootfs', rootfs);
  return async () => {
    await rm(dir, { recursive: true, force: true });
  };
}
