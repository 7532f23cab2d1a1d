import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Transform, type Readable } from 'node:stream';
import { debug } from '../../debug.js';

const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 16 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 16 }),
};

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
}

export interface HttpResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: Readable;
}

/** Bytes this process sent and received over HTTP (bodies), for reports like a fleet rebase's. */
export const traffic = { sent: 0, received: 0, requests: 0 };

/** One HTTP exchange, streaming both ways; the caller reads or discards the body. */
export function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const mod = req.url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const r = mod.request(
      req.url,
      { method: req.method, headers: req.headers, agent: agents[req.url.protocol as 'http:' | 'https:'] },
      (res) => {
        debug('http', () => `${req.method} ${req.url.pathname} → ${res.statusCode}`);
        traffic.requests++;
        // Counted on the way through, never by a listener: that would start the flow early.
        const body = new Transform({
          transform(chunk: Buffer, _e, cb) {
            traffic.received += chunk.length;
            cb(null, chunk);
          },
        });
        // The caller reads (or discards) the body later: keep an early error from going unhandled;
        // reading it still fails with that error.
        body.on('error', () => undefined);
        res.on('error', (err) => body.destroy(err));
        res.on('aborted', () => body.destroy(new Error('connection closed mid-response')));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res.pipe(body) });
      },
    );
    r.on('error', reject);
    const body = req.body;
    if (body === undefined) r.end();
    else if (Buffer.isBuffer(body)) {
      traffic.sent += body.length;
      r.end(body);
    } else {
      body.on('error', (err) => r.destroy(err));
      body.on('data', (c: Buffer) => (traffic.sent += c.length));
      body.pipe(r);
    }
  });
}

export async function readBody(res: HttpResponse, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > max) {
      res.body.destroy();
      throw new Error(`response body exceeds ${max} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function discard(res: HttpResponse): void {
  res.body.resume();
}
