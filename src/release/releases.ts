import { SlipwayError, UsageError } from '../errors.js';
import type { Db } from '../store/db.js';
import type { Stack } from '../stack/stacks.js';

export type ConfigVars = Record<string, string>;

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
}

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
  };
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

export function currentRelease(db: Db, app: string): Release | undefined {
  const row = db.prepare('SELECT * FROM releases WHERE app = ? ORDER BY version DESC LIMIT 1').get(app) as Row | undefined;
  return row ? fromRow(row) : undefined;
}

export function getRelease(db: Db, app: string, version: number): Release {
  const row = db.prepare('SELECT * FROM releases WHERE app = ? AND version = ?').get(app, version) as Row | undefined;
  if (!row) throw new SlipwayError(`${app} has no release v${version}`, { hint: `see slipway releases ${app}` });
  return fromRow(row);
}

/** Appends release vN+1 in one transaction, built from the current release by `change`. */
export function addRelease(db: Db, app: string, change: (current: Release | undefined) => Omit<Release, 'app' | 'version' | 'createdAt'>): Release {
  return db.transaction(() => {
    const next = change(currentRelease(db, app));
    const version = ((db.prepare('SELECT MAX(version) AS v FROM releases WHERE app = ?').get(app) as { v: number | null }).v ?? 0) + 1;
    const release: Release = { app, version, ...next, createdAt: new Date().toISOString() };
    db.prepare(
      'INSERT INTO releases (app, version, slug, stack_name, stack_version, stack_digest, config, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(app, version, release.slug ?? null, release.stack?.name ?? null, release.stack?.version ?? null, release.stack?.digest ?? null, JSON.stringify(release.config), release.description, release.createdAt);
    return release;
  }).immediate();
}

/** A new build: the new slug on its stack, config carried over. */
export function releaseSlug(db: Db, app: string, slug: string, stack: Stack, description: string): Release {
  return addRelease(db, app, (cur) => ({ slug, stack: { name: stack.name, version: stack.version, digest: stack.digest }, config: cur?.config ?? {}, description }));
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

function slugAndStack(r: Release | undefined): Pick<Release, 'slug' | 'stack'> {
  return { ...(r?.slug !== undefined && { slug: r.slug }), ...(r?.stack !== undefined && { stack: r.stack }) };
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
      const cur = currentRelease(db, app);
      if (!cur?.slug || cur.stack?.name !== stack.name || cur.stack.digest === stack.digest) continue;
      const next = {
        slug: cur.slug,
        stack: { name: stack.name, version: stack.version, digest: stack.digest },
        config: cur.config,
        description: `Rebase onto ${stack.name}@v${stack.version}`,
      };
      const to = opts.dryRun ? { ...next, app, version: cur.version + 1, createdAt: '' } : addRelease(db, app, () => next);
      moves.push({ app, from: cur, to });
    }
    return moves;
  }).immediate();
}

/** The release an `APP` or `APP@vN` spec names (the current one by default); it must have a slug. */
export function builtRelease(db: Db, spec: string): Release & { slug: string; stack: NonNullable<Release['stack']> } {
  const m = /^([^@]+)(?:@v?(\d+))?$/.exec(spec);
  if (!m) throw new UsageError(`"${spec}" is not APP or APP@vN`);
  const app = m[1]!;
  if (!db.prepare('SELECT 1 FROM apps WHERE name = ?').get(app)) throw new SlipwayError(`no app "${app}"`, { hint: 'see slipway apps' });
  const rel = m[2] ? getRelease(db, app, Number(m[2])) : currentRelease(db, app);
  if (!rel?.slug || !rel.stack) throw new SlipwayError(`${app}${m[2] ? ` v${m[2]}` : ''} has no slug yet`, { hint: `slipway build DIR --app ${app}` });
  return rel as Release & { slug: string; stack: NonNullable<Release['stack']> };
}
