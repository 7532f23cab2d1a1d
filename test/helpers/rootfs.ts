import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { listAttributes, getAttribute } from 'fs-xattr';

export interface TreeEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: number;
  xattrs?: Record<string, string>;
  /** Index of the first path sharing this inode (hardlinks), when nlink > 1. */
  inodeGroup?: string;
}

/**
 * Describes a directory tree as comparable data: type, mode (incl. setuid), owners,
 * content hash, link targets, device numbers, xattrs and hardlink groups. mtimes are
 * left out: layers pin them.
 */
export async function describeTree(root: string, opts: { skip?: (path: string) => boolean } = {}): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  const inodes = new Map<string, string>();
  async function walk(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (opts.skip?.(path)) continue;
      const full = join(dir, name);
      const st = await lstat(full);
      const e: TreeEntry = { type: typeOf(st.mode), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (st.isFile()) {
        e.size = st.size;
        e.sha256 = createHash('sha256').update(await readFile(full)).digest('hex');
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          if (!inodes.has(key)) inodes.set(key, path);
          e.inodeGroup = inodes.get(key)!;
        }
      }
      if (st.isSymbolicLink()) e.link = await readlink(full);
      if (st.isCharacterDevice() || st.isBlockDevice()) e.rdev = st.rdev;
      if (st.isFile() || st.isDirectory()) {
        const names = (await listAttributes(full).catch(() => [] as string[])).filter((n) => n !== 'security.selinux').sort();
        if (names.length) {
          e.xattrs = {};
          for (const n of names) e.xattrs[n] = (await getAttribute(full, n)).toString('hex');
        }
      }
      out.set(path, e);
      if (st.isDirectory()) await walk(full, path);
    }
  }
  await walk(root, '');
  return out;
}

function typeOf(mode: number): string {
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
      return 'other';
  }
}

/** Lists every file under a directory with its size: "the store before and after". */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
      const full = join(dir, name);
      const st = await lstat(full);
      const path = rel ? `${rel}/${name}` : name;
      if (st.isDirectory()) await walk(full, path);
      else out.push(`${path} ${st.size}`);
    }
  }
  await walk(root, '');
  return out;
}
