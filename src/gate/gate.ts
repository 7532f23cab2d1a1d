/**
 * The registry gate: a reverse proxy in front of a real OCI registry that judges every manifest
 * pushed through it with the Restrictions evaluator. Blob uploads and pulls stream through
 * untouched; a manifest PUT is held while its image (config and layers, already uploaded
 * upstream) is read and judged, then forwarded, or answered 403 DENIED with the findings, which
 * skopeo and `slipway image copy` print. Verdicts are cached by manifest digest and media type.
 * Every request target is parsed once (route.ts); what goes upstream is rebuilt from the parsed
 * route, and a target that does not normalise is refused.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';

import { digestOf, type Digest } from '../oci/digest.js';
import { isIndexType, isManifestType } from '../oci/mediatypes.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor, type ParsedManifest } from '../oci/types.js';
import { closeServer, listenOn, readCapped } from '../listen.js';
import type { Restrictions } from '../restrictions/document.js';
import { evaluate, verdictOf, type Finding, type Verdict } from '../restrictions/evaluate.js';
import { FactsCache, watchBlob } from '../restrictions/layer-facts.js';
import type { AllowedBase } from '../restrictions/rules.js';
import { imageSubject, runnableImages } from '../restrictions/subject.js';
import { RegistryClient, type RegistryOptions } from '../transport/registry/client.js';
import type { ImageSource } from '../transport/types.js';
import { BadTarget, parseTarget, type ParsedTarget } from './route.js';

export interface GateOptions {
  upstream: URL;
  restrictions: Restrictions;
  home: string;
  allowedBases?: AllowedBase[];
  /** Credentials the gate uses upstream to read what it judges (and to forward, when it requires its own token). */
  upstreamRegistry?: RegistryOptions;
  /** When set, clients must present it (Bearer, or as the Basic password); their Authorization is then not forwarded. */
  token?: string;
  log?: (line: string) => void;
}

export interface GateVerdict {
  verdict: Verdict;
  findings: Finding[];
  cached?: boolean;
  /** Layers judged from facts gathered while they were uploaded, and layers read back from upstream. */
  layers?: { watched: number; read: number };
}


/** An image source for a manifest not yet upstream: its own bytes, everything else from the registry. */
function pendingSource(client: RegistryClient, repo: string, top: ParsedManifest): ImageSource {
  return {
    name: `${repo}@${top.digest}`,
    getManifest: async (digest?: Digest) => (digest === undefined || digest === top.digest ? top : client.getManifest(repo, digest)),
    getBlob: (desc: Descriptor) => client.getBlob(repo, desc),
    close: async () => undefined,
  };
}

export class RegistryGate {
  private server: Server | undefined;
  private readonly verdicts = new Map<string, GateVerdict>();
  private readonly facts: FactsCache;
  private readonly client: RegistryClient;

  constructor(private readonly o: GateOptions) {
    this.facts = new FactsCache(o.home);
    this.client = new RegistryClient(o.upstream.host, { ...o.upstreamRegistry, ...(o.upstream.protocol === 'http:' && { insecure: true }) });
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  /** Judges a manifest (an index: each child) against the document; cached by digest and media type. */
  async judge(repo: string, m: ParsedManifest): Promise<GateVerdict> {
    // The same bytes under another media type are another document (an index or an image).
    const key = `${m.mediaType} ${m.digest}`;
    const hit = this.verdicts.get(key);
    if (hit) return { ...hit, cached: true };
    await Promise.all(this.pending.values());
    const [hits, misses] = [this.facts.hits, this.facts.misses];
    await this.client.authorize([`repository:${repo}:pull`]);
    const src = pendingSource(this.client, repo, m);
    const findings: Finding[] = [];
    for (const top of await runnableImages(src, m)) {
      const subject = await imageSubject(src, { cache: this.facts, top, kind: 'image' });
      const report = evaluate(this.o.restrictions, { ...subject, name: `${repo}@${top.digest}` }, { allowedBases: this.o.allowedBases ?? [] });
      findings.push(...report.findings);
    }
    const v = { verdict: verdictOf(findings), findings, layers: { watched: this.facts.hits - hits, read: this.facts.misses - misses } };
    this.verdicts.set(key, v);
    return v;
  }

  private authorized(req: IncomingMessage): boolean {
    if (!this.o.token) return true;
    const h = req.headers.authorization ?? '';
    if (h === `Bearer ${this.o.token}`) return true;
    if (h.startsWith('Basic ')) return Buffer.from(h.slice(6), 'base64').toString().split(':').slice(1).join(':') === this.o.token;
    return false;
  }

  /** Uploads in progress, each watched as it streams by, so its layer is judged without reading it again. */
  private readonly uploads = new Map<string, ReturnType<typeof watchBlob>>();
  /** Blobs whose facts are being finished: a manifest naming them waits rather than reading them again. */
  private readonly pending = new Map<string, Promise<void>>();

  /**
   * Blob upload requests (PATCH chunks, the final PUT) go upstream untouched while a copy of their
   * bytes feeds the layer scanner; when the registry accepts the blob under its digest, the facts
   * are cached, and the manifest PUT that names it finds them there.
   */
  private watchUpload(req: IncomingMessage, res: ServerResponse, target: ParsedTarget, id: string): void {
    let w = this.uploads.get(id);
    if (!w) {
      w = watchBlob(`upload ${id}`);
      this.uploads.set(id, w);
    }
    const watcher = w;
    req.pipe(watcher.input, { end: false });
    const digest = req.method === 'PUT' ? target.query.get('digest') : null;
    if (digest === null) return this.forward(req, res, target.path);
    this.forward(req, res, target.path, undefined, (status) => {
      this.uploads.delete(id);
      req.once('end', () => watcher.input.end());
      if (req.readableEnded) watcher.input.end();
      const done = watcher.finish(digest).then(async (facts) => {
        if (facts && status === 201) await this.facts.put(facts);
      }).catch((err: Error) => this.log(`could not keep the facts of ${digest}: ${err.message}`)).finally(() => this.pending.delete(digest));
      this.pending.set(digest, done);
    });
  }

  /** Forwards a request upstream to the rebuilt path, streaming both ways; Location headers are pointed back at the gate. */
  private forward(req: IncomingMessage, res: ServerResponse, path: string, body?: Buffer, onStatus?: (status: number) => void): void {
    const up = this.o.upstream;
    const headers = { ...req.headers, host: up.host };
    if (this.o.token) delete headers.authorization;
    if (body) headers['content-length'] = String(body.length);
    const send = up.protocol === 'https:' ? httpsRequest : httpRequest;
    const out = send({ protocol: up.protocol, hostname: up.hostname, port: up.port, method: req.method, path, headers }, (r) => {
      onStatus?.(r.statusCode ?? 0);
      const h = { ...r.headers };
      if (typeof h.location === 'string' && h.location.startsWith(up.origin)) h.location = h.location.slice(up.origin.length);
      res.writeHead(r.statusCode ?? 502, h);
      r.pipe(res);
    });
    out.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `slipway gate: upstream ${up.origin}: ${err.message}` }] }));
    });
    if (body) out.end(body);
    else req.pipe(out);
  }

  private deny(res: ServerResponse, status: number, code: string, message: string, detail?: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end(JSON.stringify({ errors: [{ code, message, ...(detail !== undefined && { detail }) }] }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.authorized(req)) {
      res.setHeader('www-authenticate', 'Basic realm="slipway gate"');
      return this.deny(res, 401, 'UNAUTHORIZED', 'slipway gate: a token is required (Bearer, or as the password)');
    }
    let target: ParsedTarget;
    try {
      target = parseTarget(req.url ?? '');
    } catch (err) {
      if (!(err instanceof BadTarget)) throw err;
      this.log(`refused ${req.method} ${JSON.stringify(req.url)}: ${err.message}`);
      return this.deny(res, err.status, err.code, `slipway gate: ${err.message}`);
    }
    const { route } = target;
    if (route.kind === 'upload' && route.id !== undefined && (req.method === 'PATCH' || req.method === 'PUT')) return this.watchUpload(req, res, target, route.id);
    if (route.kind !== 'manifest' || req.method !== 'PUT') return this.forward(req, res, target.path);
    const repo = route.name;
    // The registry picks its parser by Content-Type: judge under that type, and only if the body agrees.
    const declared = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (!isManifestType(declared) && !isIndexType(declared)) {
      return this.deny(res, 400, 'MANIFEST_INVALID', `slipway gate: Content-Type "${declared}" is not an image manifest or index media type`);
    }
    const body = await readCapped(req, MAX_MANIFEST_BYTES);
    if (!body) return this.deny(res, 413, 'SIZE_INVALID', `slipway gate: a manifest is at most ${MAX_MANIFEST_BYTES} bytes`);
    let manifest: ParsedManifest;
    try {
      manifest = parseManifest(body, digestOf(body), declared, `${repo} manifest`);
    } catch (err) {
      return this.deny(res, 400, 'MANIFEST_INVALID', `slipway gate: ${(err as Error).message}`);
    }
    if (manifest.mediaType !== declared) {
      return this.deny(res, 400, 'MANIFEST_INVALID', `slipway gate: the manifest says it is ${manifest.mediaType} but was sent as ${declared}`);
    }
    let v: GateVerdict;
    const started = Date.now();
    try {
      v = await this.judge(repo, manifest);
    } catch (err) {
      this.log(`error ${repo}@${manifest.digest}: ${(err as Error).message}`);
      return this.deny(res, 400, 'MANIFEST_BLOB_UNKNOWN', `slipway gate: cannot judge ${manifest.digest}: ${(err as Error).message}`);
    }
    this.log(`${v.verdict} ${repo}:${route.reference} ${manifest.digest} in ${Date.now() - started} ms (${v.findings.length} findings${v.cached ? ', cached' : `; layers: ${v.layers?.watched ?? 0} seen on upload, ${v.layers?.read ?? 0} read back`})`);
    if (v.verdict === 'deny') {
      const denied = v.findings.filter((f) => f.severity === 'deny');
      const message = `denied by restrictions ${this.o.restrictions.metadata.name}: ${denied.map((f) => `${f.rule}${f.path ? ` /${f.path}` : ''}: ${f.message}`).join('; ')}`;
      return this.deny(res, 403, 'DENIED', message, { verdict: v.verdict, findings: v.findings });
    }
    this.forward(req, res, target.path, body);
  }

  listen(port: number, host = '127.0.0.1'): Promise<number> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) this.deny(res, 500, 'UNKNOWN', `slipway gate: ${err.message}`);
        else res.destroy();
      });
    });
    return listenOn(this.server, port, host);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}

