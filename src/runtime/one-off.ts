/**
 * One-off dynos (`slipway run APP CMD`), as `heroku run` makes them: a process of the current
 * release with the formation's environment, attached to the caller (stdin included; on a terminal,
 * a terminal of its own in the dyno), its exit status the caller's.
 */
import { SlipwayError } from '../errors.js';
import { runningRelease } from '../release/releases.js';
import { findStackByDigest } from '../stack/stacks.js';
import type { Db } from '../store/db.js';
import type { DynoSignal } from './dyno.js';
import { dynoSpec, oneOffName } from './dyno-spec.js';
import { openDynoRuntime, type RuntimeChoice } from './open.js';
import { exitStatus } from './supervisor.js';

const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * The shell command line of `run`'s arguments: one is a command line already (`run APP 'echo $HOME;
 * exit 3'`); several are words, each quoted, so `run APP -- sh -c 'exit 7'` runs exactly that.
 */
export function commandLine(args: string[]): string {
  if (args.length === 1) return args[0]!;
  return args.map((a) => (PLAIN.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export interface OneOffOptions {
  runtime: RuntimeChoice;
  /** A terminal in the dyno (the caller's stdin must be one); else stdin, stdout and stderr as they are. */
  tty: boolean;
  say: (line: string) => void;
}

/** Runs `args` in a one-off dyno of APP's current release; resolves to its exit status. */
export async function runOneOff(home: string, db: Db, app: string, args: string[], o: OneOffOptions): Promise<number> {
  const release = runningRelease(db, app);
  const stack = findStackByDigest(db, release.stack.digest);
  if (!stack) throw new SlipwayError(`stack ${release.stack.name} ${release.stack.digest} is not on this host`, { hint: 'import that stack version' });
  const runtime = await openDynoRuntime(home, db, o.runtime, stack, o.say);
  const spec = await dynoSpec(runtime, release, 'run', oneOffName('run'), commandLine(args));
  // On a terminal, the caller's TERM too (as `heroku run` sends it): programs need it to draw.
  if (o.tty) spec.env.TERM = process.env.TERM || 'xterm-256color';
  const dyno = await runtime.start(spec, { stdio: o.tty ? 'tty' : 'attach' });
  // What would end this process goes to the dyno instead (as a hang-up ends `heroku run`'s), and
  // the dyno's exit ends it.
  const forward = (sig: DynoSignal) => (): void => void dyno.signal(sig);
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => [sig, forward(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  try {
    return exitStatus(await dyno.exited);
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}
