import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SlipwayError } from '../errors.js';
import type { Db } from '../store/db.js';
import { addBuildPackages, BUILD_PACKAGES } from './build-variant.js';
import { copyStackImage, recordStack, type Stack, type StackImage } from './stacks.js';

export interface BootstrapOptions {
  suite: string;
  include: string[];
  mirror: string;
  /** Each progress line debootstrap reports ("Retrieving libc6", "Configuring apt"). */
  onStep?: (step: string) => void;
}

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

const PACKAGE = /^[a-z0-9][a-z0-9+.-]+$/;

/**
 * Builds a Debian root filesystem with `debootstrap --variant=minbase` in a temp directory
 * under `scratchParent` and hands it to `use`; the directory is removed afterwards, whatever happens.
 */
export async function withDebootstrap<T>(scratchParent: string, opts: BootstrapOptions, use: (rootfs: string) => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0) throw new SlipwayError('stack bootstrap needs root (debootstrap creates device nodes and owners)', { hint: 'run it as root' });
  for (const p of opts.include) {
    if (!PACKAGE.test(p)) throw new SlipwayError(`--include: "${p}" is not a Debian package name`, { exitCode: 2 });
  }
  await mkdir(scratchParent, { recursive: true });
  const dir = await mkdtemp(join(scratchParent, 'debootstrap-'));
  const rootfs = join(dir, 'rootfs');
  try {
    const args = ['--variant=minbase', ...(opts.include.length ? [`--include=${opts.include.join(',')}`] : []), opts.suite, rootfs, opts.mirror];
    const child = spawn('debootstrap', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const remember = (line: string): void => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
    };
    createInterface({ input: child.stdout }).on('line', (line) => {
      remember(line);
      const m = /^I: (.*)$/.exec(line);
      if (m) opts.onStep?.(m[1]!.replace(/\.\.\.$/, ''));
    });
    createInterface({ input: child.stderr }).on('line', remember);
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', (err) => reject(new SlipwayError(`cannot run debootstrap (${err.message})`, { hint: 'apt-get install debootstrap' })));
      child.on('close', (c) => resolve(c ?? -1));
    });
    if (code !== 0) {
      throw new SlipwayError(`debootstrap ${opts.suite} failed (exit ${code}):\n${tail.join('\n')}`, {
        hint: `check the suite, the package names and that ${opts.mirror} is reachable`,
      });
    }
    return await use(rootfs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A stack version from Debian: debootstrap the run image, import it, then (unless `build` is
 * false) install the build packages over the same tree and import that as its build variant.
 */
export async function bootstrapStack(
  db: Db,
  home: string,
  name: string,
  opts: BootstrapOptions & { build: boolean; onPhase?: (phase: string) => void; onBuildLine?: (line: string) => void },
): Promise<{ stack: Stack; created: boolean }> {
  return withDebootstrap(join(home, 'tmp'), opts, async (rootfs) => {
    opts.onPhase?.('importing the run image');
    const run = await copyStackImage({ home }, name, `dir:${rootfs}`);
    let build: StackImage | undefined;
    if (opts.build) {
      opts.onPhase?.(`making the build variant: apt-get install ${BUILD_PACKAGES.join(' ')}`);
      await addBuildPackages(rootfs, { ...(opts.onBuildLine && { onLine: opts.onBuildLine }) });
      opts.onPhase?.('importing the build variant');
      build = await copyStackImage({ home }, name, `dir:${rootfs}`);
    }
    return recordStack(db, name, `debootstrap ${opts.suite}`, run, build);
  });
}
