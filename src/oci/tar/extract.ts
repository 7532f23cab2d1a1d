import { execFile } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadXattr } from '../../native.js';
import { UnsafeArchiveError } from '../../errors.js';
import type { TarHeader } from './header.js';
import { limitsFromEnv, readTar, type TarLimits } from './reader.js';
import { whiteoutOf } from './whiteout.js';

const run = promisify(execFile);

export interface ExtractOptions {
  limits?: TarLimits;
  /** Set numeric owners from the layer (needs root). Default: when running as root. */
  preserveOwners?: boolean;
  /** Device nodes and FIFOs: create them (needs root) or skip them. Default: create when root. */
  devices?: 'create' | 'skip';
  /** Added to every owner (with preserveOwners): a tree for a user namespace whose root is that host uid. */
  idShift?: number;
  /** Apply whiteouts (layer on top of lower layers). Default true. */
  whiteouts?: boolean;
  /** An image layer (default), or a source tarball such as a buildpack's (see readTar). */
  kind?: 'layer' | 'source';
}

export interface ExtractStats {
  entries: number;
  bytes: number;
  whiteouts: number;
  /** Entries or attributes that could not be created here (devices, privileged xattrs). */
  skipped: string[];
}

const isRoot = (): boolean => process.getuid?.() === 0;

function lstatOrUndefined(path: string): Stats | undefined {
  return lstatSync(path, { throwIfNoEntry: false });
}

function readdirOrEmpty(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function writeAll(fd: number, chunk: Buffer): void {
  let off = 0;
  while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
}

/**
 * Extracts one layer into `target`, over whatever lower layers are already there.
 * Never follows a symlink while writing, never writes outside `target`; whiteouts
 * only remove what lower layers put there, as the OCI spec requires. File system calls
 * are synchronous on purpose (see scan.ts): thousands of tiny calls, decompression on the pool.
 */
export async function extractLayer(
  tar: AsyncIterable<Buffer | Uint8Array>,
  target: string,
  where: string,
  opts: ExtractOptions = {},
): Promise<ExtractStats> {
  const preserveOwners = opts.preserveOwners ?? isRoot();
  const shift = opts.idShift ?? 0;
  const devices = opts.devices ?? (isRoot() ? 'create' : 'skip');
  const applyWhiteouts = opts.whiteouts ?? true;
  const stats: ExtractStats = { entries: 0, bytes: 0, whiteouts: 0, skipped: [] };
  const created = new Set<string>();
  const safeDirs = new Set<string>(['']);
  const dirs: TarHeader[] = [];

  /** Ensures every parent of `path` is a real directory inside target (never a symlink). */
  function ensureParents(path: string, label: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (safeDirs.has(rel)) continue;
      const st = lstatOrUndefined(join(target, rel));
      if (st === undefined) {
        mkdirSync(join(target, rel), { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw new UnsafeArchiveError(`${label}: would be written through the symlink "${rel}"`, 'the archive is refused');
      } else if (!st.isDirectory()) {
        throw new UnsafeArchiveError(`${label}: parent "${rel}" is not a directory`);
      }
      safeDirs.add(rel);
    }
  }

  function forget(path: string): void {
    for (const d of safeDirs) if (d === path || d.startsWith(`${path}/`)) safeDirs.delete(d);
  }

  function removeLower(path: string): void {
    forget(path);
    rmSync(join(target, path), { recursive: true, force: true });
  }

  for await (const { header: h, body } of readTar(tar, where, opts.limits ?? limitsFromEnv(), opts.kind)) {
    const label = `${where}: entry "${h.path}"`;
    ensureParents(h.path, label);

    const wo = applyWhiteouts ? whiteoutOf(h.path, where) : undefined;
    if (wo !== undefined) {
      stats.whiteouts++;
      if (wo.kind === 'opaque') {
        for (const child of readdirOrEmpty(join(target, wo.dir))) {
          const rel = wo.dir ? `${wo.dir}/${child}` : child;
          if (!created.has(rel)) removeLower(rel);
        }
      } else if (!created.has(wo.victim)) {
        removeLower(wo.victim);
      }
      continue;
    }

    const dest = join(target, h.path);
    const existing = lstatOrUndefined(dest);
    if (existing && !(existing.isDirectory() && h.type === 'dir')) removeLower(h.path);
    created.add(h.path);
    stats.entries++;

    switch (h.type) {
      case 'dir':
        if (!existing?.isDirectory()) mkdirSync(dest, { mode: 0o700 });
        chmodSync(dest, 0o700 | h.mode);
        safeDirs.add(h.path);
        dirs.push(h);
        break;
      case 'file': {
        const fd = openSync(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of body) writeAll(fd, chunk);
        } finally {
          closeSync(fd);
        }
        stats.bytes += h.size;
        break;
      }
      case 'symlink':
        symlinkSync(h.linkTarget!, dest);
        break;
      case 'hardlink': {
        ensureParents(h.linkTarget!, `${label} (hardlink target)`);
        const st = lstatOrUndefined(join(target, h.linkTarget!));
        if (st === undefined || st.isDirectory() || st.isSymbolicLink()) {
          throw new UnsafeArchiveError(`${label}: hardlink target "${h.linkTarget}" is missing or not a file`, 'the archive is refused');
        }
        linkSync(join(target, h.linkTarget!), dest);
        continue; // a hardlink shares its target's metadata
      }
      case 'char':
      case 'block':
      case 'fifo':
        if (devices === 'skip') {
          stats.skipped.push(h.path);
          created.delete(h.path);
          stats.entries--;
          continue;
        }
        if (h.type === 'fifo') await run('mkfifo', ['-m', '600', dest]);
        else await run('mknod', ['-m', '600', dest, h.type === 'char' ? 'c' : 'b', String(h.devMajor ?? 0), String(h.devMinor ?? 0)]);
        break;
    }
    if (h.type === 'dir') continue; // metadata applied at the end, after children exist
    applyMetadata(dest, h, preserveOwners, shift, stats);
  }

  // Deepest first, so setting a parent's mode or mtime is the last touch it gets.
  for (const h of dirs.reverse()) applyMetadata(join(target, h.path), h, preserveOwners, shift, stats);
  return stats;
}

function applyMetadata(dest: string, h: TarHeader, preserveOwners: boolean, shift: number, stats: ExtractStats): void {
  // chown clears setuid bits and file capabilities, so it comes first.
  if (preserveOwners) lchownSync(dest, h.uid + shift, h.gid + shift);
  if (h.type !== 'symlink') {
    chmodSync(dest, h.mode);
    for (const [name, value] of Object.entries(h.xattrs ?? {})) {
      try {
        loadXattr().setAttributeSync(dest, name, value);
      } catch (err) {
        // Unprivileged extraction cannot set security.* or trusted.*: report it and go on.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EPERM' && code !== 'ENOTSUP') throw err;
        stats.skipped.push(`${h.path} (xattr ${name})`);
      }
    }
    utimesSync(dest, h.mtime, h.mtime);
  } else {
    lutimesSync(dest, h.mtime, h.mtime);
  }
}
