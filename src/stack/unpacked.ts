import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { imageStorePath } from '../home.js';
import { hexOf, type Digest } from '../oci/digest.js';
import { directoryOnce } from '../store/atomic.js';
import { OciLayoutSource } from '../transport/oci-layout.js';
import { unpackImage } from '../unpack.js';
import { stackTag, type Stack } from './stacks.js';

/** Mount points containers need on a read-only root; made once, at unpack time. */
const MOUNT_POINTS = ['app', 'workspace', 'tmp', 'proc', 'sys', 'dev', 'etc/ssl/certs'];

/**
 * The stack version's root filesystem on this host: unpacked once (verified, whiteouts
 * applied, mount points added) into a temp directory that is renamed into place, then
 * shared read-only by every build and dyno (dynos starting together share one unpack).
 */
export async function unpackedStack(home: string, stack: Stack): Promise<string> {
  return unpackedImage(home, stack.name, `stack ${stack.name}@v${stack.version}`, stack.digest);
}

/**
 * Where builds run: the stack version's build variant (compilers, headers) when it has one,
 * else its run image.
 */
export async function unpackedBuildStack(home: string, stack: Stack): Promise<string> {
  if (stack.build === undefined) return unpackedStack(home, stack);
  return unpackedImage(home, stack.name, `stack ${stack.name}@v${stack.version} (build)`, stack.build.digest);
}

async function unpackedImage(home: string, name: string, what: string, digest: string): Promise<string> {
  const dir = await directoryOnce(join(home, 'stacks', hexOf(digest as Digest)), async (tmp) => {
    const src = await OciLayoutSource.open(what, imageStorePath(home), stackTag(name, digest));
    try {
      await unpackImage(src, join(tmp, 'rootfs'));
    } finally {
      await src.close();
    }
    for (const m of MOUNT_POINTS) await mkdir(join(tmp, 'rootfs', m), { recursive: true, mode: 0o755 });
  });
  return join(dir, 'rootfs');
}
