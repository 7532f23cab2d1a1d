import { SlipwayError, UsageError } from '../errors.js';
import type { Restrictions } from '../restrictions/document.js';
import type { AllowedBase } from '../restrictions/rules.js';
import { resolveAllowedBases } from '../restrictions/subject.js';
import { restrictionsFor } from '../restrictions/source.js';
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

/** `HOST:PORT` from a --listen flag. */
export function listenAddress(flag: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(flag);
  if (!m) throw new UsageError(`--listen ${flag}: use HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** The document an enforcing server judges with (flag, else host default) and the stacks base.allowed names. */
export async function enforcedRestrictions(g: Globals, spec: string | undefined, what: string): Promise<{ doc: Restrictions; allowedBases: AllowedBase[] }> {
  const doc = restrictionsFor(g.home, spec);
  if (!doc) throw new SlipwayError(`no restrictions for the ${what}`, { hint: 'give --restrictions FILE|PRESET or set a host default' });
  return { doc, allowedBases: await withDb(g, (db) => resolveAllowedBases(doc, db, g.home)) };
}

/** Keeps a server command running until SIGINT or SIGTERM, then closes it and exits 0. */
export async function serveUntilSignalled(close: () => Promise<void>): Promise<never> {
  const stop = (): void => void close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return new Promise<never>(() => undefined);
}

/** A server's log line on stderr: `TIME slipway[NAME]: line`. */
export const serverLog = (name: string) => (line: string): void => void process.stderr.write(`${new Date().toISOString()} slipway[${name}]: ${line}\n`);
