import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ok, slipway } from './helpers/cli.js';
import { fileEntry, tarOf, writeImage } from './helpers/images.js';
import { tempDir } from './helpers/tmp.js';

describe('CLI contract', () => {
  it('exits 2 on usage errors, 1 on failures, 0 on success', async () => {
    const home = await tempDir();
    expect((await slipway(home, ['image', 'copy', 'only-one-arg'])).code).toBe(2);
    expect((await slipway(home, ['no-such-command'])).code).toBe(2);
    const badRef = await slipway(home, ['image', 'inspect', 'ftp://x/y']);
    expect(badRef.code).toBe(2);
    expect(badRef.stderr).toMatch(/unknown transport "ftp"/);
    const missing = await slipway(home, ['image', 'inspect', `oci:${join(home, 'nope')}`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not an OCI image layout[\s\S]*hint:/);
    expect((await slipway(home, ['--help'])).code).toBe(0);
  });

  it('prints errors as JSON with --json', async () => {
    const home = await tempDir();
    const r = await slipway(home, ['--json', 'image', 'inspect', `oci:${join(home, 'nope')}`]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: expect.stringMatching(/not an OCI image layout/), hint: expect.any(String) });
  });

  it('inspects an image, raw bytes included', async () => {
    const home = await tempDir();
    const dir = join(await tempDir(), 'src');
    const img = await writeImage(dir, 'v1', [await tarOf([fileEntry('x', 'y')])]);
    const text = await ok(slipway(home, ['image', 'inspect', `oci:${dir}:v1`]));
    expect(text.stdout).toContain(`Digest:      ${img.manifest.digest}`);
    expect(text.stdout).toContain('Platform:    linux/amd64');
    expect(text.stdout).toContain('Cmd:         ["/bin/sh"]');
    const raw = await ok(slipway(home, ['image', 'inspect', '--raw', `oci:${dir}:v1`]));
    expect(raw.stdout).toBe(await readFile(join(dir, 'blobs/sha256', img.manifest.digest.slice(7)), 'utf8'));
    const cfg = await ok(slipway(home, ['image', 'inspect', '--raw', '--config', `oci:${dir}:v1`]));
    expect(JSON.parse(cfg.stdout)).toMatchObject({ architecture: 'amd64', os: 'linux' });
  });

  it('lists the store empty with a hint, then with images', async () => {
    const home = await tempDir();
    expect((await ok(slipway(home, ['image', 'ls']))).stdout).toMatch(/no images/);
    const dir = join(await tempDir(), 'src');
    await writeImage(dir, 'v1', [await tarOf([fileEntry('x', 'y')])]);
    await ok(slipway(home, ['-q', 'image', 'copy', `oci:${dir}:v1`, 'web:2']));
    expect((await ok(slipway(home, ['image', 'ls']))).stdout).toMatch(/NAME\s+TAG\s+DIGEST\nweb\s+2\s+sha256:/);
  });
});
