import { openDb, type Db } from '../store/db.js';
import { parseCredsFlag } from '../transport/registry/auth.js';
import type { RegistryOptions } from '../transport/registry/client.js';
import type { Globals } from './main.js';

/** JSON on stdout with --json, the human text otherwise. */
export function print(g: Globals, json: unknown, text: string): void {
  process.stdout.write(g.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
}

/** Registry flags shared by every command that reaches a registry. */
export function registryOptions(o: { insecure?: boolean; creds?: string | undefined }): RegistryOptions {
  return { ...(o.insecure && { insecure: true }), ...(o.creds && { credentials: parseCredsFlag(o.creds) }) };
}

/** Runs a command body with the metadata database open, closing it whatever happens. */
export async function withDb<T>(g: Globals, fn: (db: Db) => T | Promise<T>): Promise<T> {
  const db = openDb(g.home);
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}
