/**
 * A process named so that pid reuse cannot fool a check: `pid@start time`. Slipway names what it
 * leaves on the host while it runs (a dyno, a build's network, a release phase's claim) with such
 * a token, so that what a dead process left can be told from what a live one looks after.
 */
import { readFileSync } from 'node:fs';

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

/** The token of a running process; undefined when it is gone. */
export function processToken(pid: number): string | undefined {
  const start = pid > 0 ? startTime(pid) : undefined;
  return start === undefined ? undefined : `${pid}@${start}`;
}

const SELF = processToken(process.pid) ?? `${process.pid}@0`;

/** This process, as an owner. */
export function ownerToken(): string {
  return SELF;
}

/** Is the owner named by a token still running? */
export function ownerAlive(owner: string | undefined): boolean {
  const [pid, start] = (owner ?? '').split('@');
  return Number(pid) > 0 && startTime(Number(pid)) === start;
}

/** The pid a token names. */
export function tokenPid(owner: string): number {
  return Number(owner.split('@')[0]);
}
