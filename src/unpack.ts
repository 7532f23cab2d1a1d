import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { SlipwayError } from './errors.js';
import { decompress } from './oci/compression.js';
import { layerCompression } from './oci/mediatypes.js';
import { Hasher, verifyResult, VerifyingStream } from './oci/digest.js';
import type { Platform } from './oci/platform.js';
import { extractLayer, type ExtractOptions, type ExtractStats } from './oci/tar/extract.js';
import { parseImageConfig } from './oci/types.js';
import { readSmallBlob, resolvePlatform } from './inspect.js';
import { tempName } from './store/atomic.js';
import type { ImageSource } from './transport/types.js';

export interface UnpackResult {
  layers: number;
  stats: ExtractStats;
}

/** Tees an async stream into a hasher, so the diff_id is checked in the same pass as extraction. */
export async function* hashing(source: AsyncIterable<Buffer>, hasher: Hasher): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    hasher.update(chunk);
    yield chunk;
  }
}

/**
 * Unpacks an image's root filesystem into `target` (which must not exist): every layer
 * verified by digest and diff_id while it is extracted, whiteouts applied, into a temp
 * sibling that is renamed into place only when all layers checked out.
 */
export async function unpackImage(src: ImageSource, target: string, opts: ExtractOptions & { platform?: Platform } = {}): Promise<UnpackResult> {
  if (await stat(target).then(() => true, () => false)) {
    throw new SlipwayError(`${target} already exists`, { hint: 'unpack into a new directory' });
  }
  const m = await resolvePlatform(src, await src.getManifest(), opts.platform);
  const config = parseImageConfig(await readSmallBlob(src, m.manifest.config), `${src.name}: config`);
  if (config.rootfs.diff_ids.length !== m.manifest.layers.length) {
    throw new SlipwayError(`${src.name}: ${m.manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids in the config`);
  }
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempName(dirname(target), basename(target));
  await mkdir(tmp, { mode: 0o755 });
  const total: ExtractStats = { entries: 0, bytes: 0, whiteouts: 0, skipped: [] };
  try {
    for (const [i, layer] of m.manifest.layers.entries()) {
      const where = `${src.name}: layer ${i + 1} (${layer.digest})`;
      const data = await src.getBlob(layer);
      const verify = new VerifyingStream(layer.digest, layer.size, where);
      verify.on('error', () => undefined); // reported through the reader below, never unhandled
      data.on('error', (err) => verify.destroy(err));
      const diff = new Hasher();
      const stats = await extractLayer(hashing(decompress(data.pipe(verify), where, { declared: layerCompression(layer.mediaType) }), diff), tmp, where, opts);
      const bad = verifyResult(diff, config.rootfs.diff_ids[i]!, undefined, `${where}: uncompressed content (diff_id)`);
      if (bad) throw bad;
      total.entries += stats.entries;
      total.bytes += stats.bytes;
      total.whiteouts += stats.whiteouts;
      total.skipped.push(...stats.skipped);
    }
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return { layers: m.manifest.layers.length, stats: total };
}
