import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** fsync a directory so a rename inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function tempName(dir: string, base: string): string {
  return join(dir, `.${base}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes a whole file so that readers see either the old or the new content, never a mix. */
export async function writeFileAtomic(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  const tmp = tempName(dir, basename(path));
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
    await fsyncDir(dir);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Directories being made in this process, so concurrent callers share one piece of work. */
const making = new Map<string, Promise<string>>();

/**
 * A directory made once and then only read (an unpacked stack or slug): filled in a temp sibling,
 * renamed into place when whole. Callers in this process wait for the same fill; if another process
 * renamed its copy first, that one is used.
 */
export function directoryOnce(dir: string, fill: (tmp: string) => Promise<void>): Promise<string> {
  if (existsSync(dir)) return Promise.resolve(dir);
  let p = making.get(dir);
  if (!p) {
    p = (async () => {
      const tmp = tempName(dirname(dir), basename(dir));
      await mkdir(tmp, { recursive: true, mode: 0o755 });
      try {
        await fill(tmp);
        try {
          await rename(tmp, dir);
        } catch (err) {
          if (!existsSync(dir)) throw err;
        }
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
      return dir;
    })().finally(() => making.delete(dir));
    making.set(dir, p);
  }
  return p;
}
