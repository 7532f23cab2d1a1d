import { createReadStream } from 'node:fs';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SlipwayError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { verifyDiffIds } from '../oci/diffids.js';
import { parseImageConfig, type Descriptor, type ImageManifest, type ParsedManifest } from '../oci/types.js';
import { layerCompression, MediaType } from '../oci/mediatypes.js';
import { limitsFromEnv } from '../oci/tar/reader.js';
import { layerValidator } from '../oci/tar/validate.js';
import { OciLayout } from '../store/layout.js';
import type { ImageDestination, ImageSource } from './types.js';

/** Reads `oci:DIR[:REF]` (and the local store, which is one such layout). */
export class OciLayoutSource implements ImageSource {
  constructor(
    readonly name: string,
    private readonly layout: OciLayout,
    private readonly ref: string | undefined,
  ) {}

  static async open(name: string, dir: string, ref: string | undefined): Promise<OciLayoutSource> {
    return new OciLayoutSource(name, await OciLayout.open(dir, { create: false }), ref);
  }

  async getManifest(digest?: Digest): Promise<ParsedManifest> {
    if (digest === undefined) return this.layout.readManifest(await this.layout.resolve(this.ref));
    const size = await this.layout.blobSize(digest);
    if (size === undefined) throw new SlipwayError(`${this.name}: manifest ${digest} is missing from the layout`);
    return this.layout.readManifest({ mediaType: '', digest, size });
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    const size = await this.layout.blobSize(desc.digest);
    if (size === undefined) {
      throw new SlipwayError(`${this.name}: blob ${desc.digest} is missing from the layout`, { hint: 'the image is incomplete; copy it in again' });
    }
    return this.layout.openBlob(desc.digest);
  }

  blobFile(desc: Descriptor): string {
    return this.layout.blobPath(desc.digest);
  }

  async close(): Promise<void> {}
}

/** What a config says its layers' diff_ids are: image configs by rootfs.diff_ids, artifacts by their own rule (undefined: no tar layers to check). */
export type ClaimedDiffIds = (manifest: ImageManifest, config: Buffer) => readonly string[] | undefined;

const imageDiffIds: ClaimedDiffIds = (m, config) =>
  m.config.mediaType === MediaType.ociConfig || m.config.mediaType === MediaType.dockerConfig ? parseImageConfig(config, `config ${m.config.digest}`).rootfs.diff_ids : undefined;

/**
 * Writes `oci:DIR[:REF]`: blobs verified into place, then the top manifest tagged in index.json.
 * The local store validates too: every layer through the one well-formedness reader, and each
 * image's rootfs.diff_ids against the digests taken while its layers streamed in, before the tag.
 */
export class OciLayoutDestination implements ImageDestination {
  private top: Descriptor | undefined;
  /** Blobs this copy added; removed again if it never commits, so a failure leaves the layout as it was. */
  private readonly added = new Set<Digest>();
  /** diff_ids of the layers of this copy, taken as they streamed (or known to the store). */
  private readonly diffIds = new Map<Digest, Digest>();
  private committed = false;

  constructor(
    readonly name: string,
    readonly layout: OciLayout,
    private readonly ref: string | undefined,
    /** Check every layer is a well-formed archive, and every config's diff_ids, before the image becomes visible (the local store does). */
    private readonly validateLayers: boolean,
    private readonly claimedDiffIds: ClaimedDiffIds = imageDiffIds,
  ) {}

  static async open(name: string, dir: string, ref: string | undefined, opts: { validateLayers?: boolean } = {}): Promise<OciLayoutDestination> {
    return new OciLayoutDestination(name, await OciLayout.open(dir, { create: true }), ref, opts.validateLayers === true);
  }

  private validates(desc: Descriptor): boolean {
    return this.validateLayers && layerCompression(desc.mediaType) !== undefined;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    if ((await this.layout.pinIfPresent(desc.digest)) !== desc.size) return false;
    if (this.validates(desc)) {
      // Here before, but its diff_id never recorded (a layer built on this host): read it once now.
      const known = this.layout.diffIdOf(desc.digest);
      this.diffIds.set(desc.digest, known ?? (await this.validate(desc, this.layout.openBlob(desc.digest))));
    }
    return true;
  }

  /** Streams a layer through the validator to its end; its diff_id. */
  private async validate(desc: Descriptor, data: Readable): Promise<Digest> {
    const v = layerValidator(`${this.name}: layer ${desc.digest}`, limitsFromEnv(), layerCompression(desc.mediaType));
    await pipeline(data, v.stream, new Writable({ write: (_c, _e, cb) => cb() }));
    return v.done;
  }

  async putBlob(desc: Descriptor, data: Readable): Promise<void> {
    if (this.validates(desc)) {
      const v = layerValidator(`${this.name}: layer ${desc.digest}`, limitsFromEnv(), layerCompression(desc.mediaType));
      await this.layout.writeBlob(data, { digest: desc.digest, size: desc.size }, { through: v.stream });
      this.diffIds.set(desc.digest, await v.done);
    } else {
      await this.layout.writeBlob(data, { digest: desc.digest, size: desc.size });
    }
    this.added.add(desc.digest);
  }

  async putBlobFile(desc: Descriptor, path: string): Promise<boolean> {
    if (!path.startsWith(`${await this.layout.scratchDir()}/`)) return false;
    if (this.validates(desc)) this.diffIds.set(desc.digest, await this.validate(desc, createReadStream(path, { highWaterMark: 1024 * 1024 })));
    await this.layout.adoptFile(path, desc.digest);
    this.added.add(desc.digest);
    return true;
  }

  async putManifest(m: ParsedManifest, top: boolean): Promise<void> {
    if (this.validateLayers && m.kind === 'manifest') {
      // Blobs are all in by now (copyImage writes a manifest after them).
      const claimed = this.claimedDiffIds(m.manifest, await this.layout.readSmallBlob(m.manifest.config));
      if (claimed !== undefined) {
        const layers = m.manifest.layers;
        verifyDiffIds(`${this.name}: ${m.digest}: config`, layers, claimed, layers.map((l) => this.diffIds.get(l.digest) ?? 'unknown'));
      }
    }
    if (await this.layout.writeSmallBlob(m.bytes, m.digest)) this.added.add(m.digest);
    if (top) this.top = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
  }

  async commit(): Promise<void> {
    if (this.top === undefined) throw new Error('commit before the top manifest was written');
    for (const [digest, diffId] of this.diffIds) await this.layout.rememberDiffId(digest, diffId);
    await this.layout.tag(this.top, this.ref);
    this.committed = true;
  }

  async close(): Promise<void> {
    if (!this.committed) await this.layout.discard(this.added);
    await this.layout.unpin();
  }
}
