/**
 * Who owns what Slipway leaves on the host while it runs (a dyno, a build's network): the Slipway
 * process, named by pid and start time, so that what a dead process left can be told from what a
 * live one looks after (orphans.ts, build-network.ts). A dyno's bundle also names its app.
 */
import { readFileSync } from 'node:fs';

export const APP_ANNOTATION = 'io.slipway.app';
export const OWNER_ANNOTATION = 'io.slipway.owner';

/**
 * A running process's start time since boot (clock ticks): with the pid, names it even after pid
 * reuse. Undefined once it has exited, zombies included (a killed supervisor's parent is init,
 * which may take its time to reap it).
 */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3, start time 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

const SELF = `${process.pid}@${startTime(process.pid) ?? '0'}`;

/** This process, as an owner. */
export function ownerToken(): string {
  return SELF;
}

/** The annotations of a dyno this process starts. */
export function dynoAnnotations(app: string): Record<string, string> {
  return { [APP_ANNOTATION]: app, [OWNER_ANNOTATION]: SELF };
}

/** Is the owner named by a token still running? */
export function ownerAlive(owner: string | undefined): boolean {
  const [pid, start] = (owner ?? '').split('@');
  return Number(pid) > 0 && startTime(Number(pid)) === start;
}

