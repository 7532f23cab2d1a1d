/**
 * The formation (process type -> how many dynos) and each app's host uid range: the state the
 * runtime keeps per app, in the metadata database.
 */
import { SlipwayError, UsageError } from '../errors.js';
import type { Db } from '../store/db.js';

export type Formation = Record<string, number>;

/** `web=2,worker=1` or `web=2 worker=1` (several arguments). */
export function parseFormation(args: string[]): Formation {
  const out: Formation = {};
  for (const part of args.flatMap((a) => a.split(',')).filter(Boolean)) {
    const m = /^([a-z][a-z0-9_-]*)=(\d{1,3})$/.exec(part);
    if (!m) throw new UsageError(`"${part}" is not TYPE=COUNT`, 'e.g. web=2 or web=2,worker=1');
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/**
 * Only the release's own process types scale (`release` runs once per release, never in the
 * formation); anything else is refused with the list of what there is.
 */
export function refuseUnknownTypes(change: Formation, types: ReadonlyMap<string, string>, where: string): void {
  const unknown = Object.keys(change).filter((t) => t === 'release' || !types.has(t));
  if (unknown.length === 0) return;
  const known = [...types.keys()].filter((t) => t !== 'release');
  throw new SlipwayError(`${where} has no ${unknown.join(', ')} process type`, { hint: known.length ? `its process types: ${known.join(', ')}` : 'it has no process types to scale' });
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
