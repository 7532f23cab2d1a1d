/**
 * Turns a target (an app directory, a slug, a release, any image) into the Subject the evaluator
 * judges. Layers are read once each, as streams, a few at a time, or taken from the facts cache.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { forEachLimited } from '../copy.js';
import { SlipwayError } from '../errors.js';
import { layerCompression } from '../oci/mediatypes.js';
import { refuseMislabelled } from '../oci/compression.js';
import { imageStorePath } from '../home.js';
import { readSmallBlob, resolvePlatform } from '../inspect.js';
import type { Digest } from '../oci/digest.js';
import { verifyDiffIds } from '../oci/diffids.js';
import { mayServe, type Platform } from '../oci/platform.js';
import { parseImageConfig, type Descriptor, type ParsedManifest } from '../oci/types.js';
import { BASE_LAYERS, releaseImage } from '../release/image.js';
import type { Release } from '../release/releases.js';
import { parseProcfile } from '../slug/procfile.js';
import { slugDiffIds, slugTag, verifySlugManifest, type SlugMetadata } from '../slug/slug.js';
import type { Db } from '../store/db.js';
import { OciLayout } from '../store/layout.js';
import { stackTag, type Stack } from '../stack/stacks.js';
import { OciLayoutSource } from '../transport/oci-layout.js';
import type { ImageSource } from '../transport/types.js';
import type { Restrictions } from './document.js';
import { FactsCache, scanLayer, type LayerFacts } from './layer-facts.js';
import { mergeLayers } from './merge.js';
import { parseRequirements } from './requirements.js';
import type { AllowedBase, Subject } from './rules.js';

export interface ScanOptions {
  cache?: FactsCache;
  /** Layers read at once. */
  concurrency?: number;
  onLayer?: (index: number, digest: string, cached: boolean) => void;
}

/** Facts are kept by digest, and one blob may come back under another media type: its bytes must be what this one says. */
function sameCompression(facts: LayerFacts, desc: Descriptor, where: string): void {
  const declared = layerCompression(desc.mediaType);
  if (declared !== undefined) refuseMislabelled(declared, facts.compression, where);
}

/** Facts of each layer, in order: from the cache, or read as a stream and then cached. */
export async function layerFacts(src: ImageSource, layers: Descriptor[], opts: ScanOptions = {}): Promise<LayerFacts[]> {
  const out: LayerFacts[] = new Array(layers.length);
  await forEachLimited(layers.map((l, i) => ({ l, i })), opts.concurrency ?? 2, async ({ l, i }) => {
    const cached = opts.cache?.get(l.digest);
    if (cached) sameCompression(cached, l, `${src.name}: layer ${i} (${l.digest})`);
    if (cached) {
      out[i] = cached;
      opts.onLayer?.(i, l.digest, true);
      return;
    }
    const facts = await scanLayer(src, l, `${src.name}: layer ${i} (${l.digest})`);
    sameCompression(facts, l, `${src.name}: layer ${i} (${l.digest})`);
    await opts.cache?.put(facts);
    out[i] = facts;
    opts.onLayer?.(i, l.digest, false);
  });
  return out;
}

function requirementsFrom(facts: ReturnType<typeof mergeLayers>, where: string): Subject['requirements'] {
  const text = facts.captured['app/app.json'];
  return text === undefined ? undefined : parseRequirements(text, `${where}: /app/app.json`);
}

/** Any image: manifest (or the platform's child of an index), config, and every layer's facts. */
export async function imageSubject(src: ImageSource, opts: ScanOptions & { platform?: Platform; kind?: 'image' | 'release'; top?: ParsedManifest } = {}): Promise<Subject> {
  const top = opts.top ?? (await src.getManifest());
  const m = await resolvePlatform(src, top, opts.platform);
  const config = parseImageConfig(await readSmallBlob(src, m.manifest.config), `${src.name}: config`);
  const facts = await layerFacts(src, m.manifest.layers, opts);
  verifyDiffIds(`${src.name}: config`, m.manifest.layers, config.rootfs.diff_ids, facts.map((f) => f.diffId));
  const files = mergeLayers(facts);
  const claimed = m.manifest.annotations?.[BASE_LAYERS];
  return {
    kind: opts.kind ?? 'image',
    name: src.name,
    platform: { os: config.os, architecture: config.architecture, ...(config.variant && { variant: config.variant }) },
    config: config.config ?? {},
    ...(m.manifest.annotations && { annotations: m.manifest.annotations }),
    layers: m.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, uncompressedSize: facts[i]!.uncompressedSize, diffId: config.rootfs.diff_ids[i]! })),
    ...(claimed !== undefined && { claimedBaseLayers: claimed }),
    files,
    requirements: requirementsFrom(files, src.name),
  };
}

type ImageManifestDoc = Extract<ParsedManifest, { kind: 'manifest' }>;

/** How deep indexes may nest before the image is refused. */
const MAX_INDEX_DEPTH = 4;

/**
 * Every image of a manifest a runtime could pick: itself, or each child of an index (nested ones
 * too), only those a pinned os/arch could select when `pin` is given. Attestation children
 * (platform unknown/unknown) are never picked by a runtime and are left out; a child without a
 * platform could be picked, so it stays.
 */
export async function runnableImages(src: ImageSource, top: ParsedManifest, pin?: { os?: string; architecture?: string }, depth = 0): Promise<ImageManifestDoc[]> {
  if (top.kind === 'manifest') return [top];
  if (depth >= MAX_INDEX_DEPTH) throw new SlipwayError(`${src.name}: indexes nested more than ${MAX_INDEX_DEPTH} deep`);
  const out: ImageManifestDoc[] = [];
  for (const d of top.index.manifests) {
    const p = d.platform;
    if (p?.os === 'unknown' && p.architecture === 'unknown') continue;
    if (pin && p && !mayServe(pin, p)) continue;
    out.push(...(await runnableImages(src, await src.getManifest(d.digest as Digest), pin, depth + 1)));
  }
  if (out.length === 0) throw new SlipwayError(`${src.name}: no image in the index${pin ? ` for ${[pin.os ?? '*', pin.architecture ?? '*'].join('/')}` : ''}`);
  return out;
}

/** A release: the image it exports to (stack layers + slug), plus its config vars' keys. */
export async function releaseSubject(home: string, rel: Release, opts: ScanOptions = {}): Promise<Subject> {
  const layout = await OciLayout.open(imageStorePath(home), { create: false });
  const meta = await verifySlugManifest(layout, rel.slug as Digest, `${rel.app} v${rel.version} slug`);
  const image = await releaseImage(home, rel, meta);
  try {
    const s = await imageSubject(image.source, { ...opts, kind: 'release', top: image.manifest });
    return { ...s, name: `${rel.app} v${rel.version}`, processTypes: meta.processTypes, configVars: Object.keys(rel.config), stack: { name: rel.stack!.name, digest: rel.stack!.digest } };
  } finally {
    await image.source.close();
  }
}

/** A slug alone (what a build produced): its one layer and metadata. */
export async function slugSubject(home: string, app: string, slug: Digest, opts: ScanOptions = {}, metaIn?: SlugMetadata): Promise<Subject> {
  const layout = await OciLayout.open(imageStorePath(home), { create: false });
  const meta = metaIn ?? (await verifySlugManifest(layout, slug, `slug of ${app}`));
  const src = await OciLayoutSource.open(`slug of ${app}`, imageStorePath(home), slugTag(app, slug));
  try {
    const m = await src.getManifest();
    if (m.kind !== 'manifest') throw new SlipwayError(`slug of ${app}: not a manifest`);
    const facts = await layerFacts(src, m.manifest.layers, opts);
    verifyDiffIds(`slug ${slug} of ${app}: metadata`, m.manifest.layers, slugDiffIds(m.manifest, await readSmallBlob(src, m.manifest.config)) ?? [], facts.map((f) => f.diffId));
    const files = mergeLayers(facts);
    return {
      kind: 'slug',
      name: `slug ${slug} of ${app}`,
      layers: m.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, uncompressedSize: facts[i]!.uncompressedSize })),
      stack: { name: meta.stack.name, digest: meta.stack.digest },
      processTypes: meta.processTypes,
      files,
      requirements: requirementsFrom(files, `slug of ${app}`),
    };
  } finally {
    await src.close();
  }
}

/** An app's source directory, before any build: what app.json and the Procfile declare. */
export function appDirSubject(dir: string): Subject {
  const appJson = join(dir, 'app.json');
  const procfile = join(dir, 'Procfile');
  return {
    kind: 'app-dir',
    name: dir,
    layers: [],
    ...(existsSync(appJson) && { requirements: parseRequirements(readFileSync(appJson, 'utf8'), appJson) }),
    ...(existsSync(procfile) && { processTypes: parseProcfile(readFileSync(procfile, 'utf8'), procfile) }),
  };
}

/** Whether judging under the document needs this host's stacks (base.allowed's names, or what `scope: app` and size.slug skip). */
export function usesHostStacks(doc: Restrictions): boolean {
  const base = doc.rules['base.allowed'];
  if (base) return (base.stacks?.length ?? 0) > 0;
  return doc.rules['size.slug'] !== undefined || Object.values(doc.rules).some((r) => (r as { scope?: string }).scope === 'app');
}

/**
 * The stacks the provider vouches for, resolved to layer lists: what base.allowed names, or, without
 * that rule, every stack this host has imported. Only these decide which layers are "base" (what
 * `scope: app` skips); an image's own annotations never do.
 */
export async function resolveAllowedBases(doc: Restrictions, db: Db | undefined, home: string): Promise<AllowedBase[]> {
  const rule = doc.rules['base.allowed'];
  const out: AllowedBase[] = (rule?.layers ?? []).map((layers, i) => ({ label: `layers[${i}]`, layers, diffIds: layers }));
  const stacks: Stack[] = [];
  if (!rule && usesHostStacks(doc)) stacks.push(...((db?.prepare('SELECT * FROM stacks ORDER BY name, version').all() ?? []) as Stack[]));
  for (const spec of rule?.stacks ?? []) {
    // A build variant's digest names its stack version: slugs and images sit on the run image.
    const byDigest = spec.startsWith('sha256:');
    const rows = (db?.prepare(byDigest ? 'SELECT * FROM stacks WHERE digest = ? OR build_digest = ?' : 'SELECT * FROM stacks WHERE name = ?').all(...(byDigest ? [spec, spec] : [spec])) ?? []) as Stack[];
    if (rows.length === 0) throw new SlipwayError(`base.allowed names stack "${spec}", which this host does not have`, { hint: 'import it (slipway stack import NAME SOURCE) or list its layer digests under base.allowed.layers' });
    stacks.push(...rows);
  }
  for (const s of stacks) {
    const src = await OciLayoutSource.open(`stack ${s.name}@v${s.version}`, imageStorePath(home), stackTag(s.name, s.digest));
    try {
      const m = await resolvePlatform(src, await src.getManifest());
      const config = parseImageConfig(await readSmallBlob(src, m.manifest.config), `stack ${s.name}: config`);
      out.push({ label: `${s.name}@v${s.version}`, manifestDigest: s.digest, layers: m.manifest.layers.map((l) => l.digest), diffIds: config.rootfs.diff_ids });
    } finally {
      await src.close();
    }
  }
  return out;
}
