import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, posix } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SlipwayError } from '../errors.js';
import { algorithmOf, digestOf, Hasher, hexOf, verifyResult, type Digest } from '../oci/digest.js';
import { detectCompression } from '../oci/compression.js';
import { MediaType } from '../oci/mediatypes.js';
import { BLOCK, decodeBlock, decodePax, encodeHeader, isZeroBlock, padding } from '../oci/tar/header.js';
import { normalizeEntryPath } from '../oci/tar/reader.js';
import { sourceDateEpoch } from '../oci/tar/scan.js';
import {
  encodeJson,
  MAX_MANIFEST_BYTES,
  parseImageConfig,
  parseJson,
  parseManifest,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type ParsedManifest,
} from '../oci/types.js';
import { fsyncDir, tempName } from '../store/atomic.js';
import { REF_NAME } from '../store/layout.js';
import { formatDockerReference, parseDockerReference, type DockerReference } from './reference.js';
import type { ImageDestination, ImageSource } from './types.js';

interface Member {
  offset: number;
  size: number;
  type: string;
  link?: string;
}

/** Maps member names to byte ranges with one pass over the headers (bodies are seeked over). */
async function indexTar(fh: FileHandle, file: string): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  const block = Buffer.alloc(BLOCK);
  let pos = 0;
  let pax: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  while (true) {
    const { bytesRead } = await fh.read(block, 0, BLOCK, pos);
    if (bytesRead === 0 || isZeroBlock(block)) break;
    if (bytesRead < BLOCK) throw new SlipwayError(`docker-archive:${file}: truncated at byte ${pos}`);
    const h = decodeBlock(block);
    if (h === null) throw new SlipwayError(`docker-archive:${file}: not a tar archive (bad header at byte ${pos})`, { hint: 'give a file written by docker save, skopeo or slipway' });
    if (h.disagreement) throw new SlipwayError(`docker-archive:${file}: the header at byte ${pos} has ${h.disagreement.what}`, { hint: h.disagreement.why });
    const body = pos + BLOCK;
    pos = body + h.size + padding(h.size);
    if (h.flag === 'x' || h.flag === 'L') {
      if (h.size > 1024 * 1024) throw new SlipwayError(`docker-archive:${file}: oversized extended header`);
      const buf = Buffer.alloc(h.size);
      await fh.read(buf, 0, h.size, body);
      if (h.flag === 'x') pax = decodePax(buf) ?? undefined;
      else longName = buf.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    if (h.flag === 'g') continue;
    const name = normalizeEntryPath(pax?.get('path')?.toString() ?? longName ?? h.name, `docker-archive:${file}`);
    const link = pax?.get('linkpath')?.toString() ?? h.linkname;
    const size = pax?.has('size') ? Number(pax.get('size')!.toString()) : h.size;
    if (pax?.has('size')) pos = body + size + padding(size);
    members.set(name, { offset: body, size, type: h.flag, ...(link ? { link } : {}) });
    pax = undefined;
    longName = undefined;
  }
  return members;
}

interface LegacyEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function sameRef(a: string, b: DockerReference): boolean {
  try {
    return formatDockerReference(parseDockerReference(a)) === formatDockerReference(b);
  } catch {
    return false;
  }
}

/**
 * Reads `docker-archive:FILE[:NAME:TAG]`: Docker 25+ dual-format and pure OCI tars
 * through their index.json (exact manifests, digests kept), legacy `docker save`
 * tars through manifest.json. Blobs are byte ranges of the file: nothing is unpacked.
 */
export class DockerArchiveSource implements ImageSource {
  private readonly synthetic = new Map<string, Buffer>();
  private readonly blobMembers = new Map<string, string>();
  private top: ParsedManifest | undefined;

  private constructor(
    readonly name: string,
    private readonly file: string,
    private readonly fh: FileHandle,
    private readonly members: Map<string, Member>,
  ) {}

  static async open(name: string, file: string, ref: DockerReference | undefined): Promise<DockerArchiveSource> {
    const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      throw new SlipwayError(`${name}: cannot open ${file} (${err.code ?? err.message})`);
    });
    try {
      const head = Buffer.alloc(4);
      await fh.read(head, 0, 4, 0);
      if (detectCompression(head) !== 'none') {
        throw new SlipwayError(`${name}: the archive is compressed`, { hint: `decompress it first (e.g. gunzip -k ${file})` });
      }
      const src = new DockerArchiveSource(name, file, fh, await indexTar(fh, file));
      await src.load(ref);
      return src;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  private async member(path: string, depth = 0): Promise<Member> {
    const m = this.members.get(path);
    if (m === undefined) throw new SlipwayError(`${this.name}: the archive has no "${path}"`, { hint: 'the archive is incomplete or not a docker/OCI archive' });
    if ((m.type === '2' || m.type === '1') && m.link && depth < 8) {
      // A symlink is relative to its own directory; resolve it lexically and stay inside the archive.
      const resolved = m.type === '2' ? posix.normalize(posix.join(posix.dirname(path), m.link)) : m.link;
      const target = normalizeEntryPath(resolved, `${this.name}: link "${path}"`);
      return this.member(target, depth + 1);
    }
    return m;
  }

  private async readMember(path: string): Promise<Buffer> {
    const m = await this.member(path);
    if (m.size > MAX_MANIFEST_BYTES) throw new SlipwayError(`${this.name}: "${path}" is too large for a metadata file`);
    const buf = Buffer.alloc(m.size);
    await this.fh.read(buf, 0, m.size, m.offset);
    return buf;
  }

  private async load(ref: DockerReference | undefined): Promise<void> {
    for (const name of this.members.keys()) {
      const m = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(name);
      if (m) this.blobMembers.set(`${m[1]}:${m[2]}`, name);
    }
    if (this.members.has('index.json')) {
      const indexBytes = await this.readMember('index.json');
      const parsed = parseManifest(indexBytes, digestOf(indexBytes), MediaType.ociIndex, `${this.name}: index.json`);
      if (parsed.kind !== 'index') throw new SlipwayError(`${this.name}: index.json is not an index`);
      const entries = parsed.index.manifests;
      const pick = ref
        ? entries.find((e) => {
            const names = [e.annotations?.['io.containerd.image.name'], e.annotations?.[REF_NAME]].filter((x): x is string => !!x);
            return names.some((n) => sameRef(n, ref) || n === ref.tag);
          })
        : entries.length === 1
          ? entries[0]
          : undefined;
      if (pick === undefined) {
        throw new SlipwayError(`${this.name}: ${ref ? `no image ${formatDockerReference(ref)}` : `holds ${entries.length} images; name one`}`, {
          hint: `write docker-archive:${this.file}:NAME:TAG`,
        });
      }
      this.top = await this.getManifest(pick.digest);
      return;
    }
    const legacy = parseJson(await this.readMember('manifest.json'), `${this.name}: manifest.json`) as LegacyEntry[];
    if (!Array.isArray(legacy) || legacy.length === 0) throw new SlipwayError(`${this.name}: manifest.json lists no images`);
    const entry = ref ? legacy.find((e) => (e.RepoTags ?? []).some((t) => sameRef(t, ref))) : legacy.length === 1 ? legacy[0] : undefined;
    if (entry === undefined) {
      throw new SlipwayError(`${this.name}: ${ref ? `no image ${formatDockerReference(ref)}` : `holds ${legacy.length} images; name one`}`, {
        hint: `images here: ${legacy.flatMap((e) => e.RepoTags ?? []).join(', ') || '(untagged)'}`,
      });
    }
    this.top = await this.synthesize(entry);
  }

  /** Builds an OCI manifest for a legacy entry; uncompressed layers are addressed by their diff_ids. */
  private async synthesize(entry: LegacyEntry): Promise<ParsedManifest> {
    const configBytes = await this.readMember(entry.Config);
    const config = parseImageConfig(configBytes, `${this.name}: ${entry.Config}`);
    const configDigest = digestOf(configBytes);
    this.synthetic.set(configDigest, configBytes);
    if (config.rootfs.diff_ids.length !== entry.Layers.length) {
      throw new SlipwayError(`${this.name}: ${entry.Layers.length} layers but the config lists ${config.rootfs.diff_ids.length} diff_ids`);
    }
    const layers: Descriptor[] = [];
    for (const [i, path] of entry.Layers.entries()) {
      const m = await this.member(path);
      const head = Buffer.alloc(4);
      await this.fh.read(head, 0, 4, m.offset);
      const kind = detectCompression(head);
      let digest: Digest;
      if (kind === 'none') digest = config.rootfs.diff_ids[i]!;
      else {
        const h = new Hasher();
        for await (const c of createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1 })) h.update(c as Buffer);
        digest = h.digest();
      }
      this.blobMembers.set(digest, path);
      layers.push({ mediaType: kind === 'gzip' ? MediaType.ociLayerGzip : kind === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer, digest, size: m.size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
      layers,
    };
    const bytes = encodeJson(manifest);
    const digest = digestOf(bytes);
    this.synthetic.set(digest, bytes);
    return { kind: 'manifest', mediaType: MediaType.ociManifest, bytes, digest, manifest };
  }

  async getManifest(digest?: Digest): Promise<ParsedManifest> {
    if (digest === undefined) return this.top!;
    const synthetic = this.synthetic.get(digest);
    const bytes = synthetic ?? (await this.readBlobMember(digest));
    return parseManifest(bytes, digest, undefined, `${this.name}: manifest ${digest}`);
  }

  private async readBlobMember(digest: Digest): Promise<Buffer> {
    const path = this.blobMembers.get(digest);
    if (path === undefined) throw new SlipwayError(`${this.name}: blob ${digest} is not in the archive`);
    const bytes = await this.readMember(path);
    const h = new Hasher(algorithmOf(digest));
    h.update(bytes);
    const bad = verifyResult(h, digest, undefined, `${this.name}: ${path}`);
    if (bad) throw bad;
    return bytes;
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    const synthetic = this.synthetic.get(desc.digest);
    if (synthetic) return Readable.from([synthetic]);
    const path = this.blobMembers.get(desc.digest);
    if (path === undefined) throw new SlipwayError(`${this.name}: blob ${desc.digest} is not in the archive`, { hint: 'the archive is incomplete' });
    const m = await this.member(path);
    if (m.size === 0) return Readable.from([]);
    return createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1024 * 1024 });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Hashes a tar member's body as it is written, so a bad blob never reaches the archive's index. */
class MemberHasher extends Transform {
  readonly hasher: Hasher;
  constructor(digest: Digest) {
    super();
    this.hasher = new Hasher(algorithmOf(digest));
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    cb(null, chunk);
  }
}

/**
 * Writes `docker-archive:FILE[:NAME:TAG]` in the dual format Docker 25+ writes: an OCI
 * layout (oci-layout, index.json, blobs/) plus the classic manifest.json, so both
 * `docker load` and OCI tools read it. The file appears only on commit.
 */
export class DockerArchiveDestination implements ImageDestination {
  readonly acceptsIndex = false;
  readonly sequential = true;
  private readonly written = new Map<string, number>();
  private top: ParsedManifest | undefined;
  private readonly mtime = sourceDateEpoch();

  private constructor(
    readonly name: string,
    private readonly file: string,
    private readonly tmp: string,
    private readonly out: WriteStream,
    private readonly ref: DockerReference | undefined,
  ) {}

  static async open(name: string, file: string, ref: DockerReference | undefined): Promise<DockerArchiveDestination> {
    const tmp = tempName(dirname(file), basename(file));
    const out = createWriteStream(tmp, { flags: 'wx', highWaterMark: 1024 * 1024 });
    await new Promise<void>((resolve, reject) => out.once('open', () => resolve()).once('error', reject)).catch((err: NodeJS.ErrnoException) => {
      throw new SlipwayError(`${name}: cannot create ${file} (${err.code ?? err.message})`);
    });
    const dest = new DockerArchiveDestination(name, file, tmp, out, ref);
    for (const dir of ['blobs', 'blobs/sha256']) await dest.write(encodeHeader({ path: dir, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: dest.mtime }));
    return dest;
  }

  private write(buf: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.out.write(buf)) resolve();
      else this.out.once('drain', resolve).once('error', reject);
    });
  }

  private async addFile(path: string, data: Buffer): Promise<void> {
    await this.write(encodeHeader({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: this.mtime }));
    await this.write(data);
    await this.write(Buffer.alloc(padding(data.length)));
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return this.written.has(desc.digest);
  }

  async putBlob(desc: Descriptor, data: Readable): Promise<void> {
    await this.write(encodeHeader({ path: `blobs/${algorithmOf(desc.digest)}/${hexOf(desc.digest)}`, type: 'file', mode: 0o644, uid: 0, gid: 0, size: desc.size, mtime: this.mtime }));
    const tap = new MemberHasher(desc.digest);
    await pipeline(data, tap, this.out, { end: false });
    const bad = verifyResult(tap.hasher, desc.digest, desc.size, `${this.name}: blob ${desc.digest}`);
    if (bad) throw bad;
    await this.write(Buffer.alloc(padding(desc.size)));
    this.written.set(desc.digest, desc.size);
  }

  async putManifest(m: ParsedManifest, top: boolean): Promise<void> {
    if (m.kind === 'index') throw new SlipwayError(`${this.name}: a docker archive holds one image, not an index`, { hint: 'pick one with --platform' });
    if (!this.written.has(m.digest)) {
      await this.addFile(`blobs/${algorithmOf(m.digest)}/${hexOf(m.digest)}`, m.bytes);
      this.written.set(m.digest, m.bytes.length);
    }
    if (top) this.top = m;
  }

  async commit(): Promise<void> {
    const top = this.top;
    if (top === undefined || top.kind !== 'manifest') throw new Error('commit before the manifest was written');
    const repoTag = this.ref ? shortName(this.ref) : undefined;
    const annotations: Record<string, string> = {};
    if (this.ref) {
      annotations['io.containerd.image.name'] = formatDockerReference(this.ref);
      annotations[REF_NAME] = this.ref.tag ?? 'latest';
    }
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.bytes.length, ...(this.ref ? { annotations } : {}) }],
    };
    const blob = (d: Digest): string => `blobs/${algorithmOf(d)}/${hexOf(d)}`;
    const legacy = [{ Config: blob(top.manifest.config.digest), RepoTags: repoTag ? [repoTag] : null, Layers: top.manifest.layers.map((l) => blob(l.digest)) }];
    await this.addFile('index.json', encodeJson(index));
    await this.addFile('manifest.json', encodeJson(legacy));
    await this.addFile('oci-layout', encodeJson({ imageLayoutVersion: '1.0.0' }));
    await this.write(Buffer.alloc(BLOCK * 2));
    await new Promise<void>((resolve, reject) => this.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const fh = await open(this.tmp, 'r+');
    await fh.sync();
    await fh.close();
    await rename(this.tmp, this.file);
    await fsyncDir(dirname(this.file));
  }

  async close(): Promise<void> {
    if (!this.out.closed) this.out.destroy();
    await rm(this.tmp, { force: true });
  }
}

/** The RepoTags form Docker writes: Hub names short (busybox:latest), others in full. */
function shortName(ref: DockerReference): string {
  const tag = ref.tag ?? 'latest';
  if (ref.registry === 'docker.io') return `${ref.repository.replace(/^library\//, '')}:${tag}`;
  return `${ref.registry}/${ref.repository}:${tag}`;
}
