import { UsageError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';

export const DEFAULT_REGISTRY = 'docker.io';

export interface DockerReference {
  /** host[:port] as used in URLs; docker.io for Docker Hub names. */
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

/** Where an image is, in skopeo's syntax (plus bare names for the local store). */
export type ImageRef =
  | { transport: 'oci'; dir: string; ref?: string }
  | { transport: 'docker-archive'; file: string; ref?: DockerReference }
  | { transport: 'docker'; ref: DockerReference }
  | { transport: 'dir'; dir: string }
  | { transport: 'local'; name: string; tag?: string; digest?: Digest };

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

function parseRepoPath(path: string, input: string): string {
  if (path === '' || !path.split('/').every((c) => COMPONENT.test(c))) {
    throw new UsageError(`"${input}": repository "${path}" is not valid`, 'use lowercase letters, digits and . _ - separated by /');
  }
  return path;
}

function splitTagDigest(s: string, input: string): { name: string; tag?: string; digest?: Digest } {
  let name = s;
  let digest: Digest | undefined;
  const at = name.indexOf('@');
  if (at !== -1) {
    const d = name.slice(at + 1);
    if (!isDigest(d)) throw new UsageError(`"${input}": "${d}" is not a valid digest`, 'expected sha256:<64 hex>');
    digest = d;
    name = name.slice(0, at);
  }
  let tag: string | undefined;
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon > slash) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG.test(tag)) throw new UsageError(`"${input}": tag "${tag}" is not valid`, 'tags are up to 128 of [A-Za-z0-9_.-], not starting with . or -');
  }
  return { name, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** Parses `HOST[:PORT]/REPO[:TAG][@DIGEST]`, Docker Hub short names included. */
export function parseDockerReference(s: string, input = s): DockerReference {
  const { name, tag, digest } = splitTagDigest(s, input);
  const first = name.split('/')[0]!;
  const hasHost = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  let registry = hasHost ? first : DEFAULT_REGISTRY;
  let repository = hasHost ? name.slice(first.length + 1) : name;
  if (registry === 'index.docker.io') registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  return { registry, repository: parseRepoPath(repository, input), ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

export function formatDockerReference(r: DockerReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

const TRANSPORTS = ['oci', 'docker-archive', 'docker', 'dir', 'local'];

export function parseImageRef(input: string): ImageRef {
  const colon = input.indexOf(':');
  const scheme = colon === -1 ? '' : input.slice(0, colon);
  const rest = input.slice(colon + 1);
  switch (scheme) {
    case 'oci': {
      const c = rest.indexOf(':');
      const dir = c === -1 ? rest : rest.slice(0, c);
      const ref = c === -1 ? undefined : rest.slice(c + 1);
      if (dir === '') throw new UsageError(`"${input}": no directory given`, 'write oci:DIR[:TAG]');
      return { transport: 'oci', dir, ...(ref ? { ref } : {}) };
    }
    case 'docker-archive': {
      const c = rest.indexOf(':');
      const file = c === -1 ? rest : rest.slice(0, c);
      if (file === '') throw new UsageError(`"${input}": no file given`, 'write docker-archive:FILE[:NAME:TAG]');
      const ref = c === -1 ? undefined : parseDockerReference(rest.slice(c + 1), input);
      return { transport: 'docker-archive', file, ...(ref ? { ref } : {}) };
    }
    case 'docker': {
      if (!rest.startsWith('//')) throw new UsageError(`"${input}": registry references start with docker://`, 'write docker://HOST/REPO[:TAG|@DIGEST]');
      return { transport: 'docker', ref: parseDockerReference(rest.slice(2), input) };
    }
    case 'dir':
      if (rest === '') throw new UsageError(`"${input}": no directory given`, 'write dir:PATH');
      return { transport: 'dir', dir: rest };
    case 'local':
      return parseLocal(rest, input);
    default:
      try {
        return parseLocal(input, input);
      } catch (err) {
        if (colon === -1) throw err;
        throw new UsageError(`"${input}": unknown transport "${scheme}"`, `use one of ${TRANSPORTS.join(', ')}, or NAME[:TAG] for the local store`);
      }
  }
}

/** A name in the local store: NAME[:TAG][@DIGEST]; TAG defaults to latest. */
function parseLocal(s: string, input: string): ImageRef {
  const { name, tag, digest } = splitTagDigest(s, input);
  parseRepoPath(name, input);
  return { transport: 'local', name, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** The ref.name a local image is tagged with in the store's index.json. */
export function localRefName(r: { name: string; tag?: string }): string {
  return `${r.name}:${r.tag ?? 'latest'}`;
}
