/**
 * Keeps streaming scans flat in memory. Every chunk of a layer read is a fresh Buffer that dies at
 * once, but V8 only frees it at a GC, which allocation of such small JS objects rarely triggers.
 * A scavenge (young generation only, well under a millisecond) every few MB of input keeps
 * the peak near what is really in use.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const EVERY = 4 * 1024 * 1024;
let gc: ((opts: { type: 'minor' }) => void) | undefined;
let since = 0;

/** Counts streamed bytes; collects young garbage every EVERY bytes. */
export function streamed(bytes: number): void {
  since += bytes;
  if (since < EVERY) return;
  since = 0;
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as typeof gc;
  }
  gc!({ type: 'minor' });
}
