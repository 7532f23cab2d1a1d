/**
 * Native addons, loaded on first use: most commands (an image copy, a check of a registry image)
 * need neither SQLite nor xattrs, and loading them costs start-up time and resident memory.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import type * as FsXattr from 'fs-xattr';

const require = createRequire(import.meta.url);
let sqlite: typeof BetterSqlite3 | undefined;
let xattr: typeof FsXattr | undefined;

export function loadSqlite(): typeof BetterSqlite3 {
  return (sqlite ??= require('better-sqlite3') as typeof BetterSqlite3);
}

export function loadXattr(): typeof FsXattr {
  return (xattr ??= require('fs-xattr') as typeof FsXattr);
}
