import { execFileSync } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile, chmod, copyFile } from 'node:fs/promises';
import { join } from 'node:path';

import { decompress } from '../../src/oci/compression.js';
import { extractLayer } from '../../src/oci/tar/extract.js';
import { OciLayout } from '../../src/store/layout.js';
import { tempDir } from './tmp.js';

/** Writes a classic buildpack from shell snippets. */
export async function buildpack(scripts: { detect: string; compile: string; release?: string }): Promise<string> {
  const dir = await tempDir('slipway-bp-');
  await mkdir(join(dir, 'bin'));
  for (const [name, body] of Object.entries(scripts)) {
    await writeFile(join(dir, 'bin', name), `#!/bin/sh\nset -e\n${body}\n`);
    await chmod(join(dir, 'bin', name), 0o755);
  }
  return dir;
}

/** A tiny stack root: busybox-static and its applets, enough for shell buildpacks. */
export async function busyboxRootfs(): Promise<string> {
  const root = join(await tempDir('slipway-busybox-'), 'rootfs');
  for (const d of ['bin', 'etc', 'tmp', 'usr/bin']) await mkdir(join(root, d), { recursive: true });
  await copyFile('/bin/busybox', join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  const applets = execFileSync('/bin/busybox', ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) await symlink('busybox', join(root, 'bin', a));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n');
  await chmod(join(root, 'tmp'), 0o1777);
  return root;
}

/** Extracts the slug of a release (by slug manifest digest) into a fresh directory. */
export async function unpackSlug(home: string, slugDigest: string): Promise<string> {
  const layout = await OciLayout.open(join(home, 'images'), { create: false });
  const m = await layout.readManifest({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: slugDigest as never, size: (await layout.blobSize(slugDigest as never))! });
  if (m.kind !== 'manifest') throw new Error('slug is not a manifest');
  const out = join(await tempDir('slipway-slug-'), 'root');
  await mkdir(out);
  await extractLayer(decompress(layout.openBlob(m.manifest.layers[0]!.digest), 'slug'), out, 'slug', { preserveOwners: false, devices: 'skip' });
  return out;
}

export async function readText(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

