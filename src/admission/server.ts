/**
 * The admission webhook's HTTPS server: `POST /validate` takes an AdmissionReview and answers one.
 * Images are judged by pulling their manifest, config and layers (streamed, facts cached by layer
 * digest) with the same evaluator as `slipway check`; verdicts are cached by manifest digest.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { closeServer, listenOn } from '../listen.js';
import type { Restrictions } from '../restrictions/document.js';
import { evaluate, type Verdict } from '../restrictions/evaluate.js';
import { FactsCache } from '../restrictions/layer-facts.js';
import type { AllowedBase } from '../restrictions/rules.js';
import { imageSubject } from '../restrictions/subject.js';
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

export class AdmissionWebhook {
  private server: Server | undefined;
  private readonly verdicts = new Map<string, { verdict: Verdict; summary: string }>();
  private readonly facts: FactsCache;

  constructor(private readonly o: AdmissionOptions) {
    this.facts = new FactsCache(o.home);
  }

  /** An image's verdict under the document, by manifest digest (cached). */
  async judgeImage(image: string): Promise<{ verdict: Verdict; summary: string }> {
    const src = await openSource(`docker://${image}`, { home: this.o.home, registry: this.o.registry ?? {} });
    try {
      const top = await src.getManifest();
      const hit = this.verdicts.get(top.digest);
      if (hit) return hit;
      const subject = await imageSubject(src, { cache: this.facts, top });
      const report = evaluate(this.o.restrictions, subject, { allowedBases: this.o.allowedBases ?? [] });
      const counted = report.findings.filter((f) => f.severity === report.verdict);
      const summary = report.verdict === 'allow' ? 'allowed' : counted.slice(0, 5).map((f) => `${f.rule}${f.path ? ` /${f.path}` : ''}: ${f.message}`).join('; ') + (counted.length > 5 ? `; and ${counted.length - 5} more` : '');
      const v = { verdict: report.verdict, summary };
      this.verdicts.set(top.digest, v);
      return v;
    } finally {
      await src.close();
    }
  }

  listen(port: number, host = '0.0.0.0'): Promise<number> {
    this.server = createServer({ cert: readFileSync(this.o.tlsCert), key: readFileSync(this.o.tlsKey) }, (req, res) => {
      if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/validate') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('POST /validate with an AdmissionReview\n');
        return;
      }
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        void (async () => {
          const input = JSON.parse(body) as AdmissionReview;
          const out = await review(this.o.restrictions, input, (image) => this.judgeImage(image), { requireDigests: this.o.requireDigests === true });
          const r = (out as { response: { allowed: boolean; status?: { message: string } } }).response;
          this.o.log?.(`${r.allowed ? 'allow' : 'deny'} ${input.request?.kind?.kind ?? '?'} ${String((input.request?.object?.metadata as { name?: string } | undefined)?.name ?? '')}${r.status ? `: ${r.status.message}` : ''}`);
          return out;
        })().then(
          (out) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out)),
          (err: Error) => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message })),
        );
      });
    });
    return listenOn(this.server, port, host);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}
