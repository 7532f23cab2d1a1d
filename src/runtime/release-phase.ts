/**
 * The release phase, as Heroku runs it: a new release's `release` process type runs once, as a
 * one-off dyno, before the release may go live. Its status is recorded on the release, and only a
 * succeeded release is current. Who runs it holds a claim on the release, held by its dyno too:
 * the command never runs twice at the same time, and runs again only when the process that ran it
 * died before recording how it ended (claimReleasePhase).
 */
import { slugMetadataOf } from '../release/slug-metadata.js';
import { processToken } from '../store/owner-token.js';
import { claimReleasePhase, finishReleasePhase, phaseStarted, currentRelease, getRelease, headRelease, isBuilt, type BuiltRelease, type Release, type ReleaseStatus } from '../release/releases.js';
import type { Stack } from '../stack/stacks.js';
import type { Db } from '../store/db.js';
import type { DynoRuntime, Exit, RunningDyno } from './dyno.js';
import { dynoSpec, oneOffName } from './dyno-spec.js';
import { AppLog } from './logs.js';
import { openDynoRuntime, type RuntimeChoice } from './open.js';

export interface ReleasePhaseContext {
  home: string;
  db: Db;
  runtime: DynoRuntime;
  log: AppLog;
  /** Each line of the release command's output, besides the app's log (a build prints them). */
  onLine?: (line: string) => void;
  /** A release's process types (default: read from its slug). */
  processTypes?: (rel: BuiltRelease) => Promise<Record<string, string>>;
  /** Told of the release command's dyno once it runs, and (undefined) once it ended: to stop it. */
  onDyno?: (dyno: RunningDyno | undefined) => void;
}

/** The process types a release's slug declares. */
export async function slugProcessTypes(home: string, rel: BuiltRelease): Promise<Record<string, string>> {
  return (await slugMetadataOf(home, rel)).processTypes;
}

function describeExit(e: Exit): string {
  return e.code !== null ? `exit ${e.code}` : `signal ${e.signal ?? 'unknown'}`;
}

/**
 * Runs vN's release command if vN is pending and this process may claim it. Returns the release's
 * status afterwards; 'pending' when another live process is running it.
 */
export async function runReleasePhase(c: ReleasePhaseContext, rel: BuiltRelease): Promise<ReleaseStatus> {
  if (rel.status !== 'pending') return rel.status;
  if (!claimReleasePhase(c.db, rel.app, rel.version)) return 'pending';
  const say = (text: string): void => {
    c.log.write('slipway', 'release', text);
    c.onLine?.(text);
  };
  let types: Record<string, string>;
  try {
    types = await (c.processTypes ?? ((r) => slugProcessTypes(c.home, r)))(rel);
  } catch (err) {
    finishReleasePhase(c.db, rel.app, rel.version, 'failed', '');
    say(`v${rel.version} cannot run: ${(err as Error).message}`);
    return 'failed';
  }
  const command = Object.hasOwn(types, 'release') ? types.release! : '';
  if (command === '') {
    finishReleasePhase(c.db, rel.app, rel.version, 'succeeded', '');
    return 'succeeded';
  }
  say(`Running release command for v${rel.version}: ${command}`);
  const name = oneOffName('release');
  const out = c.log.lineWriter('app', name);
  let pending = '';
  let exit: Exit;
  try {
    const d = await c.runtime.start(await dynoSpec(c.runtime, rel, 'release', name, command), {
      stdio: 'pipe',
      onOutput: (chunk) => {
        out.push(chunk);
        if (!c.onLine) return;
        const lines = (pending + chunk.toString()).split('\n');
        pending = lines.pop() ?? '';
        for (const l of lines) c.onLine(l);
      },
    });
    const token = processToken(d.pid);
    if (token) phaseStarted(c.db, rel.app, rel.version, token);
    c.onDyno?.(d);
    exit = await d.exited;
    c.onDyno?.(undefined);
  } catch (err) {
    say(`Release command for v${rel.version} could not start: ${(err as Error).message}`);
    exit = { code: null, signal: null };
  }
  out.end();
  if (pending) c.onLine?.(pending);
  const ok = exit.code === 0;
  finishReleasePhase(c.db, rel.app, rel.version, ok ? 'succeeded' : 'failed', command);
  say(ok ? `Release command for v${rel.version} succeeded` : `Release command for v${rel.version} failed (${describeExit(exit)}): v${rel.version} does not go live`);
  return ok ? 'succeeded' : 'failed';
}

/**
 * Settles what should run: when the head release (the newest that did not fail) is still pending,
 * its release phase runs (once). Returns the current release afterwards.
 */
export async function settleReleases(c: ReleasePhaseContext, app: string): Promise<Release | undefined> {
  const head = headRelease(c.db, app);
  if (isBuilt(head) && head.status === 'pending' && (await runReleasePhase(c, head)) === 'pending') c.log.write('slipway', 'release', waitingText(c.db, head));
  return currentRelease(c.db, app);
}

/** Why a pending release is not deployed yet: its release phase runs in another process. */
export function waitingText(db: Db, rel: Release): string {
  const now = getRelease(db, rel.app, rel.version);
  const cur = currentRelease(db, rel.app);
  const who = now.phasePid !== undefined ? `process ${now.phasePid}` : 'another process';
  return `v${rel.version} waits for its release phase, running in ${who}: ${cur ? `v${cur.version} runs until it ends` : 'nothing runs until it ends'}`;
}

/**
 * The release phase of a build: the release command runs at once as a one-off dyno on the runtime
 * `choice` picks (with the build's stack), its output printed with the build's and kept in the log.
 */
export function buildReleasePhase(home: string, db: Db, stack: Stack, choice: RuntimeChoice): (release: Release, say: (line: string) => void) => Promise<boolean> {
  return async (release, say) => {
    if (!isBuilt(release)) return true;
    const log = new AppLog(home, release.app);
    // Ctrl-C or SIGTERM during the phase stops its dyno (then the build fails): never left running.
    let dyno: RunningDyno | undefined;
    let interrupted = false;
    const interrupt = (): void => {
      interrupted = true;
      say(`Stopping the release command of v${release.version}`);
      void dyno?.signal('SIGTERM');
      setTimeout(() => void dyno?.signal('SIGKILL'), 10_000).unref();
    };
    process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
    try {
      const runtime = await openDynoRuntime(home, db, choice, stack, (s) => say(`note: ${s}`));
      const onDyno = (d: RunningDyno | undefined): void => {
        dyno = d;
        if (d && interrupted) void d.signal('SIGKILL');
      };
      return (await runReleasePhase({ home, db, runtime, log, onLine: say, onDyno }, release)) === 'succeeded';
    } finally {
      process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
      log.close();
    }
  };
}
