import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, link, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { setAttribute } from 'fs-xattr';
import { describe, expect, it } from 'vitest';
import { decompress } from '../src/oci/compression.js';
import { buildLayer } from '../src/oci/layer.js';
import { extractLayer } from '../src/oci/tar/extract.js';
import { encodeHeader, type TarHeader } from '../src/oci/tar/header.js';
import { readTar } from '../src/oci/tar/reader.js';
import { scanDirectory } from '../src/oci/tar/scan.js';
import { writeTar, type WriteEntry } from '../src/oci/tar/writer.js';
import { describeTree } from './helpers/rootfs.js';
import { file as rawFile, pax, tar } from './helpers/tar-craft.js';
import { tempDir } from './helpers/tmp.js';

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of gen) chunks.push(c);
  return Buffer.concat(chunks);
}

function h(path: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}): TarHeader {
  return { path, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtime: 0, ...extra };
}

function file(path: string, content: string, extra: Partial<TarHeader> = {}): WriteEntry {
  const body = Buffer.from(content);
  return { header: h(path, 'file', { size: body.length, ...extra }), body: () => [body] as unknown as AsyncIterable<Buffer> };
}

/** A tar built from raw headers: how a hostile archive is made. */
async function craft(entries: WriteEntry[]): Promise<Buffer> {
  return collect(writeTar(entries));
}

async function extractBuf(tar: Buffer, target: string) {
  return extractLayer(Readable.from([tar]), target, 'test-layer');
}

async function sampleTree(root: string): Promise<void> {
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'usr/bin/tool'), 'binary');
  await chmod(join(root, 'usr/bin/tool'), 0o4755);
  await setAttribute(join(root, 'usr/bin/tool'), 'security.capability', Buffer.from('0100000200040000000000000000000000000000', 'hex'));
  await setAttribute(join(root, 'etc'), 'user.note', Buffer.from([0xff, 0x00, 0x80]));
  await link(join(root, 'usr/bin/tool'), join(root, 'usr/bin/tool-alias'));
  const deep = join(root, 'd'.repeat(60), 'e'.repeat(60));
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, 'f'.repeat(90)), 'long');
  await symlink('/'.padEnd(2, 'x') + 'y'.repeat(150), join(root, 'longlink'));
  await symlink('../usr/bin/tool', join(root, 'etc/tool'));
  execFileSync('mknod', [join(root, 'etc/null'), 'c', '1', '3']);
  execFileSync('mkfifo', [join(root, 'etc/fifo')]);
}

describe('deterministic layer writer', () => {
  it('gives the same digest for the same content, whatever the mtimes', async () => {
    const root = await tempDir();
    await sampleTree(root);
    const a = await buildLayer(scanDirectory(root), sink());
    await utimes(join(root, 'usr/bin/tool'), 1e9, 1e9);
    await utimes(join(root, 'etc'), 2e9, 2e9);
    const b = await buildLayer(scanDirectory(root), sink());
    expect(b.digest).toBe(a.digest);
    expect(b.diffId).toBe(a.diffId);
    const c = await buildLayer(scanDirectory(root, { mtime: 1700000000 }), sink());
    expect(c.diffId).not.toBe(a.diffId);
  });

  it('sorts entries, adds parents first, uses numeric owners and PAX for long names and xattrs', async () => {
    const root = await tempDir();
    await sampleTree(root);
    const tar = await collect(writeTar(scanDirectory(root)));
    const seen: TarHeader[] = [];
    for await (const e of readTar(Readable.from([tar]), 't')) seen.push(e.header);
    const paths = seen.map((x) => x.path);
    expect(paths).toEqual([...paths].sort((x, y) => (x.split('/').join('\0') < y.split('/').join('\0') ? -1 : 1)));
    const tool = seen.find((x) => x.path === 'usr/bin/tool')!;
    expect(tool.mode).toBe(0o4755);
    expect(tool.xattrs?.['security.capability']?.toString('hex')).toBe('0100000200040000000000000000000000000000');
    expect(tool.mtime).toBe(315532800);
    expect(seen.find((x) => x.path === 'etc')!.xattrs?.['user.note']).toEqual(Buffer.from([0xff, 0x00, 0x80]));
    expect(seen.find((x) => x.path === 'usr/bin/tool-alias')).toMatchObject({ type: 'hardlink', linkTarget: 'usr/bin/tool' });
    expect(seen.find((x) => x.path === 'longlink')!.linkTarget).toHaveLength(152);
    expect(seen.some((x) => x.path.endsWith('f'.repeat(90)))).toBe(true);
    expect(seen.find((x) => x.path === 'etc/null')).toMatchObject({ type: 'char', devMajor: 1, devMinor: 3 });
  });

  it('round-trips a tree through a layer: modes, owners, xattrs, links, devices', async () => {
    const root = await tempDir();
    await sampleTree(root);
    execFileSync('chown', ['-h', '1234:5678', join(root, 'etc/tool')]);
    const tar = await collect(writeTar(scanDirectory(root)));
    const out = join(await tempDir(), 'x');
    await mkdir(out);
    await extractBuf(tar, out);
    const want = await describeTree(root);
    const got = await describeTree(out);
    expect(got).toEqual(want);
  });
});

describe('safe reader', () => {
  const cases: [string, WriteEntry[], RegExp][] = [
    ['a ../ path', [file('../../etc/passwd', 'x')], /"\.\.\/\.\.\/etc\/passwd" contains "\.\." and would escape/],
    ['an absolute path', [file('/etc/passwd', 'x')], /"\/etc\/passwd" has an absolute path/],
    ['a file written through a symlink', [{ header: h('evil', 'symlink', { linkTarget: '/etc' }) }, file('evil/passwd', 'x')], /"evil\/passwd": would be written through the symlink "evil"/],
    ['a hardlink out', [{ header: h('h', 'hardlink', { linkTarget: '../../etc/shadow' }) }], /contains "\.\." and would escape/],
    ['a duplicate path', [file('a', '1'), file('a', '2')], /"a": the path appears twice/],
  ];
  for (const [name, entries, message] of cases) {
    it(`refuses ${name} and writes nothing outside`, async () => {
      const parent = await tempDir();
      const target = join(parent, 'root');
      await mkdir(target);
      await expect(extractBuf(await craft(entries), target)).rejects.toThrow(message);
      await expect(readFile(join(parent, 'etc/passwd'))).rejects.toThrow();
    });
  }

  it('refuses a symlink planted by a lower layer', async () => {
    const target = join(await tempDir(), 'root');
    await mkdir(target);
    await extractBuf(await craft([{ header: h('lib', 'symlink', { linkTarget: '/tmp' }) }]), target);
    await expect(extractBuf(await craft([file('lib/x.so', 'x')]), target)).rejects.toThrow(/written through the symlink "lib"/);
  });

  it('refuses a 10 GB decompression bomb before writing it', async () => {
    const zeros = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    // A PAX header declaring a 10 GiB file (its size does not fit ustar), then 10 GiB of zeros.
    const head = encodeHeader(h('bomb', 'file', { size: 10 * 1024 ** 3 }));
    const members = [gzipSync(head), ...Array.from({ length: 160 }, () => zeros)];
    const bomb = Buffer.concat(members);
    expect(bomb.length).toBeLessThan(20 * 1024 * 1024);
    const target = join(await tempDir(), 'root');
    await mkdir(target);
    await expect(extractLayer(decompress(Readable.from([bomb]), 'bomb.tar.gz'), target, 'bomb.tar.gz', { limits: { maxEntries: 1000, maxHeaderBytes: 65536, maxTotalBytes: 8 * 1024 ** 3 } })).rejects.toThrow(
      /expands beyond the 8589934592-byte limit/,
    );
    expect(execFileSync('du', ['-sb', target]).toString()).toMatch(/^\d{1,5}\t/);
  });

  it('says a truncated gzip layer is truncated', async () => {
    const root = await tempDir();
    await writeFile(join(root, 'f'), Buffer.alloc(200_000, 7));
    const out = join(await tempDir(), 'layer.tgz');
    await buildLayer(scanDirectory(root), createWriteStream(out));
    const whole = await readFile(out);
    const cut = whole.subarray(0, Math.floor(whole.length / 2));
    const target = join(await tempDir(), 'root');
    await mkdir(target);
    await expect(extractLayer(decompress(Readable.from([cut]), 'cut.tgz'), target, 'cut.tgz')).rejects.toThrow(/cut.tgz: .*truncated/);
  });

  it('applies whiteouts and opaque dirs to lower layers only', async () => {
    const target = join(await tempDir(), 'root');
    await mkdir(target);
    await extractBuf(await craft([{ header: h('a', 'dir') }, file('a/x', 'x'), file('a/y', 'y'), { header: h('b', 'dir') }, file('b/z', 'z')]), target);
    const stats = await extractBuf(await craft([file('b/new', 'n'), file('a/.wh.x', ''), file('b/.wh..wh..opq', '')]), target);
    expect(stats.whiteouts).toBe(2);
    const tree = await describeTree(target);
    expect([...tree.keys()].sort()).toEqual(['a', 'a/y', 'b', 'b/new']);
  });

  it('takes git archive\'s global comment in a source tarball, never in a layer', async () => {
    const gitArchive = tar(pax([['comment', 'a1b2c3d4']], 'g'), rawFile('bin/detect', '#!/bin/sh\n'));
    const read = async (kind: 'layer' | 'source') => {
      const paths: string[] = [];
      for await (const e of readTar(Readable.from([gitArchive]), 'bp.tgz', undefined, kind)) paths.push(e.header.path);
      return paths;
    };
    expect(await read('source')).toEqual(['bin/detect']);
    await expect(read('layer')).rejects.toThrow(/a global PAX header/);
  });

  it('reads zstd layers', async () => {
    const root = await tempDir();
    await writeFile(join(root, 'hello'), 'zstd works');
    const tar = await collect(writeTar(scanDirectory(root)));
    const zst = execFileSync('zstd', ['-c', '-q'], { input: tar });
    const target = join(await tempDir(), 'root');
    await mkdir(target);
    await extractLayer(decompress(Readable.from([zst]), 'z'), target, 'z');
    expect(await readFile(join(target, 'hello'), 'utf8')).toBe('zstd works');
  });
});
