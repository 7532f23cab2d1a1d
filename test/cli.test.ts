import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, ok, run, slipway } from './helpers/cli.js';
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

  it('draws a progress bar per blob on a terminal and prints one quiet line per blob otherwise', async () => {
    const home = await tempDir();
    const src = join(await tempDir(), 'img');
    await writeImage(src, 'v1', [await tarOf([fileEntry('a', Buffer.alloc(200_000, 7))])]);
    // util-linux `script` gives the command a pseudo-terminal, as an interactive shell would.
    const tty = await ok(run('script', ['-qec', `${process.execPath} ${BIN} image copy oci:${src}:v1 oci:${join(home, 'tty')}:v1`, '/dev/null'], { env: { SLIPWAY_HOME: home } }));
    expect(tty.stdout).toMatch(/sha256:[0-9a-f]{12} \[[^\]]+\] 100% [\d.]+ [kM]?B\/[\d.]+ [kM]?B/);
    const piped = await ok(slipway(home, ['image', 'copy', `oci:${src}:v1`, `oci:${join(home, 'piped')}:v1`]));
    expect(piped.stderr).toMatch(/^copied +sha256:[0-9a-f]{12} [\d.]+ [kM]?B$/m);
    expect(piped.stderr).not.toContain('[');
  });
});

