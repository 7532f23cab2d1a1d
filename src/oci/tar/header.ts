/**
 * The tar entry model and the ustar/PAX header codec. Our own because layers need
 * byte-exact binary xattrs (security.capability) in PAX records and full control
 * over every header byte for reproducible digests; no npm tar package does both.
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarHeader {
  /** Relative, normalized, no leading "./" or "/", no trailing "/". */
  path: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Body length; 0 for everything but regular files. */
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Symlink target, or the path a hardlink refers to. */
  linkTarget?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, Buffer>;
  uname?: string;
  gname?: string;
}

export const BLOCK = 512;

const TYPEFLAG: Record<EntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

export const TYPE_BY_FLAG: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

const MAX_OCTAL = (len: number): number => 8 ** (len - 1) - 1;

function writeString(buf: Buffer, s: string, offset: number, len: number): void {
  buf.write(s, offset, len, 'utf8');
}

function writeOctal(buf: Buffer, n: number, offset: number, len: number): void {
  buf.write(n.toString(8).padStart(len - 1, '0') + '\0', offset, len, 'ascii');
}

/** One PAX record: "LEN key=value\n" where LEN counts the whole record in bytes. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length > len) len++;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function fitsName(s: string, len: number): boolean {
  return Buffer.byteLength(s) <= len && /^[\x20-\x7e]*$/.test(s);
}

function ustarBlock(h: TarHeader, name: string, flag: string, size: number, linkname: string): Buffer {
  const buf = Buffer.alloc(BLOCK);
  writeString(buf, name, 0, 100);
  writeOctal(buf, h.mode & 0o7777, 100, 8);
  writeOctal(buf, Math.min(h.uid, MAX_OCTAL(8)), 108, 8);
  writeOctal(buf, Math.min(h.gid, MAX_OCTAL(8)), 116, 8);
  writeOctal(buf, Math.min(size, MAX_OCTAL(12)), 124, 12);
  writeOctal(buf, Math.max(0, Math.min(h.mtime, MAX_OCTAL(12))), 136, 12);
  buf.fill(' ', 148, 156);
  buf.write(flag, 156, 1, 'ascii');
  writeString(buf, linkname, 157, 100);
  buf.write('ustar\x0000', 257, 8, 'binary');
  writeString(buf, h.uname ?? '', 265, 32);
  writeString(buf, h.gname ?? '', 297, 32);
  writeOctal(buf, h.devMajor ?? 0, 329, 8);
  writeOctal(buf, h.devMinor ?? 0, 337, 8);
  let sum = 0;
  for (const b of buf) sum += b;
  buf.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return buf;
}

export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Encodes a header (with a PAX extended header first when any field does not fit ustar). */
export function encodeHeader(h: TarHeader): Buffer {
  const name = h.type === 'dir' ? `${h.path}/` : h.path;
  const link = h.linkTarget ?? '';
  const records: Buffer[] = [];
  if (!fitsName(name, 100)) records.push(paxRecord('path', Buffer.from(name)));
  if (!fitsName(link, 100)) records.push(paxRecord('linkpath', Buffer.from(link)));
  if (h.size > MAX_OCTAL(12)) records.push(paxRecord('size', Buffer.from(String(h.size))));
  if (h.uid > MAX_OCTAL(8)) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (h.gid > MAX_OCTAL(8)) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  for (const key of Object.keys(h.xattrs ?? {}).sort()) {
    records.push(paxRecord(`SCHILY.xattr.${key}`, h.xattrs![key]!));
  }
  const main = ustarBlock(h, fitsName(name, 100) ? name : name.slice(0, 99), TYPEFLAG[h.type], h.size, fitsName(link, 100) ? link : '');
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxName = `PaxHeaders/${name.replace(/\/$/, '').split('/').pop()!}`.slice(0, 99).replace(/[^\x20-\x7e]/g, '_');
  const paxHeader = ustarBlock({ ...h, uname: '', gname: '', devMajor: 0, devMinor: 0 }, paxName, 'x', pax.length, '');
  return Buffer.concat([paxHeader, pax, Buffer.alloc(padding(pax.length)), main]);
}

/** The raw fields of one 512-byte header block, before PAX overrides. */
export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flag: string;
  linkname: string;
  uname: string;
  gname: string;
  devMajor: number;
  devMinor: number;
  /** POSIX ustar (magic "ustar", NUL, version "00"), GNU ("ustar", two spaces, NUL), or anything else. */
  format: 'ustar' | 'gnu' | 'unknown';
  /**
   * Fields (name: with its prefix) that are not valid UTF-8: readers that keep the raw bytes and
   * readers that decode them would see other names. Only a field an extended header does not
   * replace matters (GNU tar truncates the names of its PAX headers mid-character).
   */
  notUtf8: ('name' | 'linkname' | 'uname' | 'gname')[];
  /** Why tar readers would read this block differently (the archive is then refused), or undefined. */
  disagreement?: { what: string; why: string };
}

/** Bytes that are not valid UTF-8: readers keep them raw, a lossy decode would make two names one. */
const utf8 = new TextDecoder('utf-8', { fatal: true });
export function isUtf8(bytes: Uint8Array): boolean {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** A NUL-terminated field's bytes (the whole field when there is no NUL), as Go's parseString cuts them. */
function fieldBytes(buf: Buffer, offset: number, len: number): Buffer {
  const field = buf.subarray(offset, offset + len);
  const end = field.indexOf(0);
  return end === -1 ? field : field.subarray(0, end);
}

/**
 * Reads octal or GNU base-256 numbers; NaN when the field is garbage or one reader would read it
 * differently from another: octal digits padded only with spaces and NULs (Go refuses what Python
 * reads up to a NUL), no NUL before the digits (Go skips it, Python and GNU tar stop there), not
 * all spaces (GNU tar refuses that), base-256 only positive (first byte exactly 0x80, as Python
 * requires) and exact in a JavaScript number.
 */
function readNumber(buf: Buffer, offset: number, len: number): number {
  const first = buf[offset]!;
  if (first & 0x80) {
    if (first !== 0x80) return NaN;
    let n = 0;
    for (let i = 1; i < len; i++) n = n * 256 + buf[offset + i]!;
    return Number.isSafeInteger(n) ? n : NaN;
  }
  const field = buf.toString('latin1', offset, offset + len);
  if (/^ +$/.test(field)) return NaN;
  const m = /^([ \0]*)(.*?)[ \0]*$/s.exec(field)!;
  if (m[2] === '') return 0;
  if (m[1]!.includes('\0')) return NaN;
  return /^[0-7]+$/.test(m[2]!) ? parseInt(m[2]!, 8) : NaN;
}

export function isZeroBlock(buf: Buffer): boolean {
  for (const b of buf) if (b !== 0) return false;
  return true;
}

const NUMERIC_FIELDS = { mode: 100, uid: 108, gid: 116, size: 124, mtime: 136, devMajor: 329, devMinor: 337 } as const;
const STAR_PREFIX = 131;

/**
 * Decodes one header block; null when the checksum does not match (not a tar header). Where Go's
 * archive/tar, Python's tarfile and GNU tar would read the block differently, `disagreement` says why.
 */
export function decodeBlock(buf: Buffer): RawHeader | null {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 32 : buf[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const stored = readNumber(buf, 148, 8);
  if (stored !== unsigned && stored !== signed) return null;
  const magic = buf.toString('binary', 257, 265);
  const format = magic === 'ustar\x0000' ? 'ustar' : magic === 'ustar  \0' ? 'gnu' : 'unknown';
  const disagree: { what: string; why: string }[] = [];
  if (buf[148]! & 0x80) disagree.push({ what: 'a base-256 checksum', why: "Go reads checksums as octal only and refuses the header, Python accepts it" });
  if (format === 'ustar' && buf.toString('binary', 508, 512) === 'tar\0') {
    disagree.push({ what: 'a star header (trailer "tar" at byte 508)', why: 'Go reads a 131-byte prefix and access times there, other readers a 155-byte prefix' });
  }
  const prefix = format === 'ustar' ? fieldBytes(buf, 345, 155) : Buffer.alloc(0);
  if (format === 'ustar' && prefix.length >= STAR_PREFIX && !isZeroBlock(buf.subarray(345 + STAR_PREFIX, 500))) {
    disagree.push({ what: `a ustar prefix of ${prefix.length} bytes`, why: 'star-aware readers stop the prefix at 131 bytes and read the rest as access times' });
  }
  if (format === 'gnu' && buf[345] !== 0) {
    disagree.push({ what: 'a GNU header with bytes in the ustar prefix field', why: 'Python reads them as part of the name, Go and GNU tar do not' });
  }
  const strings = { name: fieldBytes(buf, 0, 100), prefix, linkname: fieldBytes(buf, 157, 100), uname: fieldBytes(buf, 265, 32), gname: fieldBytes(buf, 297, 32) };
  const notUtf8 = (['name', 'linkname', 'uname', 'gname'] as const).filter((f) => !isUtf8(strings[f]) || (f === 'name' && !isUtf8(prefix)));
  const fields = Object.fromEntries(Object.entries(NUMERIC_FIELDS).map(([k, off]) => [k, readNumber(buf, off, k === 'size' || k === 'mtime' ? 12 : 8)])) as Record<keyof typeof NUMERIC_FIELDS, number>;
  const badNumber = Object.entries(fields).find(([, n]) => Number.isNaN(n));
  if (badNumber) {
    const [field, off] = [badNumber[0], NUMERIC_FIELDS[badNumber[0] as keyof typeof NUMERIC_FIELDS]];
    disagree.push({ what: `a malformed ${field} field (${JSON.stringify(buf.toString('latin1', off, off + (field === 'size' || field === 'mtime' ? 12 : 8)))})`, why: 'Go, Python and GNU tar parse such numbers differently or refuse them' });
  }
  const name = prefix.length > 0 ? `${prefix.toString('utf8')}/${strings.name.toString('utf8')}` : strings.name.toString('utf8');
  const out: RawHeader = {
    ...fields,
    format,
    name,
    flag: String.fromCharCode(buf[156]!),
    linkname: strings.linkname.toString('utf8'),
    uname: strings.uname.toString('utf8'),
    gname: strings.gname.toString('utf8'),
    notUtf8,
  };
  if (disagree.length > 0) out.disagreement = disagree[0]!;
  return out;
}

/**
 * Parses PAX records into key → raw bytes (values may be binary, e.g. xattrs). Null when the body
 * is not exactly a sequence of well-formed records (decimal lengths, a key, no trailing bytes) or
 * names a key twice: Go refuses such bodies where Python stops at the first bad record.
 */
export function decodePax(buf: Buffer): Map<string, Buffer> | null {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < buf.length) {
    const space = buf.indexOf(0x20, pos);
    if (space === -1 || space - pos > 20) return null;
    const digits = buf.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(digits)) return null;
    const len = Number(digits);
    if (len <= space - pos + 1 || pos + len > buf.length || buf[pos + len - 1] !== 0x0a) return null;
    const record = buf.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0 || record.subarray(0, eq).includes(0)) return null;
    if (!isUtf8(record.subarray(0, eq))) return null;
    const key = record.toString('utf8', 0, eq);
    if (out.has(key)) return null;
    out.set(key, record.subarray(eq + 1));
    pos += len;
  }
  return out;
}
