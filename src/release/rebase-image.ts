import { Readable } from 'node:stream';
import { copyImage, type CopyResult } from '../copy.js';
import { SlipwayError } from '../errors.js';
import { readSmallBlob, resolvePlatform } from '../inspect.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { formatPlatform, type Platform } from '../oci/platform.js';
import { encodeJson, parseImageConfig, type Descriptor, type ImageIndex, type ParsedManifest } from '../oci/types.js';
import { formatDockerReference, parseImageRef, localRefName } from '../transport/reference.js';
import { openDestination, openSource, type TransportContext } from '../transport/open.js';
import type { ImageSource } from '../transport/types.js';
import { BASE_DIGEST, BASE_NAME } from './image.js';
import { rebase, type ImageParts, type Rebased } from './rebase.js';

export interface RebaseOptions {
  /** Shared base reads across many rebases (closed by the caller). */
  bases?: BaseCache;
  /** The old base (any transport); else found from the image's base annotations. */
  oldBase?: string;
  /** Maps an image's base.name/base.digest annotation to a readable reference (e.g. a local stack). */
  resolveBase?: (name: string, digest: string) => string | undefined;
  newBaseName?: string;
  dryRun?: boolean;
  /** Write the result under this tag instead of replacing the image's own. */
  tag?: string;
}

export interface BlobPlan {
  digest: string;
  size: number;
  role: 'base' | 'app' | 'config';
  action: 'exists' | 'mount' | 'copy' | 'write';
}

export interface RebaseReport {
  dryRun: boolean;
  image: string;
  destination: string;
  oldDigest: string;
  newDigest: string;
  blobs: BlobPlan[];
  result?: CopyResult;
}

async function parts(src: ImageSource, m: Extract<ParsedManifest, { kind: 'manifest' }>): Promise<ImageParts> {
  return { digest: m.digest, mediaType: m.mediaType, manifest: m.manifest, config: parseImageConfig(await readSmallBlob(src, m.manifest.config), `${src.name}: config`) };
}

/**
 * Bases read once and shared: a fleet rebase moves hundreds of images onto the same new base
 * from the same old one, so their manifests and configs are fetched once, not per image.
 */
export class BaseCache {
  private readonly sources = new Map<string, Promise<ImageSource>>();
  private readonly parts = new Map<string, Promise<ImageParts>>();

  constructor(private readonly ctx: TransportContext) {}

  source(ref: string): Promise<ImageSource> {
    let s = this.sources.get(ref);
    if (!s) this.sources.set(ref, (s = openSource(ref, this.ctx)));
    return s;
  }

  /** The base image for a platform (an index is resolved to its matching child). */
  forPlatform(ref: string, platform: Platform): Promise<ImageParts> {
    const key = `${ref}|${formatPlatform(platform)}`;
    let p = this.parts.get(key);
    if (!p) {
      p = (async () => {
        const src = await this.source(ref);
        return parts(src, await resolvePlatform(src, await src.getManifest(), platform));
      })();
      this.parts.set(key, p);
    }
    return p;
  }

  async close(): Promise<void> {
    for (const s of this.sources.values()) await (await s.catch(() => undefined))?.close();
  }
}

/** The same image reference with another tag. */
export function retag(ref: string, tag: string): string {
  const r = parseImageRef(ref);
  switch (r.transport) {
    case 'docker':
      return `docker://${formatDockerReference({ registry: r.ref.registry, repository: r.ref.repository, tag })}`;
    case 'oci':
      return `oci:${r.dir}:${tag}`;
    case 'local':
      return localRefName({ name: r.name, tag });
    default:
      throw new SlipwayError(`--tag works with docker://, oci: and local images, not ${r.transport}:`, { exitCode: 2 });
  }
}

/**
 * Rebases an image in any transport onto a new base: reads manifests and configs only, checks
 * the old base is exactly the image's bottom, writes a new config and manifest. Layers are never
 * read: app layers are already at the destination, new base layers are mounted or found present
 * (or copied, when the destination is another place than the new base).
 */
export async function rebaseImage(ctx: TransportContext, imageRef: string, onto: string, opts: RebaseOptions = {}): Promise<RebaseReport> {
  const src = await openSource(imageRef, ctx);
  const bases = opts.bases ?? new BaseCache(ctx);
  try {
    const top = await src.getManifest();
    const newBaseSrc = await bases.source(onto);

    const rebaseOne = async (m: Extract<ParsedManifest, { kind: 'manifest' }>): Promise<Rebased> => {
      const image = await parts(src, m);
      const annotations = m.manifest.annotations ?? {};
      const oldRef = opts.oldBase ?? (annotations[BASE_NAME] ? opts.resolveBase?.(annotations[BASE_NAME], annotations[BASE_DIGEST] ?? '') : undefined);
      if (!oldRef) {
        throw new SlipwayError(`${imageRef}: cannot tell its old base`, { hint: 'the image has no usable org.opencontainers.image.base.* annotations: give --old-base IMAGE' });
      }
      const platform: Platform = { os: image.config.os, architecture: image.config.architecture, ...(image.config.variant ? { variant: image.config.variant } : {}) };
      const oldBase = await bases.forPlatform(oldRef, platform);
      if (annotations[BASE_DIGEST] && annotations[BASE_DIGEST] !== oldBase.digest && opts.oldBase === undefined) {
        throw new SlipwayError(`${imageRef}: its annotation names base ${annotations[BASE_DIGEST]}, but ${oldRef} is ${oldBase.digest}`);
      }
      const newBase = await bases.forPlatform(onto, platform).catch((err: unknown) => {
        if (err instanceof SlipwayError && /no image for/.test(err.message)) throw new SlipwayError(`rebase refused: ${onto} has no image for ${formatPlatform(platform)}`);
        throw err;
      });
      return rebase(image, oldBase, newBase, opts.newBaseName !== undefined ? { newBaseName: opts.newBaseName } : {});
    };

    const results: Rebased[] = [];
    let newTop: ParsedManifest;
    if (top.kind === 'manifest') {
      const r = await rebaseOne(top);
      results.push(r);
      newTop = { kind: 'manifest', mediaType: top.mediaType, bytes: r.manifestBytes, digest: r.digest, manifest: r.manifest };
    } else {
      const children: Descriptor[] = [];
      for (const child of top.index.manifests) {
        const m = await src.getManifest(child.digest);
        if (m.kind !== 'manifest') throw new SlipwayError(`rebase refused: nested indexes are not supported (${child.digest})`);
        const r = await rebaseOne(m);
        results.push(r);
        children.push({ ...child, digest: r.digest, size: r.manifestBytes.length });
      }
      const index: ImageIndex = { ...top.index, manifests: children };
      const bytes = encodeJson(index);
      newTop = { kind: 'index', mediaType: top.mediaType, bytes, digest: digestOf(bytes), index };
    }

    const byDigest = new Map<string, Rebased>(results.map((r) => [r.digest, r]));
    const baseDigests = new Set(results.flatMap((r) => r.baseLayers.map((l) => l.digest)));
    const configs = new Map(results.map((r) => [r.manifest.config.digest as string, r.configBytes]));
    const assembled: ImageSource = {
      name: `${imageRef} rebased`,
      getManifest: async (digest?: Digest) => {
        if (digest === undefined || digest === newTop.digest) return newTop;
        const r = byDigest.get(digest);
        if (!r) throw new SlipwayError(`rebase: no manifest ${digest}`);
        return { kind: 'manifest', mediaType: top.kind === 'manifest' ? top.mediaType : r.manifest.mediaType ?? '', bytes: r.manifestBytes, digest: r.digest, manifest: r.manifest };
      },
      getBlob: async (desc) => {
        const c = configs.get(desc.digest);
        if (c) return Readable.from([c]);
        return (baseDigests.has(desc.digest) ? newBaseSrc : src).getBlob(desc);
      },
      origin: (desc) => (baseDigests.has(desc.digest) ? newBaseSrc : src),
      close: async () => undefined,
    };

    const destRef = opts.tag ? retag(imageRef, opts.tag) : imageRef;
    const dst = await openDestination(destRef, ctx);
    try {
      const blobs: BlobPlan[] = [];
      const registryOf = (ref: string): string | undefined => {
        const p = parseImageRef(ref);
        return p.transport === 'docker' ? p.ref.registry : undefined;
      };
      const sameRegistry = registryOf(onto) !== undefined && registryOf(onto) === registryOf(destRef);
      // The plan asks the destination only on a dry run; a real run reports what the copy did.
      const planned = async (l: Descriptor, fallback: BlobPlan['action']): Promise<BlobPlan['action']> => (opts.dryRun ? ((await dst.hasBlob(l)) ? 'exists' : fallback) : fallback);
      for (const r of results) {
        blobs.push({ digest: r.manifest.config.digest, size: r.manifest.config.size, role: 'config', action: 'write' });
        for (const l of r.appLayers) blobs.push({ digest: l.digest, size: l.size, role: 'app', action: await planned(l, 'copy') });
        for (const l of r.baseLayers) blobs.push({ digest: l.digest, size: l.size, role: 'base', action: await planned(l, sameRegistry ? 'mount' : 'copy') });
      }
      const report: RebaseReport = { dryRun: opts.dryRun === true, image: imageRef, destination: destRef, oldDigest: top.digest, newDigest: newTop.digest, blobs };
      if (opts.dryRun) return report;
      // Writing back where the image came from: its own layers are there by construction (the
      // manifest being replaced references them), and the new configs were just made.
      const known = new Map<string, 'present' | 'absent'>();
      const sameRepo = (a: string, b: string): boolean => {
        const pa = parseImageRef(a);
        const pb = parseImageRef(b);
        if (pa.transport === 'docker' && pb.transport === 'docker') return pa.ref.registry === pb.ref.registry && pa.ref.repository === pb.ref.repository;
        return pa.transport === 'oci' && pb.transport === 'oci' && pa.dir === pb.dir;
      };
      if (sameRepo(imageRef, destRef)) for (const r of results) for (const l of r.appLayers) known.set(l.digest, 'present');
      for (const r of results) known.set(r.manifest.config.digest, 'absent');
      report.result = await copyImage(assembled, dst, { known });
      const outcome = new Map(report.result.blobs.map((b) => [b.digest as string, b.outcome]));
      const asAction: Record<string, BlobPlan['action']> = { exists: 'exists', mounted: 'mount', copied: 'copy' };
      for (const b of blobs) if (b.role !== 'config') b.action = asAction[outcome.get(b.digest) ?? ''] ?? b.action;
      return report;
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
    if (!opts.bases) await bases.close();
  }
}
