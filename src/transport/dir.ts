import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SlipwayError } from '../errors.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { buildLayer, type BuiltLayer } from '../oci/layer.js';
import { MediaType } from '../oci/mediatypes.js';
import { hostPlatform } from '../oci/platform.js';
import { scanDirectory, sourceDateEpoch } from '../oci/tar/scan.js';
import { encodeJson, type Descriptor, type ImageConfig, type ImageManifest, type ParsedManifest } from '../oci/types.js';
import type { ImageSource } from './types.js';

export interface DirSourceOptions {
  /** Where the layer is built; a destination's scratch dir lets it adopt the file without a copy. */
  scratch?: string;
  onProgress?: (uncompressedBytes: number) => void;
  onSkip?: (path: string, why: string) => void;
}

/**
 * `dir:ROOTFS` as a source: the directory becomes a one-layer image. The layer is built
 * once (deterministically) into a temp file; config and manifest are made to match.
 */
export class DirSource implements ImageSource {
  private built: { manifest: Extract<ParsedManifest, { kind: 'manifest' }>; config: Buffer; layer: BuiltLayer; file: string } | undefined;
  private workdir: string | undefined;

  constructor(
    readonly name: string,
    private readonly dir: string,
    private readonly opts: DirSourceOptions = {},
  ) {}

  private async build(): Promise<NonNullable<DirSource['built']>> {
    if (this.built) return this.built;
    this.workdir = await mkdtemp(join(this.opts.scratch ?? tmpdir(), `dir-${process.pid}-`));
    const file = join(this.workdir, 'layer.tar.gz');
    const mtime = sourceDateEpoch();
    const layer = await buildLayer(
      scanDirectory(this.dir, { mtime, ...(this.opts.onSkip && { onSkip: this.opts.onSkip }) }),
      createWriteStream(file, { highWaterMark: 256 * 1024 }),
      this.opts.onProgress ? { onBytes: this.opts.onProgress } : {},
    );
    const created = new Date(mtime * 1000).toISOString();
    const platform = hostPlatform();
    const configDoc: ImageConfig = {
      created,
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: {},
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ created, created_by: 'slipway: dir' }],
    };
    const config = encodeJson(configDoc);
    const doc: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
      layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
    };
    const bytes = encodeJson(doc);
    this.built = { manifest: { kind: 'manifest', mediaType: MediaType.ociManifest, bytes, digest: digestOf(bytes), manifest: doc }, config, layer, file };
    return this.built;
  }

  async getManifest(digest?: Digest): Promise<ParsedManifest> {
    const b = await this.build();
    if (digest !== undefined && digest !== b.manifest.digest) throw new SlipwayError(`${this.name}: has no manifest ${digest}`);
    return b.manifest;
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    const b = await this.build();
    if (desc.digest === b.manifest.manifest.config.digest) return Readable.from([b.config]);
    if (desc.digest === b.layer.digest) return createReadStream(b.file, { highWaterMark: 1024 * 1024 });
    throw new SlipwayError(`${this.name}: has no blob ${desc.digest}`);
  }

  blobFile(desc: Descriptor): string | undefined {
    return this.built && desc.digest === this.built.layer.digest ? this.built.file : undefined;
  }

  async close(): Promise<void> {
    if (this.workdir) await rm(this.workdir, { recursive: true, force: true });
  }
}
