/**
 * The formation (process type -> how many dynos) and each app's host uid range: the state the
 * runtime keeps per app, in the metadata database.
 */
import { SlipwayError, UsageError } from '../errors.js';
import { PROCESS_TYPE } from '../slug/procfile.js';
import type { Db } from '../store/db.js';
import { runningRelease } from './releases.js';
import { slugMetadataOf } from './slug-metadata.js';

export type Formation = Record<string, number>;

/** `web=2,worker=1` or `web=2 worker=1` (several arguments). */
export function parseFormation(args: string[]): Formation {
  const out: Formation = Object.create(null) as Formation;
  for (const part of args.flatMap((a) => a.split(',')).filter(Boolean)) {
    const eq = part.lastIndexOf('=');
    const [type, count] = [part.slice(0, eq), part.slice(eq + 1)];
    if (eq < 0 || !PROCESS_TYPE.test(type) || !/^\d{1,3}$/.test(count)) throw new UsageError(`"${part}" is not TYPE=COUNT`, 'e.g. web=2 or web=2,worker=1 (a type is letters, digits, _ and -)');
    out[type] = Number(count);
  }
  return out;
}

/** `release` runs once per release (its release phase), never as dynos of the formation. */
export function isFormationType(type: string): boolean {
  return type !== 'release';
}

/** The process types of a release, own names only (`constructor` is not a type unless declared). */
export function typeMap(types: Record<string, string>): Map<string, string> {
  return new Map(Object.keys(types).filter((t) => Object.hasOwn(types, t) && typeof types[t] === 'string').map((t) => [t, types[t]!]));
}

/** A formation from elsewhere (the control socket's JSON), held to parseFormation's grammar. */
export function checkFormation(input: unknown): Formation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new UsageError('the formation is not an object of TYPE: COUNT', 'e.g. {"web": 2}');
  return parseFormation(Object.entries(input).map(([t, n]) => `${t}=${typeof n === 'number' ? n : '?'}`));
}

/** Only the release's own formation types scale; anything else is refused with what there is. */
export function refuseUnknownTypes(change: Formation, types: ReadonlyMap<string, string>, where: string): void {
  if (Object.hasOwn(change, 'release')) throw new SlipwayError('the release process type runs once per release (its release phase) and cannot be scaled', { hint: 'it runs when a new release is made; see slipway releases' });
  const unknown = Object.keys(change).filter((t) => !types.has(t));
  if (unknown.length === 0) return;
  const known = [...types.keys()].filter(isFormationType);
  throw new SlipwayError(`${where} has no ${unknown.join(', ')} process type`, { hint: known.length ? `its process types: ${known.join(', ')}` : 'it has no process types to scale' });
}

/** The formation a release runs at: the stored one, web=1 for a web type never scaled, 0 for the rest. */
export function formationFor(db: Db, app: string, processTypes: Record<string, string>): Formation {
  const stored = getFormation(db, app);
  return Object.fromEntries([...typeMap(processTypes).keys()].filter(isFormationType).map((t) => [t, Object.hasOwn(stored, t) ? stored[t]! : t === 'web' ? 1 : 0]));
}

/** Scales an app that is not up: the change is checked against its current release's process types. */
export async function scaleStored(home: string, db: Db, app: string, change: Formation): Promise<Formation> {
  const rel = runningRelease(db, app);
  refuseUnknownTypes(change, typeMap((await slugMetadataOf(home, rel)).processTypes), `${app} v${rel.version}`);
  return setFormation(db, app, change);
}

export function formatFormation(f: Formation): string {
  return Object.entries(f).map(([t, n]) => `${t}=${n}`).join(' ') || '(none)';
}

export function getFormation(db: Db, app: string): Formation {
  const rows = db.prepare('SELECT type, quantity FROM formations WHERE app = ? ORDER BY type').all(app) as { type: string; quantity: number }[];
  return Object.fromEntries(rows.map((r) => [r.type, r.quantity]));
}

export function setFormation(db: Db, app: string, change: Formation): Formation {
  const upsert = db.prepare('INSERT INTO formations (app, type, quantity) VALUES (?, ?, ?) ON CONFLICT (app, type) DO UPDATE SET quantity = excluded.quantity');
  db.transaction(() => {
    for (const [type, n] of Object.entries(change)) upsert.run(app, type, n);
  }).immediate();
  return getFormation(db, app);
}

/** Each app's dynos map container uids 0-65535 onto their own host range, above every system uid. */
export const UID_RANGE_SIZE = 65536;
const FIRST_BASE = 0x100000;

export function uidRange(db: Db, app: string): number {
  return db.transaction(() => {
    const row = db.prepare('SELECT base FROM uid_ranges WHERE app = ?').get(app) as { base: number } | undefined;
    if (row) return row.base;
    const max = (db.prepare('SELECT MAX(base) AS m FROM uid_ranges').get() as { m: number | null }).m;
    const base = max === null ? FIRST_BASE : max + UID_RANGE_SIZE;
    db.prepare('INSERT INTO uid_ranges (app, base) VALUES (?, ?)').run(app, base);
    return base;
  }).immediate();
}
