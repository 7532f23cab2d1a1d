/**
 * A release's slug on this host: unpacked once (verified by digest and diff_id as it streams),
 * owned by the app's uid range when dynos run in a user namespace, renamed into place when whole,
 * then shared read-only by every dyno of that release as the lower layer above the stack.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { imageStorePath } from '../home.js';
import { decompress } from '../oci/compression.js';
import { Hasher, hexOf, verifyResult, VerifyingStream, type Digest } from '../oci/digest.js';
import { extractLayer } from '../oci/tar/extract.js';
import { OciLayout } from '../store/layout.js';
import { hashing } from '../unpack.js';
import { verifySlugManifest } from './slug.js';

/** Unpacks in flight in this process: dynos starting together share one unpack. */
const inFlight = new Map<string, Promise<string>>();

/** The directory holding `app/` for this slug, owners shifted by `idShift` (0: as in the slug). */
export function unpackedSlug(home: string, slug: Digest, idShift: number): Promise<string> {
  const dir = join(home, 'slugs', `${hexOf(slug)}-${idShift}`);
  if (existsSync(dir)) return Promise.resolve(dir);
  let p = inFlight.get(dir);
  if (!p) {
    p = unpack(home, slug, idShift, dir).finally(() => inFlight.delete(dir));
    inFlight.set(dir, p);
  }
  return p;
}

async function unpack(home: string, slug: Digest, idShift: number, dir: string): Promise<string> {
  const layout = await OciLayout.open(imageStorePath(home), { create: false });
  const meta = await verifySlugManifest(layout, slug, `slug ${slug}`);
  const tmp = join(home, 'slugs', `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true, mode: 0o755 });
  try {
    const where = `slug ${slug}`;
    const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: meta.layer.digest, size: meta.size.compressed };
    const data = layout.openBlob(meta.layer.digest);
    const verify = new VerifyingStream(layer.digest, layer.size, where);
    verify.on('error', () => undefined); // reported through the reader
    data.on('error', (err) => verify.destroy(err));
    const diff = new Hasher();
    await extractLayer(hashing(decompress(data.pipe(verify), where), diff), tmp, where, { preserveOwners: true, idShift, devices: 'skip' });
    const bad = verifyResult(diff, meta.layer.diffId, undefined, `${where}: uncompressed content (diff_id)`);
    if (bad) throw bad;
    try {
      await rename(tmp, dir);
    } catch (err) {
      if (!existsSync(dir)) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}
