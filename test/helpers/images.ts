import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { TarHeader } from '../../src/oci/tar/header.js';
import { writeTar, type WriteEntry } from '../../src/oci/tar/writer.js';
import { encodeJson, type Descriptor } from '../../src/oci/types.js';
import { OciLayout } from '../../src/store/layout.js';

export function header(path: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}): TarHeader {
  return { path, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtime: 0, ...extra };
}

export function fileEntry(path: string, content: string | Buffer, extra: Partial<TarHeader> = {}): WriteEntry {
  const body = Buffer.from(content);
  return { header: header(path, 'file', { size: body.length, ...extra }), body: () => Readable.from([body]) };
}

/** A tar made from raw entries, unchecked: how hostile layers are made. */
export async function tarOf(entries: WriteEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of writeTar(entries)) chunks.push(c);
  return Buffer.concat(chunks);
}

export interface MadeImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

/**
 * Writes a one-platform image into an OCI layout from layer blobs given as bytes
 * (gzip applied unless `raw`), tags it, and returns its descriptors.
 */
export interface ImageOptions {
  raw?: boolean;
  diffIds?: Digest[];
  arch?: string;
  variant?: string;
  history?: string[];
  /** Merged over the default container config ({ Cmd: ['/bin/sh'] }). */
  config?: Record<string, unknown>;
  annotations?: Record<string, string>;
  /** Each layer's media type, whatever its bytes are (with `raw`, the blobs are given as they are). */
  mediaTypes?: string[];
}

export async function writeImage(dir: string, tag: string, layerTars: Buffer[], opts: ImageOptions = {}): Promise<MadeImage> {
  const layout = await OciLayout.open(dir, { create: true });
  const layers: Descriptor[] = [];
  for (const [i, tar] of layerTars.entries()) {
    const blob = opts.raw ? tar : gzipSync(tar, { level: 1 });
    const d = digestOf(blob);
    await layout.writeBlob(Readable.from([blob]), { digest: d, size: blob.length });
    layers.push({ mediaType: opts.mediaTypes?.[i] ?? (opts.raw ? MediaType.ociLayer : MediaType.ociLayerGzip), digest: d, size: blob.length });
  }
  const cfg = encodeJson({
    architecture: opts.arch ?? 'amd64',
    os: 'linux',
    ...(opts.variant && { variant: opts.variant }),
    config: { Cmd: ['/bin/sh'], ...opts.config },
    rootfs: { type: 'layers', diff_ids: opts.diffIds ?? layerTars.map((t) => digestOf(t)) },
    ...(opts.history && { history: opts.history.map((h) => ({ created_by: h })) }),
  });
  const config: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf(cfg), size: cfg.length };
  await layout.writeBlob(Readable.from([cfg]), { digest: config.digest, size: cfg.length });
  const m = encodeJson({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers, ...(opts.annotations && { annotations: opts.annotations }) });
  const manifest: Descriptor = { mediaType: MediaType.ociManifest, digest: digestOf(m), size: m.length };
  await layout.writeBlob(Readable.from([m]), { digest: manifest.digest, size: m.length });
  await layout.tag(manifest, tag);
  return { manifest, config, layers };
}

/** Writes an index over already written images, one per platform, and tags it. */
export async function writeIndex(dir: string, tag: string, children: { image: MadeImage; arch: string; os?: string }[]): Promise<Descriptor> {
  const layout = await OciLayout.open(dir, { create: false });
  const bytes = encodeJson({
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: children.map((c) => ({ ...c.image.manifest, platform: { os: c.os ?? 'linux', architecture: c.arch } })),
  });
  const desc: Descriptor = { mediaType: MediaType.ociIndex, digest: digestOf(bytes), size: bytes.length };
  await layout.writeBlob(Readable.from([bytes]), { digest: desc.digest, size: bytes.length });
  await layout.tag(desc, tag);
  return desc;
}
