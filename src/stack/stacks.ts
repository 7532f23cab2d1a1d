import { SlipwayError, UsageError } from '../errors.js';
import { copyImage, type CopyEvents } from '../copy.js';
import { imageStorePath } from '../home.js';
import { resolvePlatform } from '../inspect.js';
import { hexOf } from '../oci/digest.js';
import { hostPlatform } from '../oci/platform.js';
import { getSetting, setSetting, type Db } from '../store/db.js';
import { OciLayout } from '../store/layout.js';
import { OciLayoutDestination } from '../transport/oci-layout.js';
import { openSource, type TransportContext } from '../transport/open.js';

/** One version of a stack: an image in the store, by digest. */
export interface Stack {
  name: string;
  version: number;
  digest: string;
  source: string;
  /** Compressed bytes of its layers. */
  size: number;
  createdAt: string;
}

interface StackRow {
  name: string;
  version: number;
  digest: string;
  source: string;
  size: number;
  created_at: string;
}

const fromRow = (r: StackRow): Stack => ({ name: r.name, version: r.version, digest: r.digest, source: r.source, size: r.size, createdAt: r.created_at });

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const DEFAULT_KEY = 'default_stack';

export function checkStackName(name: string): string {
  if (!NAME.test(name)) throw new UsageError(`stack name "${name}" is not valid`, 'use lowercase letters, digits, . _ - (e.g. bookworm)');
  return name;
}

/** The store tag that keeps a stack version's image alive. */
export function stackTag(name: string, digest: string): string {
  return `stacks/${name}:${hexOf(digest as never)}`;
}

/**
 * Imports an image (any transport, or dir:ROOTFS) as a version of stack NAME: the host's
 * platform is picked from an index, layers are checked as they enter the store, and the same
 * content imported again is the same version. The first stack imported becomes the default.
 */
export async function importStack(
  db: Db,
  ctx: TransportContext,
  name: string,
  source: string,
  events?: CopyEvents,
): Promise<{ stack: Stack; created: boolean }> {
  checkStackName(name);
  const layout = await OciLayout.open(imageStorePath(ctx.home), { create: true });
  const src = await openSource(source, { ...ctx, scratch: await layout.scratchDir() });
  let dst: OciLayoutDestination | undefined;
  try {
    const image = await resolvePlatform(src, await src.getManifest(), hostPlatform());
    dst = new OciLayoutDestination(`stack ${name}`, layout, stackTag(name, image.digest), true);
    await copyImage(src, dst, { platform: hostPlatform(), ...(events && { events }) });
    const size = image.manifest.layers.reduce((a, l) => a + l.size, 0);
    return db.transaction(() => {
      const existing = db.prepare('SELECT * FROM stacks WHERE name = ? AND digest = ?').get(name, image.digest) as StackRow | undefined;
      if (existing) return { stack: fromRow(existing), created: false };
      const next = ((db.prepare('SELECT MAX(version) AS v FROM stacks WHERE name = ?').get(name) as { v: number | null }).v ?? 0) + 1;
      const row: StackRow = { name, version: next, digest: image.digest, source, size, created_at: new Date().toISOString() };
      db.prepare('INSERT INTO stacks (name, version, digest, source, size, created_at) VALUES (@name, @version, @digest, @source, @size, @created_at)').run(row);
      if (getSetting(db, DEFAULT_KEY) === undefined) setSetting(db, DEFAULT_KEY, name);
      return { stack: fromRow(row), created: true };
    }).immediate();
  } finally {
    await src.close();
    await dst?.close();
  }
}

export function listStacks(db: Db): (Stack & { isDefault: boolean; releases: number })[] {
  const def = getSetting(db, DEFAULT_KEY);
  const rows = db.prepare('SELECT * FROM stacks ORDER BY name, version').all() as StackRow[];
  const used = db.prepare('SELECT COUNT(*) AS n FROM releases WHERE stack_name = ? AND stack_version = ?');
  return rows.map((r) => ({ ...fromRow(r), isDefault: r.name === def, releases: (used.get(r.name, r.version) as { n: number }).n }));
}

/** Parses NAME, NAME@vN or NAME@N. */
export function parseStackSpec(spec: string): { name: string; version?: number } {
  const m = /^([^@]+)(?:@v?(\d+))?$/.exec(spec);
  if (!m) throw new UsageError(`"${spec}" is not a stack (NAME or NAME@vN)`);
  return { name: checkStackName(m[1]!), ...(m[2] !== undefined && { version: Number(m[2]) }) };
}

/** A stack version by spec (latest version when none is given), or the default stack. */
export function resolveStack(db: Db, spec?: string): Stack {
  const name = spec === undefined ? getSetting(db, DEFAULT_KEY) : parseStackSpec(spec).name;
  if (name === undefined) {
    throw new SlipwayError('no stack: none is imported yet', { hint: 'slipway stack bootstrap bookworm, or slipway stack import NAME SOURCE' });
  }
  const version = spec === undefined ? undefined : parseStackSpec(spec).version;
  const row = (
    version === undefined
      ? db.prepare('SELECT * FROM stacks WHERE name = ? ORDER BY version DESC LIMIT 1').get(name)
      : db.prepare('SELECT * FROM stacks WHERE name = ? AND version = ?').get(name, version)
  ) as StackRow | undefined;
  if (row === undefined) {
    const known = (db.prepare('SELECT name, version FROM stacks ORDER BY name, version').all() as StackRow[]).map((r) => `${r.name}@v${r.version}`);
    throw new SlipwayError(`no stack ${name}${version === undefined ? '' : `@v${version}`}`, { hint: `stacks here: ${known.join(', ') || '(none)'}` });
  }
  return fromRow(row);
}

export function setDefaultStack(db: Db, name: string): void {
  resolveStack(db, name);
  setSetting(db, DEFAULT_KEY, name);
}

/**
 * Removes a stack version (or every version of a name). Refused while a release uses one,
 * unless forced: those releases keep the stack's digest and can be rebased or re-imported.
 */
export async function removeStack(db: Db, home: string, spec: string, force: boolean): Promise<Stack[]> {
  const { name, version } = parseStackSpec(spec);
  const victims = version === undefined ? listStacks(db).filter((s) => s.name === name) : [resolveStack(db, spec)];
  if (victims.length === 0) resolveStack(db, spec);
  const usedBy = db.prepare('SELECT app, version FROM releases WHERE stack_name = ? AND stack_version = ? ORDER BY app, version');
  for (const s of victims) {
    const users = usedBy.all(s.name, s.version) as { app: string; version: number }[];
    if (users.length > 0 && !force) {
      throw new SlipwayError(`stack ${s.name}@v${s.version} is used by ${users.map((u) => `${u.app} v${u.version}`).join(', ')}`, {
        hint: 'rebase those apps first, or pass --force',
      });
    }
  }
  db.transaction(() => {
    for (const s of victims) db.prepare('DELETE FROM stacks WHERE name = ? AND version = ?').run(s.name, s.version);
    if (getSetting(db, DEFAULT_KEY) === name && !(db.prepare('SELECT 1 FROM stacks WHERE name = ?').get(name))) {
      db.prepare('DELETE FROM settings WHERE key = ?').run(DEFAULT_KEY);
    }
  }).immediate();
  const layout = await OciLayout.open(imageStorePath(home), { create: true });
  const stillUsed = new Set((db.prepare('SELECT digest FROM stacks WHERE name = ?').all(name) as { digest: string }[]).map((r) => r.digest));
  for (const s of victims) if (!stillUsed.has(s.digest)) await layout.untag(stackTag(s.name, s.digest));
  return victims;
}

/** The stack version with this image digest, if this host has it. */
export function findStackByDigest(db: Db, digest: string): Stack | undefined {
  const row = db.prepare('SELECT * FROM stacks WHERE digest = ? ORDER BY version DESC LIMIT 1').get(digest) as StackRow | undefined;
  return row ? fromRow(row) : undefined;
}
