import { open, readFile, rename, rm } from 'node:fs/promises';
import { SlipwayError } from '../errors.js';

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
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
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(await readFile(path, 'utf8').catch(() => ''));
    if (owner && !alive(owner)) {
      const stale = `${path}.stale.${process.pid}`;
      if (await rename(path, stale).then(() => true, () => false)) {
        const moved = Number(await readFile(stale, 'utf8').catch(() => ''));
        if (moved !== owner && alive(moved)) await rename(stale, path).catch(() => undefined);
        else await rm(stale, { force: true });
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
