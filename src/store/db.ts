import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { loadSqlite } from '../native.js';
import { SlipwayError } from '../errors.js';

/**
 * The metadata database: settings, stacks, apps, releases, formations. SQLite in WAL mode, every change a
 * transaction. Content lives in the image store; rows only point at it by digest, and are
 * written after the content is in place, so a crash never leaves a row without its content.
 */
export type Db = Database.Database;

const MIGRATIONS: string[] = [
  `CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE stacks (
     name TEXT NOT NULL,
     version INTEGER NOT NULL,
     digest TEXT NOT NULL,
     source TEXT NOT NULL,
     size INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (name, version),
     UNIQUE (name, digest)
   );
   CREATE TABLE apps (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
   CREATE TABLE releases (
     app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
     version INTEGER NOT NULL,
     slug TEXT,
     stack_name TEXT,
     stack_version INTEGER,
     stack_digest TEXT,
     config TEXT NOT NULL,
     description TEXT NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (app, version)
   );`,
  // The runtime: formations (process type -> count) and the host uid range of each app's dynos.
  `CREATE TABLE formations (
     app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
     type TEXT NOT NULL,
     quantity INTEGER NOT NULL CHECK (quantity >= 0),
     PRIMARY KEY (app, type)
   );
   CREATE TABLE uid_ranges (app TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE, base INTEGER NOT NULL UNIQUE);`,
  // The release phase: each release's status, its release command ('' when the slug has none; NULL
  // for releases made before this migration, which are read from the slug when it matters), and
  // the process running that command (a dead pid's claim is taken over). Existing releases ran
  // before statuses existed: they count as succeeded.
  `ALTER TABLE releases ADD COLUMN status TEXT NOT NULL DEFAULT 'succeeded' CHECK (status IN ('pending', 'succeeded', 'failed'));
   ALTER TABLE releases ADD COLUMN release_command TEXT;
   ALTER TABLE releases ADD COLUMN phase_pid INTEGER;`,
  // A stack version's build variant (its run image plus compilers and headers), where builds run.
  `ALTER TABLE stacks ADD COLUMN build_digest TEXT;
   ALTER TABLE stacks ADD COLUMN build_size INTEGER;`,
  // The release phase's claim names its holders by token (pid@start time, owner-token.ts), so a
  // reused pid holds nothing: the process that took it and, once started, the dyno running the
  // command, which outlives a killed slipway.
  `ALTER TABLE releases DROP COLUMN phase_pid;
   ALTER TABLE releases ADD COLUMN phase_owner TEXT;`,
];

/** Where a home's metadata database is. */
export const dbPath = (home: string): string => join(home, 'slipway.db');

export function openDb(home: string): Db {
  mkdirSync(home, { recursive: true });
  const path = dbPath(home);
  let db: Db;
  try {
    db = new (loadSqlite())(path);
  } catch (err) {
    throw new SlipwayError(`${path}: cannot open the metadata database (${(err as Error).message})`);
  }
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new SlipwayError(`${path}: written by a newer slipway (schema ${current}, this one knows ${MIGRATIONS.length})`, { hint: 'upgrade slipway' });
  }
  db.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
  return db;
}

export function getSetting(db: Db, key: string): string | undefined {
  return (db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}

export function setSetting(db: Db, key: string, value: string): void {
  db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
}
