import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, statSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SlipwayError } from '../errors.js';
import { decompress } from '../oci/compression.js';
import { extractLayer } from '../oci/tar/extract.js';

const run = promisify(execFile);

/** Built-in buildpacks, in autodetect order. */
export const BUILTIN_BUILDPACKS = ['nodejs', 'java', 'procfile'];

/** The repository's buildpacks/ folder, found from this module whether bundled or not. */
export function builtinDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'buildpacks', 'procfile', 'bin', 'detect'))) return join(dir, 'buildpacks');
    dir = dirname(dir);
  }
  throw new SlipwayError('the built-in buildpacks are missing from this installation', { hint: 'reinstall slipway' });
}

export interface FetchedBuildpack {
  /** The spec as given (URL, path or built-in name). */
  url: string;
  /** A private copy for this build. */
  dir: string;
  version?: string;
}

const isGit = (s: string): boolean => s.startsWith('git+') || s.startsWith('git@') || /\.git(#.*)?$/.test(s);
const isTarball = (s: string): boolean => /\.(tgz|tar\.gz)$/.test(s.split('#')[0]!);

async function extractTarball(stream: AsyncIterable<Buffer>, where: string, target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  await extractLayer(decompress(stream, where), target, where, { preserveOwners: false, devices: 'skip', kind: 'source' });
  // GitHub-style archives put everything under one top directory.
  if (!existsSync(join(target, 'bin'))) {
    const entries = await readdir(target);
    if (entries.length === 1 && existsSync(join(target, entries[0]!, 'bin'))) {
      const inner = join(target, entries[0]!);
      for (const e of await readdir(inner)) await cp(join(inner, e), join(target, e), { recursive: true, verbatimSymlinks: true });
      await rm(inner, { recursive: true, force: true });
    }
  }
}

/**
 * Fetches a buildpack into `target` (a copy private to this build, since compile may write
 * its `export` file next to its scripts): a built-in name, a local directory, a .tgz file or
 * URL, or a git URL with an optional #ref.
 */
export async function fetchBuildpack(spec: string, target: string): Promise<FetchedBuildpack> {
  let version: string | undefined;
  if (BUILTIN_BUILDPACKS.includes(spec)) {
    await cp(join(builtinDir(), spec), target, { recursive: true, verbatimSymlinks: true });
  } else if (isGit(spec)) {
    const [url, ref] = spec.replace(/^git\+/, '').split('#') as [string, string | undefined];
    try {
      await run('git', ['clone', '--quiet', url, target], { timeout: 300_000 });
      if (ref) await run('git', ['-C', target, 'checkout', '--quiet', ref]);
      version = (await run('git', ['-C', target, 'rev-parse', 'HEAD'])).stdout.trim();
    } catch (err) {
      throw new SlipwayError(`buildpack ${spec}: git failed (${(err as Error).message.split('\n').filter(Boolean).slice(-1)[0]})`, { hint: 'check the URL and the #ref' });
    }
    await rm(join(target, '.git'), { recursive: true, force: true });
  } else if (/^https?:\/\//.test(spec)) {
    if (!isTarball(spec)) throw new SlipwayError(`buildpack ${spec}: URLs must name a .tgz/.tar.gz or a git repository (.git)`, { exitCode: 2 });
    const res = await fetch(spec).catch((err: Error) => {
      throw new SlipwayError(`buildpack ${spec}: download failed (${err.message})`);
    });
    if (!res.ok || !res.body) throw new SlipwayError(`buildpack ${spec}: download failed (HTTP ${res.status})`);
    const tmp = `${target}.download`;
    await pipeline(Readable.fromWeb(res.body as never), createWriteStream(tmp));
    await extractTarball(createReadStream(tmp), spec, target);
    await rm(tmp, { force: true });
  } else {
    const path = resolve(spec);
    const st = statSync(path, { throwIfNoEntry: false });
    if (st?.isDirectory()) await cp(path, target, { recursive: true, verbatimSymlinks: true });
    else if (st?.isFile() && isTarball(path)) await extractTarball(createReadStream(path), path, target);
    else {
      throw new SlipwayError(`buildpack "${spec}" not found`, {
        hint: `give a directory, a .tgz file or URL, a git URL, or one of the built-ins: ${BUILTIN_BUILDPACKS.join(', ')}`,
      });
    }
  }
  for (const script of ['detect', 'compile']) {
    if (!existsSync(join(target, 'bin', script))) {
      throw new SlipwayError(`buildpack ${spec}: bin/${script} is missing`, { hint: 'a classic buildpack has bin/detect, bin/compile and bin/release' });
    }
  }
  if (version === undefined && existsSync(join(target, 'VERSION'))) version = (await readFile(join(target, 'VERSION'), 'utf8')).trim();
  return { url: spec, dir: target, ...(version !== undefined && { version }) };
}
