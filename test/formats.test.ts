import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { digestOf, isDigest, parseDigest, VerifyingStream } from '../src/oci/digest.js';
import { normalizePlatform, parsePlatform, platformMatches } from '../src/oci/platform.js';
import { parseManifest } from '../src/oci/types.js';
import { MediaType, layerCompression } from '../src/oci/mediatypes.js';
import { parseImageRef, parseDockerReference } from '../src/transport/reference.js';

describe('digests', () => {
  it('accepts sha256 and sha512, rejects malformed ones', () => {
    expect(isDigest(digestOf('x'))).toBe(true);
    expect(isDigest(digestOf('x', 'sha512'))).toBe(true);
    expect(digestOf('x', 'sha512')).toMatch(/^sha512:[a-f0-9]{128}$/);
    expect(() => parseDigest('sha256:abc')).toThrow(/not a valid digest/);
    expect(() => parseDigest('md5:' + 'a'.repeat(32))).toThrow(/not a valid digest/);
    expect(() => parseDigest('sha256:' + 'A'.repeat(64))).toThrow();
  });

  it('verifies streams by sha512 as well as sha256, and rejects wrong bytes or sizes', async () => {
    const data = Buffer.from('hello layer');
    for (const alg of ['sha256', 'sha512'] as const) {
      const good = Readable.from([data]).pipe(new VerifyingStream(digestOf(data, alg), data.length, 'blob'));
      const chunks: Buffer[] = [];
      for await (const c of good) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }
    const bad = Readable.from([Buffer.from('tampered!!!')]).pipe(new VerifyingStream(digestOf(data), data.length, 'blob X'));
    await expect(async () => {
      for await (const _ of bad) void _;
    }).rejects.toThrow(/blob X: content digest is sha256:.*expected/);
    const short = Readable.from([data.subarray(0, 4)]).pipe(new VerifyingStream(digestOf(data), data.length, 'blob Y'));
    await expect(async () => {
      for await (const _ of short) void _;
    }).rejects.toThrow(/blob Y: got 4 bytes, its descriptor declares 11/);
  });
});

describe('platforms', () => {
  it('normalizes aliases and variants', () => {
    expect(normalizePlatform({ os: 'linux', architecture: 'aarch64' })).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(normalizePlatform({ os: 'linux', architecture: 'x86_64' })).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(normalizePlatform({ os: 'linux', architecture: 'arm' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
  });

  it('matches aarch64 to arm64/v8 and respects an asked-for variant', () => {
    expect(platformMatches({ os: 'linux', architecture: 'aarch64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(false);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' })).toBe(false);
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(() => parsePlatform('linux')).toThrow(/os\/arch/);
  });
});

describe('manifests', () => {
  const d = digestOf('x');
  it('tells index from manifest, Docker from OCI, and keeps the bytes', () => {
    const docker = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config: { mediaType: MediaType.dockerConfig, digest: d, size: 1 }, layers: [] }));
    const p = parseManifest(docker, digestOf(docker), undefined, 'm');
    expect(p.kind).toBe('manifest');
    expect(p.mediaType).toBe(MediaType.dockerManifest);
    expect(p.bytes).toBe(docker);
    const list = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: d, size: 3, platform: { os: 'linux', architecture: 'amd64' } }] }));
    expect(parseManifest(list, digestOf(list), undefined, 'i').kind).toBe('index');
  });

  it('names what is wrong with a bad document', () => {
    const bad = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: 'sha256:zz', size: 1 }, layers: [] }));
    expect(() => parseManifest(bad, digestOf(bad), undefined, 'img')).toThrow(/img: config: digest/);
    expect(() => parseManifest(Buffer.from('{'), d, undefined, 'img')).toThrow(/img: invalid JSON/);
    expect(() => parseManifest(Buffer.from('{"schemaVersion":1}'), d, undefined, 'img')).toThrow(/schemaVersion 1/);
  });

  it('knows layer compressions from media types', () => {
    expect(layerCompression(MediaType.ociLayerGzip)).toBe('gzip');
    expect(layerCompression(MediaType.dockerLayerGzip)).toBe('gzip');
    expect(layerCompression(MediaType.ociLayerZstd)).toBe('zstd');
    expect(layerCompression(MediaType.ociLayer)).toBe('none');
  });
});

describe('image references', () => {
  it('parses every transport in skopeo syntax', () => {
    expect(parseImageRef('oci:/tmp/x:v1')).toEqual({ transport: 'oci', dir: '/tmp/x', ref: 'v1' });
    expect(parseImageRef('oci:/tmp/x')).toEqual({ transport: 'oci', dir: '/tmp/x' });
    expect(parseImageRef('docker-archive:/tmp/a.tar:app:1')).toMatchObject({ transport: 'docker-archive', file: '/tmp/a.tar', ref: { repository: 'library/app', tag: '1' } });
    expect(parseImageRef('docker://127.0.0.1:5000/a/b:2')).toEqual({ transport: 'docker', ref: { registry: '127.0.0.1:5000', repository: 'a/b', tag: '2' } });
    expect(parseImageRef('dir:/srv/root')).toEqual({ transport: 'dir', dir: '/srv/root' });
    expect(parseImageRef('app:1')).toEqual({ transport: 'local', name: 'app', tag: '1' });
    const dg = digestOf('m');
    expect(parseImageRef(`app@${dg}`)).toEqual({ transport: 'local', name: 'app', digest: dg });
  });

  it('expands Docker Hub short names and rejects bad ones', () => {
    expect(parseDockerReference('busybox')).toEqual({ registry: 'docker.io', repository: 'library/busybox' });
    expect(parseDockerReference('localhost:5000/x@' + digestOf('a'))).toMatchObject({ registry: 'localhost:5000', repository: 'x' });
    expect(() => parseImageRef('docker:/x')).toThrow(/docker:\/\//);
    expect(() => parseImageRef('docker://h.io/UPPER:1')).toThrow(/repository/);
    expect(() => parseImageRef('ftp://x/y')).toThrow(/unknown transport "ftp"/);
  });
});
