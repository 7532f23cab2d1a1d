import { Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ParallelGzip } from './pgzip.js';
import { Decompress as ZstdDecompress } from 'fzstd';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, SlipwayError, UnsafeArchiveError } from '../errors.js';
import type { Compression } from './mediatypes.js';

/** Pinned so the same tar always gives the same compressed digest. */
export const GZIP_LEVEL = 6;

/** What a blob's first bytes say it is: gzip, a zstd frame or skippable frame (as containerd sniffs), else plain. */
export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if ((head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd';
  return 'none';
}

class ZstdStream extends Transform {
  private readonly z: ZstdDecompress;

  constructor() {
    super();
    this.z = new ZstdDecompress((chunk) => {
      this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.z.push(new Uint8Array(chunk));
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.z.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

/**
 * Throws unless a blob's bytes are the compression its media type declares: umoci decompresses by
 * media type, containerd and Slipway by the bytes, so they would read different layers.
 */
export function refuseMislabelled(declared: Compression, actual: Compression, where: string): void {
  if (declared === actual) return;
  const name = (c: Compression): string => (c === 'none' ? 'an uncompressed tar' : `${c} data`);
  throw new UnsafeArchiveError(`${where}: the media type says ${name(declared)}, the bytes are ${name(actual)}`, 'readers that trust the media type and readers that sniff the bytes would read different layers; the blob is refused');
}

/**
 * Decompresses a layer stream by sniffing its first bytes. Errors name the layer and say it is
 * truncated or corrupt instead of zlib's terse codes. With `declared` (the compression of the
 * descriptor's media type), a blob whose bytes are another is refused: umoci decompresses by media
 * type, containerd and Slipway by the bytes, so they would read different layers.
 */
export async function* decompress(source: AsyncIterable<Buffer | Uint8Array>, where: string, opts: { chunkSize?: number; declared?: Compression | undefined; sniffed?: (kind: Compression) => void } = {}): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  let first = await it.next();
  while (!first.done && first.value.length < 4) {
    const more = await it.next();
    if (more.done) break;
    first = { done: false, value: Buffer.concat([first.value, more.value]) };
  }
  if (first.done) return;
  const head = Buffer.from(first.value);
  const rest = (async function* () {
    yield head;
    while (true) {
      const n = await it.next();
      if (n.done) return;
      yield Buffer.isBuffer(n.value) ? n.value : Buffer.from(n.value);
    }
  })();
  const kind = detectCompression(head);
  opts.sniffed?.(kind);
  if (opts.declared !== undefined) refuseMislabelled(opts.declared, kind, where);
  if (kind === 'none') {
    yield* rest;
    return;
  }
  const inflater = kind === 'gzip' ? createGunzip({ chunkSize: opts.chunkSize ?? 128 * 1024 }) : new ZstdStream();
  // pipeline, not pipe: a failing source must fail the inflater too.
  // Two chunks in flight, not the default sixteen: with 1 MiB reads that is 16 MiB per layer.
  pipeline(Readable.from(rest, { highWaterMark: 2 }), inflater).catch(() => undefined);
  try {
    for await (const chunk of inflater) yield chunk as Buffer;
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    const e = err as NodeJS.ErrnoException;
    const detail = e.code === 'Z_BUF_ERROR' || /unexpected end/i.test(e.message) ? 'is truncated' : `is corrupt (${e.message})`;
    throw new IntegrityError(`${where}: ${kind} data ${detail}`, 'fetch or rebuild the layer; nothing was written');
  }
}

/** The gzip Slipway writes layers with: deterministic, and compressed on all cores. */
export function gzipStream(level = GZIP_LEVEL): Transform {
  return new ParallelGzip(level);
}
