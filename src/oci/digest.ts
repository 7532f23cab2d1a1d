import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError, SlipwayError } from '../errors.js';

export type Algorithm = 'sha256' | 'sha512';

/** A validated `algorithm:hex` string. Only parseDigest and Hasher make one. */
export type Digest = string & { readonly __digest: unique symbol };

const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };

export function isDigest(s: string): s is Digest {
  const m = /^(sha256|sha512):([a-f0-9]+)$/.exec(s);
  return m !== null && m[2]!.length === HEX_LENGTH[m[1] as Algorithm];
}

export function parseDigest(s: unknown, where = 'digest'): Digest {
  if (typeof s !== 'string' || !isDigest(s)) {
    throw new SlipwayError(`${where}: "${String(s)}" is not a valid digest`, {
      hint: 'expected sha256:<64 hex> or sha512:<128 hex>',
    });
  }
  return s;
}

export function algorithmOf(d: Digest): Algorithm {
  return d.slice(0, d.indexOf(':')) as Algorithm;
}

export function hexOf(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function shortDigest(d: Digest): string {
  return `${algorithmOf(d)}:${hexOf(d).slice(0, 12)}`;
}

/** Incremental hashing that also counts bytes. */
export class Hasher {
  private readonly hash: Hash;
  size = 0;

  constructor(readonly algorithm: Algorithm = 'sha256') {
    this.hash = createHash(algorithm);
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }

  digest(): Digest {
    return `${this.algorithm}:${this.hash.digest('hex')}` as Digest;
  }
}

export function digestOf(bytes: Uint8Array | string, algorithm: Algorithm = 'sha256'): Digest {
  const h = new Hasher(algorithm);
  h.update(typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
  return h.digest();
}

/**
 * A pass-through stream that hashes what flows and, at the end, fails the stream
 * if the bytes are not the expected digest and size. Nothing downstream should
 * trust the data until the stream finished without error.
 */
export class VerifyingStream extends Transform {
  private readonly hasher: Hasher;

  constructor(
    private readonly expected: Digest,
    private readonly expectedSize: number | undefined,
    private readonly what: string,
  ) {
    super();
    this.hasher = new Hasher(algorithmOf(expected));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    if (this.expectedSize !== undefined && this.hasher.size > this.expectedSize) {
      cb(new IntegrityError(`${this.what}: more than the ${this.expectedSize} bytes its descriptor declares`));
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    cb(verifyResult(this.hasher, this.expected, this.expectedSize, this.what));
  }
}

/** null when the hasher saw exactly the expected content, else the error to report. */
export function verifyResult(
  hasher: Hasher,
  expected: Digest,
  expectedSize: number | undefined,
  what: string,
): IntegrityError | null {
  if (expectedSize !== undefined && hasher.size !== expectedSize) {
    return new IntegrityError(
      `${what}: got ${hasher.size} bytes, its descriptor declares ${expectedSize}`,
      'the source is truncated or corrupt; fetch it again or rebuild it',
    );
  }
  const actual = hasher.digest();
  if (actual !== expected) {
    return new IntegrityError(
      `${what}: content digest is ${actual}, expected ${expected}`,
      'the source is corrupt or was tampered with; nothing was stored',
    );
  }
  return null;
}
