import { UnsafeArchiveError } from '../../errors.js';
import { BLOCK, decodeBlock, decodePax, isUtf8, isZeroBlock, padding, TYPE_BY_FLAG, type EntryType, type TarHeader } from './header.js';
import { LayerRules } from './wellformed.js';

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

  /**
   * Reads what follows the first end-of-archive block (more zero blocks, record padding) so
   * upstream hashing sees every byte, and refuses anything else there: `tar --ignore-zeros` would
   * read entries hidden after the end that every other reader skips.
   */
  async drainZeros(where: string): Promise<void> {
    do {
      if (!isZeroBlock(this.pending)) {
        throw new UnsafeArchiveError(`${where}: data after the end-of-archive blocks`, 'only zero padding may follow the end of a tar; the archive is refused');
      }
      this.consumed += this.pending.length;
      this.pending = Buffer.alloc(0);
    } while (await this.fill());
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

/** PAX keys whose meaning readers disagree on, or that change the data itself: refused. */
const REFUSED_PAX = [/^GNU\.sparse\./, /^LIBARCHIVE\.xattr\./, /^hdrcharset$/];
const NUMERIC_PAX = new Set(['size', 'uid', 'gid']);
const MAX_ID = 0xffffffff;

/** Applies the fields of one PAX header to a header; refuses what Go's archive/tar would refuse or read otherwise. */
function applyPax(h: TarHeader, pax: Map<string, Buffer>, label: string): void {
  for (const [key, value] of pax) {
    const bad = (why: string): UnsafeArchiveError => new UnsafeArchiveError(`${label}: PAX record ${key}=${JSON.stringify(value.toString('utf8').slice(0, 80))} ${why}`, 'the archive is refused');
    if (REFUSED_PAX.some((r) => r.test(key))) throw bad('is not supported (readers disagree on it)');
    if (key.startsWith('SCHILY.xattr.')) {
      (h.xattrs ??= {})[key.slice('SCHILY.xattr.'.length)] = Buffer.from(value);
      continue;
    }
    const s = value.toString('utf8');
    if (['path', 'linkpath', 'uname', 'gname'].includes(key) && s.includes('\0')) throw bad('contains a NUL byte');
    if (['path', 'linkpath', 'uname', 'gname'].includes(key) && !isUtf8(value)) throw bad('is not valid UTF-8 (Go keeps the raw bytes, a UTF-8 reader replaces them, so two names read as one)');
    // An empty value restores the ustar field in POSIX, and sets an empty one in some readers.
    if (['path', 'linkpath', 'size', 'uid', 'gid', 'mtime'].includes(key) && s === '') throw bad('is empty');
    if (NUMERIC_PAX.has(key) && (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s)))) throw bad('is not a non-negative whole number');
    if (key === 'mtime' && !/^-?[0-9]+(\.[0-9]+)?$/.test(s)) throw bad('is not a number of seconds');
    if (key === 'path') h.path = s;
    else if (key === 'linkpath') h.linkTarget = s;
    else if (key === 'size') h.size = Number(s);
    else if (key === 'uid') h.uid = Number(s);
    else if (key === 'gid') h.gid = Number(s);
    else if (key === 'mtime') h.mtime = Math.floor(Number(s));
    else if (key === 'uname') h.uname = s;
    else if (key === 'gname') h.gname = s;
  }
}

/** Types whose header is the whole entry: Go's archive/tar reads no body for them whatever the size field says. */
const HEADER_ONLY = new Set<EntryType>(['dir', 'symlink', 'hardlink', 'char', 'block', 'fifo']);

/**
 * Streams the entries of an uncompressed tar, validated: the one place that decides whether a
 * layer is well-formed. Refused: bad checksums and numbers, non-POSIX/GNU headers, extended
 * headers that repeat or dangle, sizes on header-only entries, anything after the end-of-archive
 * blocks, limits, unsafe paths, and the cross-entry rules of wellformed.ts (duplicates, links,
 * whiteouts). Where readers would disagree about the bytes, the archive is refused.
 */
export async function* readTar(
  source: AsyncIterable<Buffer | Uint8Array>,
  where: string,
  limits: TarLimits = DEFAULT_LIMITS,
  /** An image layer, or a source tarball (a buildpack's), which may carry git archive's global comment. */
  kind: 'layer' | 'source' = 'layer',
): AsyncGenerator<TarEntry> {
  const input = new ByteReader(source);
  const rules = new LayerRules(where);
  let entries = 0;
  let total = 0;
  let pax: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  const pending = (): boolean => pax !== undefined || longName !== undefined || longLink !== undefined;

  while (true) {
    const block = await input.read(BLOCK, where);
    if (block === null || isZeroBlock(block)) {
      if (pending()) throw new UnsafeArchiveError(`${where}: the archive ends after an extended header, with no entry for it`);
      if (block !== null) await input.drainZeros(where);
      break;
    }
    const at = input.consumed - BLOCK;
    const raw = decodeBlock(block);
    if (raw === null) {
      throw new UnsafeArchiveError(`${where}: bad tar header at byte ${at}`, 'the data is not a tar archive, or a number or checksum in it is malformed');
    }
    const label = `${where}: entry "${longName ?? raw.name}" (header at byte ${at})`;
    if (raw.format === 'unknown') {
      throw new UnsafeArchiveError(`${label}: neither a POSIX ustar nor a GNU tar header`, 'readers disagree on old (v7) and unknown header formats; write the layer as PAX or GNU tar');
    }
    if (raw.disagreement) throw new UnsafeArchiveError(`${label}: ${raw.disagreement.what}`, `${raw.disagreement.why}; the archive is refused`);
    if (raw.flag === 'x' || raw.flag === 'g' || raw.flag === 'L' || raw.flag === 'K') {
      if (raw.size > limits.maxHeaderBytes) {
        throw new UnsafeArchiveError(`${label}: extended header of ${raw.size} bytes exceeds the ${limits.maxHeaderBytes}-byte limit`);
      }
      const body = raw.size === 0 ? Buffer.alloc(0) : await input.read(raw.size, where);
      if (body === null) throw new UnsafeArchiveError(`${where}: archive ends inside an extended header`);
      await input.skip(padding(raw.size), where);
      const repeated = (raw.flag === 'x' && pax) || (raw.flag === 'L' && longName !== undefined) || (raw.flag === 'K' && longLink !== undefined);
      if (repeated) {
        throw new UnsafeArchiveError(`${label}: two '${raw.flag}' extended headers for one entry`, 'Go keeps only the last, other readers merge them; the archive is refused');
      }
      if (raw.flag === 'x' || raw.flag === 'g') {
        const parsed = decodePax(body);
        if (parsed === null) throw new UnsafeArchiveError(`${label}: malformed PAX header`, 'its records are not well-formed, or name a key twice');
        if (raw.flag === 'g') {
          // Global records apply to later entries in GNU tar and Python, not in Go; umoci refuses any global header.
          // A source tarball (git archive) may carry a global "comment", which changes no entry.
          const keys = [...parsed.keys()].filter((k) => kind === 'layer' || k !== 'comment');
          if (keys.length > 0 || kind === 'layer') {
            throw new UnsafeArchiveError(`${label}: a global PAX header${keys.length ? ` setting ${keys.join(', ')}` : ''}`, 'readers disagree on global headers (umoci refuses them in layers); the archive is refused');
          }
        } else {
          pax = parsed;
        }
      } else {
        const bytes = body.subarray(0, body.includes(0) ? body.indexOf(0) : body.length);
        const what = raw.flag === 'L' ? 'GNU long name' : 'GNU long link';
        // Go ignores an empty one (the entry keeps its own name); taking it would name the archive root.
        if (bytes.length === 0) throw new UnsafeArchiveError(`${label}: an empty ${what}`, 'Go ignores it and uses the next header\'s name, other readers take the empty name; the archive is refused');
        if (!isUtf8(bytes)) throw new UnsafeArchiveError(`${label}: a ${what} that is not valid UTF-8`, 'Go keeps the raw bytes, a UTF-8 reader replaces them, so two different names read as one; the archive is refused');
        if (raw.flag === 'L') longName = bytes.toString('utf8');
        else longLink = bytes.toString('utf8');
      }
      continue;
    }
    const type = TYPE_BY_FLAG[raw.flag];
    if (type === undefined) {
      throw new UnsafeArchiveError(`${label}: unsupported tar entry type "${raw.flag}"`, 'layers may hold files, dirs, links, devices and FIFOs only (no sparse, multi-volume or vendor types)');
    }
    if ((longName !== undefined && pax?.has('path')) || (longLink !== undefined && pax?.has('linkpath'))) {
      throw new UnsafeArchiveError(`${label}: both a GNU long name and a PAX path`, 'Go prefers the GNU one, others the PAX one; the archive is refused');
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
    const replaced = { name: longName !== undefined || pax?.has('path'), linkname: longLink !== undefined || pax?.has('linkpath'), uname: pax?.has('uname'), gname: pax?.has('gname') };
    const garbled = raw.notUtf8.find((f) => !replaced[f]);
    if (garbled) throw new UnsafeArchiveError(`${label}: a ${garbled} that is not valid UTF-8`, 'Go keeps the raw bytes, a UTF-8 reader replaces them, so two different names read as one; the archive is refused');
    const renamedBy = longName !== undefined ? 'GNU long name' : pax?.has('path') ? 'PAX path' : undefined;
    if (pax) applyPax(header, pax, label);
    pax = undefined;
    longName = undefined;
    longLink = undefined;

    const named = `${where}: entry "${header.path}"`;
    if (HEADER_ONLY.has(type) && header.size !== 0) {
      throw new UnsafeArchiveError(
        `${named}: a ${type} header with a size of ${header.size} bytes`,
        'Go reads no body for it, GNU tar and Python read the bytes as more entries: readers disagree, so the archive is refused',
      );
    }
    if (type !== 'dir' && header.path.endsWith('/')) {
      throw new UnsafeArchiveError(`${named}: a ${type} whose name ends with "/"`, 'Go and Python read some of these as directories; the archive is refused');
    }
    if (header.uid > MAX_ID || header.gid > MAX_ID) throw new UnsafeArchiveError(`${named}: owner ${header.uid}:${header.gid} is beyond 32 bits`);
    header.path = normalizeEntryPath(header.path, where);
    if (header.path === '') {
      if (type !== 'dir') throw new UnsafeArchiveError(`${named}: the archive root must be a directory`);
      // The root is skipped; a root named by an extended header is one readers may not agree is the root.
      if (renamedBy) throw new UnsafeArchiveError(`${named}: the archive root named by a ${renamedBy}`, 'readers disagree on which entry that names; the archive is refused');
      // umoci gives the rootfs the root entry's mode, Slipway's extractor and judge skip it: a root
      // anyone may write to (without the sticky bit) or with set-id bits would go unjudged.
      if ((header.mode & 0o6000) !== 0 || (header.mode & 0o1002) === 0o002) {
        throw new UnsafeArchiveError(`${named}: the archive root has mode ${header.mode.toString(8).padStart(4, '0')}`, 'extractors that apply it would make / writable by anyone or set-id; the archive is refused');
      }
      continue;
    }
    if (type === 'hardlink') header.linkTarget = normalizeEntryPath(header.linkTarget ?? '', `${named} (hardlink target)`);
    if (++entries > limits.maxEntries) {
      throw new UnsafeArchiveError(`${where}: more than ${limits.maxEntries} entries`, 'raise SLIPWAY_MAX_LAYER_ENTRIES only for archives you trust');
    }
    total += header.size;
    if (total > limits.maxTotalBytes) {
      throw new UnsafeArchiveError(
        `${named}: archive expands beyond the ${limits.maxTotalBytes}-byte limit`,
        'this looks like a decompression bomb; it was refused before being written (SLIPWAY_MAX_LAYER_BYTES raises the limit for layers you trust)',
      );
    }
    rules.accept(header);
    if (header.size === 0) {
      yield { header, body: (async function* () {})() };
      continue;
    }
    let drained = false;
    const body = input.stream(header.size, named);
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
