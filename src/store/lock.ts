import { closeSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { SlipwayError } from '../errors.js';

/** True while a process with this pid exists (ours or another user's). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function tryRename(from: string, to: string): boolean {
  try {
    renameSync(from, to);
    return true;
  } catch {
    return false;
  }
}

/**
 * An exclusive cross-process lock: a file created with O_EXCL holding the owner's pid.
 * A lock whose owner died (kill -9 mid-update) is taken over: it is first renamed to a
 * unique name and checked again, so two waiters cannot both break the same live lock.
 */
export async function acquireLock(path: string, what: string, timeoutMs = 120_000): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  let wait = 5;
  while (true) {
    try {
      // Synchronous: a handful of tiny calls, each far cheaper than a pool round trip.
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return async () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(readOrEmpty(path));
    if (owner && !processAlive(owner)) {
      const stale = `${path}.stale.${process.pid}`;
      if (tryRename(path, stale)) {
        const moved = Number(readOrEmpty(stale));
        if (moved !== owner && processAlive(moved)) tryRename(stale, path);
        else rmSync(stale, { force: true });
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new SlipwayError(`${what}: still locked by process ${owner || '?'} after ${timeoutMs / 1000} s`, {
        hint: `wait for it to finish, or remove ${path} if no slipway process is running`,
      });
    }
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 200);
  }
}
