import { imageStorePath } from '../home.js';
import { DockerArchiveDestination, DockerArchiveSource } from './docker-archive.js';
import { DirSource } from './dir.js';
import { OciLayoutDestination, OciLayoutSource } from './oci-layout.js';
import { localRefName, parseImageRef, type ImageRef } from './reference.js';
import { RegistryDestination, RegistrySource } from './registry/transport.js';
import type { RegistryOptions } from './registry/client.js';
import type { ImageDestination, ImageSource } from './types.js';
import { UsageError } from '../errors.js';

export interface TransportContext {
  home: string;
  registry?: RegistryOptions;
  /** For dir: sources; where to build the layer (a destination's scratch dir avoids a copy). */
  scratch?: string;
  onDirProgress?: (bytes: number) => void;
  onSkip?: (path: string, why: string) => void;
}

function localRef(r: Extract<ImageRef, { transport: 'local' }>): string {
  return r.digest ?? localRefName(r);
}

export async function openSource(input: string, ctx: TransportContext): Promise<ImageSource> {
  const r = parseImageRef(input);
  switch (r.transport) {
    case 'oci':
      return OciLayoutSource.open(input, r.dir, r.ref);
    case 'local':
      return OciLayoutSource.open(input, imageStorePath(ctx.home), localRef(r));
    case 'docker-archive':
      return DockerArchiveSource.open(input, r.file, r.ref);
    case 'docker':
      return RegistrySource.open(r.ref, ctx.registry ?? {});
    case 'dir':
      return new DirSource(input, r.dir, {
        ...(ctx.scratch && { scratch: ctx.scratch }),
        ...(ctx.onDirProgress && { onProgress: ctx.onDirProgress }),
        ...(ctx.onSkip && { onSkip: ctx.onSkip }),
      });
  }
}

export async function openDestination(input: string, ctx: TransportContext): Promise<ImageDestination> {
  const r = parseImageRef(input);
  switch (r.transport) {
    case 'oci':
      return OciLayoutDestination.open(input, r.dir, r.ref);
    case 'local':
      if (r.digest) throw new UsageError(`"${input}": a destination is named by tag, not digest`);
      return OciLayoutDestination.open(input, imageStorePath(ctx.home), localRefName(r), { validateLayers: true });
    case 'docker-archive':
      return DockerArchiveDestination.open(input, r.file, r.ref);
    case 'docker':
      return RegistryDestination.open(r.ref, ctx.registry ?? {});
    case 'dir':
      throw new UsageError(`"${input}": dir: is a source only`, 'copy to oci:DIR, docker-archive:FILE, docker://REF or a local NAME:TAG');
  }
}
