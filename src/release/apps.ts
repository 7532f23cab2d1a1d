import { SlipwayError, UsageError } from '../errors.js';
import type { Db } from '../store/db.js';

export interface App {
  name: string;
  createdAt: string;
}

const NAME = /^[a-z][a-z0-9-]{1,29}$/;

export function checkAppName(name: string): string {
  if (!NAME.test(name)) throw new UsageError(`app name "${name}" is not valid`, 'use 2 to 30 lowercase letters, digits and dashes, starting with a letter');
  return name;
}

export function createApp(db: Db, name: string): App {
  checkAppName(name);
  const app = { name, createdAt: new Date().toISOString() };
  const r = db.prepare('INSERT INTO apps (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(app.name, app.createdAt);
  if (r.changes === 0) throw new SlipwayError(`app "${name}" already exists`);
  return app;
}

/** The app, created on first use when `create` is set (a first build creates its app). */
export function getApp(db: Db, name: string, opts: { create?: boolean } = {}): App {
  checkAppName(name);
  const row = db.prepare('SELECT name, created_at FROM apps WHERE name = ?').get(name) as { name: string; created_at: string } | undefined;
  if (row) return { name: row.name, createdAt: row.created_at };
  if (opts.create) return createApp(db, name);
  throw new SlipwayError(`no app "${name}"`, { hint: 'see slipway apps, or create it with slipway apps create NAME' });
}

export function listApps(db: Db): (App & { releases: number })[] {
  const rows = db.prepare('SELECT a.name, a.created_at, COUNT(r.version) AS n FROM apps a LEFT JOIN releases r ON r.app = a.name GROUP BY a.name ORDER BY a.name').all() as {
    name: string;
    created_at: string;
    n: number;
  }[];
  return rows.map((r) => ({ name: r.name, createdAt: r.created_at, releases: r.n }));
}
