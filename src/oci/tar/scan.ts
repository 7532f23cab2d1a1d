import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { loadXattr } from '../../native.js';
import { SlipwayError } from '../../errors.js';
import type { EntryType, TarHeader } from './header.js';
import type { WriteEntry } from './writer.js';

/** 1980-01-01T00:00:00Z, the default mtime of every entry when SOURCE_DATE_EPOCH is unset. */
export const DEFAULT_EPOCH = 315532800;

export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return DEFAULT_EPOCH;
  if (!/^\d+$/.test(raw)) throw new SlipwayError(`SOURCE_DATE_EPOCH="${raw}" is not a number of seconds`);
  return Number(raw);
}

export interface ScanOptions {
  /** mtime given to every entry. */
  mtime?: number;
  /** Prefix added to every path in the archive (e.g. "app"). */
  prefix?: string;
  /** Owner given to every entry instead of the one on disk (slugs belong to the app user). */
  owner?: { uid: number; gid: number };
  /** Called for entries that cannot go in a layer (sockets). */
  onSkip?: (path: string, why: string) => void;
}

/** xattrs that describe the host, not the content. */
const IGNORED_XATTRS = new Set(['security.selinux']);

function kindOf(mode: number): EntryType | undefined {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o010000:
      return 'fifo';
    default:
      return undefined;
  }
}

function readXattrs(path: string): Record<string, Buffer> | undefined {
  let names: string[];
  try {
    names = loadXattr().listAttributesSync(path);
  } catch {
    return undefined; // filesystem without xattr support
  }
  const out: Record<string, Buffer> = {};
  for (const name of names.filter((n) => !IGNORED_XATTRS.has(n)).sort()) {
    out[name] = loadXattr().getAttributeSync(path, name);
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A file's content in chunks; fresh buffers, since consumers may keep them. */
function* readChunks(path: string): Generator<Buffer> {
  const fd = openSync(path, 'r');
  try {
    while (true) {
      const buf = Buffer.allocUnsafe(256 * 1024);
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Walks a directory depth-first in byte order of names and yields deterministic tar
 * entries: numeric owners as on disk, a fixed mtime, hardlinks as links to the first
 * path seen, xattrs kept. Parents always come before their children.
 *
 * Metadata and content are read with synchronous calls on purpose: a walk is thousands
 * of tiny syscalls, and a pool round trip per call costs far more than the call itself
 * (30x here), while compression runs on the pool in parallel anyway.
 */
export async function* scanDirectory(root: string, opts: ScanOptions = {}): AsyncGenerator<WriteEntry> {
  const mtime = opts.mtime ?? sourceDateEpoch();
  const links = new Map<string, string>();
  const prefixParts = (opts.prefix ?? '').split('/').filter(Boolean);

  let rootStat;
  try {
    rootStat = lstatSync(root);
  } catch (err) {
    throw new SlipwayError(`dir:${root}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { hint: 'give an existing directory' });
  }
  if (!rootStat.isDirectory()) throw new SlipwayError(`dir:${root}: not a directory`);
  for (let i = 1; i <= prefixParts.length; i++) {
    yield {
      header: { path: prefixParts.slice(0, i).join('/'), type: 'dir', mode: 0o755, uid: opts.owner?.uid ?? rootStat.uid, gid: opts.owner?.gid ?? rootStat.gid, size: 0, mtime },
    };
  }

  async function* walk(dir: string, rel: string): AsyncGenerator<WriteEntry> {
    const names = readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const full = join(dir, name);
      const path = [...prefixParts, ...(rel ? [rel] : []), name].join('/');
      const st = lstatSync(full);
      const type = kindOf(st.mode);
      if (type === undefined) {
        opts.onSkip?.(path, 'sockets cannot be stored in a layer');
        continue;
      }
      const header: TarHeader = { path, type, mode: st.mode & 0o7777, uid: opts.owner?.uid ?? st.uid, gid: opts.owner?.gid ?? st.gid, size: 0, mtime };
      if (type === 'file' && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          yield { header: { ...header, type: 'hardlink', linkTarget: first } };
          continue;
        }
        links.set(key, path);
      }
      if (type === 'symlink') header.linkTarget = readlinkSync(full);
      if (type === 'char' || type === 'block') {
        header.devMajor = Math.floor(st.rdev / 256) & 0xfff;
        header.devMinor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
      }
      if (type === 'file' || type === 'dir') {
        const xattrs = readXattrs(full);
        if (xattrs) header.xattrs = xattrs;
      }
      if (type === 'file') {
        header.size = st.size;
        yield { header, body: () => readChunks(full) };
      } else {
        yield { header };
      }
      if (type === 'dir') yield* walk(full, rel ? `${rel}/${name}` : name);
    }
  }

  yield* walk(root, '');
}
