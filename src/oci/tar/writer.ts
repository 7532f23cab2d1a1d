import { IntegrityError } from '../../errors.js';
import { BLOCK, encodeHeader, padding, type TarHeader } from './header.js';

export interface WriteEntry {
  header: TarHeader;
  /** Content of a regular file; must yield exactly header.size bytes. */
  body?: () => AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>;
}

const ZEROS = Buffer.alloc(BLOCK * 2);

/** Serializes entries, in the order given, into a tar stream ending with two zero blocks. */
export async function* writeTar(entries: AsyncIterable<WriteEntry> | Iterable<WriteEntry>): AsyncGenerator<Buffer> {
  for await (const { header, body } of entries) {
    yield encodeHeader(header);
    if (header.type !== 'file' || header.size === 0) continue;
    if (body === undefined) throw new Error(`tar writer: "${header.path}" has a size but no body`);
    let written = 0;
    for await (const chunk of body()) {
      written += chunk.length;
      if (written > header.size) break;
      yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    }
    if (written !== header.size) {
      throw new IntegrityError(
        `"${header.path}" changed size while being archived (${header.size} → ${written} bytes)`,
        'do not modify the source directory while it is being packed; run the command again',
      );
    }
    yield ZEROS.subarray(0, padding(header.size));
  }
  yield ZEROS;
}
