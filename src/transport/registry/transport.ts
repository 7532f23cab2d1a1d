import type { Readable } from 'node:stream';
import { SlipwayError } from '../../errors.js';
import type { Digest } from '../../oci/digest.js';
import type { Descriptor, ParsedManifest } from '../../oci/types.js';
import { formatDockerReference, type DockerReference } from '../reference.js';
import type { ImageDestination, ImageSource } from '../types.js';
import { RegistryClient, type RegistryOptions } from './client.js';

/** Pulls from `docker://HOST/REPO[:TAG|@DIGEST]`. */
export class RegistrySource implements ImageSource {
  readonly name: string;

  private constructor(
    readonly ref: DockerReference,
    readonly client: RegistryClient,
  ) {
    this.name = `docker://${formatDockerReference(ref)}`;
  }

  static async open(ref: DockerReference, opts: RegistryOptions): Promise<RegistrySource> {
    const client = new RegistryClient(ref.registry, opts);
    await client.authorize([`repository:${ref.repository}:pull`]);
    return new RegistrySource(ref, client);
  }

  getManifest(digest?: Digest): Promise<ParsedManifest> {
    return this.client.getManifest(this.ref.repository, digest ?? this.ref.digest ?? this.ref.tag ?? 'latest');
  }

  getBlob(desc: Descriptor): Promise<Readable> {
    return this.client.getBlob(this.ref.repository, desc);
  }

  async close(): Promise<void> {}
}

/** Pushes to `docker://HOST/REPO[:TAG]`: HEAD to skip, mount across repos, upload the rest. */
export class RegistryDestination implements ImageDestination {
  readonly name: string;

  private constructor(
    readonly ref: DockerReference,
    private readonly client: RegistryClient,
  ) {
    this.name = `docker://${formatDockerReference(ref)}`;
  }

  static async open(ref: DockerReference, opts: RegistryOptions): Promise<RegistryDestination> {
    const client = new RegistryClient(ref.registry, opts);
    await client.authorize([`repository:${ref.repository}:pull,push`]);
    return new RegistryDestination(ref, client);
  }

  hasBlob(desc: Descriptor): Promise<boolean> {
    return this.client.hasBlob(this.ref.repository, desc);
  }

  async mountBlob(desc: Descriptor, from: ImageSource): Promise<boolean> {
    if (!(from instanceof RegistrySource) || from.ref.registry !== this.ref.registry || from.ref.repository === this.ref.repository) return false;
    await this.client.authorize([`repository:${this.ref.repository}:pull,push`, `repository:${from.ref.repository}:pull`]);
    return this.client.mountBlob(this.ref.repository, desc, from.ref.repository);
  }

  putBlob(desc: Descriptor, data: Readable): Promise<void> {
    return this.client.putBlob(this.ref.repository, desc, data);
  }

  async putManifest(m: ParsedManifest, top: boolean): Promise<void> {
    let reference: string = m.digest;
    if (top) {
      if (this.ref.digest && this.ref.digest !== m.digest) {
        throw new SlipwayError(`${this.name}: the image's digest is ${m.digest}, not the one the destination names`, {
          hint: 'push by tag, or name the digest the image really has',
        });
      }
      reference = this.ref.tag ?? this.ref.digest ?? 'latest';
    }
    await this.client.putManifest(this.ref.repository, reference, m);
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {}
}
