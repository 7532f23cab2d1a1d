/**
 * The admission webhook's HTTPS server: `POST /validate` takes an AdmissionReview and answers one.
 * Images are judged by pulling their manifest, config and layers (streamed, facts cached by layer
 * digest) with the same evaluator as `slipway check`: an index by every child a node could run (or
 * those of the platform the pod's nodeSelector pins); verdicts are cached by manifest digest and pin.
 * Bodies are capped (the API server sends a few MB at most) and never held whole beyond the cap.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { closeServer, listenOn, readCapped } from '../listen.js';
import type { Restrictions } from '../restrictions/document.js';
import { evaluate, verdictOf, type Finding, type Verdict } from '../restrictions/evaluate.js';
import { FactsCache } from '../restrictions/layer-facts.js';
import type { AllowedBase } from '../restrictions/rules.js';
import type { PinnedPlatform } from '../restrictions/pod.js';
import { imageSubject, runnableImages } from '../restrictions/subject.js';
import { openSource } from '../transport/open.js';
import type { RegistryOptions } from '../transport/registry/client.js';
import { review, type AdmissionReview } from './review.js';

export interface AdmissionOptions {
  restrictions: Restrictions;
  home: string;
  tlsCert: string;
  tlsKey: string;
  allowedBases?: AllowedBase[];
  registry?: RegistryOptions;
  requireDigests?: boolean;
  log?: (line: string) => void;
}

/** Kubernetes sends AdmissionReviews of a few MB at most (objects are capped at 1.5 MiB in etcd). */
export const MAX_REVIEW_BYTES = 3 * 1024 * 1024;

export class AdmissionWebhook {
  private server: Server | undefined;
  private readonly verdicts = new Map<string, { verdict: Verdict; summary: string }>();
  private readonly facts: FactsCache;

  constructor(private readonly o: AdmissionOptions) {
    this.facts = new FactsCache(o.home);
  }

  /** An image's verdict under the document: every child a node could run, or those of the pinned platform (cached). */
  async judgeImage(image: string, pin?: PinnedPlatform): Promise<{ verdict: Verdict; summary: string }> {
    const src = await openSource(`docker://${image}`, { home: this.o.home, registry: this.o.registry ?? {} });
    try {
      const top = await src.getManifest();
      const key = `${top.mediaType} ${top.digest} ${pin?.os ?? '*'}/${pin?.architecture ?? '*'}`;
      const hit = this.verdicts.get(key);
      if (hit) return hit;
      const findings: Finding[] = [];
      for (const m of await runnableImages(src, top, pin)) {
        const subject = await imageSubject(src, { cache: this.facts, top: m });
        findings.push(...evaluate(this.o.restrictions, subject, { allowedBases: this.o.allowedBases ?? [] }).findings);
      }
      const verdict = verdictOf(findings);
      const counted = findings.filter((f) => f.severity === verdict);
      const summary = verdict === 'allow' ? 'allowed' : counted.slice(0, 5).map((f) => `${f.rule}${f.path ? ` /${f.path}` : ''}: ${f.message}`).join('; ') + (counted.length > 5 ? `; and ${counted.length - 5} more` : '');
      const v = { verdict, summary };
      this.verdicts.set(key, v);
      return v;
    } finally {
      await src.close();
    }
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const body = await readCapped(req, MAX_REVIEW_BYTES);
    if (!body) {
      this.o.log?.(`refused a request body over ${MAX_REVIEW_BYTES} bytes`);
      return json(413, { error: `an AdmissionReview is at most ${MAX_REVIEW_BYTES} bytes` });
    }
    let input: AdmissionReview;
    try {
      input = JSON.parse(body.toString('utf8')) as AdmissionReview;
    } catch (err) {
      return json(400, { error: `not JSON: ${(err as Error).message}` });
    }
    const out = await review(this.o.restrictions, input, (image, pin) => this.judgeImage(image, pin), { requireDigests: this.o.requireDigests === true });
    const r = (out as { response: { allowed: boolean; status?: { message: string } } }).response;
    this.o.log?.(`${r.allowed ? 'allow' : 'deny'} ${input.request?.kind?.kind ?? '?'} ${String((input.request?.object?.metadata as { name?: string } | undefined)?.name ?? '')}${r.status ? `: ${r.status.message}` : ''}`);
    json(200, out);
  }

  listen(port: number, host = '0.0.0.0'): Promise<number> {
    this.server = createServer({ cert: readFileSync(this.o.tlsCert), key: readFileSync(this.o.tlsKey) }, (req, res) => {
      if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/validate') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('POST /validate with an AdmissionReview\n');
        return;
      }
      this.answer(req, res).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message }));
        else res.destroy();
      });
    });
    return listenOn(this.server, port, host);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}
