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

/** One image of a stack version in the store. */
export interface StackImage {
  digest: string;
  /** Compressed bytes of its layers. */
  size: number;
}

/**
 * One version of a stack: its run image (what dynos, exports and rebases sit on, and what a
 * slug records) by digest, and optionally its build variant (the run image plus compilers and
 * headers) where builds run. The pair is one version: restrictions and rebases name it by either.
 */
export interface Stack extends StackImage {
  name: string;
  version: number;
  source: string;
  createdAt: string;
  build?: StackImage;
}

interface StackRow {
  name: string;
  version: number;
  digest: string;
  source: string;
  size: number;
  created_at: string;
  build_digest: string | null;
  build_size: number | null;
}

const fromRow = (r: StackRow): Stack => ({
  name: r.name,
  version: r.version,
  digest: r.digest,
  source: r.source,
  size: r.size,
  createdAt: r.created_at,
  ...(r.build_digest !== null && { build: { digest: r.build_digest, size: r.build_size ?? 0 } }),
});

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
 * Copies an image (any transport, or dir:ROOTFS) into the store under stack NAME's tag: the
 * host's platform is picked from an index and layers are checked as they enter the store.
 */
export async function copyStackImage(ctx: TransportContext, name: string, source: string, events?: CopyEvents): Promise<StackImage> {
  checkStackName(name);
  const layout = await OciLayout.open(imageStorePath(ctx.home), { create: true });
  const src = await openSource(source, { ...ctx, scratch: await layout.scratchDir() });
  let dst: OciLayoutDestination | undefined;
  try {
    const image = await resolvePlatform(src, await src.getManifest(), hostPlatform());
    dst = new OciLayoutDestination(`stack ${name}`, layout, stackTag(name, image.digest), true);
    await copyImage(src, dst, { platform: hostPlatform(), ...(events && { events }) });
    return { digest: image.digest, size: image.manifest.layers.reduce((a, l) => a + l.size, 0) };
  } finally {
    await src.close();
    await dst?.close();
  }
}

/**
 * Records a run image (and its build variant) already in the store as a version of stack NAME.
 * The same run content is the same version; a build variant given for it is recorded with it
 * (replacing an earlier one: builds then compile with the new one, while dynos and slugs are
 * unchanged). The first stack recorded becomes the default.
 */
export function recordStack(db: Db, name: string, source: string, run: StackImage, build?: StackImage): { stack: Stack; created: boolean } {
  return db.transaction(() => {
    const existing = db.prepare('SELECT * FROM stacks WHERE name = ? AND digest = ?').get(name, run.digest) as StackRow | undefined;
    if (existing) {
      if (build && existing.build_digest !== build.digest) {
        db.prepare('UPDATE stacks SET build_digest = ?, build_size = ? WHERE name = ? AND version = ?').run(build.digest, build.size, name, existing.version);
        return { stack: fromRow({ ...existing, build_digest: build.digest, build_size: build.size }), created: false };
      }
      return { stack: fromRow(existing), created: false };
    }
    const next = ((db.prepare('SELECT MAX(version) AS v FROM stacks WHERE name = ?').get(name) as { v: number | null }).v ?? 0) + 1;
    const row: StackRow = { name, version: next, digest: run.digest, source, size: run.size, created_at: new Date().toISOString(), build_digest: build?.digest ?? null, build_size: build?.size ?? null };
    db.prepare(
      'INSERT INTO stacks (name, version, digest, source, size, created_at, build_digest, build_size) VALUES (@name, @version, @digest, @source, @size, @created_at, @build_digest, @build_size)',
    ).run(row);
    if (getSetting(db, DEFAULT_KEY) === undefined) setSetting(db, DEFAULT_KEY, name);
    return { stack: fromRow(row), created: true };
  }).immediate();
}

/**
 * Imports an image (any transport, or dir:ROOTFS) as a version of stack NAME, with `build` as
 * its build variant when given. The same content imported again is the same version.
 */
export async function importStack(
  db: Db,
  ctx: TransportContext,
  name: string,
  source: string,
  events?: CopyEvents,
  build?: string,
): Promise<{ stack: Stack; created: boolean }> {
  const run = await copyStackImage(ctx, name, source, events);
  const buildImage = build === undefined ? undefined : await copyStackImage(ctx, name, build, events);
  return recordStack(db, name, source, run, buildImage);
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
  const kept = db.prepare('SELECT digest, build_digest FROM stacks WHERE name = ?').all(name) as { digest: string; build_digest: string | null }[];
  const stillUsed = new Set(kept.flatMap((r) => [r.digest, r.build_digest]));
  for (const s of victims) {
    for (const d of [s.digest, s.build?.digest]) if (d !== undefined && !stillUsed.has(d)) await layout.untag(stackTag(s.name, d));
  }
  return victims;
}

/** The stack version with this image digest (its run image or its build variant), if this host has it. */
export function findStackByDigest(db: Db, digest: string): Stack | undefined {
  const row = db.prepare('SELECT * FROM stacks WHERE digest = ? OR build_digest = ? ORDER BY version DESC LIMIT 1').get(digest, digest) as StackRow | undefined;
  return row ? fromRow(row) : undefined;
}
