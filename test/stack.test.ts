import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ok, run, slipway } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';
import { openDb } from '../src/store/db.js';

async function tinyRootfs(extra = ''): Promise<string> {
  const root = join(await tempDir(), 'rootfs');
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/os-release'), `ID=tiny\n${extra}`);
  return root;
}

interface StackJson {
  name: string;
  version: number;
  digest: string;
  created: boolean;
}

describe('stacks', () => {
  it('imports versions by digest, lists, inspects, sets the default, refuses removal while used', async () => {
    const home = await tempDir();
    const a = await tinyRootfs();
    const v1 = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'tiny', `dir:${a}`]))).stdout) as StackJson;
    expect(v1).toMatchObject({ name: 'tiny', version: 1, created: true });
    const again = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'tiny', `dir:${a}`]))).stdout) as StackJson;
    expect(again).toMatchObject({ version: 1, created: false, digest: v1.digest });
    const b = await tinyRootfs('VERSION=2\n');
    const v2 = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'tiny', `dir:${b}`]))).stdout) as StackJson;
    expect(v2).toMatchObject({ version: 2, created: true });
    expect(v2.digest).not.toBe(v1.digest);

    // Any transport works as a source: export v1's image and import it under another name.
    const layout = join(await tempDir(), 'layout');
    await ok(slipway(home, ['image', 'copy', `oci:${join(home, 'images')}:stacks/tiny:${v1.digest.slice(7)}`, `oci:${layout}:t`]));
    const other = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'other', `oci:${layout}:t`]))).stdout) as StackJson;
    expect(other.digest).toBe(v1.digest);

    const ls = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'ls']))).stdout) as { name: string; version: number; isDefault: boolean }[];
    expect(ls.map((s) => `${s.name}@v${s.version}${s.isDefault ? '*' : ''}`)).toEqual(['other@v1', 'tiny@v1*', 'tiny@v2*']);
    const info = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect']))).stdout) as { version: number };
    expect(info.version).toBe(2);
    await ok(slipway(home, ['stack', 'default', 'other']));
    expect(JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect']))).stdout)).toMatchObject({ name: 'other' });

    // A release on tiny@v1 blocks its removal.
    const db = openDb(home);
    db.prepare("INSERT INTO apps (name, created_at) VALUES ('web', 'now')").run();
    db.prepare("INSERT INTO releases (app, version, slug, stack_name, stack_version, stack_digest, config, description, created_at) VALUES ('web', 1, NULL, 'tiny', 1, ?, '{}', 'test', 'now')").run(v1.digest);
    db.close();
    const refused = await slipway(home, ['stack', 'rm', 'tiny@v1']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/stack tiny@v1 is used by web v1[\s\S]*--force/);
    await ok(slipway(home, ['stack', 'rm', 'tiny@v2']));
    await ok(slipway(home, ['stack', 'rm', '--force', 'tiny@v1']));
    const left = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'ls']))).stdout) as { name: string }[];
    expect(left.map((s) => s.name)).toEqual(['other']);
    // The shared content stays for "other"; tiny's own v2 content is gone after gc.
    const gc = JSON.parse((await ok(slipway(home, ['--json', 'image', 'gc']))).stdout) as { removed: string[] };
    expect(gc.removed).toHaveLength(3);
    await ok(run('skopeo', ['inspect', `oci:${join(home, 'images')}:stacks/other:${v1.digest.slice(7)}`]));
  });

  it('keeps a run image and its build variant as one stack version', async () => {
    const home = await tempDir();
    const runFs = await tinyRootfs();
    const buildFs = await tinyRootfs('VARIANT=build\n');
    const v1 = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'tiny', `dir:${runFs}`, '--build', `dir:${buildFs}`]))).stdout) as StackJson & { build: { digest: string } };
    expect(v1).toMatchObject({ version: 1, created: true });
    expect(v1.build.digest).toMatch(/^sha256:/);
    expect(v1.build.digest).not.toBe(v1.digest);
    const text = (await ok(slipway(home, ['stack', 'ls']))).stdout;
    expect(text).toContain(v1.build.digest.slice(0, 19));
    expect((await ok(slipway(home, ['stack', 'inspect', 'tiny@v1']))).stdout).toMatch(new RegExp(`Build: +${v1.build.digest} \\(.*builds run on it\\)`));
    // The same run content with a new build variant is still v1 (slugs and dynos are unchanged).
    const newer = await tinyRootfs('VARIANT=build\nCOMPILER=newer\n');
    const again = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'tiny', `dir:${runFs}`, '--build', `dir:${newer}`]))).stdout) as StackJson & { build: { digest: string } };
    expect(again).toMatchObject({ version: 1, created: false, digest: v1.digest });
    expect(again.build.digest).not.toBe(v1.build.digest);
    // Restrictions name the version by either image.
    const doc = join(await tempDir(), 'r.yaml');
    await writeFile(doc, `apiVersion: slipway/v1\nkind: Restrictions\nmetadata: { name: t }\nrules:\n  base.allowed: { severity: deny, stacks: ['${again.build.digest}'] }\n`);
    const checked = await slipway(home, ['--json', 'check', `oci:${join(home, 'images')}:stacks/tiny:${v1.digest.slice(7)}`, '--restrictions', doc]);
    expect(checked.stdout).not.toMatch(/which this host does not have/);
    expect(JSON.parse(checked.stdout)).toMatchObject({ verdict: 'allow' });
    // Removing the version removes both images' tags.
    await ok(slipway(home, ['stack', 'rm', 'tiny@v1']));
    for (const d of [v1.digest, again.build.digest]) expect((await run('skopeo', ['inspect', '--raw', `oci:${join(home, 'images')}:stacks/tiny:${d.slice(7)}`])).code).not.toBe(0);
  });

  it('names what is missing', async () => {
    const home = await tempDir();
    const none = await slipway(home, ['stack', 'inspect']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no stack[\s\S]*slipway stack bootstrap/);
    expect((await slipway(home, ['stack', 'import', 'Bad Name', 'dir:/'])).code).toBe(2);
  });

  it('bootstraps a real Debian stack with debootstrap: a run image and its build variant', async () => {
    const home = await tempDir();
    const r = await ok(slipway(home, ['--json', 'stack', 'bootstrap', 'bookworm', '--include', 'ca-certificates']));
    const s = JSON.parse(r.stdout) as StackJson & { steps: number; size: number; build: { digest: string } };
    // The build variant is the run image plus compilers, in the same version; the run image has none.
    const build = join(await tempDir(), 'build');
    await ok(slipway(home, ['image', 'unpack', `oci:${join(home, 'images')}:stacks/bookworm:${s.build.digest.slice(7)}`, build]));
    for (const tool of ['usr/bin/g++', 'usr/bin/make', 'usr/bin/python3', 'usr/bin/pkg-config', 'usr/include/openssl/ssl.h', 'etc/debian_version']) expect(existsSync(join(build, tool))).toBe(true);
    expect(s).toMatchObject({ name: 'bookworm', version: 1, created: true });
    expect(s.steps).toBeGreaterThan(10);
    const root = join(await tempDir(), 'unpacked');
    await ok(slipway(home, ['image', 'unpack', `oci:${join(home, 'images')}:stacks/bookworm:${s.digest.slice(7)}`, root]));
    expect((await ok(run('cat', [join(root, 'etc/debian_version')]))).stdout).toMatch(/^12\./);
    expect((await ok(run('ls', [join(root, 'etc/ssl/certs')]))).stdout).toMatch(/\.pem/);
    expect(existsSync(join(root, 'usr/bin/g++'))).toBe(false);
  }, 300_000);
});
