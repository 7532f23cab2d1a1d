/**
 * What the evaluator needs to know about one layer, read in one streaming pass (no unpack):
 * every path, the entries any file rule could care about, whiteouts, the uncompressed size, and
 * the few small files that decide verdicts (/etc/passwd, /etc/group, /app/app.json). Facts depend
 * only on the layer's bytes, so they are cached by layer digest: re-checking a rebased image reads
 * only the layers it has not seen.
 */
import { createReadStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { Hasher, hexOf, VerifyingStream, type Digest } from '../oci/digest.js';
import { decompress } from '../oci/compression.js';
import type { Compression } from '../oci/mediatypes.js';
import type { EntryType } from '../oci/tar/header.js';
import { limitsFromEnv, readTar } from '../oci/tar/reader.js';
import { whiteoutOf } from '../oci/tar/whiteout.js';
import type { Descriptor } from '../oci/types.js';
import { writeFileAtomic } from '../store/atomic.js';
import { streamed } from '../memory.js';
import type { ImageSource } from '../transport/types.js';

/** Bump when the facts' shape or meaning changes: old cache entries are then ignored. */
const FACTS_VERSION = 3;
/** Small files whose content rules read. */
export const CAPTURED = ['etc/passwd', 'etc/group', 'app/app.json'] as const;
const MAX_CAPTURE = 1024 * 1024;
/**
 * Peak memory, not speed, is what a scan must watch (it is ahead of `gzip -dc | tar -t` anyway):
 * chunks of 256 KiB rather than a copy's 1 MiB, with a scavenge every few MB (src/memory.ts),
 * keep a 1 GiB check under 100 MB where 1 MiB chunks peak near 120 MB.
 */
const READ_CHUNK = 256 * 1024;
const INFLATE_CHUNK = 128 * 1024;

export interface FileFact {
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Carries a security.capability xattr. */
  cap?: true;
}

export interface LayerFacts {
  version: number;
  digest: string;
  /** Digest of the uncompressed tar: what the config's rootfs.diff_ids must say. */
  diffId: string;
  /** What the bytes are (sniffed): a descriptor's media type must say the same. */
  compression: Compression;
  uncompressedSize: number;
  entries: number;
  /** Every path the layer puts in place (whiteouts excluded); directories end with '/'. */
  paths: string[];
  /** Entries that are special (setuid/setgid, caps, devices, world-writable) or not owned by root. */
  notable: FileFact[];
  /** Paths this layer deletes from lower layers, and directories it makes opaque. */
  whiteouts: string[];
  opaque: string[];
  captured: Partial<Record<(typeof CAPTURED)[number], string>>;
}

function isNotable(f: FileFact): boolean {
  return (f.mode & 0o6000) !== 0 || f.cap === true || f.type === 'char' || f.type === 'block' || f.type === 'fifo'
    || (f.type !== 'symlink' && (f.mode & 0o002) !== 0) || f.uid !== 0 || f.gid !== 0;
}

/** Passes inflated bytes on, hashed (the diff_id) and counted for the scavenger (they are most of the garbage). */
async function* counted(source: AsyncIterable<Buffer>, diff: Hasher): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    diff.update(chunk);
    streamed(chunk.length);
    yield chunk;
  }
}

/** Parses an uncompressed-or-compressed layer stream into facts (the digest is the caller's to prove). */
async function readFacts(out: AsyncIterable<Buffer>, digest: string, where: string): Promise<LayerFacts> {
  const facts: LayerFacts = { version: FACTS_VERSION, digest, diffId: '', compression: 'none', uncompressedSize: 0, entries: 0, paths: [], notable: [], whiteouts: [], opaque: [], captured: {} };
  const diff = new Hasher();
  for await (const entry of readTar(counted(decompress(out, where, { chunkSize: INFLATE_CHUNK, sniffed: (c) => (facts.compression = c) }), diff), where, limitsFromEnv())) {
    const h = entry.header;
    facts.entries++;
    facts.uncompressedSize += h.size;
    const wo = whiteoutOf(h.path, where);
    if (wo !== undefined) {
      if (wo.kind === 'opaque') facts.opaque.push(wo.dir);
      else facts.whiteouts.push(wo.victim);
      continue;
    }
    facts.paths.push(h.type === 'dir' ? `${h.path}/` : h.path);
    const f: FileFact = { path: h.path, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid };
    if (h.xattrs?.['security.capability']) f.cap = true;
    if (isNotable(f)) facts.notable.push(f);
    if (h.type === 'file' && h.size <= MAX_CAPTURE && (CAPTURED as readonly string[]).includes(h.path)) {
      const chunks: Buffer[] = [];
      for await (const c of entry.body) chunks.push(c);
      facts.captured[h.path as (typeof CAPTURED)[number]] = Buffer.concat(chunks).toString('utf8');
    }
  }
  facts.diffId = diff.digest();
  return facts;
}

/** Reads one layer blob as a stream, verified against its digest, into facts. */
export async function scanLayer(src: ImageSource, desc: Descriptor, where: string): Promise<LayerFacts> {
  const file = src.blobFile?.(desc);
  const blob = file ? createReadStream(file, { highWaterMark: READ_CHUNK }) : await src.getBlob(desc);
  const verify = new VerifyingStream(desc.digest as Digest, desc.size, where);
  const out = new PassThrough({ highWaterMark: 256 * 1024 });
  const flowing = pipeline(blob, verify, out);
  const reading = readFacts(out, desc.digest, where);
  // Both must finish: the reader judges the content, the pipeline proves it is the digest's.
  const [piped, read] = await Promise.allSettled([flowing, reading]);
  if (read.status === 'rejected') {
    out.destroy();
    throw read.reason;
  }
  if (piped.status === 'rejected') throw piped.reason;
  return read.value;
}

/**
 * Facts of a blob seen passing by (the gate watching an upload), before its digest is known: the
 * bytes are hashed as they go, and `finish` gives the facts only if they are the digest's.
 */
export function watchBlob(where: string): { input: PassThrough; finish: (digest: string) => Promise<LayerFacts | undefined> } {
  const input = new PassThrough({ highWaterMark: 256 * 1024 });
  const hasher = new Hasher();
  const hashed = new PassThrough({ highWaterMark: 256 * 1024 });
  hashed.on('error', () => undefined); // a reader that gave up destroys it; the upload goes on
  input.on('data', (c: Buffer) => {
    hasher.update(c);
    if (hashed.destroyed) return;
    if (!hashed.write(c)) {
      input.pause();
      hashed.once('drain', () => input.resume());
    }
  });
  input.on('end', () => hashed.end());
  // Not a layer (a config, an artifact), or not ours to judge: no facts, and nothing fails.
  const reading = readFacts(hashed, '', where).catch(() => {
    hashed.destroy();
    input.resume();
    return undefined;
  });
  return {
    input,
    finish: async (digest) => {
      const facts = await reading;
      return facts && hasher.digest() === digest ? { ...facts, digest } : undefined;
    },
  };
}

/** Layer facts cached by digest under $SLIPWAY_HOME/cache/layer-facts. */
export class FactsCache {
  private readonly dir: string;
  hits = 0;
  misses = 0;

  constructor(home: string) {
    this.dir = join(home, 'cache', 'layer-facts');
  }

  get(digest: string): LayerFacts | undefined {
    try {
      const facts = JSON.parse(readFileSync(join(this.dir, `${hexOf(digest as Digest)}.json`), 'utf8')) as LayerFacts;
      if (facts.version !== FACTS_VERSION || facts.digest !== digest) return undefined;
      this.hits++;
      return facts;
    } catch {
      return undefined;
    }
  }

  async put(facts: LayerFacts): Promise<void> {
    this.misses++;
    mkdirSync(this.dir, { recursive: true });
    await writeFileAtomic(join(this.dir, `${hexOf(facts.digest as Digest)}.json`), JSON.stringify(facts));
  }
}
