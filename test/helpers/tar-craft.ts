/**
 * Tar bytes written field by field, below what any writer (ours included) would produce: how the
 * parser-differential inputs are made. Nothing here validates; that is the point.
 */
export interface RawFields {
  name: string;
  flag: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** The size field; the body that follows is whatever the caller appends. */
  size?: number;
  linkname?: string;
  prefix?: string;
  magic?: 'ustar' | 'gnu' | 'v7';
  devMajor?: number;
  devMinor?: number;
  /** Raw bytes written over a numeric field after it is formatted: [offset, bytes]. */
  patch?: [number, Buffer][];
  /** Leave the checksum wrong. */
  badChecksum?: boolean;
}

const octal = (n: number, len: number): string => n.toString(8).padStart(len - 1, '0') + '\0';

export function block(f: RawFields): Buffer {
  const b = Buffer.alloc(512);
  b.write(f.name, 0, 100, 'utf8');
  b.write(octal(f.mode ?? (f.flag === '5' ? 0o755 : 0o644), 8), 100, 'ascii');
  b.write(octal(f.uid ?? 0, 8), 108, 'ascii');
  b.write(octal(f.gid ?? 0, 8), 116, 'ascii');
  b.write(octal(f.size ?? 0, 12), 124, 'ascii');
  b.write(octal(0, 12), 136, 'ascii');
  b.write(f.flag, 156, 1, 'latin1');
  b.write(f.linkname ?? '', 157, 100, 'utf8');
  const magic = f.magic ?? 'ustar';
  if (magic === 'ustar') b.write('ustar\x0000', 257, 8, 'latin1');
  if (magic === 'gnu') b.write('ustar  \x00', 257, 8, 'latin1');
  if (magic !== 'v7') {
    b.write(octal(f.devMajor ?? 0, 8), 329, 'ascii');
    b.write(octal(f.devMinor ?? 0, 8), 337, 'ascii');
  }
  if (f.prefix) b.write(f.prefix, 345, 155, 'utf8');
  for (const [off, bytes] of f.patch ?? []) bytes.copy(b, off);
  b.fill(' ', 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(octal(f.badChecksum ? sum + 1 : sum, 7) + ' ', 148, 8, 'ascii');
  return b;
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

/** A header, then `body` padded to a block (whatever the size field says). */
export function member(f: RawFields, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const data = Buffer.from(body);
  return Buffer.concat([block({ size: data.length, ...f }), data, pad(data.length)]);
}

export const file = (name: string, content: string, extra: Partial<RawFields> = {}): Buffer => member({ name, flag: '0', ...extra }, content);
export const dir = (name: string, extra: Partial<RawFields> = {}): Buffer => member({ name: `${name}/`, flag: '5', size: 0, ...extra });

function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length > len) len++;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** A PAX extended header ('x', or global 'g') of the given records. */
export function pax(records: [string, string | Buffer][], flag: 'x' | 'g' = 'x', extra: Partial<RawFields> = {}): Buffer {
  return member({ name: 'PaxHeaders/x', flag, ...extra }, Buffer.concat(records.map(([k, v]) => paxRecord(k, v))));
}

/** A PAX header body given verbatim. */
export function paxRaw(body: string): Buffer {
  return member({ name: 'PaxHeaders/x', flag: 'x' }, body);
}

/** A GNU long name ('L') or long link ('K') header. */
export function gnuLong(flag: 'L' | 'K', value: string): Buffer {
  return member({ name: '././@LongLink', flag, magic: 'gnu' }, `${value}\0`);
}

export const END = Buffer.alloc(1024);

export function tar(...members: Buffer[]): Buffer {
  return Buffer.concat([...members, END]);
}
