import { execFileSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { WriteEntry } from '../src/oci/tar/writer.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/oci/digest.js';
import { MediaType } from '../src/oci/mediatypes.js';
import { encodeJson } from '../src/oci/types.js';
import { SLUG_ARTIFACT_TYPE, SLUG_CONFIG_TYPE } from '../src/slug/slug.js';
import { OciLayout } from '../src/store/layout.js';
import { ok, slipway } from './helpers/cli.js';
import { fileEntry, header, tarOf, writeImage } from './helpers/images.js';
import { listFiles } from './helpers/rootfs.js';
import { block, dir, file, member, pax, tar } from './helpers/tar-craft.js';
import { tempDir } from './helpers/tmp.js';

/**
 * Issue 14, items 1, 2, 3 and 5, as a hostile tenant would try them through the CLI: each input
 * is refused (or judged as what extractors will see) by `check`, `image copy`, `image unpack` and
 * `slug pull` alike, and a refusal leaves the store byte for byte as it was.
 */
const SETUID_ROOT = { mode: 0o4755, uid: 0, gid: 0 };

/** A dir header whose size field covers a setuid-root file: Go, GNU tar and Python read the file, old Slipway skipped it. */
const hiddenSetuid = (): Buffer => {
  const evil = file('usr/bin/evil', 'x', SETUID_ROOT);
  return tar(dir('usr'), dir('usr/bin'), block({ name: 'opt/', flag: '5', size: evil.length }), evil);
};

describe('issue 14: what Slipway judges is what extractors see', () => {
  let home: string;
  let store: string;
  let policy: string;

  beforeAll(async () => {
    home = await tempDir();
    store = join(home, 'images');
    policy = join(home, 'no-setuid.yaml');
    await writeFile(policy, 'apiVersion: slipway/v1\nkind: Restrictions\nmetadata: {name: no-setuid-root}\nrules:\n  files.setuid: {severity: deny, rootOwnedOnly: true}\n');
    const good = join(await tempDir(), 'good');
    await writeImage(good, 'good', [await tarOf([fileEntry('hello', 'world')])]);
    await ok(slipway(home, ['image', 'copy', `oci:${good}:good`, 'good:1']));
  });

  async function image(layers: Buffer[], opts: Parameters<typeof writeImage>[3] = {}): Promise<string> {
    const dir = join(await tempDir(), 'img');
    await writeImage(dir, 'x', layers, opts);
    return `oci:${dir}:x`;
  }

  async function copyRefused(ref: string, message: RegExp): Promise<void> {
    const before = await listFiles(store);
    const r = await slipway(home, ['image', 'copy', ref, 'bad:1']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(await listFiles(store), r.stderr).toEqual(before);
  }

  async function checkRefused(ref: string, message: RegExp): Promise<void> {
    // check's contract: 0 allow, 1 deny, 2 could not judge (the image is refused).
    const r = await slipway(home, ['check', ref, '-r', policy, '--format', 'json']);
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  }

  it('1: a directory header whose size hides a setuid-root file is refused by check, copy and unpack alike', async () => {
    const ref = await image([hiddenSetuid()]);
    const why = /entry "opt\/": a dir header with a size of 1024 bytes/;
    await checkRefused(ref, why);
    await copyRefused(ref, why);
    const out = join(await tempDir(), 'rootfs');
    const r = await slipway(home, ['image', 'unpack', ref, out]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(why);
  });

  it('1: two PAX headers for one entry (Go keeps the last, Slipway merged them) are refused', async () => {
    const ref = await image([tar(pax([['uid', '0']]), pax([['uid', '1000']]), file('run', 'x', { mode: 0o4755, uid: 1000 }))]);
    const why = /two 'x' extended headers for one entry/;
    await checkRefused(ref, why);
    await copyRefused(ref, why);
  });

  it('a world-writable or set-id archive root ("./", which umoci applies to the rootfs and the judge skips) is refused', async () => {
    for (const mode of [0o777, 0o2755]) {
      const ref = await image([tar(dir('.', { mode }), file('f', 'x'))]);
      await checkRefused(ref, /the archive root has mode/);
      await copyRefused(ref, /the archive root has mode/);
    }
    // A sticky world-writable root, like /tmp, and the usual 0755 are fine.
    for (const mode of [0o1777, 0o755]) await ok(slipway(home, ['image', 'copy', await image([tar(dir('.', { mode }), file('f', 'x'))]), `root-${mode.toString(8)}:1`]));
  });

  it('2: a whiteout of "." or ".." is refused, and unpack leaves the parent directory intact', async () => {
    for (const name of ['.wh..', '.wh...', 'sub/.wh..', 'sub/.wh...']) {
      const ref = await image([tar(dir('sub'), file('sub/f', 'f')), tar(...(name.startsWith('sub/') ? [dir('sub')] : []), file(name, ''))]);
      const parent = await tempDir();
      await writeFile(join(parent, 'precious'), 'keep me');
      const r = await slipway(home, ['image', 'unpack', ref, join(parent, 'rootfs')]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/names no deletable entry/);
      expect(await readdir(parent), name).toEqual(['precious']);
      await copyRefused(ref, /names no deletable entry/);
    }
  });

  it('3: a hardlink to a setuid-root file, the original whited out above, is never allow', async () => {
    // The link's own header says 0644: Python and Docker would apply it, Slipway and GNU tar keep the target's 4755.
    const disagreeing = await image([
      tar(dir('usr'), file('usr/evil', 'x', SETUID_ROOT), member({ name: 'usr/innocent', flag: '1', linkname: 'usr/evil', mode: 0o644 })),
      tar(dir('usr'), file('usr/.wh.evil', '')),
    ]);
    await checkRefused(disagreeing, /entry "usr\/innocent": hardlink says mode 0644, owner 0:0 but its target "usr\/evil" has mode 4755/);
    await copyRefused(disagreeing, /hardlink says mode 0644/);

    // Written as tar writes it (the link repeats its target's mode): the link is judged as the setuid file it is.
    const honest = await image([
      tar(dir('usr'), file('usr/evil', 'x', SETUID_ROOT), member({ name: 'usr/innocent', flag: '1', linkname: 'usr/evil', ...SETUID_ROOT })),
      tar(dir('usr'), file('usr/.wh.evil', '')),
    ]);
    const r = await slipway(home, ['check', honest, '-r', policy, '--format', 'json']);
    expect(r.code, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as { verdict: string; findings: { rule: string; severity: string; path?: string }[] };
    expect(report.verdict).toBe('deny');
    expect(report.findings).toContainEqual(expect.objectContaining({ rule: 'files.setuid', severity: 'deny', path: 'usr/innocent' }));
  });

  describe('tar reader differentials that check used to allow while umoci extracted something else', () => {
    const STAR = [[476, Buffer.from('00000000000\x0000000000000\x00')], [508, Buffer.from('tar\0')]] as [number, Buffer][];
    const latin1 = (s: string): Buffer => Buffer.from(`${s}\0`, 'latin1');
    const A = 'a'.repeat(131);
    const dirEntry = (path: string): WriteEntry => ({ header: header(path, 'dir'), body: () => Readable.from([]) });
    const cases: [string, () => Promise<Buffer[]>, RegExp][] = [
      [
        'a star header whiting out another path than Go does (a setuid-root file survives in umoci)',
        async () => [await tarOf([dirEntry(A), dirEntry(`${A}00000000000`), fileEntry(`${A}00000000000/su`, 'x', SETUID_ROOT)]), tar(file('.wh.su', '', { prefix: A, patch: STAR }))],
        /entry "a{131}00000000000\/\.wh\.su" \(header at byte 0\): a star header/,
      ],
      [
        'a star header that is /etc/passwd with app as uid 0 for Go',
        async () => [tar(dir('etc'), file('etc/passwd', 'app:x:1000:1000::/app:/bin/sh\n'), file('etc/passwd', 'app:x:0:0::/app:/bin/sh\n', { prefix: `${'./'.repeat(65)}.`, patch: STAR }))],
        /a star header \(trailer "tar" at byte 508\)/,
      ],
      [
        'a whiteout of su\\xfe hiding a setuid-root su\\xff',
        async () => [tar(dir('bin'), file('bin/su', 'x', { ...SETUID_ROOT, patch: [[0, latin1('bin/su\xff')]] })), tar(dir('bin'), file('bin/.wh.su', '', { patch: [[0, latin1('bin/.wh.su\xfe')]] }))],
        /entry "bin\/su\uFFFD" \(header at byte \d+\): a name that is not valid UTF-8/,
      ],
      [
        'a file bin\\xfe replacing a directory bin\\xff with a setuid-root file for Slipway only',
        async () => [tar(dir('bin', { patch: [[0, latin1('bin\xff/')]] }), file('bin/su', 'x', { ...SETUID_ROOT, patch: [[0, latin1('bin\xff/su')]] })), tar(file('bin', 'x', { patch: [[0, latin1('bin\xfe')]] }))],
        /a name that is not valid UTF-8/,
      ],
      [
        'an empty GNU long name before a world-writable etc/',
        async () => [tar(member({ name: '././@LongLink', flag: 'L', magic: 'gnu' }, '\0'), dir('etc', { magic: 'gnu', mode: 0o777 }))],
        /entry "\.\/\.\/@LongLink" \(header at byte 0\): an empty GNU long name/,
      ],
    ];
    for (const [name, layers, why] of cases) {
      it(`is refused: ${name}`, async () => {
        const ref = await image(await layers());
        await checkRefused(ref, why);
        await copyRefused(ref, why);
      });
    }
  });

  it('a layer whose bytes are another compression than its media type says is refused by copy, check and unpack; a zstd skippable frame is zstd', async () => {
    const layer = tar(dir('usr'), file('usr/su', 'x', SETUID_ROOT));
    const zstd = (b: Buffer): Buffer => execFileSync('zstd', ['-q', '-c'], { input: b });
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]), Buffer.from('skip'), zstd(layer)]);
    const mismatched: [Buffer, string, RegExp][] = [
      [gzipSync(layer), MediaType.ociLayerZstd, /the media type says zstd data, the bytes are gzip data/],
      [zstd(layer), MediaType.ociLayerGzip, /the media type says gzip data, the bytes are zstd data/],
      [skippable, MediaType.dockerLayerGzip, /the media type says gzip data, the bytes are zstd data/],
      [layer, MediaType.ociLayerGzip, /the media type says gzip data, the bytes are an uncompressed tar/],
      [gzipSync(layer), MediaType.ociLayer, /the media type says an uncompressed tar, the bytes are gzip data/],
    ];
    for (const [blob, mediaType, why] of mismatched) {
      const at = join(await tempDir(), 'img');
      await writeImage(at, 'x', [blob], { raw: true, mediaTypes: [mediaType], diffIds: [digestOf(layer)] });
      await copyRefused(`oci:${at}:x`, why);
      // check too, and from its facts cache when the same blob comes back under another media type.
      await checkRefused(`oci:${at}:x`, why);
      const r = await slipway(home, ['image', 'unpack', `oci:${at}:x`, join(await tempDir(), 'rootfs')]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(why);
    }
    const at = join(await tempDir(), 'img');
    await writeImage(at, 'x', [skippable], { raw: true, mediaTypes: [MediaType.ociLayerZstd], diffIds: [digestOf(layer)] });
    await ok(slipway(home, ['image', 'copy', `oci:${at}:x`, 'skippable:1']));
  });

  it('5: a wrong or missing config diff_id is refused by copy and check, and the store stays as it was', async () => {
    const layers = [await tarOf([fileEntry('a', 'a')]), await tarOf([fileEntry('b', 'b')])];
    const wrong = await image(layers, { diffIds: [digestOf(layers[0]!), digestOf(layers[0]!)] });
    await copyRefused(wrong, /layer 1 \(sha256:[0-9a-f]+\) uncompresses to sha256:[0-9a-f]+, but the config's rootfs.diff_ids\[1\] says/);
    await checkRefused(wrong, /rootfs.diff_ids\[1\] says/);
    const missing = await image(layers, { diffIds: [digestOf(layers[0]!)] });
    await copyRefused(missing, /the config lists 1 diff_ids for 2 layers/);
    await checkRefused(missing, /the config lists 1 diff_ids for 2 layers/);
  });

  it('5: a diff_id is checked even when the layer is already in the store', async () => {
    const layer = await tarOf([fileEntry('shared', 'already here')]);
    await ok(slipway(home, ['image', 'copy', await image([layer]), 'shared:1']));
    const other = await tarOf([fileEntry('other', 'o')]);
    await copyRefused(await image([layer], { diffIds: [digestOf(other)] }), /rootfs.diff_ids\[0\] says/);
  });

  it('5: slug pull refuses a slug whose metadata claims another diff_id, leaving the store as it was', async () => {
    const dir = join(await tempDir(), 'slug');
    const layout = await OciLayout.open(dir, { create: true });
    const layer = gzipSync(await tarOf([fileEntry('app/web', 'x')]));
    const digest = digestOf(layer);
    await layout.writeBlob(Readable.from([layer]), { digest, size: layer.length });
    const meta = encodeJson({
      apiVersion: 'slipway/v1',
      kind: 'Slug',
      processTypes: { web: './web' },
      buildpacks: [],
      stack: { name: 'heroku-24', digest: digestOf('no such stack') },
      size: { uncompressed: 2048, compressed: layer.length },
      layer: { digest, diffId: digestOf('not the layer') },
    });
    const config = { mediaType: SLUG_CONFIG_TYPE, digest: digestOf(meta), size: meta.length };
    await layout.writeBlob(Readable.from([meta]), { digest: config.digest, size: meta.length });
    const m = encodeJson({ schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: SLUG_ARTIFACT_TYPE, config, layers: [{ mediaType: MediaType.ociLayerGzip, digest, size: layer.length }] });
    const md = { mediaType: MediaType.ociManifest, digest: digestOf(m), size: m.length };
    await layout.writeBlob(Readable.from([m]), { digest: md.digest, size: m.length });
    await layout.tag(md, 'slug');
    await mkdir(store, { recursive: true });
    const before = await listFiles(store);
    const r = await slipway(home, ['slug', 'pull', `oci:${dir}:slug`, '-a', 'victim']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/rootfs.diff_ids\[0\] says sha256:/);
    expect(await listFiles(store)).toEqual(before);
  });
});
