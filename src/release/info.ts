/** What `apps info`, `releases info` and `ps` of a stopped app show: the database and the slug's own metadata. */
import type { BuildpackUsed } from '../slug/slug.js';
import { getSetting, type Db } from '../store/db.js';
import { getApp } from './apps.js';
import { formationFor, type Formation } from './formation.js';
import { currentRelease, getRelease, isBuilt, latestRelease, listReleases, type BuiltRelease, type Release, type ReleaseStatus } from './releases.js';
import { slugMetadataOf } from './slug-metadata.js';

export interface AppInfo {
  name: string;
  createdAt: string;
  releases: number;
  current?: { version: number; description: string; createdAt: string };
  /** A newer release that is not current (pending or failed). */
  latest?: { version: number; status: ReleaseStatus; description: string; phasePid?: number };
  stack?: BuiltRelease['stack'];
  formation: Formation;
  processTypes: Record<string, string>;
  /** The router's address when the app was last up. */
  url?: string;
  slugSize?: number;
  slug?: string;
  buildpacks: BuildpackUsed[];
}

export async function appInfo(home: string, db: Db, name: string): Promise<AppInfo> {
  const app = getApp(db, name);
  const current = currentRelease(db, name);
  const latest = latestRelease(db, name);
  const meta = isBuilt(current) ? await slugMetadataOf(home, current) : undefined;
  const port = getSetting(db, `router-port:${name}`);
  const processTypes = meta?.processTypes ?? {};
  return {
    name,
    createdAt: app.createdAt,
    releases: listReleases(db, name).length,
    ...(current && { current: { version: current.version, description: current.description, createdAt: current.createdAt } }),
    ...(latest && latest.version !== current?.version && { latest: { version: latest.version, status: latest.status, description: latest.description, ...(latest.phasePid !== undefined && { phasePid: latest.phasePid }) } }),
    ...(current?.stack && { stack: current.stack }),
    formation: formationFor(db, name, processTypes),
    processTypes,
    ...(port && { url: `http://127.0.0.1:${port}` }),
    ...(meta && isBuilt(current) && { slugSize: meta.size.compressed, slug: current.slug }),
    buildpacks: meta?.buildpacks ?? [],
  };
}

/** A release as `releases` and `releases info` show it: its release command, or null when it has none. */
export type ShownRelease = Omit<Release, 'releaseCommand'> & { releaseCommand: string | null };

/** The release command a release has: recorded, or (a release made before it was recorded) read from its slug. */
async function releaseCommandOf(home: string, rel: Release): Promise<string | null> {
  if (rel.releaseCommand !== undefined) return rel.releaseCommand || null;
  if (!isBuilt(rel)) return null;
  const types = await slugMetadataOf(home, rel).then((m) => m.processTypes, () => ({} as Record<string, string>));
  return Object.hasOwn(types, 'release') ? types.release! : null;
}

/** An app's releases, newest first, each with whether it is current. */
export async function releaseList(home: string, db: Db, app: string): Promise<(Omit<ShownRelease, 'config'> & { current: boolean; configKeys: string[] })[]> {
  getApp(db, app);
  const current = currentRelease(db, app)?.version;
  return Promise.all(listReleases(db, app).map(async ({ config, ...r }) => ({ ...r, releaseCommand: await releaseCommandOf(home, r as Release), current: r.version === current, configKeys: Object.keys(config) })));
}

export interface ReleaseInfo extends ShownRelease {
  current: boolean;
  processTypes: Record<string, string>;
  buildpacks: BuildpackUsed[];
  slugSize?: number;
}

export async function releaseInfo(home: string, db: Db, app: string, version: number): Promise<ReleaseInfo> {
  getApp(db, app);
  const rel = getRelease(db, app, version);
  const meta = isBuilt(rel) ? await slugMetadataOf(home, rel) : undefined;
  return {
    ...rel,
    releaseCommand: meta ? (Object.hasOwn(meta.processTypes, 'release') ? meta.processTypes.release! : null) : null,
    current: currentRelease(db, app)?.version === rel.version,
    processTypes: meta?.processTypes ?? {},
    buildpacks: meta?.buildpacks ?? [],
    ...(meta && { slugSize: meta.size.compressed }),
  };
}
