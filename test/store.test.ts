import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../src/oci/digest.js';
import { MediaType } from '../src/oci/mediatypes.js';
import { encodeJson } from '../src/oci/types.js';
import { OciLayout } from '../src/store/layout.js';
import { ok, run, slipway } from './helpers/cli.js';
import { fileEntry, tarOf, writeImage } from './helpers/images.js';
import { listFiles } from './helpers/rootfs.js';
import { tempDir } from './helpers/tmp.js';

describe('local store', () => {
  it('writes a blob only after its digest verifies, for sha256 and sha512', async () => {
    const dir = join(await tempDir(), 'layout');
    const layout = await OciLayout.open(dir, { create: true });
    const data = randomBytes(10_000);
    for (const alg of ['sha256', 'sha512'] as const) {
      const d = digestOf(data, alg);
      await layout.writeBlob(Readable.from([data]), { digest: d, size: data.length });
      expect((await readFile(layout.blobPath(d))).equals(data)).toBe(true);
    }
    const before = await listFiles(dir);
    const wrong = digestOf('something else');
    await expect(layout.writeBlob(Readable.from([data]), { digest: wrong, size: data.length })).rejects.toThrow(/content digest is sha256:.*expected/);
    await expect(layout.writeBlob(Readable.from([data]), { digest: digestOf(data), size: 5 })).rejects.toThrow(/more than the 5 bytes/);
    expect(await listFiles(dir)).toEqual(before);
  });

  it('keeps index.json whole under concurrent writers and gc', async () => {
    const home = await tempDir();
    const src = join(await tempDir(), 'src');
    for (let i = 0; i < 6; i++) await writeImage(src, `t${i}`, [await tarOf([fileEntry(`f${i}`, randomBytes(200_000))])]);
    const jobs = [];
    for (let i = 0; i < 6; i++) jobs.push(slipway(home, ['image', 'copy', `oci:${src}:t${i}`, `app:${i}`]));
    for (let i = 0; i < 3; i++) jobs.push(slipway(home, ['image', 'gc']));
    const results = await Promise.all(jobs);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const ls = JSON.parse((await ok(slipway(home, ['--json', 'image', 'ls']))).stdout) as { tag: string }[];
    expect(ls.map((x) => x.tag).sort()).toEqual(['0', '1', '2', '3', '4', '5']);
    // Every image is complete: skopeo can read each one's blobs.
    for (let i = 0; i < 6; i++) {
      const out = join(await tempDir(), `o${i}`);
      await ok(run('skopeo', ['copy', `oci:${join(home, 'images')}:app:${i}`, `oci:${out}:x`]));
    }
    const index = JSON.parse(await readFile(join(home, 'images', 'index.json'), 'utf8')) as { manifests: unknown[] };
    expect(index.manifests).toHaveLength(6);
  });

  it('gc removes only unreferenced blobs; --dry-run removes nothing', async () => {
    const home = await tempDir();
    const src = join(await tempDir(), 'src');
    await writeImage(src, 'a', [await tarOf([fileEntry('shared', 'same bytes')]), await tarOf([fileEntry('a', 'only in a')])]);
    await writeImage(src, 'b', [await tarOf([fileEntry('shared', 'same bytes')]), await tarOf([fileEntry('b', 'only in b')])]);
    await ok(slipway(home, ['image', 'copy', `oci:${src}:a`, 'a:1']));
    await ok(slipway(home, ['image', 'copy', `oci:${src}:b`, 'b:1']));
    await ok(slipway(home, ['image', 'rm', 'a:1']));
    const before = await listFiles(join(home, 'images'));
    const dry = JSON.parse((await ok(slipway(home, ['--json', 'image', 'gc', '--dry-run']))).stdout) as { removed: string[] };
    expect(dry.removed).toHaveLength(3); // a's manifest, config and own layer; the shared layer stays
    expect(await listFiles(join(home, 'images'))).toEqual(before);
    const real = JSON.parse((await ok(slipway(home, ['--json', 'image', 'gc']))).stdout) as { removed: string[] };
    expect(real.removed.sort()).toEqual(dry.removed.sort());
    await ok(run('skopeo', ['inspect', `oci:${join(home, 'images')}:b:1`]));
    const bad = await slipway(home, ['image', 'copy', 'a:1', `oci:${join(home, 'x')}:y`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no image "a:1"/);
  });
});

describe('multi-platform indexes', () => {
  async function makeIndex(dir: string): Promise<{ index: string; amd64: string; arm64: string }> {
    const amd = await writeImage(dir, 'amd', [await tarOf([fileEntry('arch', 'amd64')])]);
    const arm = await writeImage(dir, 'arm', [await tarOf([fileEntry('arch', 'arm64')])]);
    const index = encodeJson({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
        { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    });
    const layout = await OciLayout.open(dir, { create: false });
    const d = digestOf(index);
    await layout.writeBlob(Readable.from([index]), { digest: d, size: index.length });
    await layout.tag({ mediaType: MediaType.ociIndex, digest: d, size: index.length }, 'multi');
    return { index: d, amd64: amd.manifest.digest, arm64: arm.manifest.digest };
  }

  it('copies a whole index, or one platform of it (aarch64 = arm64/v8)', async () => {
    const home = await tempDir();
    const dir = join(await tempDir(), 'src');
    const want = await makeIndex(dir);
    const all = JSON.parse((await ok(slipway(home, ['--json', 'image', 'copy', `oci:${dir}:multi`, 'multi:all']))).stdout) as { digest: string };
    expect(all.digest).toBe(want.index);
    const one = JSON.parse((await ok(slipway(home, ['--json', 'image', 'copy', '--platform', 'linux/aarch64', 'multi:all', 'multi:arm']))).stdout) as { digest: string };
    expect(one.digest).toBe(want.arm64);
    const info = JSON.parse((await ok(slipway(home, ['--json', 'image', 'inspect', '--platform', 'linux/arm64', 'multi:all']))).stdout) as { platforms: string[]; digest: string };
    expect(info.platforms).toEqual(['linux/amd64', 'linux/arm64/v8']);
    const none = await slipway(home, ['image', 'copy', '--platform', 'linux/s390x', 'multi:all', 'multi:s390x']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no image for linux\/s390x[\s\S]*platforms here: linux\/amd64, linux\/arm64\/v8/);
  });
});
