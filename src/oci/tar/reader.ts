import { UnsafeArchiveError } from '../../errors.js';
import { BLOCK, decodeBlock, decodePax, isZeroBlock, padding, TYPE_BY_FLAG, type TarHeader } from './header.js';

export interface TarLimits {
  /** Most entries one archive may hold. */
  maxEntries: number;
  /** Largest PAX or GNU long-name header body. */
  maxHeaderBytes: number;
  /** Most bytes of file content, summed: the decompression-bomb guard. */
  maxTotalBytes: number;
}

export const DEFAULT_LIMITS: TarLimits = {
  maxEntries: 1_000_000,
  maxHeaderBytes: 1024 * 1024,
  maxTotalBytes: 8 * 1024 ** 3,
};

/** The default limits, with SLIPWAY_MAX_LAYER_BYTES / SLIPWAY_MAX_LAYER_ENTRIES overrides for trusted big layers. */
export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): TarLimits {
  const num = (name: string, fallback: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    if (!/^\d+$/.test(v)) throw new UnsafeArchiveError(`${name}="${v}" is not a whole number`);
    return Number(v);
  };
  return {
    ...DEFAULT_LIMITS,
    maxTotalBytes: num('SLIPWAY_MAX_LAYER_BYTES', DEFAULT_LIMITS.maxTotalBytes),
    maxEntries: num('SLIPWAY_MAX_LAYER_ENTRIES', DEFAULT_LIMITS.maxEntries),
  };
}

export interface TarEntry {
  header: TarHeader;
  /** The file content; must be drained before asking for the next entry (or it is skipped). */
  body: AsyncIterable<Buffer>;
}

/** Reads exact byte counts from an async stream of chunks without copying more than needed. */
class ByteReader {
  private readonly it: AsyncIterator<Buffer | Uint8Array>;
  private pending: Buffer = Buffer.alloc(0);
  consumed = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    const next = await this.it.next();
    if (next.done) return false;
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    return true;
  }

  /** Exactly n bytes, or null at a clean end of input before any byte. */
  async read(n: number, what: string): Promise<Buffer | null> {
    while (this.pending.length < n) {
      if (!(await this.fill())) {
        if (this.pending.length === 0) return null;
        throw new UnsafeArchiveError(`${what}: archive ends in the middle of an entry`, 'the tar (or its compression) is truncated');
      }
    }
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    this.consumed += n;
    return out;
  }

  /** Streams n bytes as they arrive. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0 && !(await this.fill())) {
        throw new UnsafeArchiveError(`${what}: archive ends in the middle of an entry`, 'the tar (or its compression) is truncated');
      }
      const take = Math.min(left, this.pending.length);
      const out = this.pending.subarray(0, take);
      this.pending = this.pending.subarray(take);
      this.consumed += take;
      left -= take;
      yield out;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const _ of this.stream(n, what)) {
      // discard
    }
  }

  /** Drains whatever follows (trailing zero blocks and padding) so upstream hashing sees every byte. */
  async drain(): Promise<void> {
    this.pending = Buffer.alloc(0);
    while (await this.fill()) this.pending = Buffer.alloc(0);
  }
}

/**
 * Normalizes an archive path to the layer's relative form and rejects anything that
 * could land outside the target: absolute paths, "..", NUL bytes.
 */
export function normalizeEntryPath(raw: string, where: string): string {
  if (raw.includes('\0')) throw new UnsafeArchiveError(`${where}: entry path contains a NUL byte`);
  if (raw.startsWith('/')) {
    throw new UnsafeArchiveError(`${where}: entry "${raw}" has an absolute path`, 'layers must use relative paths; the archive is refused');
  }
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new UnsafeArchiveError(`${where}: entry "${raw}" contains ".." and would escape the target`, 'the archive is refused');
  }
  return parts.join('/');
}

/** Applies the fields of PAX records to a header. */
function applyPax(h: TarHeader, pax: Map<string, Buffer>): void {
  for (const [key, value] of pax) {
    const s = value.toString('utf8');
    if (key === 'path') h.path = s;
    else if (key === 'linkpath') h.linkTarget = s;
    else if (key === 'size' && /^\d+$/.test(s)) h.size = Number(s);
    else if (key === 'uid' && /^\d+$/.test(s)) h.uid = Number(s);
    else if (key === 'gid' && /^\d+$/.test(s)) h.gid = Number(s);
    else if (key === 'mtime' && /^-?\d+(\.\d+)?$/.test(s)) h.mtime = Math.floor(Number(s));
    else if (key === 'uname') h.uname = s;
    else if (key === 'gname') h.gname = s;
    else if (key.startsWith('SCHILY.xattr.')) (h.xattrs ??= {})[key.slice('SCHILY.xattr.'.length)] = Buffer.from(value);
  }
}

/**
 * Streams the entries of an uncompressed tar, validated: checksums, sizes, limits,
 * safe relative paths, hardlink targets inside the archive root, no duplicate paths,
 * nothing placed under a symlink the archive itself declared.
 */
export async function* readTar(
  source: AsyncIterable<Buffer | Uint8Array>,
  where: string,
  limits: TarLimits = DEFAULT_LIMITS,
): AsyncGenerator<TarEntry> {
  const input = new ByteReader(source);
  const seen = new Set<string>();
  const symlinks = new Set<string>();
  let entries = 0;
  let total = 0;
  let pax: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;

  while (true) {
    const block = await input.read(BLOCK, where);
    if (block === null) break;
    if (isZeroBlock(block)) {
      await input.drain();
      break;
    }
    const raw = decodeBlock(block);
    if (raw === null) {
      throw new UnsafeArchiveError(`${where}: bad tar header at byte ${input.consumed - BLOCK}`, 'the data is not a tar archive or is corrupt');
    }
    const at = `${where}: entry "${longName ?? raw.name}"`;
    if (raw.flag === 'x' || raw.flag === 'g' || raw.flag === 'L' || raw.flag === 'K') {
      if (raw.size > limits.maxHeaderBytes) {
        throw new UnsafeArchiveError(`${at}: extended header of ${raw.size} bytes exceeds the ${limits.maxHeaderBytes}-byte limit`);
      }
      const body = raw.size === 0 ? Buffer.alloc(0) : await input.read(raw.size, where);
      if (body === null) throw new UnsafeArchiveError(`${where}: archive ends inside an extended header`);
      await input.skip(padding(raw.size), where);
      if (raw.flag === 'x') {
        const parsed = decodePax(body);
        if (parsed === null) throw new UnsafeArchiveError(`${at}: malformed PAX header`);
        pax = new Map([...(pax ?? []), ...parsed]);
      } else if (raw.flag === 'L') {
        longName = body.toString('utf8').replace(/\0+$/, '');
      } else if (raw.flag === 'K') {
        longLink = body.toString('utf8').replace(/\0+$/, '');
      }
      continue;
    }
    const type = TYPE_BY_FLAG[raw.flag];
    if (type === undefined) {
      throw new UnsafeArchiveError(`${at}: unsupported tar entry type "${raw.flag}"`, 'layers may hold files, dirs, links, devices and FIFOs only');
    }
    const header: TarHeader = {
      path: longName ?? raw.name,
      type,
      mode: raw.mode & 0o7777,
      uid: raw.uid,
      gid: raw.gid,
      size: raw.size,
      mtime: raw.mtime,
    };
    if (raw.linkname !== '' || longLink !== undefined) header.linkTarget = longLink ?? raw.linkname;
    if (raw.uname) header.uname = raw.uname;
    if (raw.gname) header.gname = raw.gname;
    if (type === 'char' || type === 'block') {
      header.devMajor = raw.devMajor;
      header.devMinor = raw.devMinor;
    }
    if (pax) applyPax(header, pax);
    pax = undefined;
    longName = undefined;
    longLink = undefined;

    const label = `${where}: entry "${header.path}"`;
    header.path = normalizeEntryPath(header.path, where);
    if (type !== 'file') {
      // Only regular files carry content; a size on anything else is skipped, never trusted.
      await input.skip(header.size + padding(header.size), where);
      header.size = 0;
    }
    if (header.path === '') {
      if (type !== 'dir') throw new UnsafeArchiveError(`${label}: the archive root must be a directory`);
      continue;
    }
    if (++entries > limits.maxEntries) {
      throw new UnsafeArchiveError(`${where}: more than ${limits.maxEntries} entries`, 'raise SLIPWAY_MAX_LAYER_ENTRIES only for archives you trust');
    }
    total += header.size;
    if (total > limits.maxTotalBytes) {
      throw new UnsafeArchiveError(
        `${label}: archive expands beyond the ${limits.maxTotalBytes}-byte limit`,
        'this looks like a decompression bomb; it was refused before being written (SLIPWAY_MAX_LAYER_BYTES raises the limit for layers you trust)',
      );
    }
    if (seen.has(header.path)) {
      throw new UnsafeArchiveError(`${label}: the path appears twice in one layer`, 'a layer must not contain duplicate paths');
    }
    seen.add(header.path);
    const parts = header.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (symlinks.has(parent)) {
        throw new UnsafeArchiveError(`${label}: would be written through the symlink "${parent}" declared earlier in the archive`, 'the archive is refused');
      }
    }
    if (type === 'symlink') {
      if (header.linkTarget === undefined || header.linkTarget === '') throw new UnsafeArchiveError(`${label}: symlink without a target`);
      symlinks.add(header.path);
    }
    if (type === 'hardlink') {
      header.linkTarget = normalizeEntryPath(header.linkTarget ?? '', `${label} (hardlink target)`);
      if (header.linkTarget === '') throw new UnsafeArchiveError(`${label}: hardlink without a target`);
      const tparts = header.linkTarget.split('/');
      for (let i = 1; i <= tparts.length; i++) {
        if (symlinks.has(tparts.slice(0, i).join('/'))) {
          throw new UnsafeArchiveError(`${label}: hardlink target "${header.linkTarget}" goes through a symlink`, 'the archive is refused');
        }
      }
    }
    if (header.size === 0) {
      yield { header, body: (async function* () {})() };
      continue;
    }
    let drained = false;
    const body = input.stream(header.size, label);
    const tracked = (async function* () {
      yield* body;
      drained = true;
    })();
    yield { header, body: tracked };
    if (!drained) {
      for await (const _ of tracked) {
        // skip the rest of an entry the consumer did not read
      }
    }
    await input.skip(padding(header.size), where);
  }
}
