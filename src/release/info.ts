/** What `apps info`, `releases info` and `ps` of a stopped app show: the database and the slug's own metadata. */
import { imageStorePath } from '../home.js';
import type { Digest } from '../oci/digest.js';
import { verifySlugManifest, type BuildpackUsed, type SlugMetadata } from '../slug/slug.js';
import { getSetting, type Db } from '../store/db.js';
import { OciLayout } from '../store/layout.js';
import { getApp } from './apps.js';
import { getFormation, refuseUnknownTypes, setFormation, type Formation } from './formation.js';
import { builtRelease, currentRelease, getRelease, isBuilt, latestRelease, listReleases, type BuiltRelease, type Release, type ReleaseStatus } from './releases.js';

export async function slugMetadataOf(home: string, rel: BuiltRelease): Promise<SlugMetadata> {
  const layout = await OciLayout.open(imageStorePath(home), { create: false });
  return verifySlugManifest(layout, rel.slug as Digest, `${rel.app} v${rel.version}`);
}

/** The formation a release runs at: the stored one, web=1 for a web type never scaled, 0 for the rest. */
export function formationFor(db: Db, app: string, processTypes: Record<string, string>): Formation {
  const stored = getFormation(db, app);
  return Object.fromEntries(Object.keys(processTypes).filter((t) => t !== 'release').map((t) => [t, Object.hasOwn(stored, t) ? stored[t]! : t === 'web' ? 1 : 0]));
}

export interface AppInfo {
  name: string;
  createdAt: string;
  releases: number;
  current?: { version: number; description: string; createdAt: string };
  /** A newer release that is not current (pending or failed). */
  latest?: { version: number; status: ReleaseStatus; description: string };
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
    ...(latest && latest.version !== current?.version && { latest: { version: latest.version, status: latest.status, description: latest.description } }),
    ...(current?.stack && { stack: current.stack }),
    formation: formationFor(db, name, processTypes),
    processTypes,
    ...(port && { url: `http://127.0.0.1:${port}` }),
    ...(meta && isBuilt(current) && { slugSize: meta.size.compressed, slug: current.slug }),
    buildpacks: meta?.buildpacks ?? [],
  };
}

export interface ReleaseInfo extends Release {
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
    current: currentRelease(db, app)?.version === rel.version,
    processTypes: meta?.processTypes ?? {},
    buildpacks: meta?.buildpacks ?? [],
    ...(meta && { slugSize: meta.size.compressed }),
  };
}

/** The process types of a release, own names only (`constructor` is not a type unless declared). */
export function typeMap(types: Record<string, string>): Map<string, string> {
  return new Map(Object.keys(types).filter((t) => Object.hasOwn(types, t) && typeof types[t] === 'string').map((t) => [t, types[t]!]));
}

/** Scales an app that is not up: the change is checked against its current release's process types. */
export async function scaleStored(home: string, db: Db, app: string, change: Formation): Promise<Formation> {
  const rel = builtRelease(db, app);
  refuseUnknownTypes(change, typeMap((await slugMetadataOf(home, rel)).processTypes), `${app} v${rel.version}`);
  return setFormation(db, app, change);
}
