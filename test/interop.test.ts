import { execFileSync } from 'node:child_process';
import { chmod, link, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setAttribute } from 'fs-xattr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, run, slipway } from './helpers/cli.js';
import { startRegistry, type Registry } from './helpers/registry.js';
import { describeTree } from './helpers/rootfs.js';
import { tempDir } from './helpers/tmp.js';

/** A source tree with what layers must carry exactly: setuid, owners, xattrs, links. */
async function richTree(root: string): Promise<void> {
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'srv/data'), { recursive: true });
  await writeFile(join(root, 'usr/bin/ping'), 'ping binary');
  await setAttribute(join(root, 'usr/bin/ping'), 'security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex'));
  await writeFile(join(root, 'usr/bin/su'), 'su binary');
  await chmod(join(root, 'usr/bin/su'), 0o4755);
  await link(join(root, 'usr/bin/su'), join(root, 'usr/bin/su-hardlink'));
  await symlink('su', join(root, 'usr/bin/substitute-user'));
  await symlink('/usr/bin/ping', join(root, 'srv/abs-link'));
  await writeFile(join(root, 'srv/data/owned'), 'owned by 1000');
  execFileSync('chown', ['-R', '1000:1001', join(root, 'srv/data')]);
  await chmod(join(root, 'srv/data'), 0o2770);
  await setAttribute(join(root, 'srv/data/owned'), 'user.origin', Buffer.from('slipway'));
}

const skopeo = (args: string[]) => ok(run('skopeo', args));
const digestOfSkopeo = async (ref: string, extra: string[] = []): Promise<string> =>
  (JSON.parse((await skopeo(['inspect', ...extra, ref])).stdout) as { Digest: string }).Digest;

describe('skopeo and umoci read what Slipway writes', () => {
  let home: string;
  let src: string;
  let reg: Registry;
  let digest: string;

  beforeAll(async () => {
    reg = await startRegistry();
    home = await tempDir();
    src = join(await tempDir(), 'tree');
    await mkdir(src);
    await richTree(src);
    const r = await ok(slipway(home, ['--json', 'image', 'copy', `dir:${src}`, 'rich:1']));
    digest = (JSON.parse(r.stdout) as { digest: string }).digest;
  });
  afterAll(async () => reg?.stop());

  it('skopeo inspects and copies from the local store (an OCI layout)', async () => {
    const layoutRef = `oci:${join(home, 'images')}:rich:1`;
    expect(await digestOfSkopeo(layoutRef)).toBe(digest);
    const out = join(await tempDir(), 'o');
    await skopeo(['copy', '--preserve-digests', layoutRef, `oci:${out}:x`]);
    expect(await digestOfSkopeo(`oci:${out}:x`)).toBe(digest);
  });

  it('skopeo reads Slipway registry pushes with the same digest', async () => {
    await ok(slipway(home, ['image', 'copy', 'rich:1', `docker://${reg.host}/rich/app:1`]));
    expect(await digestOfSkopeo(`docker://${reg.host}/rich/app:1`, ['--tls-verify=false'])).toBe(digest);
    const out = join(await tempDir(), 'o');
    await skopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/rich/app:1`, `oci:${out}:x`]);
  });

  it('skopeo reads Slipway docker-archives (both the classic and the OCI side)', async () => {
    const file = join(await tempDir(), 'rich.tar');
    await ok(slipway(home, ['image', 'copy', 'rich:1', `docker-archive:${file}:rich:1`]));
    const classic = JSON.parse((await skopeo(['inspect', `docker-archive:${file}`])).stdout) as { RepoTags: string[]; Layers: string[] };
    expect(classic.Layers).toHaveLength(1);
    expect(await digestOfSkopeo(`oci-archive:${file}`)).toBe(digest);
    const listing = execFileSync('tar', ['tf', file]).toString().split('\n');
    expect(listing).toEqual(expect.arrayContaining(['manifest.json', 'index.json', 'oci-layout']));
  });

  it('umoci unpack gives the source tree: files, modes, owners, xattrs, link targets', async () => {
    const bundle = join(await tempDir(), 'bundle');
    await ok(run('umoci', ['unpack', '--image', `${join(home, 'images')}:rich:1`, bundle]));
    const want = await describeTree(src);
    const got = await describeTree(join(bundle, 'rootfs'));
    expect(got).toEqual(want);
  });
});

describe('Slipway reads what umoci and skopeo write', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => reg?.stop());

  it('an umoci image pushed by skopeo copies through Slipway unchanged', async () => {
    const work = await tempDir();
    const layout = join(work, 'umoci');
    await ok(run('umoci', ['init', '--layout', layout]));
    await ok(run('umoci', ['new', '--image', `${layout}:base`]));
    const bundle = join(work, 'bundle');
    await ok(run('umoci', ['unpack', '--image', `${layout}:base`, bundle]));
    await mkdir(join(bundle, 'rootfs/etc'), { recursive: true });
    await writeFile(join(bundle, 'rootfs/etc/motd'), 'made by umoci\n');
    await ok(run('umoci', ['repack', '--image', `${layout}:base`, bundle]));
    await ok(run('umoci', ['config', '--image', `${layout}:base`, '--config.cmd', '/bin/true', '--tag', 'v1']));
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${reg.host}/umoci/img:v1`]);
    const original = await digestOfSkopeo(`docker://${reg.host}/umoci/img:v1`, ['--tls-verify=false']);

    const home = await tempDir();
    const a = await ok(slipway(home, ['--json', 'image', 'copy', `docker://${reg.host}/umoci/img:v1`, 'umoci-img:v1']));
    expect((JSON.parse(a.stdout) as { digest: string }).digest).toBe(original);
    await ok(slipway(home, ['image', 'copy', 'umoci-img:v1', `docker://${reg.host}/again/img:v1`]));
    expect(await digestOfSkopeo(`docker://${reg.host}/again/img:v1`, ['--tls-verify=false'])).toBe(original);
    const root = join(work, 'rootfs');
    await ok(slipway(home, ['image', 'unpack', 'umoci-img:v1', root]));
    expect(await readFile(join(root, 'etc/motd'), 'utf8')).toBe('made by umoci\n');
  });

  it('reads docker-archive tars skopeo writes and OCI archive tars', async () => {
    const work = await tempDir();
    const home = await tempDir();
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'bin'), { recursive: true });
    await writeFile(join(tree, 'bin/hello'), 'hello');
    await ok(slipway(home, ['image', 'copy', `dir:${tree}`, `oci:${join(work, 'layout')}:t`]));
    const legacy = join(work, 'legacy.tar');
    await skopeo(['copy', `oci:${join(work, 'layout')}:t`, `docker-archive:${legacy}:example/hello:1`]);
    const l = await ok(slipway(home, ['--json', 'image', 'copy', `docker-archive:${legacy}:example/hello:1`, 'from-skopeo:1']));
    expect((JSON.parse(l.stdout) as { digest: string }).digest).toMatch(/^sha256:/);
    const root = join(work, 'root1');
    await ok(slipway(home, ['image', 'unpack', 'from-skopeo:1', root]));
    expect(await readFile(join(root, 'bin/hello'), 'utf8')).toBe('hello');

    const ociTar = join(work, 'oci.tar');
    await skopeo(['copy', `oci:${join(work, 'layout')}:t`, `oci-archive:${ociTar}:t`]);
    const want = await digestOfSkopeo(`oci-archive:${ociTar}`);
    const o = await ok(slipway(home, ['--json', 'image', 'copy', `docker-archive:${ociTar}`, 'from-oci-tar:1']));
    expect((JSON.parse(o.stdout) as { digest: string }).digest).toBe(want);
  });
});
