/**
 * A release's slug on this host: unpacked once (verified by digest and diff_id as it streams),
 * owned by the app's uid range when dynos run in a user namespace, renamed into place when whole,
 * then shared read-only by every dyno of that release as the lower layer above the stack.
 */
import { join } from 'node:path';
import { imageStorePath } from '../home.js';
import { decompress } from '../oci/compression.js';
import { Hasher, hexOf, verifyResult, VerifyingStream, type Digest } from '../oci/digest.js';
import { extractLayer } from '../oci/tar/extract.js';
import { directoryOnce } from '../store/atomic.js';
import { OciLayout } from '../store/layout.js';
import { hashing } from '../unpack.js';
import { verifySlugManifest } from './slug.js';

/** Where a slug is unpacked with owners shifted by `idShift`. */
export function unpackedSlugDir(home: string, slug: Digest, idShift: number): string {
  return join(home, 'slugs', `${hexOf(slug)}-${idShift}`);
}

/** The directory holding `app/` for this slug, owners shifted by `idShift` (0: as in the slug). */
export function unpackedSlug(home: string, slug: Digest, idShift: number): Promise<string> {
  return directoryOnce(unpackedSlugDir(home, slug, idShift), async (tmp) => {
    const layout = await OciLayout.open(imageStorePath(home), { create: false });
    const meta = await verifySlugManifest(layout, slug, `slug ${slug}`);
    const where = `slug ${slug}`;
    const data = layout.openBlob(meta.layer.digest);
    const verify = new VerifyingStream(meta.layer.digest, meta.size.compressed, where);
    verify.on('error', () => undefined); // reported through the reader
    data.on('error', (err) => verify.destroy(err));
    const diff = new Hasher();
    await extractLayer(hashing(decompress(data.pipe(verify), where), diff), tmp, where, { preserveOwners: true, idShift, devices: 'skip' });
    const bad = verifyResult(diff, meta.layer.diffId, undefined, `${where}: uncompressed content (diff_id)`);
    if (bad) throw bad;
  });
}
