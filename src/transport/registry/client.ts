import { Readable } from 'node:stream';
import { SlipwayError } from '../../errors.js';
import { digestOf, parseDigest, type Digest } from '../../oci/digest.js';
import { MANIFEST_ACCEPT } from '../../oci/mediatypes.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor, type ParsedManifest } from '../../oci/types.js';
import { basicHeader, dockerConfigCredentials, parseChallenge, type Challenge, type Credentials } from './auth.js';
import { discard, httpRequest, readBody, type HttpResponse } from './http.js';

export interface RegistryOptions {
  /** Allow plain HTTP (and unverified TLS) to a non-loopback registry. */
  insecure?: boolean;
  credentials?: Credentials;
  /** Blobs larger than this are sent in chunks (PATCH); the registry may ask for chunks too. */
  chunkThreshold?: number;
  chunkSize?: number;
}

const CREDS_HINT = 'give credentials (--creds, --src-creds or --dest-creds USER:PASSWORD) or run docker login';

/** Blobs up to this size go up in a single request. */
const SMALL_BLOB = 256 * 1024;

/** How each registry asked to be authenticated, learned once per process. */
const pings = new Map<string, { challenge: Challenge | undefined }>();

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/** A distribution-spec client for one registry host: auth, manifests, blobs, uploads. */
export class RegistryClient {
  readonly base: URL;
  private authHeader: string | undefined;
  private readonly tokens = new Map<string, string>();
  private challenge: Challenge | undefined | null = null;
  private credentials: Credentials | undefined | null;

  constructor(
    readonly host: string,
    private readonly opts: RegistryOptions = {},
  ) {
    const apiHost = host === 'docker.io' ? 'registry-1.docker.io' : host;
    const plain = isLoopback(host) || opts.insecure === true;
    this.base = new URL(`${plain ? 'http' : 'https'}://${apiHost}/`);
    this.credentials = opts.credentials ?? null;
  }

  private async creds(): Promise<Credentials | undefined> {
    if (this.credentials === null) this.credentials = await dockerConfigCredentials(this.host);
    return this.credentials;
  }

  private fail(what: string, res: HttpResponse | undefined, body?: string, hint?: string): SlipwayError {
    let detail = res ? `HTTP ${res.status}` : 'no response';
    if (body) {
      try {
        const doc = JSON.parse(body) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
        const errs = doc.errors?.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
        if (errs) detail += ` ${errs}`;
      } catch {
        detail += ` ${body.slice(0, 200)}`;
      }
    }
    return new SlipwayError(`${this.host}: ${what} failed (${detail})`, hint === undefined ? {} : { hint });
  }

  /** Learns how the registry wants to be authenticated (GET /v2/), once per registry per process. */
  private async ping(): Promise<void> {
    if (this.challenge !== null) return;
    const known = pings.get(this.base.origin);
    if (known !== undefined) {
      this.challenge = known.challenge;
      return;
    }
    let res: HttpResponse;
    try {
      res = await httpRequest({ method: 'GET', url: new URL('/v2/', this.base) });
    } catch (err) {
      throw new SlipwayError(`${this.host}: cannot reach the registry at ${this.base.origin} (${(err as Error).message})`, {
        hint: isLoopback(this.host) || this.opts.insecure ? 'is it running?' : 'is it running? plain-HTTP registries off loopback need --insecure',
      });
    }
    discard(res);
    if (res.status === 401) this.challenge = parseChallenge(headerOf(res, 'www-authenticate'));
    else if (res.status >= 200 && res.status < 300) this.challenge = undefined;
    else throw this.fail('GET /v2/', res, undefined, 'is this an OCI distribution registry?');
    pings.set(this.base.origin, { challenge: this.challenge });
  }

  /** Gets the Authorization header for a set of scopes before any body is streamed. */
  async authorize(scopes: string[]): Promise<void> {
    await this.ping();
    const ch = this.challenge;
    if (!ch) return;
    const creds = await this.creds();
    if (ch.scheme === 'basic') {
      if (!creds) throw new SlipwayError(`${this.host}: the registry requires a login`, { hint: CREDS_HINT });
      this.authHeader = basicHeader(creds);
      return;
    }
    const key = scopes.slice().sort().join(' ');
    const cached = this.tokens.get(key);
    if (cached) {
      this.authHeader = `Bearer ${cached}`;
      return;
    }
    const realm = ch.params.realm;
    if (!realm) throw new SlipwayError(`${this.host}: bearer challenge without a realm`);
    const url = new URL(realm);
    if (url.protocol !== 'https:' && !isLoopback(url.host) && !this.opts.insecure) {
      throw new SlipwayError(`${this.host}: token realm ${realm} is plain HTTP`, { hint: 'use --insecure only if you trust this network' });
    }
    if (ch.params.service) url.searchParams.set('service', ch.params.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = basicHeader(creds);
    let res: HttpResponse;
    try {
      res = await httpRequest({ method: 'GET', url, headers });
    } catch (err) {
      throw new SlipwayError(`${this.host}: token server ${url.origin} unreachable (${(err as Error).message})`);
    }
    const body = await readBody(res, 1024 * 1024);
    if (res.status === 401 || res.status === 403) {
      throw this.fail(`login for ${scopes.join(' ')}`, res, body.toString(), creds ? 'check the username and password' : CREDS_HINT);
    }
    if (res.status !== 200) throw this.fail('token request', res, body.toString());
    const doc = JSON.parse(body.toString()) as { token?: string; access_token?: string };
    const token = doc.token ?? doc.access_token;
    if (!token) throw new SlipwayError(`${this.host}: token server answered without a token`);
    this.tokens.set(key, token);
    this.authHeader = `Bearer ${token}`;
  }

  /** One request with auth; follows redirects for GETs (without leaking auth to other hosts). */
  async request(method: string, path: string | URL, init: { headers?: Record<string, string>; body?: Buffer | Readable } = {}): Promise<HttpResponse> {
    let url = typeof path === 'string' ? new URL(path, this.base) : path;
    for (let hop = 0; hop < 5; hop++) {
      const headers: Record<string, string> = { 'user-agent': 'slipway/0.1', ...init.headers };
      if (this.authHeader && url.host === this.base.host) headers.authorization = this.authHeader;
      let res: HttpResponse;
      try {
        res = await httpRequest({ method, url, headers, ...(init.body !== undefined && { body: init.body }) });
      } catch (err) {
        throw new SlipwayError(`${this.host}: ${method} ${url.pathname} failed (${(err as Error).message})`, {
          hint: 'the registry went away; rerun the command: finished blobs are skipped',
        });
      }
      if (res.status === 401) {
        discard(res);
        throw new SlipwayError(`${this.host}: ${method} ${url.pathname} was refused as unauthorized`, {
          hint: this.authHeader ? 'the registry rejected the credentials; check user and password' : CREDS_HINT,
        });
      }
      if ((method === 'GET' || method === 'HEAD') && [301, 302, 303, 307, 308].includes(res.status) && res.headers.location) {
        discard(res);
        url = new URL(res.headers.location, url);
        continue;
      }
      return res;
    }
    throw new SlipwayError(`${this.host}: too many redirects for ${method} ${path.toString()}`);
  }

  async getManifest(repo: string, reference: string): Promise<ParsedManifest> {
    const res = await this.request('GET', `/v2/${repo}/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT } });
    if (res.status === 404) {
      discard(res);
      throw new SlipwayError(`${this.host}/${repo}: manifest "${reference}" not found`, { hint: 'check the repository and tag' });
    }
    if (res.status !== 200) throw this.fail(`GET manifest ${repo}:${reference}`, res, (await readBody(res, 64 * 1024)).toString());
    const declaredLength = Number(res.headers['content-length'] ?? 0);
    if (declaredLength > MAX_MANIFEST_BYTES) {
      discard(res);
      throw new SlipwayError(`${this.host}/${repo}: manifest of ${declaredLength} bytes is over the limit`);
    }
    const bytes = await readBody(res, MAX_MANIFEST_BYTES);
    const headerDigest = headerOf(res, 'docker-content-digest');
    const expected = reference.includes(':') ? parseDigest(reference) : headerDigest ? parseDigest(headerDigest, 'Docker-Content-Digest') : undefined;
    const digest = digestOf(bytes, expected?.startsWith('sha512:') ? 'sha512' : 'sha256');
    if (expected && digest !== expected) {
      throw new SlipwayError(`${this.host}/${repo}: manifest ${reference} has digest ${digest}, expected ${expected}`, { hint: 'the registry served other content; nothing was written' });
    }
    const type = headerOf(res, 'content-type')?.split(';')[0]?.trim();
    return parseManifest(bytes, digest, type, `${this.host}/${repo}@${digest}`);
  }

  async putManifest(repo: string, reference: string, m: ParsedManifest): Promise<void> {
    const res = await this.request('PUT', `/v2/${repo}/manifests/${reference}`, { headers: { 'content-type': m.mediaType }, body: m.bytes });
    const body = (await readBody(res, 64 * 1024)).toString();
    if (res.status !== 201 && res.status !== 200) throw this.fail(`PUT manifest ${repo}:${reference}`, res, body);
    const stored = headerOf(res, 'docker-content-digest');
    if (stored && stored !== m.digest) throw new SlipwayError(`${this.host}/${repo}: registry stored the manifest as ${stored}, expected ${m.digest}`);
  }

  async hasBlob(repo: string, desc: Descriptor): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repo}/blobs/${desc.digest}`);
    discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw this.fail(`HEAD blob ${desc.digest}`, res);
  }

  async getBlob(repo: string, desc: Descriptor): Promise<Readable> {
    const res = await this.request('GET', `/v2/${repo}/blobs/${desc.digest}`);
    if (res.status !== 200) {
      const body = (await readBody(res, 64 * 1024)).toString();
      throw this.fail(`GET blob ${desc.digest} from ${repo}`, res, body, res.status === 404 ? 'the manifest names a blob the registry does not have' : undefined);
    }
    return res.body;
  }

  /** Cross-repository mount; true when the registry now has the blob in `repo`. */
  async mountBlob(repo: string, desc: Descriptor, fromRepo: string): Promise<boolean> {
    const q = new URLSearchParams({ mount: desc.digest, from: fromRepo });
    const res = await this.request('POST', `/v2/${repo}/blobs/uploads/?${q.toString()}`, { headers: { 'content-length': '0' } });
    discard(res);
    if (res.status === 201) return true;
    if (res.status === 202 && res.headers.location) {
      // The registry opened an ordinary upload instead; close it so it does not linger.
      await this.request('DELETE', new URL(res.headers.location, this.base)).then(discard, () => undefined);
    }
    return false;
  }

  /** Uploads a blob: one POST for small ones, else a monolithic PUT, or PATCH chunks when large or asked. */
  async putBlob(repo: string, desc: Descriptor, data: Readable): Promise<void> {
    if (desc.size <= SMALL_BLOB) {
      // Configs and manifests-sized blobs: a single request (the spec's POST ?digest=), half the round trips.
      const chunks: Buffer[] = [];
      for await (const c of data) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const q = new URLSearchParams({ digest: desc.digest });
      const res = await this.request('POST', `/v2/${repo}/blobs/uploads/?${q.toString()}`, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
        body,
      });
      const text = (await readBody(res, 64 * 1024)).toString();
      if (res.status === 201) return;
      if (res.status !== 202 || !res.headers.location) throw this.fail(`upload of ${desc.digest}`, res, text);
      // The registry opened a session instead of taking the bytes: finish it with a PUT.
      const put = await this.request('PUT', withDigest(new URL(res.headers.location, this.base), desc.digest), {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
        body,
      });
      const putText = (await readBody(put, 64 * 1024)).toString();
      if (put.status !== 201) throw this.fail(`upload of ${desc.digest}`, put, putText);
      return;
    }
    const start = await this.request('POST', `/v2/${repo}/blobs/uploads/`, { headers: { 'content-length': '0' } });
    const startBody = (await readBody(start, 64 * 1024)).toString();
    if (start.status !== 202 || !start.headers.location) throw this.fail(`start upload of ${desc.digest}`, start, startBody);
    let location = new URL(start.headers.location, this.base);
    const minChunk = Number(headerOf(start, 'oci-chunk-min-length') ?? 0);
    const threshold = this.opts.chunkThreshold ?? 512 * 1024 * 1024;
    if (desc.size <= threshold && minChunk === 0) {
      const res = await this.request('PUT', withDigest(location, desc.digest), {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
        body: data,
      });
      const body = (await readBody(res, 64 * 1024)).toString();
      if (res.status !== 201) throw this.fail(`upload of ${desc.digest}`, res, body);
      return;
    }
    const chunkSize = Math.max(minChunk, this.opts.chunkSize ?? 64 * 1024 * 1024);
    const reader = data[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let carry: Buffer | undefined;
    let offset = 0;
    while (offset < desc.size) {
      const len = Math.min(chunkSize, desc.size - offset);
      const chunk = takeBytes(reader, len, carry, (rest) => (carry = rest));
      const res = await this.request('PATCH', location, {
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(len),
          'content-range': `${offset}-${offset + len - 1}`,
        },
        body: chunk,
      });
      const body = (await readBody(res, 64 * 1024)).toString();
      if (res.status !== 202 || !res.headers.location) throw this.fail(`chunk ${offset}-${offset + len - 1} of ${desc.digest}`, res, body);
      location = new URL(res.headers.location, this.base);
      offset += len;
    }
    const res = await this.request('PUT', withDigest(location, desc.digest), { headers: { 'content-length': '0' } });
    const body = (await readBody(res, 64 * 1024)).toString();
    if (res.status !== 201) throw this.fail(`finish upload of ${desc.digest}`, res, body);
  }
}

function headerOf(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function withDigest(location: URL, digest: Digest): URL {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  return u;
}

/** A stream of exactly `len` bytes taken from a shared iterator; the overshoot goes back via `keep`. */
function takeBytes(it: AsyncIterator<Buffer>, len: number, carry: Buffer | undefined, keep: (rest: Buffer | undefined) => void): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    let left = len;
    let pending = carry;
    keep(undefined);
    while (left > 0) {
      if (pending === undefined || pending.length === 0) {
        const n = await it.next();
        if (n.done) throw new SlipwayError(`source ended ${left} bytes early`);
        pending = n.value;
      }
      const take = Math.min(left, pending.length);
      yield pending.subarray(0, take);
      pending = pending.subarray(take);
      left -= take;
    }
    keep(pending !== undefined && pending.length > 0 ? pending : undefined);
  }
  return Readable.from(gen(), { objectMode: false });
}
