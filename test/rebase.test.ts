import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, type Digest } from '../src/oci/digest.js';
import { MediaType } from '../src/oci/mediatypes.js';
import type { ImageConfig, ImageManifest } from '../src/oci/types.js';
import { rebase, type ImageParts } from '../src/release/rebase.js';
import { ok, run, slipway } from './helpers/cli.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { startRegistry, type Registry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';
import { fileEntry, tarOf, writeImage, writeIndex } from './helpers/images.js';

const d = (s: string): Digest => digestOf(s);

function img(layers: string[], opts: { arch?: string; history?: string[]; mediaType?: string; diffIds?: string[] } = {}): ImageParts {
  const config: ImageConfig = {
    architecture: opts.arch ?? 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: (opts.diffIds ?? layers).map((l) => d(`diff-${l}`)) },
    history: (opts.history ?? layers).map((h) => ({ created_by: h })),
  };
  const mediaType = opts.mediaType ?? MediaType.ociManifest;
  const layerType = mediaType === MediaType.dockerManifest ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip;
  const manifest: ImageManifest = { schemaVersion: 2, mediaType, config: { mediaType: MediaType.ociConfig, digest: d(JSON.stringify(config)), size: 10 }, layers: layers.map((l) => ({ mediaType: layerType, digest: d(l), size: l.length })) };
  return { digest: d(JSON.stringify(manifest)), mediaType, manifest, config };
}

describe('rebase, the pure function', () => {
  const oldBase = img(['base1', 'base2']);
  const newBase = img(['patched1', 'patched2', 'patched3']);
  const app = img(['base1', 'base2', 'app'], { history: ['base1', 'base2', 'app'] });

  it('splices the new base under the app layers, keeping the rest', () => {
    const r = rebase(app, oldBase, newBase, { newBaseName: 'stacks/bookworm:v2' });
    expect(r.manifest.layers.map((l) => l.digest)).toEqual([d('patched1'), d('patched2'), d('patched3'), d('app')]);
    expect(r.config.rootfs.diff_ids).toEqual([...newBase.config.rootfs.diff_ids, d('diff-app')]);
    expect(r.config.history!.map((h) => h.created_by)).toEqual(['patched1', 'patched2', 'patched3', 'app']);
    expect(r.config.config).toEqual(app.config.config);
    expect(r.manifest.annotations).toMatchObject({ 'org.opencontainers.image.base.digest': newBase.digest, 'org.opencontainers.image.base.name': 'stacks/bookworm:v2', 'io.slipway.base.layers': '3' });
    expect(r.appLayers.map((l) => l.digest)).toEqual([d('app')]);
    expect(r.digest).toBe(digestOf(r.manifestBytes));
  });

  it('keeps Docker manifests Docker: the new base layers take Docker media types', () => {
    const dockerApp = img(['base1', 'base2', 'app'], { mediaType: MediaType.dockerManifest });
    const r = rebase(dockerApp, oldBase, newBase);
    expect(r.manifest.mediaType).toBe(MediaType.dockerManifest);
    expect(new Set(r.manifest.layers.map((l) => l.mediaType))).toEqual(new Set([MediaType.dockerLayerGzip]));
    expect(r.manifest.annotations).toBeUndefined();
  });

  it('takes history re-printed by another tool as the same (umoci writes …00Z for …00.000Z), not a changed one', () => {
    const stamped = (parts: ImageParts, created: string, extra = {}): ImageParts => ({ ...parts, config: { ...parts.config, history: parts.config.history!.map((h) => ({ ...h, created, ...extra })) } });
    const base = stamped(oldBase, '1980-01-01T00:00:00.000Z', { empty_layer: false });
    expect(rebase(stamped(app, '1980-01-01T00:00:00Z'), base, newBase).appLayers.map((l) => l.digest)).toEqual([d('app')]);
    expect(() => rebase(stamped(app, '1980-01-01T00:00:01Z'), base, newBase)).toThrow(/history entry 1 differs/);
  });

  it('refuses a mismatched old base, a tampered diff_id, another platform', () => {
    expect(() => rebase(app, img(['other1', 'other2']), newBase)).toThrow(/layer 1 is sha256:.*the old base has sha256:.*not built on that base/);
    const tampered = img(['base1', 'base2', 'app'], { diffIds: ['base1', 'evil', 'app'] });
    expect(() => rebase(tampered, oldBase, newBase)).toThrow(/diff_id 2 is .* the old base has/);
    expect(() => rebase(app, oldBase, img(['p1'], { arch: 'arm64' }))).toThrow(/the new base is linux\/arm64, the image is linux\/amd64/);
  });
});

describe('rebasing exported apps in a real registry', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry({ kind: 'none' }, { logLevel: 'info' });
  });
  afterAll(async () => reg?.stop());

  it('moves three apps onto a patched stack without any app layer crossing the wire', async () => {
    const home = await tempDir();
    const v1 = await busyboxRootfs();
    await writeFile(join(v1, 'etc/stack-version'), 'v1\n');
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${v1}`]));
    const apps = ['alpha', 'beta', 'gamma'];
    const appLayers: string[] = [];
    for (const app of apps) {
      const src = await tempDir();
      await writeFile(join(src, 'Procfile'), 'web: cat /etc/stack-version\n');
      await writeFile(join(src, `${app}.txt`), `${app}\n`);
      const b = JSON.parse((await ok(slipway(home, ['--json', 'build', src, '--app', app, '--runtime', 'process']))).stdout) as { slug: { metadata: { layer: { digest: string } } } };
      appLayers.push(b.slug.metadata.layer.digest);
      await ok(slipway(home, ['-q', 'export', app, `docker://${reg.host}/apps/${app}:1`]));
    }
    const v2 = await busyboxRootfs();
    await writeFile(join(v2, 'etc/stack-version'), 'v2-patched\n');
    const s2 = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'tiny', `dir:${v2}`]))).stdout) as { digest: string; version: number };
    expect(s2.version).toBe(2);
    await ok(slipway(home, ['-q', 'image', 'copy', `oci:${join(home, 'images')}:stacks/tiny:${s2.digest.slice(7)}`, `docker://${reg.host}/stacks/tiny:v2`]));
    const before = await readFile(reg.logFile, 'utf8');
    const oldDigests: string[] = [];
    for (const app of apps) {
      oldDigests.push(JSON.parse((await ok(run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/apps/${app}:1`]))).stdout).Digest as string);
      const dry = JSON.parse((await ok(slipway(home, ['--json', 'rebase', `docker://${reg.host}/apps/${app}:1`, '--onto', `docker://${reg.host}/stacks/tiny:v2`, '--dry-run']))).stdout) as { blobs: { role: string; action: string }[] };
      expect(dry.blobs.filter((b) => b.role === 'app').map((b) => b.action)).toEqual(['exists']);
      expect(dry.blobs.filter((b) => b.role === 'base').every((b) => b.action === 'mount')).toBe(true);
      await ok(slipway(home, ['rebase', `docker://${reg.host}/apps/${app}:1`, '--onto', `docker://${reg.host}/stacks/tiny:v2`]));
    }
    // The registry's own log: during the rebases no app layer was fetched or uploaded.
    const during = (await readFile(reg.logFile, 'utf8')).slice(before.length);
    expect(during).toMatch(/response completed/);
    for (const layer of appLayers) {
      const touching = during.split('\n').filter((l) => l.includes(layer) && /http\.request\.method=(GET|PUT|PATCH|POST)/.test(l));
      expect(touching).toEqual([]);
    }
    expect(during).not.toMatch(/http\.request\.method=(PATCH)/);
    for (const [i, app] of apps.entries()) {
      const info = JSON.parse((await ok(run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/apps/${app}:1`]))).stdout) as { Digest: string; Layers: string[] };
      expect(info.Digest).not.toBe(oldDigests[i]);
      expect(info.Layers.at(-1)).toBe(appLayers[i]);
      const layout = join(await tempDir(), 'l');
      await ok(run('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/apps/${app}:1`, `oci:${layout}:x`]));
      const bundle = join(await tempDir(), 'b');
      execFileSync('umoci', ['unpack', '--image', `${layout}:x`, bundle]);
      expect(await readFile(join(bundle, 'rootfs/etc/stack-version'), 'utf8')).toBe('v2-patched\n');
      expect(await readFile(join(bundle, `rootfs/app/${app}.txt`), 'utf8')).toBe(`${app}\n`);
    }
  });

  it('refuses a wrong old base and writes nothing', async () => {
    const home = await tempDir();
    const v1 = await busyboxRootfs();
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${v1}`]));
    const src = await tempDir();
    await writeFile(join(src, 'Procfile'), 'web: true\n');
    await ok(slipway(home, ['-q', 'build', src, '--app', 'delta', '--runtime', 'process']));
    await ok(slipway(home, ['-q', 'export', 'delta', `docker://${reg.host}/apps/delta:1`]));
    const other = await busyboxRootfs();
    await mkdir(join(other, 'extra'));
    const o = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'other', `dir:${other}`]))).stdout) as { digest: string };
    const otherRef = `oci:${join(home, 'images')}:stacks/other:${o.digest.slice(7)}`;
    const before = JSON.parse((await ok(run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/apps/delta:1`]))).stdout).Digest as string;
    const r = await slipway(home, ['rebase', `docker://${reg.host}/apps/delta:1`, '--onto', otherRef, '--old-base', otherRef]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rebase refused: layer 1 is sha256:[a-f0-9]+, the old base has sha256:[a-f0-9]+: the image is not built on that base/);
    const after = JSON.parse((await ok(run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/apps/delta:1`]))).stdout).Digest as string;
    expect(after).toBe(before);
  });
});

describe('fleet rebase of releases', () => {
  it('moves every app on a stack to its new version with new releases, and rollback crosses back', async () => {
    const home = await tempDir();
    const v1 = await busyboxRootfs();
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${v1}`]));
    for (const app of ['one', 'two']) {
      const src = await tempDir();
      await writeFile(join(src, 'Procfile'), `web: echo ${app}\n`);
      await ok(slipway(home, ['-q', 'build', src, '--app', app, '--runtime', 'process']));
    }
    await ok(slipway(home, ['config', 'set', 'two', 'KEY=kept']));
    const v2 = await busyboxRootfs();
    await writeFile(join(v2, 'etc/patched'), 'yes\n');
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${v2}`]));
    const dry = JSON.parse((await ok(slipway(home, ['--json', 'rebase', '--all', '--dry-run']))).stdout) as unknown[];
    expect(dry).toHaveLength(2);
    expect(JSON.parse((await ok(slipway(home, ['--json', 'releases', 'one']))).stdout)).toHaveLength(1);
    const moved = JSON.parse((await ok(slipway(home, ['--json', 'rebase', '--all', '--stack', 'tiny']))).stdout) as { app: string; from: number; to: number }[];
    expect(moved.map((m) => `${m.app} v${m.from}→v${m.to}`)).toEqual(['one v1→v2', 'two v2→v3']);
    const rel = JSON.parse((await ok(slipway(home, ['--json', 'releases', 'two']))).stdout) as { version: number; slug: string; stack: { version: number }; configKeys: string[] }[];
    expect(rel[0]).toMatchObject({ version: 3, stack: { version: 2 }, configKeys: ['KEY'] });
    expect(rel[0]!.slug).toBe(rel[1]!.slug);
    expect((await ok(slipway(home, ['rebase', '--all']))).stdout).toMatch(/every app is on the latest version/);
    await ok(slipway(home, ['rollback', 'two', 'v2']));
    const back = JSON.parse((await ok(slipway(home, ['--json', 'releases', 'two']))).stdout) as { stack: { version: number } }[];
    expect(back[0]!.stack.version).toBe(1);
  });

  it('with --push, rebases each app\'s image in the registry too, moving only manifests and configs', async () => {
    const reg = await startRegistry();
    try {
      const home = await tempDir();
      await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
      for (const app of ['red', 'green', 'blue']) {
        const src = await tempDir();
        await writeFile(join(src, 'Procfile'), `web: echo ${app}\n`);
        await ok(slipway(home, ['-q', 'build', src, '--app', app, '--runtime', 'process']));
        await ok(slipway(home, ['-q', 'export', app, `docker://${reg.host}/fleet/${app}:v1`]));
      }
      const v2 = await busyboxRootfs();
      await writeFile(join(v2, 'etc/patched'), 'yes\n');
      await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${v2}`]));
      const r = JSON.parse((await ok(slipway(home, ['--json', 'rebase', '--all', '--push', `${reg.host}/fleet`]))).stdout) as {
        releases: { app: string; to: number; image: string }[];
        push: { images: unknown[]; bytesSent: number; bytesReceived: number };
      };
      expect(r.push.images).toHaveLength(3);
      // Per image: a config and a manifest up, manifests and configs down: a few KiB, no layers.
      expect(r.push.bytesSent / 3).toBeLessThan(16 * 1024);
      expect(r.push.bytesReceived / 3).toBeLessThan(16 * 1024);
      for (const rel of r.releases) {
        const info = JSON.parse((await ok(run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/fleet/${rel.app}:v${rel.to}`]))).stdout) as { Digest: string };
        expect(info.Digest).toBe(rel.image);
      }
    } finally {
      await reg.stop();
    }
  });
});

describe('rebasing a multi-platform index', () => {
  it('rebases each platform against the same platform of the new base', async () => {
    const home = await tempDir();
    const dir = join(await tempDir(), 'layout');
    const layer = async (name: string) => tarOf([fileEntry(name, name)]);
    const base1 = { amd: await layer('base1-amd'), arm: await layer('base1-arm') };
    const base2 = { amd: await layer('base2-amd'), arm: await layer('base2-arm') };
    const app = { amd: await layer('app-amd'), arm: await layer('app-arm') };
    const b1a = await writeImage(dir, 'b1-amd', [base1.amd], { history: ['b1'] });
    const b1r = await writeImage(dir, 'b1-arm', [base1.arm], { arch: 'arm64', history: ['b1'] });
    await writeIndex(dir, 'base1', [{ image: b1a, arch: 'amd64' }, { image: b1r, arch: 'arm64' }]);
    const b2a = await writeImage(dir, 'b2-amd', [base2.amd], { history: ['b2'] });
    const b2r = await writeImage(dir, 'b2-arm', [base2.arm], { arch: 'arm64', history: ['b2'] });
    await writeIndex(dir, 'base2', [{ image: b2a, arch: 'amd64' }, { image: b2r, arch: 'arm64' }]);
    const aa = await writeImage(dir, 'app-amd', [base1.amd, app.amd], { history: ['b1', 'app'] });
    const ar = await writeImage(dir, 'app-arm', [base1.arm, app.arm], { arch: 'arm64', history: ['b1', 'app'] });
    await writeIndex(dir, 'app', [{ image: aa, arch: 'amd64' }, { image: ar, arch: 'arm64' }]);

    await ok(slipway(home, ['rebase', `oci:${dir}:app`, '--onto', `oci:${dir}:base2`, '--old-base', `oci:${dir}:base1`, '--tag', 'app2']));
    for (const [arch, base, own] of [['amd64', base2.amd, app.amd], ['arm64', base2.arm, app.arm]] as const) {
      const m = JSON.parse((await ok(slipway(home, ['image', 'inspect', '--raw', '--platform', `linux/${arch}`, `oci:${dir}:app2`]))).stdout) as { mediaType: string; manifests?: unknown[] };
      expect(m.manifests).toHaveLength(2);
      const info = JSON.parse((await ok(slipway(home, ['--json', 'image', 'inspect', '--platform', `linux/${arch}`, `oci:${dir}:app2`]))).stdout) as { platform: string; layers: { diffId: string }[] };
      expect(info.platform).toBe(`linux/${arch}`);
      expect(info.layers.map((l) => l.diffId)).toEqual([digestOf(base), digestOf(own)]);
    }
    // A new base without the image's platform is refused, and nothing is written.
    await writeIndex(dir, 'amd-only', [{ image: b2a, arch: 'amd64' }]);
    const r = await slipway(home, ['rebase', `oci:${dir}:app`, '--onto', `oci:${dir}:amd-only`, '--old-base', `oci:${dir}:base1`, '--tag', 'never']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rebase refused: oci:.*has no image for linux\/arm64/);
    expect((await slipway(home, ['image', 'inspect', `oci:${dir}:never`])).code).toBe(1);
  });
});
