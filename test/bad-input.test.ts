import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { MediaType } from '../src/oci/mediatypes.js';
import { encodeHeader } from '../src/oci/tar/header.js';
import { OciLayout } from '../src/store/layout.js';
import { ok, slipway } from './helpers/cli.js';
import { fileEntry, header, tarOf, writeImage } from './helpers/images.js';
import { listFiles } from './helpers/rootfs.js';
import { tempDir } from './helpers/tmp.js';

/**
 * Every bad input is refused with exit 1, a message naming the offender, and the
 * local store listed byte for byte the same before and after.
 */
describe('bad input leaves the store as it was', () => {
  let home: string;
  let store: string;

  beforeAll(async () => {
    home = await tempDir();
    store = join(home, 'images');
    // A good image first, so the store is not empty and must stay intact.
    const src = join(await tempDir(), 'good');
    await writeImage(src, 'good', [await tarOf([fileEntry('hello', 'world')])]);
    await ok(slipway(home, ['image', 'copy', `oci:${src}:good`, 'good:1']));
  });

  async function refused(srcRef: string, message: RegExp): Promise<void> {
    const before = await listFiles(store);
    const r = await slipway(home, ['image', 'copy', srcRef, 'bad:1']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(await listFiles(store), r.stderr).toEqual(before);
  }

  it('a blob whose bytes do not match its digest', async () => {
    const dir = join(await tempDir(), 'img');
    const img = await writeImage(dir, 'x', [await tarOf([fileEntry('a', randomBytes(5000))])], { raw: true });
    // Swap in another well-formed layer: only the digest can tell.
    const layout = await OciLayout.open(dir, { create: false });
    const other = await tarOf([fileEntry('a', randomBytes(5000))]);
    await writeFile(layout.blobPath(img.layers[0]!.digest), other);
    await refused(`oci:${dir}:x`, new RegExp(`blob ${img.layers[0]!.digest}: content digest is sha256:[a-f0-9]+, expected`));
  });

  it('a truncated gzip layer', async () => {
    const dir = join(await tempDir(), 'img');
    const whole = gzipSync(await tarOf([fileEntry('big', randomBytes(100_000))]));
    await writeImage(dir, 'x', [whole.subarray(0, 5000)], { raw: true, mediaTypes: [MediaType.ociLayerGzip] });
    await refused(`oci:${dir}:x`, /layer sha256:[a-f0-9]+: gzip data is truncated/);
  });

  it('a manifest that names a missing blob', async () => {
    const dir = join(await tempDir(), 'img');
    const img = await writeImage(dir, 'x', [await tarOf([fileEntry('a', 'a')]), await tarOf([fileEntry('b', 'b')])]);
    const layout = await OciLayout.open(dir, { create: false });
    await rm(layout.blobPath(img.layers[1]!.digest));
    await refused(`oci:${dir}:x`, new RegExp(`blob ${img.layers[1]!.digest} is missing`));
  });

  it('a tar with ../../etc/passwd', async () => {
    const dir = join(await tempDir(), 'img');
    await writeImage(dir, 'x', [await tarOf([fileEntry('ok', 'fine'), fileEntry('../../etc/passwd', 'root::0:0::/:/bin/sh\n')])]);
    await refused(`oci:${dir}:x`, /entry "\.\.\/\.\.\/etc\/passwd" contains "\.\." and would escape/);
  });

  it('a symlink pointing out and a file written through it', async () => {
    const dir = join(await tempDir(), 'img');
    await writeImage(dir, 'x', [await tarOf([{ header: header('etc', 'symlink', { linkTarget: '/etc' }) }, fileEntry('etc/cron.d/evil', '* * * * * root sh')])]);
    await refused(`oci:${dir}:x`, /entry "etc\/cron.d\/evil": would be written through the symlink "etc"/);
  });

  it('a layer expanding to 10 GB (decompression bomb)', async () => {
    const dir = join(await tempDir(), 'img');
    const zeros = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    const bomb = Buffer.concat([gzipSync(encodeHeader(header('bomb', 'file', { size: 10 * 1024 ** 3 }))), ...Array.from({ length: 160 }, () => zeros)]);
    await writeImage(dir, 'x', [bomb], { raw: true, mediaTypes: [MediaType.ociLayerGzip] });
    await refused(`oci:${dir}:x`, /entry "bomb": archive expands beyond the 8589934592-byte limit/);
  });

  it('the good image is still whole', async () => {
    const r = await ok(slipway(home, ['--json', 'image', 'ls']));
    expect(JSON.parse(r.stdout)).toEqual([expect.objectContaining({ name: 'good', tag: '1' })]);
    const out = join(await tempDir(), 'rootfs');
    await ok(slipway(home, ['image', 'unpack', 'good:1', out]));
    expect(await readFile(join(out, 'hello'), 'utf8')).toBe('world');
  });
});
