import { spawn } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyImage } from '../src/copy.js';
import { parseDockerReference } from '../src/transport/reference.js';
import { RegistryDestination, RegistrySource } from '../src/transport/registry/transport.js';
import { OciLayoutSource } from '../src/transport/oci-layout.js';
import { BIN, ok, slipway } from './helpers/cli.js';
import { fileEntry, tarOf, writeImage } from './helpers/images.js';
import { startRegistry, testNetns, type Registry } from './helpers/registry.js';
import { listFiles } from './helpers/rootfs.js';
import { tempDir } from './helpers/tmp.js';

interface CopyJson {
  digest: string;
  blobs: { digest: string; outcome: string }[];
}

const outcomes = (r: { stdout: string }): string[] => (JSON.parse(r.stdout) as CopyJson).blobs.map((b) => b.outcome).sort();

describe('registry transport against docker-registry', () => {
  let reg: Registry;
  let home: string;
  let digest: string;

  beforeAll(async () => {
    reg = await startRegistry();
    home = await tempDir();
    const src = join(await tempDir(), 'img');
    const made = await writeImage(src, 'v1', [await tarOf([fileEntry('a', randomBytes(100_000))]), await tarOf([fileEntry('b', 'second layer')])]);
    digest = made.manifest.digest;
    await ok(slipway(home, ['image', 'copy', `oci:${src}:v1`, 'app:1']));
  });
  afterAll(async () => reg?.stop());

  it('pushes, skips what exists, mounts across repositories, pulls back the same digest', async () => {
    const push = await ok(slipway(home, ['--json', 'image', 'copy', 'app:1', `docker://${reg.host}/team/app:1`]));
    expect((JSON.parse(push.stdout) as CopyJson).digest).toBe(digest);
    expect(outcomes(push)).toEqual(['copied', 'copied', 'copied']);
    const again = await ok(slipway(home, ['--json', 'image', 'copy', 'app:1', `docker://${reg.host}/team/app:1`]));
    expect(outcomes(again)).toEqual(['exists', 'exists', 'exists']);
    const mount = await ok(slipway(home, ['--json', 'image', 'copy', `docker://${reg.host}/team/app:1`, `docker://${reg.host}/other/app:2`]));
    expect(outcomes(mount)).toEqual(['mounted', 'mounted', 'mounted']);
    const out = join(await tempDir(), 'pulled');
    const pull = await ok(slipway(home, ['--json', 'image', 'copy', `docker://${reg.host}/other/app@${digest}`, `oci:${out}:x`]));
    expect((JSON.parse(pull.stdout) as CopyJson).digest).toBe(digest);
    const inspect = JSON.parse((await ok(slipway(home, ['--json', 'image', 'inspect', `docker://${reg.host}/other/app:2`]))).stdout) as { digest: string; layers: unknown[] };
    expect(inspect.digest).toBe(digest);
    expect(inspect.layers).toHaveLength(2);
  });

  it('uploads in chunks when a blob is large, and the registry accepts the digest', async () => {
    const dir = join(await tempDir(), 'big');
    const made = await writeImage(dir, 'big', [await tarOf([fileEntry('r', randomBytes(300_000))])], { raw: true });
    const src = await OciLayoutSource.open('big', dir, 'big');
    const dst = await RegistryDestination.open(parseDockerReference(`${reg.host}/chunked/app:1`), { chunkThreshold: 10_000, chunkSize: 64 * 1024 });
    const r = await copyImage(src, dst);
    expect(r.digest).toBe(made.manifest.digest);
    const back = await RegistrySource.open(parseDockerReference(`${reg.host}/chunked/app:1`), {});
    expect((await back.getManifest()).digest).toBe(made.manifest.digest);
  });

  it('uploads in chunks when the registry asks for them (OCI-Chunk-Min-Length)', async () => {
    // docker-registry never asks: a pass-through proxy in front of it adds the header the spec
    // defines to its upload-session answers, and counts the requests that reach it.
    const seen: string[] = [];
    const proxy = createServer((req, res) => {
      seen.push(req.method!);
      const out = httpRequest({ host: '127.0.0.1', port: Number(reg.host.split(':')[1]), method: req.method, path: req.url, headers: req.headers }, (r) => {
        const headers = { ...r.headers };
        if (req.method === 'POST' && r.statusCode === 202) headers['oci-chunk-min-length'] = String(128 * 1024);
        res.writeHead(r.statusCode ?? 502, headers);
        r.pipe(res);
      });
      req.pipe(out);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const host = `127.0.0.1:${(proxy.address() as { port: number }).port}`;
      const dir = join(await tempDir(), 'asked');
      const made = await writeImage(dir, 'v1', [await tarOf([fileEntry('r', randomBytes(400_000))])], { raw: true });
      const r = await ok(slipway(home, ['--json', 'image', 'copy', `oci:${dir}:v1`, `docker://${host}/asked/app:1`]));
      expect((JSON.parse(r.stdout) as CopyJson).digest).toBe(made.manifest.digest);
      // Without the header this blob goes up in one PUT; asked, it goes in PATCH chunks.
      expect(seen.filter((m) => m === 'PATCH').length).toBeGreaterThanOrEqual(1);
      const back = await RegistrySource.open(parseDockerReference(`${reg.host}/asked/app:1`), {});
      expect((await back.getManifest()).digest).toBe(made.manifest.digest);
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  });

  it('a registry that dies mid-push leaves nothing locally and the push can be rerun', async () => {
    const dir = join(await tempDir(), 'fat');
    const layers = await Promise.all([1, 2, 3, 4].map((i) => tarOf([fileEntry(`f${i}`, randomBytes(40 * 1024 * 1024))])));
    await writeImage(dir, 'fat', layers, { raw: true });
    await ok(slipway(home, ['image', 'copy', `oci:${dir}:fat`, 'fat:1']));
    const before = await listFiles(join(home, 'images'));
    const child = spawn(process.execPath, [BIN, 'image', 'copy', '-j', '1', 'fat:1', `docker://${reg.host}/fat/app:1`], { env: { ...process.env, SLIPWAY_HOME: home } });
    let stderr = '';
    const exit = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (/copied/.test(stderr)) resolve();
      });
    });
    reg.kill();
    expect(await exit).toBe(1);
    expect(stderr).toMatch(/error: 127\.0\.0\.1:\d+: .*(failed|cannot reach)/);
    expect(stderr).toMatch(/hint: /);
    expect(await listFiles(join(home, 'images'))).toEqual(before);
    await reg.restart();
    const rerun = await ok(slipway(home, ['--json', 'image', 'copy', 'fat:1', `docker://${reg.host}/fat/app:1`]));
    expect(outcomes(rerun)).toContain('exists');
    expect(outcomes(rerun)).toContain('copied');
  });
});

describe('registry auth', () => {
  for (const kind of ['htpasswd', 'token'] as const) {
    describe(kind, () => {
      let reg: Registry;
      let home: string;
      beforeAll(async () => {
        reg = await startRegistry({ kind, user: 'alice', password: 's3cret' });
        home = await tempDir();
        const src = join(await tempDir(), 'img');
        await writeImage(src, 'v1', [await tarOf([fileEntry('a', 'auth test')])]);
        await ok(slipway(home, ['image', 'copy', `oci:${src}:v1`, 'app:1']));
      });
      afterAll(async () => reg?.stop());

      it('refuses without credentials, with a hint', async () => {
        const r = await slipway(home, ['image', 'copy', 'app:1', `docker://${reg.host}/priv/app:1`], { DOCKER_CONFIG: join(home, 'no-docker') });
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/requires a login|unauthorized|login for/);
        expect(r.stderr).toMatch(/hint: .*(--dest-creds|docker login)/);
      });

      it('refuses wrong credentials', async () => {
        const r = await slipway(home, ['image', 'copy', '--dest-creds', 'alice:wrong', 'app:1', `docker://${reg.host}/priv/app:1`]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/401|unauthorized/i);
      });

      it('pushes with --dest-creds and pulls with ~/.docker/config.json credentials', async () => {
        await ok(slipway(home, ['image', 'copy', '--dest-creds', 'alice:s3cret', 'app:1', `docker://${reg.host}/priv/app:1`]));
        const cfgDir = join(home, 'docker');
        await mkdir(cfgDir, { recursive: true });
        await writeFile(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
        const out = join(await tempDir(), 'o');
        await ok(slipway(home, ['image', 'copy', `docker://${reg.host}/priv/app:1`, `oci:${out}:x`], { DOCKER_CONFIG: cfgDir }));
        await ok(slipway(home, ['image', 'copy', `docker://${reg.host}/priv/app:1`, `docker://${reg.host}/priv/copy:1`], { DOCKER_CONFIG: cfgDir }));
      });
    });
  }
});

describe('plain HTTP off loopback', () => {
  it('is refused unless --insecure (a registry in a network namespace this test made)', async () => {
    const ns = await testNetns();
    try {
      const reg = await startRegistry({ kind: 'none' }, { netns: ns });
      try {
        const home = await tempDir();
        const src = join(await tempDir(), 'img');
        const made = await writeImage(src, 'v1', [await tarOf([fileEntry('a', 'off loopback')])]);
        // Not loopback: Slipway speaks TLS and will not fall back to plain HTTP by itself.
        const refused = await slipway(home, ['image', 'copy', `oci:${src}:v1`, `docker://${reg.host}/far/app:1`]);
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain(`cannot reach the registry at https://${reg.host}`);
        expect(refused.stderr).toContain('plain-HTTP registries off loopback need --insecure');
        const pushed = await ok(slipway(home, ['--json', 'image', 'copy', '--insecure', `oci:${src}:v1`, `docker://${reg.host}/far/app:1`]));
        expect((JSON.parse(pushed.stdout) as CopyJson).digest).toBe(made.manifest.digest);
      } finally {
        await reg.stop();
      }
    } finally {
      await ns.remove();
    }
  });
});
