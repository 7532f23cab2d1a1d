import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ok, run, slipway } from './helpers/cli.js';
import { startRegistry, type Registry } from './helpers/registry.js';
import { describeTree } from './helpers/rootfs.js';
import { tempDir } from './helpers/tmp.js';

describe('a real Debian root filesystem round-trips', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => reg?.stop());

  it('debootstrap → dir: → registry → oci: → unpack gives the identical tree', async () => {
    const rootfs = inject('debootstrapRootfs');
    const home = await tempDir();
    const work = await tempDir();
    await ok(slipway(home, ['image', 'copy', `dir:${rootfs}`, `docker://${reg.host}/stacks/bookworm:minbase`]));
    await ok(slipway(home, ['image', 'copy', `docker://${reg.host}/stacks/bookworm:minbase`, `oci:${join(work, 'layout')}:bookworm`]));
    const out = join(work, 'rootfs');
    await ok(slipway(home, ['image', 'unpack', `oci:${join(work, 'layout')}:bookworm`, out]));

    const want = await describeTree(rootfs);
    const got = await describeTree(out);
    expect(got.size).toBe(want.size);
    expect(got).toEqual(want);

    const setuid = [...got].filter(([, e]) => e.type === 'file' && e.mode & 0o4000).map(([p]) => p);
    expect(setuid).toEqual(expect.arrayContaining(['usr/bin/su', 'usr/bin/passwd', 'usr/bin/mount']));
    expect([...got.values()].some((e) => e.inodeGroup !== undefined)).toBe(true);

    // umoci, a second reader, agrees on the same layout.
    const bundle = join(work, 'bundle');
    await ok(run('umoci', ['unpack', '--image', `${join(work, 'layout')}:bookworm`, bundle]));
    const viaUmoci = await describeTree(join(bundle, 'rootfs'));
    expect([...viaUmoci.keys()]).toEqual([...want.keys()]);
  });
});
