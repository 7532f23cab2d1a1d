import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { decompress } from '../compression.js';
import { limitsFromEnv, readTar, type TarLimits } from './reader.js';

/**
 * A pass-through that checks, as a layer's bytes flow by, that it is a safe archive
 * (the same rules as extraction, nothing written). `done` settles when the layer has
 * been read to its end; the stream itself fails as soon as the layer is found bad.
 */
export function layerValidator(where: string, limits: TarLimits = limitsFromEnv()): { stream: Transform; done: Promise<void> } {
  const input = new PassThrough({ highWaterMark: 1024 * 1024 });
  let failure: Error | undefined;
  const done = (async () => {
    for await (const entry of readTar(decompress(input, where), where, limits)) {
      for await (const _ of entry.body) {
        // only the structure matters
      }
    }
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
