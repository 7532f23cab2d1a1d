import { SlipwayError } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';
import { isIndexType, isManifestType, MediaType } from './mediatypes.js';
import type { Platform } from './platform.js';

export type Annotations = Record<string, string>;

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Annotations;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, object>;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: Record<string, object>;
    WorkingDir?: string;
    Labels?: Record<string, string>;
    StopSignal?: string;
  };
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

/** A manifest or index exactly as stored, with its parsed form. Bytes are kept so digests never change. */
export type ParsedManifest =
  | { kind: 'index'; mediaType: string; bytes: Buffer; digest: Digest; index: ImageIndex }
  | { kind: 'manifest'; mediaType: string; bytes: Buffer; digest: Digest; manifest: ImageManifest };

/** Upper bound for manifests and configs: they are read into memory, so never trust a peer's size. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

function fail(where: string, what: string): never {
  throw new SlipwayError(`${where}: ${what}`, { hint: 'the document is not a valid OCI/Docker image manifest, index or config' });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseJson(bytes: Buffer | string, where: string): unknown {
  try {
    return JSON.parse(bytes.toString());
  } catch (err) {
    return fail(where, `invalid JSON (${(err as Error).message})`);
  }
}

export function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) fail(where, 'descriptor is not an object');
  if (typeof v.mediaType !== 'string' || v.mediaType === '') fail(where, 'descriptor has no mediaType');
  const size = v.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(where, 'descriptor size is not a non-negative integer');
  return { ...(v as unknown as Descriptor), digest: parseDigest(v.digest, `${where}: digest`) };
}

/** Go matches JSON keys to struct fields ignoring case (and folds ſ to s, K to k). */
const fold = (k: string): string => k.toLowerCase().replace(/ſ/g, 's');
const canonical = (fields: string[]): Map<string, string> => new Map(fields.map((f) => [fold(f), f]));
/** Fields of manifests, indexes, descriptors and platforms, as Go's encoding/json knows them. */
const MANIFEST_FIELDS = canonical(['schemaVersion', 'mediaType', 'artifactType', 'config', 'layers', 'manifests', 'subject', 'annotations', 'digest', 'size', 'urls', 'data', 'platform', 'architecture', 'os', 'os.version', 'os.features', 'variant', 'features']);
const CONFIG_FIELDS = canonical(['created', 'author', 'architecture', 'os', 'os.version', 'os.features', 'variant', 'config', 'rootfs', 'history']);
const RUN_FIELDS = canonical(['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped', 'Healthcheck', 'OnBuild', 'Shell']);
const ROOTFS_FIELDS = canonical(['type', 'diff_ids']);

/**
 * Refuses keys a Go reader (registries, containerd, umoci, runtimes) would read as another field
 * than JavaScript does: `Layers` beside `layers` is a second layer list to Go, invisible here.
 */
function checkKeys(v: unknown, fields: Map<string, string>, where: string): void {
  if (!isObject(v)) return;
  const seen = new Map<string, string>();
  for (const k of Object.keys(v)) {
    const f = fold(k);
    const other = seen.get(f);
    if (other !== undefined) fail(where, `keys "${other}" and "${k}" differ only in case: readers disagree on which one counts`);
    seen.set(f, k);
    const known = fields.get(f);
    if (known !== undefined && known !== k) fail(where, `key "${k}" must be spelled "${known}": Go readers take it for that field, this one would not`);
  }
}

function checkManifestKeys(doc: Record<string, unknown>, where: string): void {
  checkKeys(doc, MANIFEST_FIELDS, where);
  for (const k of ['config', 'subject']) checkKeys(doc[k], MANIFEST_FIELDS, `${where}: ${k}`);
  for (const k of ['layers', 'manifests']) {
    const list = doc[k];
    if (!Array.isArray(list)) continue;
    list.forEach((d: unknown, i) => {
      checkKeys(d, MANIFEST_FIELDS, `${where}: ${k}[${i}]`);
      if (isObject(d)) checkKeys(d.platform, MANIFEST_FIELDS, `${where}: ${k}[${i}].platform`);
    });
  }
}

/**
 * Parses a manifest or index. The media type comes from the transport (Content-Type,
 * descriptor) or, failing that, from the document itself; Docker's list and manifest
 * are told apart from OCI's by their fields when neither says.
 */
export function parseManifest(bytes: Buffer, digest: Digest, declaredType: string | undefined, where: string): ParsedManifest {
  const doc = parseJson(bytes, where);
  if (!isObject(doc)) fail(where, 'not a JSON object');
  checkManifestKeys(doc, where);
  if (doc.schemaVersion !== 2) fail(where, `schemaVersion ${String(doc.schemaVersion)} is not supported (only 2)`);
  const own = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  let mediaType = own ?? (declaredType && declaredType !== 'application/json' ? declaredType : undefined);
  mediaType ??= Array.isArray(doc.manifests) ? MediaType.ociIndex : MediaType.ociManifest;
  // CVE-2021-41190: a document that is both an index and a manifest is read as either by different readers.
  if (isIndexType(mediaType)) {
    if (!Array.isArray(doc.manifests)) fail(where, 'index has no manifests array');
    if ('config' in doc || 'layers' in doc) fail(where, 'an index must not have config or layers (it would read as an image elsewhere)');
    const manifests = doc.manifests.map((m, i) => parseDescriptor(m, `${where}: manifests[${i}]`));
    return { kind: 'index', mediaType, bytes, digest, index: { ...(doc as unknown as ImageIndex), manifests } };
  }
  if (isManifestType(mediaType)) {
    if (!Array.isArray(doc.layers)) fail(where, 'manifest has no layers array');
    if ('manifests' in doc) fail(where, 'an image manifest must not have manifests (it would read as an index elsewhere)');
    const config = parseDescriptor(doc.config, `${where}: config`);
    const layers = doc.layers.map((l, i) => parseDescriptor(l, `${where}: layers[${i}]`));
    return { kind: 'manifest', mediaType, bytes, digest, manifest: { ...(doc as unknown as ImageManifest), config, layers } };
  }
  return fail(where, `media type "${mediaType}" is not an image manifest or index`);
}

export function parseImageConfig(bytes: Buffer, where: string): ImageConfig {
  const doc = parseJson(bytes, where);
  if (!isObject(doc)) fail(where, 'config is not a JSON object');
  checkKeys(doc, CONFIG_FIELDS, where);
  checkKeys(doc.config, RUN_FIELDS, `${where}: config`);
  checkKeys(doc.rootfs, ROOTFS_FIELDS, `${where}: rootfs`);
  if (typeof doc.architecture !== 'string' || typeof doc.os !== 'string') fail(where, 'config lacks architecture or os');
  const rootfs = doc.rootfs;
  if (!isObject(rootfs) || !Array.isArray(rootfs.diff_ids)) fail(where, 'config lacks rootfs.diff_ids');
  const diffIds = rootfs.diff_ids.map((d, i) => parseDigest(d, `${where}: rootfs.diff_ids[${i}]`));
  return { ...(doc as unknown as ImageConfig), rootfs: { type: 'layers', diff_ids: diffIds } };
}

/** Canonical JSON for documents Slipway writes: stable key order as given, no whitespace. */
export function encodeJson(doc: unknown): Buffer {
  return Buffer.from(JSON.stringify(doc));
}
