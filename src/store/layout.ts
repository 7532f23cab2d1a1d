import { appendFileSync, createReadStream, createWriteStream, mkdirSync, readFileSync, statSync, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { IntegrityError, SlipwayError } from '../errors.js';
import { algorithmOf, hexOf, Hasher, parseDigest, verifyResult, type Algorithm, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { encodeJson, MAX_MANIFEST_BYTES, parseJson, parseManifest, type Descriptor, type ImageIndex, type ParsedManifest } from '../oci/types.js';
import { fsyncDir, writeFileAtomic } from './atomic.js';
import { acquireLock, processAlive } from './lock.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
const TMP_DIR = '.slipway-tmp';
const PIN_DIR = join(TMP_DIR, 'pins');
/** diff_ids of layers this store has read, by blob digest (see diffIdOf). */
const DIFF_ID_DIR = '.slipway-diffids';
/** Exists only while a process holds the layout's lock. */
const LOCK_FILE = '.slipway-lock';

export interface BlobWriteResult {
  digest: Digest;
  size: number;
}

/**
 * An OCI image layout directory (image-spec "image-layout"), readable by skopeo and
 * umoci as-is. Blobs appear only after their digest verifies; index.json changes
 * happen under a lock and land atomically; in-flight writers pin their blobs so a
 * concurrent gc cannot take them.
 */
export class OciLayout {
  private pinFile: string | undefined;

  private constructor(readonly root: string) {}

  static async open(root: string, opts: { create: boolean }): Promise<OciLayout> {
    const layout = new OciLayout(root);
    const marker = await readFile(join(root, 'oci-layout'), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (marker === undefined) {
      if (!opts.create) {
        throw new SlipwayError(`${root}: not an OCI image layout (no oci-layout file)`, {
          hint: 'give a directory written by slipway, skopeo or umoci, or copy an image into it first',
        });
      }
      await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
      await mkdir(join(root, PIN_DIR), { recursive: true });
      const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
      await writeFile(join(root, 'index.json'), encodeJson(index), { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      await writeFileAtomic(join(root, 'oci-layout'), encodeJson({ imageLayoutVersion: '1.0.0' }));
    } else {
      const doc = parseJson(Buffer.from(marker), `${root}/oci-layout`) as { imageLayoutVersion?: string };
      if (doc.imageLayoutVersion !== '1.0.0') {
        throw new SlipwayError(`${root}/oci-layout: unsupported imageLayoutVersion ${String(doc.imageLayoutVersion)}`);
      }
    }
    return layout;
  }

  blobPath(digest: Digest): string {
    return join(this.root, 'blobs', algorithmOf(digest), hexOf(digest));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return stat(this.blobPath(digest)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    return statSync(this.blobPath(digest), { throwIfNoEntry: false })?.size;
  }

  openBlob(digest: Digest): ReadStream {
    return createReadStream(this.blobPath(digest), { highWaterMark: 1024 * 1024 });
  }

  private missing(digest: Digest, err: NodeJS.ErrnoException): SlipwayError {
    if (err.code !== 'ENOENT') return new SlipwayError(`${this.root}: cannot read blob ${digest}: ${err.message}`);
    return new SlipwayError(`${this.root}: blob ${digest} is missing`, {
      hint: 'the layout is incomplete; copy the image into it again',
    });
  }

  /** Reads a small blob (manifest, config) after checking its size bound and digest. */
  async readSmallBlob(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<Buffer> {
    if (desc.size > MAX_MANIFEST_BYTES) {
      throw new SlipwayError(`${this.root}: blob ${desc.digest} is ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit for manifests and configs`);
    }
    const bytes = await readFile(this.blobPath(desc.digest)).catch((err: NodeJS.ErrnoException) => {
      throw this.missing(desc.digest, err);
    });
    const h = new Hasher(algorithmOf(desc.digest));
    h.update(bytes);
    const bad = verifyResult(h, desc.digest, desc.size, `${this.root}: blob ${desc.digest}`);
    if (bad) throw bad;
    return bytes;
  }

  async readManifest(desc: Descriptor): Promise<ParsedManifest> {
    const bytes = await this.readSmallBlob(desc);
    return parseManifest(bytes, desc.digest, desc.mediaType, `${this.root}: manifest ${desc.digest}`);
  }

  /**
   * The diff_id (uncompressed digest) of a layer blob this store has read before: a fact of the
   * blob's bytes, kept so that a copy finding the blob already here need not read it again.
   */
  diffIdOf(digest: Digest): Digest | undefined {
    try {
      const text = readFileSync(join(this.root, DIFF_ID_DIR, hexOf(digest)), 'utf8');
      return /^sha256:[0-9a-f]{64}$/.test(text) ? (text as Digest) : undefined;
    } catch {
      return undefined;
    }
  }

  async rememberDiffId(digest: Digest, diffId: Digest): Promise<void> {
    if (this.diffIdOf(digest) === diffId) return;
    await mkdir(join(this.root, DIFF_ID_DIR), { recursive: true });
    await writeFileAtomic(join(this.root, DIFF_ID_DIR, hexOf(digest)), diffId);
  }

  /** A scratch directory on the layout's filesystem, so finished temp files can be renamed in. */
  async scratchDir(): Promise<string> {
    const dir = join(this.root, TMP_DIR);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /**
   * Streams a blob in: hashes while writing a temp file, fsyncs, verifies against
   * `expected` (when known), then renames it into place. A failure leaves nothing.
   * `through` sees the bytes on the way (a layer validator that can fail the write).
   */
  async writeBlob(
    source: Readable | AsyncIterable<Buffer>,
    expected?: { digest: Digest; size?: number },
    opts: { algorithm?: Algorithm; through?: Transform } = {},
  ): Promise<BlobWriteResult> {
    const tmp = join(await this.scratchDir(), `blob-${process.pid}-${randomBytes(6).toString('hex')}`);
    const hasher = new Hasher(expected ? algorithmOf(expected.digest) : (opts.algorithm ?? 'sha256'));
    const limit = expected?.size;
    const what = expected ? `blob ${expected.digest}` : 'blob';
    const tap = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        hasher.update(chunk);
        if (limit !== undefined && hasher.size > limit) {
          cb(new IntegrityError(`${what}: more than the ${limit} bytes its descriptor declares`));
          return;
        }
        cb(null, chunk);
      },
    });
    const fh = await open(tmp, 'wx', 0o644);
    try {
      const out = createWriteStream('', { fd: fh.fd, autoClose: false, highWaterMark: 1024 * 1024 });
      // One pipeline owns every stream from the first byte, so any error lands here, never unhandled.
      await (opts.through ? pipeline(source, opts.through, tap, out) : pipeline(source, tap, out));
      await fh.sync();
      await fh.close();
      const result = { digest: expected?.digest ?? hasher.digest(), size: hasher.size };
      if (expected) {
        const bad = verifyResult(hasher, expected.digest, expected.size, `${this.root}: ${what}`);
        if (bad) throw bad;
      }
      await this.adoptFile(tmp, result.digest);
      return result;
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Moves an already verified file (on this filesystem) into place as a blob. */
  async adoptFile(path: string, digest: Digest): Promise<void> {
    const dest = this.blobPath(digest);
    await mkdir(join(this.root, 'blobs', algorithmOf(digest)), { recursive: true });
    await this.pin(digest);
    await rename(path, dest);
    await fsyncDir(join(this.root, 'blobs', algorithmOf(digest)));
  }

  /** Writes a manifest or config held in memory; true when it was not there before. */
  async writeSmallBlob(bytes: Buffer, digest: Digest): Promise<boolean> {
    if ((await this.pinIfPresent(digest)) !== undefined) return false;
    await this.writeBlob(Readable.from([bytes]), { digest, size: bytes.length });
    return true;
  }

  /**
   * Pins a blob and says whether it is present (its size), as one step under the lock:
   * a blob found here cannot be collected before this process references it.
   */
  async pinIfPresent(digest: Digest): Promise<number | undefined> {
    return this.withLock(async () => {
      await this.pin(digest);
      return this.blobSize(digest);
    });
  }

  /** Records that this process is about to reference `digest`, so gc keeps it. */
  async pin(digest: Digest): Promise<void> {
    // Named before any await, so concurrent first pins share one file.
    this.pinFile ??= join(this.root, PIN_DIR, `${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(join(this.root, PIN_DIR), { recursive: true });
    appendFileSync(this.pinFile, `${digest}\n`);
  }

  /** Drops this process's pins once everything it wrote is referenced from index.json. */
  async unpin(): Promise<void> {
    if (this.pinFile !== undefined) await rm(this.pinFile, { force: true });
    this.pinFile = undefined;
  }

  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const release = await acquireLock(join(this.root, LOCK_FILE), this.root);
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  async readIndex(): Promise<ImageIndex> {
    const bytes = await readFile(join(this.root, 'index.json')).catch((err: NodeJS.ErrnoException) => {
      throw new SlipwayError(`${this.root}/index.json: cannot read (${err.code ?? err.message})`, { hint: 'is this an OCI image layout?' });
    });
    const parsed = parseManifest(bytes, parseDigest(`sha256:${'0'.repeat(64)}`), MediaType.ociIndex, `${this.root}/index.json`);
    if (parsed.kind !== 'index') throw new SlipwayError(`${this.root}/index.json: not an image index`);
    return parsed.index;
  }

  /** Read-modify-write of index.json under the lock, written atomically. */
  async updateIndex(fn: (index: ImageIndex) => ImageIndex): Promise<void> {
    await this.withLock(async () => {
      const next = fn(await this.readIndex());
      await writeFileAtomic(join(this.root, 'index.json'), encodeJson(next));
    });
  }

  /** Points `ref` at `desc` (replacing what it named); an undefined ref adds an untagged entry. */
  async tag(desc: Descriptor, ref: string | undefined): Promise<void> {
    await this.updateIndex((index) => {
      const keep = index.manifests.filter((m) =>
        ref === undefined ? !(m.digest === desc.digest && m.annotations?.[REF_NAME] === undefined) : m.annotations?.[REF_NAME] !== ref,
      );
      const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
      if (desc.platform) entry.platform = desc.platform;
      if (ref !== undefined) entry.annotations = { [REF_NAME]: ref };
      return { ...index, manifests: [...keep, entry] };
    });
    await this.unpin();
  }

  async untag(ref: string): Promise<boolean> {
    let found = false;
    await this.updateIndex((index) => {
      const manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== ref);
      found = manifests.length !== index.manifests.length;
      return { ...index, manifests };
    });
    return found;
  }

  /** The index.json entry a ref names: by tag, by digest, or the only entry when ref is empty. */
  async resolve(ref: string | undefined): Promise<Descriptor> {
    const index = await this.readIndex();
    if (ref === undefined || ref === '') {
      if (index.manifests.length === 1) return index.manifests[0]!;
      throw new SlipwayError(`${this.root}: holds ${index.manifests.length} images; name one`, {
        hint: `tags here: ${listTags(index).join(', ') || '(none)'}`,
        exitCode: 1,
      });
    }
    const hit = ref.includes(':') && /^sha(256|512):/.test(ref)
      ? index.manifests.find((m) => m.digest === ref)
      : index.manifests.find((m) => m.annotations?.[REF_NAME] === ref);
    if (hit === undefined) {
      throw new SlipwayError(`${this.root}: no image "${ref}"`, { hint: `tags here: ${listTags(index).join(', ') || '(none)'}` });
    }
    return hit;
  }

  /** Every digest reachable from index.json: manifests, indexes, configs, layers. */
  async reachable(): Promise<Set<string>> {
    const seen = new Set<string>();
    const visit = async (desc: Descriptor): Promise<void> => {
      if (seen.has(desc.digest)) return;
      seen.add(desc.digest);
      if (!(await this.hasBlob(desc.digest))) return;
      if (desc.size > MAX_MANIFEST_BYTES) return;
      let parsed: ParsedManifest;
      try {
        parsed = await this.readManifest(desc);
      } catch {
        return; // not a manifest (or unreadable): nothing further hangs off it
      }
      if (parsed.kind === 'index') for (const m of parsed.index.manifests) await visit(m);
      else {
        seen.add(parsed.manifest.config.digest);
        for (const l of parsed.manifest.layers) seen.add(l.digest);
        if (parsed.manifest.subject) seen.add(parsed.manifest.subject.digest);
      }
    };
    for (const m of (await this.readIndex()).manifests) {
      if (/manifest|index|list/.test(m.mediaType)) await visit(m);
      else seen.add(m.digest);
    }
    return seen;
  }

  /** Removes blobs nothing references, and temp files of dead processes. */
  async gc(opts: { dryRun?: boolean } = {}): Promise<{ removed: Digest[]; bytes: number }> {
    return this.withLock(async () => {
      // List first, then read what is kept: a blob renamed in after the listing is not
      // considered, and one renamed in before it was pinned before its rename.
      const present: string[] = [];
      for (const alg of await readdir(join(this.root, 'blobs')).catch(() => [] as string[])) {
        for (const hex of await readdir(join(this.root, 'blobs', alg))) present.push(`${alg}:${hex}`);
      }
      const keep = await this.reachable();
      for (const d of await this.livePins()) keep.add(d);
      const removed: Digest[] = [];
      let bytes = 0;
      for (const digest of present as Digest[]) {
        if (keep.has(digest)) continue;
        const path = this.blobPath(digest);
        bytes += (await stat(path)).size;
        removed.push(digest);
        if (!opts.dryRun) await rm(path, { force: true });
      }
      if (!opts.dryRun) await this.removeDeadTemps();
      return { removed, bytes };
    });
  }

  /** Removes blobs a failed operation added, unless something else references or pins them meanwhile. */
  async discard(digests: Iterable<Digest>): Promise<void> {
    const list = [...digests];
    if (list.length === 0) return;
    await this.unpin();
    await this.withLock(async () => {
      const keep = await this.reachable();
      for (const d of await this.livePins()) keep.add(d);
      for (const d of list) if (!keep.has(d)) await rm(this.blobPath(d), { force: true });
    });
  }

  private async livePins(): Promise<Set<string>> {
    const out = new Set<string>();
    const dir = join(this.root, PIN_DIR);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const pid = Number(name.split('-')[0]);
      if (!processAlive(pid)) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      for (const line of (await readFile(join(dir, name), 'utf8').catch(() => '')).split('\n')) if (line) out.add(line);
    }
    return out;
  }

  private async removeDeadTemps(): Promise<void> {
    const dir = join(this.root, TMP_DIR);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const m = /^(?:blob|dir)-(\d+)-/.exec(name);
      if (m && !processAlive(Number(m[1]))) await rm(join(dir, name), { recursive: true, force: true });
    }
  }
}


export function listTags(index: ImageIndex): string[] {
  return index.manifests.map((m) => m.annotations?.[REF_NAME]).filter((t): t is string => t !== undefined);
}
