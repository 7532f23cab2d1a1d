import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../src/oci/digest.js';
import { writeTar, type WriteEntry } from '../src/oci/tar/writer.js';
import { ok, run, slipway } from './helpers/cli.js';
import { fileEntry, header, tarOf, writeImage } from './helpers/images.js';
import { tempDir } from './helpers/tmp.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { startDockerd } from './helpers/dockerd.js';

/** A tar as classic `docker save` wrote it: <id>/layer.tar, a duplicate layer as a symlink, manifest.json. */
async function legacyArchive(file: string): Promise<void> {
  const layer1 = await tarOf([{ header: header('etc', 'dir') }, fileEntry('etc/os-release', 'ID=legacy\n')]);
  const layer2 = await tarOf([fileEntry('app.txt', 'from the second layer\n')]);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: [digestOf(layer1), digestOf(layer2), digestOf(layer1)] },
    }),
  );
  const cfgName = `${digestOf(config).slice(7)}.json`;
  const id1 = 'a'.repeat(64);
  const id2 = 'b'.repeat(64);
  const id3 = 'c'.repeat(64);
  const manifest = JSON.stringify([{ Config: cfgName, RepoTags: ['example/legacy:1'], Layers: [`${id1}/layer.tar`, `${id2}/layer.tar`, `${id3}/layer.tar`] }]);
  const entries: WriteEntry[] = [
    { header: header(id1, 'dir') },
    fileEntry(`${id1}/VERSION`, '1.0'),
    fileEntry(`${id1}/layer.tar`, layer1),
    { header: header(id2, 'dir') },
    fileEntry(`${id2}/layer.tar`, layer2),
    { header: header(id3, 'dir') },
    { header: header(`${id3}/layer.tar`, 'symlink', { linkTarget: `../${id1}/layer.tar` }) },
    fileEntry(cfgName, config),
    fileEntry('manifest.json', manifest),
    fileEntry('repositories', JSON.stringify({ 'example/legacy': { '1': id3 } })),
  ];
  await pipeline(Readable.from(writeTar(entries)), createWriteStream(file));
}

describe('docker-archive transport', () => {
  it('reads a legacy docker save tar (symlinked duplicate layers included)', async () => {
    const work = await tempDir();
    const home = await tempDir();
    const file = join(work, 'legacy.tar');
    await legacyArchive(file);
    const r = JSON.parse((await ok(slipway(home, ['--json', 'image', 'copy', `docker-archive:${file}:example/legacy:1`, 'legacy:1']))).stdout) as { blobs: unknown[] };
    expect(r.blobs).toHaveLength(3); // config + two distinct layers
    const root = join(work, 'root');
    await ok(slipway(home, ['image', 'unpack', 'legacy:1', root]));
    expect(await readFile(join(root, 'etc/os-release'), 'utf8')).toBe('ID=legacy\n');
    expect(await readFile(join(root, 'app.txt'), 'utf8')).toBe('from the second layer\n');
    const wrongName = await slipway(home, ['image', 'copy', `docker-archive:${file}:example/other:1`, 'x:1']);
    expect(wrongName.code).toBe(1);
    expect(wrongName.stderr).toMatch(/no image docker.io\/example\/other:1[\s\S]*example\/legacy:1/);
  });

  it('writes dual-format archives that read back with the same digest', async () => {
    const work = await tempDir();
    const home = await tempDir();
    const src = join(work, 'src');
    const img = await writeImage(src, 'v1', [await tarOf([fileEntry('hello', 'dual')])]);
    const file = join(work, 'out.tar');
    await ok(slipway(home, ['image', 'copy', `oci:${src}:v1`, `docker-archive:${file}:example/dual:2`]));
    const manifest = JSON.parse((await ok(run('tar', ['-xOf', file, 'manifest.json']))).stdout) as { RepoTags: string[]; Layers: string[]; Config: string }[];
    expect(manifest[0]!.RepoTags).toEqual(['example/dual:2']);
    expect(manifest[0]!.Config).toBe(`blobs/sha256/${img.config.digest.slice(7)}`);
    const back = JSON.parse((await ok(slipway(home, ['--json', 'image', 'copy', `docker-archive:${file}`, 'dual:2']))).stdout) as { digest: string };
    expect(back.digest).toBe(img.manifest.digest);
    // An archive that fails half-way never appears under its name.
    const partial = join(work, 'never.tar');
    const fail = await slipway(home, ['image', 'copy', `oci:${join(work, 'missing')}:v1`, `docker-archive:${partial}`]);
    expect(fail.code).toBe(1);
    await expect(readFile(partial)).rejects.toThrow(/ENOENT/);
  });

  it('writes archives that classic `docker load` (dockerd 20.10) loads and runs, and reads what `docker save` writes back to the same config', async () => {
    const work = await tempDir();
    const home = await tempDir();
    const root = await busyboxRootfs();
    await writeFile(join(root, 'hello'), 'loaded by docker\n');
    const file = join(work, 'dual.tar');
    await ok(slipway(home, ['image', 'copy', `dir:${root}`, `docker-archive:${file}:example/dual:3`]));
    const made = JSON.parse((await ok(slipway(home, ['image', 'inspect', '--raw', `docker-archive:${file}`]))).stdout) as { config: { digest: string }; layers: unknown[] };

    const dockerd = await startDockerd();
    try {
      expect((await ok(dockerd.docker(['load', '-i', file]))).stdout).toContain('Loaded image: example/dual:3');
      const [info] = JSON.parse((await ok(dockerd.docker(['image', 'inspect', 'example/dual:3']))).stdout) as { Id: string; RootFS: { Layers: string[] } }[];
      // Docker's image ID is the config's digest: the same bytes Slipway wrote.
      expect(info!.Id).toBe(made.config.digest);
      expect(info!.RootFS.Layers).toHaveLength(made.layers.length);
      // The layers really unpacked: a container of the image sees the file (no network, no privileges).
      const said = await ok(dockerd.docker(['run', '--rm', '--network', 'none', '--cap-drop', 'ALL', 'example/dual:3', '/bin/cat', '/hello']));
      expect(said.stdout).toBe('loaded by docker\n');

      // And back: docker save writes its own (legacy) layout, which Slipway reads to the same config.
      const saved = join(work, 'saved.tar');
      await ok(dockerd.docker(['save', '-o', saved, 'example/dual:3']));
      const back = JSON.parse((await ok(slipway(home, ['image', 'inspect', '--raw', `docker-archive:${saved}`]))).stdout) as { config: { digest: string } };
      expect(back.config.digest).toBe(made.config.digest);
    } finally {
      await dockerd.stop();
    }
  }, 180_000);
});

