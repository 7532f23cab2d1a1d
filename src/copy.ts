import { Transform, type TransformCallback } from 'node:stream';
import { SlipwayError } from './errors.js';
import type { Digest } from './oci/digest.js';
import { formatPlatform, hostPlatform, platformMatches, type Platform } from './oci/platform.js';
import type { Descriptor, ParsedManifest } from './oci/types.js';
import type { BlobOutcome, ImageDestination, ImageSource } from './transport/types.js';

export interface CopyEvents {
  blobStart?(desc: Descriptor): void;
  blobBytes?(desc: Descriptor, n: number): void;
  blobDone?(desc: Descriptor, outcome: BlobOutcome): void;
}

export interface CopyOptions {
  /** Copy only the image for this platform out of an index (default: all, or the host's when the destination holds one image). */
  platform?: Platform;
  /** Blobs in flight at once. */
  concurrency?: number;
  events?: CopyEvents;
  /**
   * What the caller already knows of the destination, to save a request per blob: 'present'
   * (a rebase writing back into the repository its layers came from) or 'absent' (a config it just made).
   */
  known?: Map<string, 'present' | 'absent'>;
}

export interface CopyResult {
  digest: Digest;
  mediaType: string;
  size: number;
  blobs: { digest: Digest; size: number; outcome: BlobOutcome }[];
}

interface DestinationTraits {
  acceptsIndex?: boolean;
  sequential?: boolean;
}

/** Runs `fn` over items with at most `limit` in flight; the first failure stops new work. */
export async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
}

function counter(desc: Descriptor, events: CopyEvents | undefined): Transform {
  return new Transform({
    transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
      events?.blobBytes?.(desc, chunk.length);
      cb(null, chunk);
    },
  });
}

/**
 * Copies the image a source names to a destination: blobs first (skipped when present,
 * mounted when the registry can, streamed otherwise), then manifests bottom-up, the
 * top one last. Manifest bytes are passed through untouched, so digests are preserved.
 */
export async function copyImage(src: ImageSource, dst: ImageDestination, opts: CopyOptions = {}): Promise<CopyResult> {
  const traits = dst as ImageDestination & DestinationTraits;
  const concurrency = traits.sequential ? 1 : (opts.concurrency ?? 4);
  const events = opts.events;
  const done = new Map<string, { digest: Digest; size: number; outcome: BlobOutcome }>();

  async function transfer(desc: Descriptor): Promise<void> {
    if (done.has(desc.digest)) return;
    done.set(desc.digest, { digest: desc.digest, size: desc.size, outcome: 'exists' });
    events?.blobStart?.(desc);
    let outcome: BlobOutcome = 'copied';
    const known = opts.known?.get(desc.digest);
    // A mount succeeds whether or not the blob is already there, so try it first when it can
    // work (same registry, another repository): one request instead of a HEAD and then a mount.
    if (known === 'present') outcome = 'exists';
    else if (known !== 'absent' && dst.mountBlob && (await dst.mountBlob(desc, src.origin?.(desc) ?? src))) outcome = 'mounted';
    else if (known !== 'absent' && (await dst.hasBlob(desc))) outcome = 'exists';
    else {
      const file = src.blobFile?.(desc);
      if (!(file && dst.putBlobFile && (await dst.putBlobFile(desc, file)))) {
        const data = await src.getBlob(desc);
        if (events?.blobBytes) {
          const counted = counter(desc, events);
          // Until the destination attaches its pipeline, an error must not go unhandled; the
          // pipeline still sees it (the stream is destroyed with it).
          counted.on('error', () => undefined);
          data.on('error', (err) => counted.destroy(err));
          await dst.putBlob(desc, data.pipe(counted));
        } else {
          await dst.putBlob(desc, data);
        }
      }
    }
    done.set(desc.digest, { digest: desc.digest, size: desc.size, outcome });
    events?.blobDone?.(desc, outcome);
  }

  async function copyManifest(m: ParsedManifest, top: boolean): Promise<void> {
    if (m.kind === 'index') {
      for (const child of m.index.manifests) {
        await copyManifest(await src.getManifest(child.digest), false);
      }
    } else {
      const blobs = [m.manifest.config, ...m.manifest.layers];
      await forEachLimited(blobs, concurrency, transfer);
    }
    await dst.putManifest(m, top);
  }

  let top = await src.getManifest();
  if (top.kind === 'index' && (opts.platform || traits.acceptsIndex === false)) {
    const wanted = opts.platform ?? hostPlatform();
    const child = top.index.manifests.find((d) => d.platform && platformMatches(wanted, d.platform));
    if (child === undefined) {
      const have = top.index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : '?')).join(', ');
      throw new SlipwayError(`${src.name}: no image for ${formatPlatform(wanted)}`, { hint: `platforms here: ${have}; choose one with --platform` });
    }
    top = await src.getManifest(child.digest);
  }
  await copyManifest(top, true);
  await dst.commit();
  return { digest: top.digest, mediaType: top.mediaType, size: top.bytes.length, blobs: [...done.values()] };
}
