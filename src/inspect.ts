import { SlipwayError } from './errors.js';
import { formatPlatform, hostPlatform, platformMatches, type Platform } from './oci/platform.js';
import { MAX_MANIFEST_BYTES, parseImageConfig, type Descriptor, type ImageConfig, type ParsedManifest } from './oci/types.js';
import { VerifyingStream } from './oci/digest.js';
import type { ImageSource } from './transport/types.js';

export interface ImageInfo {
  name: string;
  digest: string;
  mediaType: string;
  /** Set when the reference names an index: the platforms it offers. */
  platforms?: string[];
  platform: string;
  created?: string;
  config: ImageConfig['config'];
  layers: { digest: string; size: number; mediaType: string; diffId?: string }[];
  size: number;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}

/** Reads a small blob (a config) through the source, verified against its descriptor. */
export async function readSmallBlob(src: ImageSource, desc: Descriptor): Promise<Buffer> {
  if (desc.size > MAX_MANIFEST_BYTES) throw new SlipwayError(`${src.name}: config ${desc.digest} of ${desc.size} bytes is over the limit`);
  const chunks: Buffer[] = [];
  const data = await src.getBlob(desc);
  const verify = new VerifyingStream(desc.digest, desc.size, `${src.name}: blob ${desc.digest}`);
  data.on('error', (err) => verify.destroy(err));
  for await (const c of data.pipe(verify)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The image manifest for a platform: the manifest itself, or the matching child of an index. */
export async function resolvePlatform(src: ImageSource, top: ParsedManifest, platform?: Platform): Promise<Extract<ParsedManifest, { kind: 'manifest' }>> {
  if (top.kind === 'manifest') return top;
  const wanted = platform ?? hostPlatform();
  const child = top.index.manifests.find((d) => d.platform && platformMatches(wanted, d.platform)) ?? (platform ? undefined : top.index.manifests[0]);
  if (!child) throw new SlipwayError(`${src.name}: no image for ${formatPlatform(wanted)}`);
  return resolvePlatform(src, await src.getManifest(child.digest), platform);
}

export async function inspectImage(src: ImageSource, platform?: Platform): Promise<ImageInfo> {
  const top = await src.getManifest();
  const m = await resolvePlatform(src, top, platform);
  const config = parseImageConfig(await readSmallBlob(src, m.manifest.config), `${src.name}: config`);
  const layers = m.manifest.layers.map((l, i) => ({
    digest: l.digest,
    size: l.size,
    mediaType: l.mediaType,
    ...(config.rootfs.diff_ids[i] ? { diffId: config.rootfs.diff_ids[i] } : {}),
  }));
  return {
    name: src.name,
    digest: top.digest,
    mediaType: top.mediaType,
    ...(top.kind === 'index' && { platforms: top.index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown')) }),
    platform: formatPlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) }),
    ...(config.created && { created: config.created }),
    config: config.config ?? {},
    layers,
    size: m.bytes.length + m.manifest.config.size + layers.reduce((a, l) => a + l.size, 0),
    ...(m.manifest.annotations && { annotations: m.manifest.annotations }),
    ...(config.config?.Labels && { labels: config.config.Labels }),
  };
}
