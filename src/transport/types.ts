import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor, ParsedManifest } from '../oci/types.js';

/**
 * Where images come from. Sources hand out raw bytes; the copier verifies every
 * blob against its descriptor, so a source never has to be trusted.
 */
export interface ImageSource {
  /** The reference as the user wrote it, for messages. */
  readonly name: string;
  /** The manifest or index the reference names (no digest), or a child by digest. */
  getManifest(digest?: Digest): Promise<ParsedManifest>;
  getBlob(desc: Descriptor): Promise<Readable>;
  /** A local file holding the blob's exact bytes, when the source has one (lets a store adopt it). */
  blobFile?(desc: Descriptor): string | undefined;
  /** For a source assembled from others (a rebase), the one really holding a blob: a registry can mount from it. */
  origin?(desc: Descriptor): ImageSource;
  close(): Promise<void>;
}

export type BlobOutcome = 'exists' | 'mounted' | 'copied';

/** Where images go. Children are written before the manifests that name them. */
export interface ImageDestination {
  readonly name: string;
  hasBlob(desc: Descriptor): Promise<boolean>;
  /** Makes the blob present without sending its bytes (a registry's cross-repo mount). */
  mountBlob?(desc: Descriptor, from: ImageSource): Promise<boolean>;
  /**
   * Streams a blob in. The destination owns verification (a store hashes as it writes,
   * a registry checks the digest on commit), so each byte is hashed once.
   */
  putBlob(desc: Descriptor, data: Readable): Promise<void>;
  /** Takes a finished local file (same content as desc) without copying when it can. */
  putBlobFile?(desc: Descriptor, path: string): Promise<boolean>;
  /** Writes a manifest; `top` is the one the reference names and gets the tag. */
  putManifest(m: ParsedManifest, top: boolean): Promise<void>;
  /** Makes the result visible (rename of an archive, tag in a layout). */
  commit(): Promise<void>;
  close(): Promise<void>;
}
