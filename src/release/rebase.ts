import { SlipwayError } from '../errors.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { formatPlatform } from '../oci/platform.js';
import { encodeJson, type Descriptor, type HistoryEntry, type ImageConfig, type ImageManifest } from '../oci/types.js';
import { BASE_DIGEST, BASE_LAYERS, BASE_NAME } from './image.js';

/** An image as a rebase sees it: its manifest (with digest and media type) and its config. */
export interface ImageParts {
  digest: Digest;
  mediaType: string;
  manifest: ImageManifest;
  config: ImageConfig;
}

export interface Rebased {
  manifest: ImageManifest;
  manifestBytes: Buffer;
  digest: Digest;
  config: ImageConfig;
  configBytes: Buffer;
  /** The new base's layers (to mount or find present) and the app's own (never moved). */
  baseLayers: Descriptor[];
  appLayers: Descriptor[];
}

const OCI_TO_DOCKER: Record<string, string> = {
  [MediaType.ociLayerGzip]: MediaType.dockerLayerGzip,
  [MediaType.ociLayer]: MediaType.dockerLayer,
};
const DOCKER_TO_OCI: Record<string, string> = Object.fromEntries(Object.entries(OCI_TO_DOCKER).map(([a, b]) => [b, a]));

/** A layer descriptor in the media-type family of the manifest it goes into. */
function inFamily(layer: Descriptor, manifestType: string): Descriptor {
  const map = manifestType === MediaType.dockerManifest ? OCI_TO_DOCKER : DOCKER_TO_OCI;
  const { mediaType, digest, size } = layer;
  return { mediaType: map[mediaType] ?? mediaType, digest, size, ...(layer.urls && { urls: layer.urls }), ...(layer.annotations && { annotations: layer.annotations }) };
}

const platformOf = (c: ImageConfig): string => formatPlatform({ os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}) });

/**
 * History entries compared by meaning: tools that rewrite a config (umoci, Go's encoder) re-print
 * `created` (`…00.000Z` becomes `…00Z`) and drop `empty_layer: false`, which is the same entry.
 */
function sameHistory(a: HistoryEntry, b: HistoryEntry): boolean {
  const norm = (h: HistoryEntry): string => JSON.stringify({
    created: h.created === undefined ? undefined : Date.parse(h.created),
    created_by: h.created_by,
    author: h.author,
    comment: h.comment,
    empty_layer: h.empty_layer === true,
  });
  return norm(a) === norm(b);
}

/**
 * Moves an image from its old base onto a new one, as a pure function of manifests and configs:
 * the bottom layers, diff_ids and history entries must be exactly the old base's; they are
 * replaced by the new base's, and everything else (the app's layers, its config, created time,
 * platform, media types) is kept. Nothing here reads or writes a layer.
 */
export function rebase(image: ImageParts, oldBase: ImageParts, newBase: ImageParts, opts: { newBaseName?: string } = {}): Rebased {
  const n = oldBase.manifest.layers.length;
  const fail = (what: string, hint = 'rebase only onto a base of the image\'s own base, or give the right --old-base'): never => {
    throw new SlipwayError(`rebase refused: ${what}`, { hint });
  };
  if (image.manifest.layers.length < n) fail(`the image has ${image.manifest.layers.length} layers, fewer than the old base's ${n}`);
  oldBase.manifest.layers.forEach((l, i) => {
    const mine = image.manifest.layers[i]!;
    if (mine.digest !== l.digest) fail(`layer ${i + 1} is ${mine.digest}, the old base has ${l.digest}: the image is not built on that base`);
  });
  const oldIds = oldBase.config.rootfs.diff_ids;
  if (oldIds.length !== n) fail(`the old base's config lists ${oldIds.length} diff_ids for ${n} layers`);
  oldIds.forEach((d, i) => {
    if (image.config.rootfs.diff_ids[i] !== d) fail(`diff_id ${i + 1} is ${String(image.config.rootfs.diff_ids[i])}, the old base has ${d}`, 'the image config does not match its layers (tampered?); nothing was written');
  });
  const oldHistory = oldBase.config.history ?? [];
  const history = image.config.history ?? [];
  oldHistory.forEach((h, i) => {
    if (!history[i] || !sameHistory(h, history[i]!)) fail(`history entry ${i + 1} differs from the old base's`);
  });
  if (platformOf(newBase.config) !== platformOf(image.config)) {
    fail(`the new base is ${platformOf(newBase.config)}, the image is ${platformOf(image.config)}`, 'rebase onto the same platform of the new base');
  }
  const baseLayers = newBase.manifest.layers.map((l) => inFamily(l, image.mediaType));
  const appLayers = image.manifest.layers.slice(n);
  const config: ImageConfig = {
    ...image.config,
    rootfs: { type: 'layers', diff_ids: [...newBase.config.rootfs.diff_ids, ...image.config.rootfs.diff_ids.slice(n)] },
    history: [...(newBase.config.history ?? []), ...history.slice(oldHistory.length)],
  };
  const configBytes = encodeJson(config);
  const manifest: ImageManifest = {
    ...image.manifest,
    config: { ...image.manifest.config, digest: digestOf(configBytes), size: configBytes.length },
    layers: [...baseLayers, ...appLayers],
  };
  if (image.mediaType !== MediaType.dockerManifest) {
    manifest.annotations = {
      ...image.manifest.annotations,
      [BASE_DIGEST]: newBase.digest,
      [BASE_LAYERS]: String(baseLayers.length),
      ...(opts.newBaseName !== undefined ? { [BASE_NAME]: opts.newBaseName } : {}),
    };
  }
  const manifestBytes = encodeJson(manifest);
  return { manifest, manifestBytes, digest: digestOf(manifestBytes), config, configBytes, baseLayers, appLayers };
}
