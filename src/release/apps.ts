import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SlipwayError, UsageError } from '../errors.js';
import { imageStorePath } from '../home.js';
import type { Digest } from '../oci/digest.js';
import { unpackedSlugDir } from '../slug/unpacked.js';
import type { Db } from '../store/db.js';
import { OciLayout, REF_NAME } from '../store/layout.js';

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

export interface DestroyedApp {
  app: string;
  releases: number;
  /** Slugs no release of any app uses any more: untagged, so `slipway image gc` reclaims them. */
  slugsReleased: string[];
}

/**
 * Removes an app whose dynos are stopped: its slug tags, unpacked slugs and build workspace (cache
 * and build logs) first, then its rows (releases, formation, uid range, router port) in one
 * transaction. Interrupted, the app is still there and destroying it again finishes the job.
 */
export async function deleteApp(home: string, db: Db, name: string): Promise<DestroyedApp> {
  getApp(db, name);
  const mine = (db.prepare('SELECT DISTINCT slug FROM releases WHERE app = ? AND slug IS NOT NULL').all(name) as { slug: string }[]).map((r) => r.slug as Digest);
  const others = new Set((db.prepare('SELECT DISTINCT slug FROM releases WHERE app != ? AND slug IS NOT NULL').all(name) as { slug: string }[]).map((r) => r.slug));
  const base = (db.prepare('SELECT base FROM uid_ranges WHERE app = ?').get(name) as { base: number } | undefined)?.base;
  const releases = (db.prepare('SELECT COUNT(*) AS n FROM releases WHERE app = ?').get(name) as { n: number }).n;
  const store = imageStorePath(home);
  if (existsSync(join(store, 'index.json'))) {
    const layout = await OciLayout.open(store, { create: false });
    const prefix = `slugs/${name}:`;
    await layout.updateIndex((index) => ({ ...index, manifests: index.manifests.filter((m) => !m.annotations?.[REF_NAME]?.startsWith(prefix)) }));
  }
  for (const slug of mine) {
    if (base !== undefined) await rm(unpackedSlugDir(home, slug, base), { recursive: true, force: true });
    if (!others.has(slug)) await rm(unpackedSlugDir(home, slug, 0), { recursive: true, force: true });
  }
  await rm(join(home, 'builds', name), { recursive: true, force: true });
  db.transaction(() => {
    db.prepare('DELETE FROM settings WHERE key = ?').run(`router-port:${name}`);
    db.prepare('DELETE FROM apps WHERE name = ?').run(name);
  }).immediate();
  return { app: name, releases, slugsReleased: mine.filter((s) => !others.has(s)) };
}
