import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, run, slipway } from './helpers/cli.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { startRegistry, type Registry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';
import { parseProcfile } from '../src/slug/procfile.js';

describe('slugs travel through registries as OCI artifacts', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => reg?.stop());

  it('slug push from one host, slug pull on another with the same stack', async () => {
    const rootfs = await busyboxRootfs();
    const [a, b, c] = [await tempDir(), await tempDir(), await tempDir()];
    await ok(slipway(a, ['-q', 'stack', 'import', 'tiny', `dir:${rootfs}`]));
    await ok(slipway(b, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    const src = await tempDir();
    await writeFile(join(src, 'Procfile'), 'web: ./serve\n');
    const built = JSON.parse((await ok(slipway(a, ['--json', 'build', src, '--app', 'shop', '--runtime', 'process']))).stdout) as { slug: { digest: string } };
    await ok(slipway(a, ['slug', 'push', 'shop@v1', `docker://${reg.host}/slugs/shop:v1`]));
    const inspect = JSON.parse((await ok(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/slugs/shop:v1`]))).stdout) as { artifactType: string };
    expect(inspect.artifactType).toBe('application/vnd.slipway.slug.v1');

    const pulled = JSON.parse((await ok(slipway(b, ['--json', 'slug', 'pull', `docker://${reg.host}/slugs/shop:v1`, '--app', 'shop']))).stdout) as { version: number; slug: string };
    expect(pulled).toMatchObject({ version: 1, slug: built.slug.digest });
    const rel = JSON.parse((await ok(slipway(b, ['--json', 'releases', 'shop']))).stdout) as { description: string; stack: { name: string } }[];
    expect(rel[0]!.description).toMatch(/Slug pulled from docker:\/\//);
    expect(rel[0]!.stack.name).toBe('tiny');

    const missing = await slipway(c, ['slug', 'pull', `docker://${reg.host}/slugs/shop:v1`, '--app', 'shop']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/built on stack tiny sha256:[a-f0-9]+, which is not here/);
    const notSlug = await slipway(c, ['slug', 'pull', `oci:${join(a, 'images')}:stacks/tiny:${JSON.parse((await ok(slipway(a, ['--json', 'stack', 'inspect']))).stdout).digest.slice(7)}`, '--app', 'shop']);
    expect(notSlug.code).toBe(1);
    expect(notSlug.stderr).toMatch(/not a Slipway slug/);
  });
});

describe('Procfile grammar', () => {
  it('parses types and commands, skips blanks and comments', () => {
    expect(parseProcfile('web: node server.js --port $PORT\n\n# comment\nworker:   bundle exec sidekiq  \nrelease: ./migrate\n')).toEqual({
      web: 'node server.js --port $PORT',
      worker: 'bundle exec sidekiq',
      release: './migrate',
    });
  });
  it('names the bad line', () => {
    expect(() => parseProcfile('web: a\nweb: b\n')).toThrow(/Procfile:2: process type "web" is defined twice/);
    expect(() => parseProcfile('web a\n')).toThrow(/Procfile:1: "web a" is not "type: command"/);
    expect(() => parseProcfile('we b: x\n')).toThrow(/Procfile:1/);
  });
});
