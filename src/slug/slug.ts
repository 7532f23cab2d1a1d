import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { IntegrityError, SlipwayError } from '../errors.js';
import { imageStorePath } from '../home.js';
import { digestOf, Hasher, hexOf, type Digest } from '../oci/digest.js';
import { buildLayer, type BuiltLayer } from '../oci/layer.js';
import { MediaType } from '../oci/mediatypes.js';
import { scanDirectory, sourceDateEpoch } from '../oci/tar/scan.js';
import { writeTar, type WriteEntry } from '../oci/tar/writer.js';
import { writeFileAtomic } from '../store/atomic.js';
import { encodeJson, parseJson, type Descriptor, type ImageManifest } from '../oci/types.js';
import { OciLayout } from '../store/layout.js';
import type { ProcessTypes } from './procfile.js';

export const SLUG_ARTIFACT_TYPE = 'application/vnd.slipway.slug.v1';
export const SLUG_CONFIG_TYPE = 'application/vnd.slipway.slug.config.v1+json';
/** The owner of every file in a slug: the unprivileged app user (uid 1000 in the dyno). */
export const APP_UID = 1000;

export interface BuildpackUsed {
  name: string;
  url: string;
  version?: string;
}

/** What a slug says about itself: deterministic (no times, no paths of the build host). */
export interface SlugMetadata {
  apiVersion: 'slipway/v1';
  kind: 'Slug';
  processTypes: ProcessTypes;
  buildpacks: BuildpackUsed[];
  stack: { name: string; digest: string };
  /** Bytes of the uncompressed tar, and of the compressed blob. */
  size: { uncompressed: number; compressed: number };
  /** The slug blob: the very layer an exported image carries. */
  layer: { digest: Digest; diffId: Digest };
}

export interface Slug {
  /** Digest of the slug's OCI artifact manifest. */
  digest: Digest;
  metadata: SlugMetadata;
}

export function slugTag(app: string, digest: Digest): string {
  return `slugs/${app}:${hexOf(digest)}`;
}

/**
 * Packs a compiled /app directory into a slug: a deterministic gzip tar with paths under
 * app/ (owned by the app user, mtimes pinned), stored as an OCI artifact whose single layer is
 * exactly the app layer of an exported image. The same tree always gives the same digests.
 */
export async function createSlug(
  home: string,
  app: string,
  appDir: string,
  meta: Omit<SlugMetadata, 'apiVersion' | 'kind' | 'size' | 'layer'>,
): Promise<Slug> {
  const layout = await OciLayout.open(imageStorePath(home), { create: true });
  const work = await mkdtemp(join(await layout.scratchDir(), `dir-${process.pid}-`));
  try {
    const entries = () => scanDirectory(appDir, { prefix: 'app', mtime: sourceDateEpoch(), owner: { uid: APP_UID, gid: APP_UID } });
    // Hashing the tar is cheap next to compressing it; an unchanged app reuses its blob.
    const diffId = await tarDigest(entries());
    let layer = await knownLayer(home, layout, diffId);
    if (layer === undefined) {
      const file = join(work, 'slug.tgz');
      layer = await buildLayer(entries(), createWriteStream(file));
      await layout.adoptFile(file, layer.digest);
      await rememberLayer(home, layer);
    } else {
      await layout.pin(layer.digest);
    }
    const metadata: SlugMetadata = {
      apiVersion: 'slipway/v1',
      kind: 'Slug',
      ...meta,
      size: { uncompressed: layer.uncompressedSize, compressed: layer.size },
      layer: { digest: layer.digest, diffId: layer.diffId },
    };
    const config = encodeJson(metadata);
    const configDesc: Descriptor = { mediaType: SLUG_CONFIG_TYPE, digest: digestOf(config), size: config.length };
    await layout.writeSmallBlob(config, configDesc.digest);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: SLUG_ARTIFACT_TYPE,
      config: configDesc,
      layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size, annotations: { 'org.opencontainers.image.title': 'slug.tgz' } }],
    };
    const bytes = encodeJson(manifest);
    const digest = digestOf(bytes);
    await layout.writeSmallBlob(bytes, digest);
    await layout.tag({ mediaType: MediaType.ociManifest, digest, size: bytes.length, artifactType: SLUG_ARTIFACT_TYPE }, slugTag(app, digest));
    return { digest, metadata };
  } finally {
    await rm(work, { recursive: true, force: true });
    await layout.unpin();
  }
}

async function tarDigest(entries: AsyncIterable<WriteEntry>): Promise<Digest> {
  const h = new Hasher();
  for await (const chunk of writeTar(entries)) h.update(chunk);
  return h.digest();
}

/** diff_id → compressed blob of slugs built before; pgzip is deterministic, so reuse is exact. */
function layerCachePath(home: string, diffId: Digest): string {
  return join(home, 'cache', 'slug-layers', hexOf(diffId));
}

async function knownLayer(home: string, layout: OciLayout, diffId: Digest): Promise<BuiltLayer | undefined> {
  const text = await readFile(layerCachePath(home, diffId), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const known = JSON.parse(text) as BuiltLayer;
  return (await layout.blobSize(known.digest)) === known.size ? known : undefined;
}

async function rememberLayer(home: string, layer: BuiltLayer): Promise<void> {
  await mkdir(join(home, 'cache', 'slug-layers'), { recursive: true });
  await writeFileAtomic(layerCachePath(home, layer.diffId), JSON.stringify(layer));
}



/** The store reference of a slug, for copying it anywhere with the image transports. */
export function slugStoreRef(home: string, app: string, digest: Digest): string {
  return `oci:${imageStorePath(home)}:${slugTag(app, digest)}`;
}

/**
 * The diff_id a slug's metadata claims for its one layer, for the store to check as the slug
 * comes in (slug pull) and for `check` to check as it reads the layer.
 */
export function slugDiffIds(manifest: ImageManifest, config: Buffer): string[] | undefined {
  if (manifest.config.mediaType !== SLUG_CONFIG_TYPE) return undefined;
  const meta = parseJson(config, `slug metadata ${manifest.config.digest}`) as Partial<SlugMetadata>;
  if (manifest.layers.length !== 1 || meta.layer?.digest !== manifest.layers[0]!.digest) {
    throw new IntegrityError(`slug metadata ${manifest.config.digest}: names layer ${String(meta.layer?.digest)}, but the slug holds ${manifest.layers.map((l) => l.digest).join(', ') || 'no layer'}`, 'the slug is corrupt; push it again');
  }
  return [meta.layer.diffId];
}

/** Checks that a manifest is a slug artifact and returns its metadata. */
export async function verifySlugManifest(layout: OciLayout, digest: Digest, where: string): Promise<SlugMetadata> {
  const size = await layout.blobSize(digest);
  if (size === undefined) throw new SlipwayError(`${where}: ${digest} is missing`);
  const m = await layout.readManifest({ mediaType: MediaType.ociManifest, digest, size });
  if (m.kind !== 'manifest' || m.manifest.artifactType !== SLUG_ARTIFACT_TYPE || m.manifest.config.mediaType !== SLUG_CONFIG_TYPE) {
    throw new SlipwayError(`${where}: not a Slipway slug (artifactType ${m.kind === 'manifest' ? String(m.manifest.artifactType) : 'index'})`, {
      hint: 'slug pull takes what slug push wrote',
    });
  }
  return parseJson(await layout.readSmallBlob(m.manifest.config), `${where}: metadata`) as SlugMetadata;
}
