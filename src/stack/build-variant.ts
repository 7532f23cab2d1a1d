import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SlipwayError } from '../errors.js';

/**
 * What a stack's build variant adds to its run variant, as Heroku's build images do: compilers
 * and make (node-gyp, native gems and wheels), python3 (node-gyp runs on it), pkg-config, git
 * (dependencies from git URLs) and the -dev headers native modules most often link against.
 */
export const BUILD_PACKAGES = [
  'build-essential',
  'python3',
  'pkg-config',
  'git',
  'libssl-dev',
  'zlib1g-dev',
  'libffi-dev',
  'libsqlite3-dev',
  'libpq-dev',
  'libxml2-dev',
  'libyaml-dev',
  'libreadline-dev',
];

const PACKAGE = /^[a-z0-9][a-z0-9+.-]+$/;

/**
 * Turns a Debian run root filesystem into its build variant in place: `apt-get install` in a
 * chroot, from the archive its sources.list names (a second debootstrap would cost the whole
 * base again). The package lists and downloaded .debs are removed afterwards: no build reads them.
 */
export async function addBuildPackages(rootfs: string, opts: { packages?: string[]; onLine?: (line: string) => void } = {}): Promise<void> {
  if (process.getuid?.() !== 0) throw new SlipwayError('making a build variant needs root (apt-get in a chroot)', { hint: 'run it as root, or pass --no-build' });
  const packages = opts.packages ?? BUILD_PACKAGES;
  for (const p of packages) if (!PACKAGE.test(p)) throw new SlipwayError(`"${p}" is not a Debian package name`, { exitCode: 2 });
  if (!existsSync(join(rootfs, 'usr/bin/apt-get'))) throw new SlipwayError(`${rootfs}: no apt-get in this root filesystem`, { hint: 'a build variant is made from a Debian stack; import one with --build SOURCE instead' });
  // apt resolves the mirror with the host's resolver; the stack keeps the file it had.
  // (A symlink there would point into the host once followed from outside: it is put back as it was.)
  const resolv = join(rootfs, 'etc/resolv.conf');
  const link = (await lstat(resolv).catch(() => undefined))?.isSymbolicLink() ? await readlink(resolv) : undefined;
  const saved = link === undefined ? await readFile(resolv).catch(() => undefined) : undefined;
  await rm(resolv, { force: true });
  if (existsSync('/etc/resolv.conf')) await writeFile(resolv, await readFile('/etc/resolv.conf'));
  try {
    const script = `apt-get update -q && apt-get install -y -q --no-install-recommends ${packages.join(' ')} && apt-get clean && rm -rf /var/lib/apt/lists/*`;
    const child = spawn('chroot', [rootfs, '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'DEBIAN_FRONTEND=noninteractive', 'LANG=C.UTF-8', '/bin/sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const line = (l: string): void => {
      tail.push(l);
      if (tail.length > 20) tail.shift();
      opts.onLine?.(l);
    };
    createInterface({ input: child.stdout }).on('line', line);
    createInterface({ input: child.stderr }).on('line', line);
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', (err) => reject(new SlipwayError(`cannot run chroot (${err.message})`)));
      child.on('close', (c) => resolve(c ?? -1));
    });
    if (code !== 0) throw new SlipwayError(`installing the build packages failed (exit ${code}):\n${tail.join('\n')}`, { hint: 'check that the stack\'s Debian mirror is reachable and the package names exist in its suite' });
  } finally {
    await rm(resolv, { force: true });
    if (link !== undefined) await symlink(link, resolv);
    else if (saved !== undefined) await writeFile(resolv, saved);
  }
}
