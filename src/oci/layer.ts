import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipStream } from './compression.js';
import { Hasher, type Digest } from './digest.js';
import { MediaType } from './mediatypes.js';
import { writeTar, type WriteEntry } from './tar/writer.js';

export interface BuiltLayer {
  mediaType: string;
  /** Digest and size of the compressed blob. */
  digest: Digest;
  size: number;
  /** Digest and size of the uncompressed tar (the config's diff_id). */
  diffId: Digest;
  uncompressedSize: number;
}

function tap(hasher: Hasher, onBytes?: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
      hasher.update(chunk);
      onBytes?.(chunk.length);
      cb(null, chunk);
    },
  });
}

/**
 * Packs entries into a gzip layer in one pass: tar → diff_id hash → gzip → digest hash → out.
 * Each byte is produced, hashed and written once.
 */
export async function buildLayer(
  entries: AsyncIterable<WriteEntry>,
  out: Writable,
  opts: { onBytes?: (uncompressed: number) => void; gzipLevel?: number } = {},
): Promise<BuiltLayer> {
  const diff = new Hasher();
  const blob = new Hasher();
  // A small object buffer: each item can be a 1 MiB chunk.
  await pipeline(Readable.from(writeTar(entries), { highWaterMark: 2 }), tap(diff, opts.onBytes), gzipStream(opts.gzipLevel), tap(blob), out);
  return { mediaType: MediaType.ociLayerGzip, digest: blob.digest(), size: blob.size, diffId: diff.digest(), uncompressedSize: diff.size };
}
