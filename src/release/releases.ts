import { SlipwayError, UsageError } from '../errors.js';
import type { Db } from '../store/db.js';
import { ownerAlive, ownerToken, tokenPid } from '../store/owner-token.js';
import type { Stack } from '../stack/stacks.js';

export type ConfigVars = Record<string, string>;

/**
 * Heroku's release statuses: a release whose slug has a `release` process type is pending until
 * that command has run once; it goes live only when it succeeded.
 */
export type ReleaseStatus = 'pending' | 'succeeded' | 'failed';

/** An immutable, numbered release: a slug on a stack version with config vars. */
export interface Release {
  app: string;
  version: number;
  /** Slug artifact digest; absent before the first build (config set on a new app). */
  slug?: string;
  stack?: { name: string; version: number; digest: string };
  config: ConfigVars;
  description: string;
  createdAt: string;
  status: ReleaseStatus;
  /** The slug's release command; '' when it has none, undefined when not known (read the slug). */
  releaseCommand?: string;
  /** A pending release whose release phase a live process runs: that process (the dyno, once started). */
  phasePid?: number;
}

/** A release with its slug and stack: what can run. */
export type BuiltRelease = Release & { slug: string; stack: NonNullable<Release['stack']> };

interface Row {
  app: string;
  version: number;
  slug: string | null;
  stack_name: string | null;
  stack_version: number | null;
  stack_digest: string | null;
  config: string;
  description: string;
  created_at: string;
  status: ReleaseStatus;
  release_command: string | null;
  /** Space-separated owner tokens: the claimant, then the dyno it started. */
  phase_owner: string | null;
}

/** The live holder of a release phase's claim, the dyno first: undefined when every holder is gone. */
function liveHolder(owners: string | null): string | undefined {
  return (owners ?? '').split(' ').filter(Boolean).reverse().find(ownerAlive);
}

function fromRow(r: Row): Release {
  return {
    app: r.app,
    version: r.version,
    ...(r.slug !== null && { slug: r.slug }),
    ...(r.stack_name !== null && { stack: { name: r.stack_name, version: r.stack_version!, digest: r.stack_digest! } }),
    config: JSON.parse(r.config) as ConfigVars,
    description: r.description,
    createdAt: r.created_at,
    status: r.status,
    ...(r.release_command !== null && { releaseCommand: r.release_command }),
    ...(r.status === 'pending' && liveHolder(r.phase_owner) !== undefined && { phasePid: tokenPid(liveHolder(r.phase_owner)!) }),
  };
}

export function isBuilt(r: Release | undefined): r is BuiltRelease {
  return r?.slug !== undefined && r.stack !== undefined;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkConfigKey(key: string): string {
  if (!KEY.test(key)) throw new UsageError(`config var name "${key}" is not valid`, 'use letters, digits and _, not starting with a digit');
  return key;
}

/** Parses K=V arguments (values may contain =). */
export function parseAssignments(args: string[]): ConfigVars {
  const out: ConfigVars = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new UsageError(`"${a}" is not KEY=VALUE`);
    out[checkConfigKey(a.slice(0, eq))] = a.slice(eq + 1);
  }
  return out;
}

export function listReleases(db: Db, app: string): Release[] {
  return (db.prepare('SELECT * FROM releases WHERE app = ? ORDER BY version DESC').all(app) as Row[]).map(fromRow);
}

/** The newest release, whatever its status. */
export function latestRelease(db: Db, app: string): Release | undefined {
  const row = db.prepare('SELECT * FROM releases WHERE app = ? ORDER BY version DESC LIMIT 1').get(app) as Row | undefined;
  return row ? fromRow(row) : undefined;
}

/**
 * What the next release (a build, config change, rebase) starts from: the newest release that did
 * not fail, so a failed slug is never carried on and a pending config change is never lost.
 */
export function headRelease(db: Db, app: string): Release | undefined {
  const row = db.prepare("SELECT * FROM releases WHERE app = ? AND status != 'failed' ORDER BY version DESC LIMIT 1").get(app) as Row | undefined;
  return row ? fromRow(row) : undefined;
}

/** The current release: the newest one whose release phase succeeded (what runs). */
export function currentRelease(db: Db, app: string): Release | undefined {
  const row = db.prepare("SELECT * FROM releases WHERE app = ? AND status = 'succeeded' ORDER BY version DESC LIMIT 1").get(app) as Row | undefined;
  return row ? fromRow(row) : undefined;
}

export function getRelease(db: Db, app: string, version: number): Release {
  const row = db.prepare('SELECT * FROM releases WHERE app = ? AND version = ?').get(app, version) as Row | undefined;
  if (!row) throw new SlipwayError(`${app} has no release v${version}`, { hint: `see slipway releases ${app}` });
  return fromRow(row);
}

/** `vN` or `N`. */
export function parseVersion(text: string): number {
  const m = /^v?(\d{1,9})$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is not a release version (vN)`);
  return Number(m[1]);
}

type NewRelease = Omit<Release, 'app' | 'version' | 'createdAt' | 'status'>;

/** A new release is pending when its slug may have a release command (unknown counts), else succeeded. */
function newStatus(r: NewRelease): ReleaseStatus {
  return r.slug !== undefined && r.releaseCommand !== '' ? 'pending' : 'succeeded';
}

/**
 * Appends release vN+1 in one transaction, built from the head release by `change`. It is
 * pending when its slug may have a release command (`claim`: the owner token of the process that
 * runs it, see claimReleasePhase), succeeded
 * otherwise. A first release creates its app, so a failed first build leaves none.
 */
export function addRelease(db: Db, app: string, change: (head: Release | undefined) => NewRelease, opts: { claim?: string } = {}): Release {
  return db.transaction(() => {
    db.prepare('INSERT INTO apps (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(app, new Date().toISOString());
    const next = change(headRelease(db, app));
    const version = ((db.prepare('SELECT MAX(version) AS v FROM releases WHERE app = ?').get(app) as { v: number | null }).v ?? 0) + 1;
    const status = newStatus(next);
    const release: Release = { app, version, ...next, status, createdAt: new Date().toISOString() };
    db.prepare(
      'INSERT INTO releases (app, version, slug, stack_name, stack_version, stack_digest, config, description, created_at, status, release_command, phase_owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(
      app, version, release.slug ?? null, release.stack?.name ?? null, release.stack?.version ?? null, release.stack?.digest ?? null, JSON.stringify(release.config),
      release.description, release.createdAt, status, release.slug === undefined ? null : (release.releaseCommand ?? null), status === 'pending' ? (opts.claim ?? null) : null,
    );
    return release;
  }).immediate();
}

/**
 * Takes the right to run vN's release command: true when it is pending and no holder of its claim
 * is alive. Holders are named by pid and start time, so a reused pid holds nothing; the dyno
 * running the command holds it too (phaseStarted), so a slipway killed mid-phase leaves the claim
 * held until that dyno ends, and only then may the next process run the command again.
 */
export function claimReleasePhase(db: Db, app: string, version: number, owner = ownerToken()): boolean {
  return db.transaction(() => {
    const row = db.prepare('SELECT status, phase_owner FROM releases WHERE app = ? AND version = ?').get(app, version) as Pick<Row, 'status' | 'phase_owner'> | undefined;
    if (row?.status !== 'pending') return false;
    const holder = liveHolder(row.phase_owner);
    if (holder !== undefined && holder !== owner) return false;
    db.prepare('UPDATE releases SET phase_owner = ? WHERE app = ? AND version = ?').run(owner, app, version);
    return true;
  }).immediate();
}

/** The claimant of vN's release phase started its dyno: the dyno (its token) holds the claim too. */
export function phaseStarted(db: Db, app: string, version: number, dyno: string, owner = ownerToken()): void {
  db.prepare("UPDATE releases SET phase_owner = ? WHERE app = ? AND version = ? AND status = 'pending' AND phase_owner = ?").run(`${owner} ${dyno}`, app, version, owner);
}

/** Records how vN's release phase ended (and the command it found in the slug). */
export function finishReleasePhase(db: Db, app: string, version: number, status: 'succeeded' | 'failed', releaseCommand: string): void {
  db.prepare("UPDATE releases SET status = ?, release_command = ?, phase_owner = NULL WHERE app = ? AND version = ? AND status = 'pending'").run(status, releaseCommand, app, version);
}

/** A new build: the new slug on its stack, config carried over. */
export function releaseSlug(db: Db, app: string, slug: string, stack: Stack, description: string, releaseCommand: string, opts: { claim?: string } = {}): Release {
  return addRelease(db, app, (cur) => ({ slug, stack: { name: stack.name, version: stack.version, digest: stack.digest }, config: cur?.config ?? {}, description, releaseCommand }), opts);
}

export function setConfig(db: Db, app: string, vars: ConfigVars): Release {
  return addRelease(db, app, (cur) => ({ ...slugAndStack(cur), config: { ...cur?.config, ...vars }, description: `Set ${Object.keys(vars).join(', ')} config vars` }));
}

export function unsetConfig(db: Db, app: string, keys: string[]): Release {
  return addRelease(db, app, (cur) => {
    const missing = keys.filter((k) => !(k in (cur?.config ?? {})));
    if (missing.length) throw new SlipwayError(`${app} has no config var ${missing.join(', ')}`);
    const config = { ...cur!.config };
    for (const k of keys) delete config[k];
    return { ...slugAndStack(cur), config, description: `Unset ${keys.join(', ')} config vars` };
  });
}

/** A new release with vN's slug, stack and config: nothing is rebuilt. */
export function rollback(db: Db, app: string, version: number): Release {
  const target = getRelease(db, app, version);
  return addRelease(db, app, () => ({ ...slugAndStack(target), config: target.config, description: `Rollback to v${version}` }));
}

/** What a new release keeps of another: its slug, stack and the release command the slug has. */
function slugAndStack(r: Release | undefined): Pick<Release, 'slug' | 'stack' | 'releaseCommand'> {
  return { ...(r?.slug !== undefined && { slug: r.slug }), ...(r?.stack !== undefined && { stack: r.stack }), ...(r?.releaseCommand !== undefined && { releaseCommand: r.releaseCommand }) };
}

export interface FleetMove {
  app: string;
  from: Release;
  to: Release;
}

/**
 * Moves every app whose current release runs on an older version of `stack` onto its latest
 * version: a new release each, same slug and config, in one transaction. Nothing is rebuilt.
 */
export function rebaseFleet(db: Db, stack: Stack, opts: { dryRun?: boolean } = {}): FleetMove[] {
  return db.transaction(() => {
    const names = (db.prepare('SELECT name FROM apps ORDER BY name').all() as { name: string }[]).map((r) => r.name);
    const moves: FleetMove[] = [];
    for (const app of names) {
      const cur = headRelease(db, app);
      if (!cur?.slug || cur.stack?.name !== stack.name || cur.stack.digest === stack.digest) continue;
      const next = {
        ...slugAndStack(cur),
        stack: { name: stack.name, version: stack.version, digest: stack.digest },
        config: cur.config,
        description: `Rebase onto ${stack.name}@v${stack.version}`,
      };
      const version = ((db.prepare('SELECT MAX(version) AS v FROM releases WHERE app = ?').get(app) as { v: number }).v) + 1;
      const to = opts.dryRun ? { ...next, app, version, createdAt: '', status: newStatus(next) } : addRelease(db, app, () => next);
      moves.push({ app, from: cur, to });
    }
    return moves;
  }).immediate();
}

/**
 * The release an `APP` or `APP@vN` spec names (by default the head: the newest that did not fail
 * its release phase, so an export carries a pending release with its release Job); it must have a slug.
 */
export function builtRelease(db: Db, spec: string): BuiltRelease {
  const m = /^([^@]+)(?:@v?(\d+))?$/.exec(spec);
  if (!m) throw new UsageError(`"${spec}" is not APP or APP@vN`);
  const app = m[1]!;
  if (!db.prepare('SELECT 1 FROM apps WHERE name = ?').get(app)) throw new SlipwayError(`no app "${app}"`, { hint: 'see slipway apps' });
  const rel = m[2] ? getRelease(db, app, Number(m[2])) : headRelease(db, app);
  if (!isBuilt(rel)) {
    const failed = !m[2] && isBuilt(latestRelease(db, app));
    throw new SlipwayError(failed ? `${app} has no release that did not fail its release phase` : `${app}${m[2] ? ` v${m[2]}` : ''} has no slug yet`, {
      hint: failed ? `see slipway releases ${app}; fix the release command and build again` : `slipway build DIR --app ${app}`,
    });
  }
  return rel;
}

/**
 * What runs: the app's current release (the newest whose release phase succeeded), never a
 * pending or failed one; an error saying why there is none.
 */
export function runningRelease(db: Db, app: string): BuiltRelease {
  if (!db.prepare('SELECT 1 FROM apps WHERE name = ?').get(app)) throw new SlipwayError(`no app "${app}"`, { hint: 'see slipway apps' });
  const rel = currentRelease(db, app);
  if (isBuilt(rel)) return rel;
  const latest = latestRelease(db, app);
  if (!isBuilt(latest)) throw new SlipwayError(`${app} has no release with a slug yet`, { hint: `build it first: slipway build DIR --app ${app}` });
  const running = latest.phasePid !== undefined ? `, its release phase running in process ${latest.phasePid}` : '';
  throw new SlipwayError(`${app} has no release whose release phase succeeded (v${latest.version} is ${latest.status}${running})`, {
    hint: running ? 'try again once it has ended' : latest.status === 'pending' ? `slipway up ${app} runs its release phase` : `see slipway releases ${app}; fix the release command and build again`,
  });
}
