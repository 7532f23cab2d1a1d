/**
 * A config's rootfs.diff_ids against its layers: each must be the digest of that layer's
 * uncompressed tar, one per layer. Checked wherever an image enters the store or is judged, from
 * digests taken while the layers already stream (never by reading a layer again): a claimed
 * diff_id is what `base.allowed` and rebase trust, so a wrong one would let an image pass as
 * something it is not.
 */
import { IntegrityError } from '../errors.js';

export function verifyDiffIds(where: string, layers: readonly { digest: string }[], claimed: readonly string[], actual: readonly string[]): void {
  if (claimed.length !== layers.length) {
    throw new IntegrityError(
      `${where}: the config lists ${claimed.length} diff_ids for ${layers.length} layers`,
      'rootfs.diff_ids must name each layer\'s uncompressed digest, in order; rebuild the image',
    );
  }
  layers.forEach((l, i) => {
    if (actual[i] !== claimed[i]) {
      throw new IntegrityError(
        `${where}: layer ${i} (${l.digest}) uncompresses to ${actual[i]}, but the config's rootfs.diff_ids[${i}] says ${claimed[i]}`,
        'the config does not describe its layers; rebuild the image (or push it again) from a tool that writes correct diff_ids',
      );
    }
  });
}
