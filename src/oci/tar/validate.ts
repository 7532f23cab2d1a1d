import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { decompress } from '../compression.js';
import { Hasher, type Digest } from '../digest.js';
import type { Compression } from '../mediatypes.js';
import { limitsFromEnv, readTar, type TarLimits } from './reader.js';

/** Passes inflated bytes on, hashing them: the layer's diff_id, in the same pass. */
async function* hashed(source: AsyncIterable<Buffer>, diff: Hasher): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    diff.update(chunk);
    yield chunk;
  }
}

/**
 * A pass-through that checks, as a layer's bytes flow by, that it is a well-formed archive (the
 * reader's rules, nothing written) and takes its diff_id. `done` settles with the diff_id when the
 * layer has been read to its end; the stream itself fails as soon as the layer is found bad.
 * `declared` is the compression the layer's media type names: bytes of another are refused.
 */
export function layerValidator(where: string, limits: TarLimits = limitsFromEnv(), declared?: Compression): { stream: Transform; done: Promise<Digest> } {
  const input = new PassThrough({ highWaterMark: 1024 * 1024 });
  let failure: Error | undefined;
  const diff = new Hasher();
  const done = (async () => {
    for await (const entry of readTar(hashed(decompress(input, where, { declared }), diff), where, limits)) {
      for await (const _ of entry.body) {
        // only the structure matters
      }
    }
    return diff.digest();
  })();
  done.catch((err: Error) => {
    failure = err;
    input.resume();
  });
  const stream = new Transform({
    transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
      if (failure) return cb(failure);
      if (input.write(chunk)) cb(null, chunk);
      else input.once('drain', () => cb(failure ?? null, chunk));
    },
    flush(cb: TransformCallback) {
      input.end();
      done.then(() => cb(), cb);
    },
  });
  return { stream, done };
}
