import { Readable } from 'node:stream';
import { SlipwayError } from '../errors.js';
import { imageStorePath } from '../home.js';
import { readSmallBlob } from '../inspect.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { DEFAULT_EPOCH } from '../oci/tar/scan.js';
import { encodeJson, parseImageConfig, type Descriptor, type ImageConfig, type ImageManifest, type ParsedManifest } from '../oci/types.js';
import { slugTag, type SlugMetadata } from '../slug/slug.js';
import { stackTag } from '../stack/stacks.js';
import { OciLayoutSource } from '../transport/oci-layout.js';
import type { ImageSource } from '../transport/types.js';
import type { Release } from './releases.js';

export const BASE_NAME = 'org.opencontainers.image.base.name';
export const BASE_DIGEST = 'org.opencontainers.image.base.digest';
/** How many bottom layers are the stack's: what a rebase replaces. */
export const BASE_LAYERS = 'io.slipway.base.layers';

/** Heroku's order: every readable .profile.d script, sourced from the app directory. */
export const SOURCE_PROFILE_D = 'for f in .profile.d/*.sh; do [ -r "$f" ] && . "./$f"; done';
/** Sources every .profile.d script, as a dyno does, then runs the command it is given. */
export const LAUNCHER = `cd /app && ${SOURCE_PROFILE_D}; exec "$@"`;
export const DEFAULT_PORT = 5000;

export interface ReleaseImage {
  manifest: Extract<ParsedManifest, { kind: 'manifest' }>;
  config: Buffer;
  /** Where each blob comes from: the stack image or the slug artifact in the store. */
  source: ImageSource;
}

/**
 * The OCI image of a release: the stack version's layers, unchanged (same blobs, same digests),
 * the slug blob as the one app layer, and a config that runs the `web` process type through
 * the profile scripts as the app user. Config vars stay out unless asked for.
 */
export async function releaseImage(home: string, release: Release, slugMeta: SlugMetadata, opts: { withConfig?: boolean; baseName?: string } = {}): Promise<ReleaseImage> {
  if (!release.slug || !release.stack) throw new SlipwayError(`${release.app} v${release.version} has no slug yet`, { hint: 'build it first' });
  const store = imageStorePath(home);
  const stack = await OciLayoutSource.open(`stack ${release.stack.name}@v${release.stack.version}`, store, stackTag(release.stack.name, release.stack.digest));
  const slug = await OciLayoutSource.open(`slug of ${release.app}`, store, slugTag(release.app, release.slug as Digest));
  const base = await stack.getManifest();
  if (base.kind !== 'manifest') throw new SlipwayError(`stack ${release.stack.name}: expected a single-platform image`);
  const baseConfig = parseImageConfig(await readSmallBlob(stack, base.manifest.config), `stack ${release.stack.name}: config`);
  const slugManifest = await slug.getManifest();
  if (slugManifest.kind !== 'manifest') throw new SlipwayError('slug: not a manifest');
  const slugLayer = slugManifest.manifest.layers[0]!;

  const created = new Date(DEFAULT_EPOCH * 1000).toISOString();
  const web = slugMeta.processTypes.web;
  const env = [...(baseConfig.config?.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']).filter((e) => e.startsWith('PATH=')), 'HOME=/app', `PORT=${DEFAULT_PORT}`];
  if (opts.withConfig) for (const [k, v] of Object.entries(release.config)) env.push(`${k}=${v}`);
  const labels: Record<string, string> = {
    'io.slipway.app': release.app,
    'io.slipway.release': `v${release.version}`,
    'io.slipway.slug': release.slug,
    'io.slipway.buildpacks': slugMeta.buildpacks.map((b) => `${b.name}${b.version ? `@${b.version}` : ''}`).join(','),
    'io.slipway.stack.name': release.stack.name,
    'io.slipway.stack.digest': release.stack.digest,
    'io.slipway.process-types': JSON.stringify(slugMeta.processTypes),
  };
  const config: ImageConfig = {
    created,
    architecture: baseConfig.architecture,
    os: baseConfig.os,
    ...(baseConfig.variant && { variant: baseConfig.variant }),
    config: {
      User: '1000:1000',
      Env: env,
      Entrypoint: ['/bin/sh', '-c', LAUNCHER, 'launcher'],
      Cmd: web ? ['/bin/sh', '-c', web] : null,
      WorkingDir: '/app',
      ExposedPorts: { [`${DEFAULT_PORT}/tcp`]: {} },
      Labels: labels,
    },
    rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, slugMeta.layer.diffId] },
    history: [...(baseConfig.history ?? []), { created, created_by: `slipway slug ${release.slug} (${slugMeta.buildpacks.map((b) => b.name).join(', ')})` }],
  };
  const configBytes = encodeJson(config);
  const configDesc: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf(configBytes), size: configBytes.length };
  const doc: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDesc,
    layers: [...base.manifest.layers, { mediaType: slugLayer.mediaType, digest: slugLayer.digest, size: slugLayer.size }],
    annotations: {
      [BASE_NAME]: opts.baseName ?? `slipway/stacks/${release.stack.name}:v${release.stack.version}`,
      [BASE_DIGEST]: base.digest,
      [BASE_LAYERS]: String(base.manifest.layers.length),
      'org.opencontainers.image.created': created,
    },
  };
  const bytes = encodeJson(doc);
  const manifest = { kind: 'manifest' as const, mediaType: MediaType.ociManifest, bytes, digest: digestOf(bytes), manifest: doc };
  const source: ImageSource = {
    name: `${release.app} v${release.version}`,
    getManifest: async (digest) => {
      if (digest !== undefined && digest !== manifest.digest) throw new SlipwayError(`${release.app}: no manifest ${digest}`);
      return manifest;
    },
    getBlob: async (desc) => {
      if (desc.digest === configDesc.digest) return Readable.from([configBytes]);
      return desc.digest === slugLayer.digest ? slug.getBlob(desc) : stack.getBlob(desc);
    },
    blobFile: (desc) => (desc.digest === slugLayer.digest ? slug.blobFile(desc) : stack.blobFile(desc)),
    close: async () => {
      await stack.close();
      await slug.close();
    },
  };
  return { manifest, config: configBytes, source };
}
