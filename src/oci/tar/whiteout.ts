/**
 * OCI whiteouts: `.wh.NAME` deletes NAME from the layers below, `.wh..wh..opq` empties its
 * directory of what the layers below put there. One reading of the names, shared by the reader
 * (which refuses the ones extractors disagree on), extraction and the restrictions' layer facts.
 */
import { UnsafeArchiveError } from '../../errors.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

export type Whiteout = { kind: 'opaque'; dir: string } | { kind: 'delete'; victim: string };

/**
 * What a normalized entry path means as a whiteout, or undefined for an ordinary entry. Refuses
 * names whose victim is not one plain name (`.wh.` alone, `.wh..`, `.wh...`: "." or ".." would
 * delete the directory itself or its parent), AUFS metadata (`.wh..wh.*` other than the opaque
 * marker: Docker skips it, others delete a `.wh.*` file), and paths under a whiteout name.
 */
export function whiteoutOf(path: string, where: string): Whiteout | undefined {
  if (!path.includes(WHITEOUT_PREFIX)) return undefined;
  const parts = path.split('/');
  const base = parts.pop()!;
  const inside = parts.find((p) => p.startsWith(WHITEOUT_PREFIX));
  if (inside !== undefined) {
    throw new UnsafeArchiveError(`${where}: entry "${path}" lies under the whiteout name "${inside}"`, 'a whiteout is a file, never a directory; the archive is refused');
  }
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  const dir = parts.join('/');
  if (base === OPAQUE_WHITEOUT) return { kind: 'opaque', dir };
  const victim = base.slice(WHITEOUT_PREFIX.length);
  if (victim === '' || victim === '.' || victim === '..' || victim.includes('/') || victim.startsWith(WHITEOUT_PREFIX)) {
    throw new UnsafeArchiveError(
      `${where}: whiteout "${path}" names no deletable entry (victim "${victim}")`,
      'a whiteout must be .wh.NAME for one plain NAME, or .wh..wh..opq; the archive is refused',
    );
  }
  return { kind: 'delete', victim: dir ? `${dir}/${victim}` : victim };
}
