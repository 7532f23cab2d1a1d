/**
 * The gate's one reading of a request target: parsed and normalised once into a registry route
 * (distribution spec grammar for names, tags, digests), from which the upstream path is rebuilt.
 * What does not normalise is refused, never forwarded: a registry that decodes `%2F`, `%6D` or an
 * absolute-form target differently from the gate would store what the gate never judged.
 */
import { SlipwayError } from '../errors.js';

export type GateRoute =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'upload'; name: string; id?: string };

export interface ParsedTarget {
  route: GateRoute;
  /** The query, re-encoded from its parsed form. */
  query: URLSearchParams;
  /** What goes upstream: rebuilt from the route and the query, never the raw target. */
  path: string;
}

/** A request target the gate will not forward: 400 (or 404 outside the registry API). */
export class BadTarget extends SlipwayError {
  constructor(message: string, readonly status: 400 | 404 = 400, readonly code: 'NAME_INVALID' | 'DIGEST_INVALID' | 'UNSUPPORTED' = 'UNSUPPORTED') {
    super(message, { hint: 'send an origin-form /v2/ path with plain route words and names, tags and digests in the distribution spec\'s grammar' });
    this.name = 'BadTarget';
  }
}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
/** docker-registry's upload ids. */
const UPLOAD_ID = /^[a-zA-Z0-9._=-]+$/;
/** docker-registry's limit on a repository name. */
const MAX_NAME = 255;

function nameOf(parts: string[]): string {
  const name = parts.join('/');
  if (parts.length === 0 || !parts.every((p) => COMPONENT.test(p)) || name.length > MAX_NAME) {
    throw new BadTarget(`repository name "${name}" is not valid (lowercase letters, digits and . _ __ - between them, components separated by /, at most ${MAX_NAME} characters)`, 400, 'NAME_INVALID');
  }
  return name;
}

function digestOf(s: string, what: string): string {
  if (!DIGEST.test(s)) throw new BadTarget(`${what} "${s}" is not a digest (algorithm:encoded)`, 400, 'DIGEST_INVALID');
  return s;
}

/** One path segment, percent-decoded; a malformed escape is refused. */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new BadTarget(`"${segment}" is not a valid percent-encoded path segment`);
  }
}

/**
 * Parses a request target (origin-form only). Route words (`v2`, `manifests`, `blobs`, `uploads`,
 * `tags`, `list`, `referrers`, `_catalog`) must appear literally; names, references and upload ids
 * are decoded and must then fit their grammar, which leaves no room for `/`, `%` or dot segments.
 * Suffixes are matched in docker-registry's route order, so both read a name the same way.
 */
export function parseTarget(target: string): ParsedTarget {
  if (!target.startsWith('/')) throw new BadTarget('the request target must be a path (origin-form), not an absolute URL or *');
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
  const raw = rawPath.split('/').slice(1);
  if (raw.some((s) => s === '.' || s === '..')) throw new BadTarget('dot segments are not allowed in a registry path');
  if (raw[0] !== 'v2') throw new BadTarget(`${rawPath} is not a registry API path (/v2/...)`, 404);
  const seg = raw.slice(1);
  const route = routeOf(seg);
  const qs = query.toString();
  return { route, query, path: pathOf(route) + (qs ? `?${qs}` : '') };
}

function routeOf(seg: string[]): GateRoute {
  const n = seg.length;
  const at = (i: number): string | undefined => seg[n + i];
  if (n === 0 || (n === 1 && seg[0] === '')) return { kind: 'base' };
  if (n === 1 && seg[0] === '_catalog') return { kind: 'catalog' };
  const name = (upTo: number): string => nameOf(seg.slice(0, n + upTo).map(decoded));
  if (n >= 3 && at(-2) === 'tags' && at(-1) === 'list') return { kind: 'tags', name: name(-2) };
  if (n >= 3 && at(-2) === 'manifests') {
    const reference = decoded(at(-1)!);
    if (!TAG.test(reference) && !DIGEST.test(reference)) throw new BadTarget(`reference "${reference}" is neither a tag nor a digest`);
    return { kind: 'manifest', name: name(-2), reference };
  }
  if (n >= 3 && at(-2) === 'referrers') return { kind: 'referrers', name: name(-2), digest: digestOf(decoded(at(-1)!), 'referrers subject') };
  if (n >= 4 && at(-3) === 'blobs' && at(-2) === 'uploads') {
    const id = decoded(at(-1)!);
    if (id !== '' && !UPLOAD_ID.test(id)) throw new BadTarget(`upload id "${id}" is not valid`);
    return { kind: 'upload', name: name(-3), ...(id !== '' && { id }) };
  }
  if (n >= 3 && at(-2) === 'blobs') {
    if (at(-1) === 'uploads') return { kind: 'upload', name: name(-2) };
    return { kind: 'blob', name: name(-2), digest: digestOf(decoded(at(-1)!), 'blob') };
  }
  throw new BadTarget(`/v2/${seg.join('/')} is not a registry API route`, 404);
}

function pathOf(r: GateRoute): string {
  switch (r.kind) {
    case 'base':
      return '/v2/';
    case 'catalog':
      return '/v2/_catalog';
    case 'tags':
      return `/v2/${r.name}/tags/list`;
    case 'manifest':
      return `/v2/${r.name}/manifests/${r.reference}`;
    case 'referrers':
      return `/v2/${r.name}/referrers/${r.digest}`;
    case 'blob':
      return `/v2/${r.name}/blobs/${r.digest}`;
    case 'upload':
      return `/v2/${r.name}/blobs/uploads/${r.id ?? ''}`;
  }
}
