import type { Readable } from 'node:stream';
import { SlipwayError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor, ParsedManifest } from '../oci/types.js';
import { layerCompression } from '../oci/mediatypes.js';
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

/** Writes `oci:DIR[:REF]`: blobs verified into place, then the top manifest tagged in index.json. */
export class OciLayoutDestination implements ImageDestination {
  private top: Descriptor | undefined;
  /** Blobs this copy added; removed again if it never commits, so a failure leaves the layout as it was. */
  private readonly added = new Set<Digest>();
  private committed = false;

  constructor(
    readonly name: string,
    readonly layout: OciLayout,
    private readonly ref: string | undefined,
    /** Check every layer is a safe archive before it becomes visible (the local store does). */
    private readonly validateLayers: boolean,
  ) {}

  static async open(name: string, dir: string, ref: string | undefined, opts: { validateLayers?: boolean } = {}): Promise<OciLayoutDestination> {
    return new OciLayoutDestination(name, await OciLayout.open(dir, { create: true }), ref, opts.validateLayers === true);
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return (await this.layout.pinIfPresent(desc.digest)) === desc.size;
  }

  async putBlob(desc: Descriptor, data: Readable): Promise<void> {
    if (this.validateLayers && layerCompression(desc.mediaType) !== undefined) {
      const v = layerValidator(`${this.name}: layer ${desc.digest}`);
      await this.layout.writeBlob(data, { digest: desc.digest, size: desc.size }, { through: v.stream });
    } else {
      await this.layout.writeBlob(data, { digest: desc.digest, size: desc.size });
    }
    this.added.add(desc.digest);
  }

  async putBlobFile(desc: Descriptor, path: string): Promise<boolean> {
    if (!path.startsWith(`${await this.layout.scratchDir()}/`)) return false;
    await this.layout.adoptFile(path, desc.digest);
    this.added.add(desc.digest);
    return true;
  }

  async putManifest(m: ParsedManifest, top: boolean): Promise<void> {
    if (await this.layout.writeSmallBlob(m.bytes, m.digest)) this.added.add(m.digest);
    if (top) this.top = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
  }

  async commit(): Promise<void> {
    if (this.top === undefined) throw new Error('commit before the top manifest was written');
    await this.layout.tag(this.top, this.ref);
    this.committed = true;
  }

  async close(): Promise<void> {
    if (!this.committed) await this.layout.discard(this.added);
    await this.layout.unpin();
  }
}
