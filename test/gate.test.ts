import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { busyboxWebApp } from './helpers/apps.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { BIN, ok, run, slipway } from './helpers/cli.js';
import { freePort, startRegistry, type Registry } from './helpers/registry.js';
import { fileEntry, tarOf, writeImage, writeIndex } from './helpers/images.js';
import { tempDir } from './helpers/tmp.js';
import { digestOf } from '../src/oci/digest.js';
import { MediaType } from '../src/oci/mediatypes.js';
import { encodeJson, type Descriptor } from '../src/oci/types.js';
import { parseTarget } from '../src/gate/route.js';

interface Gate {
  host: string;
  child: ChildProcess;
  log: () => string;
  /** Peak resident memory of the gate process so far. */
  peak: () => number;
}
const gates: Gate[] = [];

async function startGate(home: string, upstream: string, args: string[]): Promise<Gate> {
  const port = await freePort();
  let log = '';
  const child = spawn(process.execPath, [BIN, 'gate', '--upstream', `http://${upstream}`, '--listen', `127.0.0.1:${port}`, ...args], { env: { ...process.env, SLIPWAY_HOME: home } });
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`gate exited ${code}: ${log}`)));
  });
  const gate: Gate = {
    host: `127.0.0.1:${port}`,
    child,
    log: () => log,
    peak: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024,
  };
  gates.push(gate);
  return gate;
}

const skopeo = (src: string, dst: string, extra: string[] = []): ReturnType<typeof run> => run('skopeo', ['copy', '-q', '--dest-tls-verify=false', ...extra, src, dst]);
const inRegistry = async (ref: string): Promise<boolean> => (await run('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).code === 0;

let reg: Registry;
let home: string;
let stackRef: string;
beforeAll(async () => {
  reg = await startRegistry();
  home = await tempDir();
  await ok(slipway(home, ['-q', 'stack', 'import', 'deb', `dir:${inject('debootstrapRootfs')}`]));
  const digest = (JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect', 'deb']))).stdout) as { digest: string }).digest;
  const layout = join(await tempDir(), 'oci');
  await ok(slipway(home, ['-q', 'image', 'copy', `stacks/deb:${digest.slice(7)}`, `oci:${layout}:deb`]));
  stackRef = `oci:${layout}:deb`;
});
afterAll(async () => {
  for (const g of gates) g.child.kill();
  await reg?.stop();
});

describe('the registry gate in front of docker-registry', () => {
  it('refuses the Debian stack under heroku-like with its setuid findings, and it is not in the registry after', async () => {
    // A gate whose home does not have the stack vouches for none of its layers (scope: app judges them all).
    const gate = await startGate(await tempDir(), reg.host, ['-r', 'heroku-like']);
    const r = await skopeo(stackRef, `docker://${gate.host}/stacks/deb:1`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/denied: denied by restrictions heroku-like: .*files\.setuid \/usr\/bin\/su: setuid file owned by root/);
    expect(await inRegistry(`${reg.host}/stacks/deb:1`)).toBe(false);
    // Slipway's own copy prints the same reason.
    const ours = await slipway(home, ['image', 'copy', stackRef, `docker://${gate.host}/stacks/deb:2`]);
    expect([ours.code, ours.stderr]).toEqual([1, expect.stringMatching(/DENIED|denied by restrictions heroku-like/)]);
    expect(gate.log()).toMatch(/slipway\[gate\]: deny stacks\/deb:1 sha256:/);
  });

  it('accepts it under permissive (warnings), and judges a digest once', async () => {
    const gate = await startGate(home, reg.host, ['-r', 'permissive']);
    await ok(skopeo(stackRef, `docker://${gate.host}/stacks/deb:ok`));
    expect(await inRegistry(`${reg.host}/stacks/deb:ok`)).toBe(true);
    await ok(skopeo(stackRef, `docker://${gate.host}/stacks/deb:again`));
    expect(gate.log().match(/warn stacks\/deb:(ok|again) /g)).toHaveLength(2);
    expect(gate.log()).toMatch(/findings, cached\)/);
  });

  it('accepts a compliant Slipway-exported app image under heroku-like; pulls pass through', async () => {
    const h = await tempDir();
    await ok(slipway(h, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    await ok(slipway(h, ['-q', 'build', await busyboxWebApp(), '--app', 'web', '--runtime', 'process']));
    const gate = await startGate(home, reg.host, ['-r', 'heroku-like']);
    await ok(slipway(h, ['-q', 'export', 'web', `docker://${gate.host}/apps/web:1`]));
    expect(await inRegistry(`${reg.host}/apps/web:1`)).toBe(true);
    expect(await inRegistry(`${gate.host}/apps/web:1`)).toBe(true);
  });

  it('judges a multi-platform index by each child', async () => {
    const dir = join(await tempDir(), 'oci');
    const clean = await writeImage(dir, 'amd', [await tarOf([fileEntry('bin/tool', 'x', { mode: 0o755 })])]);
    const suid = await writeImage(dir, 'arm', [await tarOf([fileEntry('bin/tool', 'x', { mode: 0o4755 })])], { arch: 'arm64' });
    await writeIndex(dir, 'mixed', [{ image: clean, arch: 'amd64' }, { image: suid, arch: 'arm64' }]);
    await writeIndex(dir, 'clean', [{ image: clean, arch: 'amd64' }]);
    const policy = join(await tempDir(), 'suid.yaml');
    await writeFile(policy, 'apiVersion: slipway/v1\nkind: Restrictions\nmetadata: {name: no-suid}\nrules:\n  files.setuid: {severity: deny}\n');
    const gate = await startGate(home, reg.host, ['-r', policy]);
    const mixed = await skopeo(`oci:${dir}:mixed`, `docker://${gate.host}/multi/app:1`, ['--all']);
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toMatch(/denied by restrictions no-suid: files\.setuid \/bin\/tool/);
    expect(await inRegistry(`${reg.host}/multi/app:1`)).toBe(false);
    await ok(skopeo(`oci:${dir}:clean`, `docker://${gate.host}/multi/app:2`, ['--all']));
  });

  it('requires its token when given one', async () => {
    const gate = await startGate(home, reg.host, ['-r', 'permissive', '--token', 's3cret']);
    const anon = await skopeo(stackRef, `docker://${gate.host}/stacks/deb:tok`);
    expect(anon.code).not.toBe(0);
    await ok(skopeo(stackRef, `docker://${gate.host}/stacks/deb:tok`, ['--dest-creds', 'ci:s3cret']));
    expect(await inRegistry(`${reg.host}/stacks/deb:tok`)).toBe(true);
  });

  it('streams a 1 GiB push through in under 150 MB of gate memory', async () => {
    const tree = join(await tempDir(), 'big');
    await run('mkdir', ['-p', tree]);
    for (let i = 0; i < 8; i++) await ok(run('sh', ['-c', `head -c 134217728 /dev/urandom > ${tree}/f${i}`]));
    await writeFile(join(tree, 'README'), 'big\n');
    const layout = join(await tempDir(), 'oci');
    await ok(slipway(home, ['-q', 'image', 'copy', `dir:${tree}`, `oci:${layout}:big`]));
    const gate = await startGate(home, reg.host, ['-r', 'permissive']);
    await ok(skopeo(`oci:${layout}:big`, `docker://${gate.host}/big/one:1`));
    expect(await inRegistry(`${reg.host}/big/one:1`)).toBe(true);
    expect(gate.peak()).toBeLessThan(150 * 1024 * 1024);
  });

  describe('request targets and manifest bodies it cannot read as the registry does', () => {
    const repo = 'bypass/app';
    let gate: Gate;
    let evil: Buffer;
    let clean: Descriptor;
    let evilLayer: Descriptor;
    let config: Descriptor;

    /** A blob straight into the registry (blobs are never judged; the manifest naming them is). */
    async function pushBlob(bytes: Buffer, mediaType: string): Promise<Descriptor> {
      const digest = digestOf(bytes);
      const start = await fetch(`http://${reg.host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      const at = new URL(start.headers.get('location')!, `http://${reg.host}`);
      at.searchParams.set('digest', digest);
      expect((await fetch(at, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': 'application/octet-stream' } })).status).toBe(201);
      return { mediaType, digest, size: bytes.length };
    }
    /** A PUT with the request target exactly as given (node sends `path` verbatim). */
    const put = (target: string, body: Buffer, contentType: string = MediaType.ociManifest, chunked = false): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
      const [host, port] = gate.host.split(':');
      const length = chunked ? {} : { 'content-length': String(body.length) };
      const req = request({ host, port: Number(port), method: 'PUT', path: target, headers: { 'content-type': contentType, ...length } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
    const stored = async (digest: string): Promise<boolean> => (await fetch(`http://${reg.host}/v2/${repo}/manifests/${digest}`, { method: 'HEAD', headers: { accept: `${MediaType.ociManifest}, ${MediaType.ociIndex}` } })).status === 200;

    beforeAll(async () => {
      const policy = join(await tempDir(), 'suid.yaml');
      await writeFile(policy, 'apiVersion: slipway/v1\nkind: Restrictions\nmetadata: {name: no-suid}\nrules:\n  files.setuid: {severity: deny}\n');
      gate = await startGate(await tempDir(), reg.host, ['-r', policy]);
      const evilTar = await tarOf([fileEntry('bin/tool', 'x', { mode: 0o4755 })]);
      const cleanTar = await tarOf([fileEntry('bin/tool', 'x', { mode: 0o755 })]);
      evilLayer = await pushBlob(gzipSync(evilTar), MediaType.ociLayerGzip);
      clean = await pushBlob(gzipSync(cleanTar), MediaType.ociLayerGzip);
      config = await pushBlob(encodeJson({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [digestOf(evilTar)] } }), MediaType.ociConfig);
      evil = encodeJson({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [evilLayer] });
    });

    it('refuses targets that do not normalise (each stored unjudged by a gate that forwarded the raw target), and stores nothing', async () => {
      const bypasses = [
        `/v2/${repo}/manifests%2F1`,
        `/v2/${repo}/%6Danifests/1`,
        `/%76%32/${repo}/manifests/1`,
        `http://${reg.host}/v2/${repo}/manifests/1`,
        `/v2/${repo}/./manifests/1`,
        `/v2/bypass/x/../app/manifests/1`,
        `/v2/${repo}/manifests/..%2F1`,
        `/v2/Bypass/App/manifests/1`,
      ];
      const answers: [string, number, string][] = [];
      for (const target of bypasses) {
        const r = await put(target, evil);
        answers.push([target, r.status, r.status < 300 ? 'stored' : (JSON.parse(r.body) as { errors: { code: string }[] }).errors[0]!.code]);
      }
      expect(answers).toEqual(bypasses.map((t) => [t, expect.toSatisfy((s: number) => s === 400 || s === 404), expect.stringMatching(/^(UNSUPPORTED|NAME_INVALID)$/)]));
      expect(await stored(digestOf(evil))).toBe(false);
      // The same manifest on the one path that normalises is judged, and denied.
      const judged = await put(`/v2/${repo}/manifests/1`, evil);
      expect([judged.status, judged.body]).toEqual([403, expect.stringMatching(/files\.setuid \/bin\/tool/)]);
      expect(await stored(digestOf(evil))).toBe(false);
      expect(gate.log()).toMatch(/refused PUT "\/v2\/bypass\/app\/manifests%2F1": /);
    });

    it('refuses a body whose keys Go reads differently, and a mediaType that disagrees with Content-Type', async () => {
      // Go's encoding/json matches keys ignoring case: `Layers` (the last) is the list any Go puller sees.
      const twoLists = Buffer.from(`{"schemaVersion":2,"mediaType":"${MediaType.ociManifest}","config":${JSON.stringify(config)},"layers":[${JSON.stringify(clean)}],"Layers":[${JSON.stringify(evilLayer)}]}`);
      const r = await put(`/v2/${repo}/manifests/cased`, twoLists);
      expect([r.status, r.body]).toEqual([400, expect.stringMatching(/MANIFEST_INVALID.*keys \\"layers\\" and \\"Layers\\" differ only in case/)]);
      expect(await stored(digestOf(twoLists))).toBe(false);
      const mismatch = await put(`/v2/${repo}/manifests/typed`, evil, MediaType.dockerManifest);
      expect([mismatch.status, mismatch.body]).toEqual([400, expect.stringMatching(/says it is application\/vnd\.oci\.image\.manifest\.v1\+json but was sent as application\/vnd\.docker/)]);
      const untyped = await put(`/v2/${repo}/manifests/typed`, evil, 'application/json');
      expect(untyped.status).toBe(400);
      expect(await stored(digestOf(evil))).toBe(false);
    });

    it('refuses a manifest over 4 MiB, from its Content-Length or as it streams in chunks', async () => {
      const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
      for (const chunked of [false, true]) {
        const r = await put(`/v2/${repo}/manifests/big`, big, MediaType.ociManifest, chunked);
        expect([r.status, r.body]).toEqual([413, expect.stringMatching(/SIZE_INVALID/)]);
      }
    });
  });
});

describe('request targets, parsed once', () => {
  it('reads every registry route, names with route words in them as docker-registry does, and rebuilds the path', () => {
    const d = `sha256:${'a'.repeat(64)}`;
    const cases: [string, object, string][] = [
      ['/v2/', { kind: 'base' }, '/v2/'],
      ['/v2/_catalog?n=10', { kind: 'catalog' }, '/v2/_catalog?n=10'],
      ['/v2/a/b/tags/list', { kind: 'tags', name: 'a/b' }, '/v2/a/b/tags/list'],
      [`/v2/a/manifests/${d}`, { kind: 'manifest', name: 'a', reference: d }, `/v2/a/manifests/${d}`],
      [`/v2/a/manifests/sha256%3A${'a'.repeat(64)}`, { kind: 'manifest', name: 'a', reference: d }, `/v2/a/manifests/${d}`],
      ['/v2/a/blobs/uploads/manifests/v1', { kind: 'manifest', name: 'a/blobs/uploads', reference: 'v1' }, '/v2/a/blobs/uploads/manifests/v1'],
      ['/v2/x/manifests/y/blobs/uploads/', { kind: 'upload', name: 'x/manifests/y' }, '/v2/x/manifests/y/blobs/uploads/'],
      ['/v2/a/blobs/uploads/0b1-c?_state=x%3D&digest=sha256:ab', { kind: 'upload', name: 'a', id: '0b1-c' }, '/v2/a/blobs/uploads/0b1-c?_state=x%3D&digest=sha256%3Aab'],
      [`/v2/a/blobs/${d}`, { kind: 'blob', name: 'a', digest: d }, `/v2/a/blobs/${d}`],
      [`/v2/a/referrers/${d}`, { kind: 'referrers', name: 'a', digest: d }, `/v2/a/referrers/${d}`],
    ];
    for (const [target, route, path] of cases) expect(parseTarget(target), target).toMatchObject({ route, path });
  });

  it('refuses encoded slashes and route words, dot segments, absolute form, and names outside the grammar', () => {
    for (const t of ['/v2/a/manifests%2F1', '/v2/a/%6Danifests/1', '/%76%32/a/manifests/1', 'http://up/v2/a/manifests/1', '*', '/v2/a/../b/manifests/1',
      '/v2/a/manifests/%2E%2E', '/v2/A/manifests/1', '/v2/a//b/manifests/1', '/v2/a%2Fb/manifests/1', '/v2/a/manifests/-x', '/v2/a/blobs/sha256:XYZ!', `/v2/${'a'.repeat(256)}/manifests/1`, '/v2/a/manifests/1%']) {
      expect(() => parseTarget(t), t).toThrow();
    }
  });
});
