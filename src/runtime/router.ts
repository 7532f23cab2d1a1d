/**
 * The app's front door: an HTTP/1.1 reverse proxy over its ready web dynos, least connections
 * first. Heroku's headers (X-Forwarded-For/Proto/Port, X-Request-Id, X-Request-Start, Via),
 * keep-alive to dynos, WebSocket upgrades, 30 s to the first byte (then 503, H12), 503 H14 when
 * the formation has no web dynos, H10 when it has but none is up, and draining: a dyno leaving rotation finishes what it accepted before it stops.
 */
import { randomUUID } from 'node:crypto';
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Endpoint, RunningDyno } from './dyno.js';
import type { AppLog } from './logs.js';
import { closeServer, listenOn } from '../listen.js';

export const FIRST_BYTE_TIMEOUT_MS = 30_000;
const SANE_REQUEST_ID = /^[\w\-.+=/]{20,200}$/;

interface Backend {
  dyno: RunningDyno;
  agent: Agent;
  active: number;
  draining: boolean;
  idle: (() => void)[];
}

function connectTo(e: Endpoint): Socket {
  return 'socketPath' in e ? connect(e.socketPath) : connect(e.port, e.host);
}

export class Router {
  private readonly backends = new Map<RunningDyno, Backend>();
  private server: Server | undefined;
  private turn = 0;
  /** Upgraded (WebSocket) connections: the HTTP server no longer tracks them. */
  private readonly tunnels = new Set<Duplex>();
  port = 0;
  /** Set by the supervisor: the formation runs no web dyno (H14), as opposed to crashed ones (H10). */
  webScaledToZero = false;

  constructor(private readonly log: AppLog, private readonly firstByteMs = FIRST_BYTE_TIMEOUT_MS) {}

  add(dyno: RunningDyno): void {
    const agent = new Agent({ keepAlive: true, maxSockets: 256 });
    if ('socketPath' in dyno.endpoint) {
      const path = dyno.endpoint.socketPath;
      // A Unix-socket dyno: the agent's connections go to its bridge socket.
      (agent as unknown as { createConnection: () => Socket }).createConnection = () => connect(path);
    }
    this.backends.set(dyno, { dyno, agent, active: 0, draining: false, idle: [] });
  }

  /** Takes a dyno out of rotation and resolves when its in-flight requests are done (or timeout). */
  async drain(dyno: RunningDyno, timeoutMs: number): Promise<void> {
    const b = this.backends.get(dyno);
    if (!b) return;
    b.draining = true;
    if (b.active > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        b.idle.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.remove(dyno);
  }

  remove(dyno: RunningDyno): void {
    const b = this.backends.get(dyno);
    if (!b) return;
    b.agent.destroy();
    this.backends.delete(dyno);
  }

  ready(): RunningDyno[] {
    return [...this.backends.values()].filter((b) => !b.draining).map((b) => b.dyno);
  }

  /** Least connections; ties go round-robin, so an idle app still spreads its requests. */
  private pick(): Backend | undefined {
    const all = [...this.backends.values()].filter((b) => !b.draining);
    if (all.length === 0) return undefined;
    const start = this.turn++ % all.length;
    let best: Backend | undefined;
    for (let i = 0; i < all.length; i++) {
      const b = all[(start + i) % all.length]!;
      if (!best || b.active < best.active) best = b;
    }
    return best;
  }

  private done(b: Backend): void {
    b.active--;
    if (b.active === 0) for (const fn of b.idle.splice(0)) fn();
  }

  private headers(req: IncomingMessage, id: string, start: number): Record<string, string | string[]> {
    const h: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) h[k] = v;
    const ip = req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    h['x-forwarded-for'] = req.headers['x-forwarded-for'] ? `${String(req.headers['x-forwarded-for'])}, ${ip}` : ip;
    h['x-forwarded-proto'] = 'http';
    h['x-forwarded-port'] = String(this.port);
    h['x-request-id'] = id;
    h['x-request-start'] = String(start);
    h.via = req.headers.via ? `${String(req.headers.via)}, 1.1 slipway` : '1.1 slipway';
    return h;
  }

  private requestId(req: IncomingMessage): string {
    const given = req.headers['x-request-id'];
    return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const start = Date.now();
    const id = this.requestId(req);
    const fwd = req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    const line = (fields: string): void => this.log.write('slipway', 'router', `${fields} method=${req.method} path="${req.url}" host=${req.headers.host ?? ''} request_id=${id} fwd="${fwd}"`);
    const b = this.pick();
    if (!b) {
      const [code, desc, text] = this.webScaledToZero ? ['H14', 'No web processes running', 'no web dynos are running (H14)'] : ['H10', 'App crashed', 'no web dyno is running (H10)'];
      line(`at=error code=${code} desc="${desc}" dyno= connect= service= status=503 bytes=`);
      res.writeHead(503, { 'content-type': 'text/plain', 'x-request-id': id }).end(`Application error: ${text}\n`);
      return;
    }
    b.active++;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      this.done(b);
    };
    const up = request({ agent: b.agent, method: req.method, path: req.url, headers: this.headers(req, id, start), ...('socketPath' in b.dyno.endpoint ? {} : { host: b.dyno.endpoint.host, port: b.dyno.endpoint.port }) });
    let connected = 0;
    up.on('socket', (s: Socket) => {
      if (s.connecting) s.once('connect', () => (connected = Date.now() - start));
    });
    const timer = setTimeout(() => {
      line(`at=error code=H12 desc="Request timeout" dyno=${b.dyno.spec.name} connect=${connected}ms service=${this.firstByteMs}ms status=503 bytes=`);
      if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain', 'x-request-id': id }).end('Application error: request timeout (H12)\n');
      up.destroy();
      finish();
    }, this.firstByteMs);
    up.on('response', (r) => {
      clearTimeout(timer);
      res.writeHead(r.statusCode ?? 502, r.statusMessage, r.rawHeaders as unknown as Record<string, string>);
      let bytes = 0;
      r.on('data', (c: Buffer) => (bytes += c.length));
      r.pipe(res);
      r.on('end', () => {
        line(`at=info dyno=${b.dyno.spec.name} connect=${connected}ms service=${Date.now() - start}ms status=${r.statusCode} bytes=${bytes}`);
        finish();
      });
      r.on('error', finish);
    });
    up.on('error', (err) => {
      clearTimeout(timer);
      line(`at=error code=H13 desc="Connection closed without response" dyno=${b.dyno.spec.name} status=503 error="${err.message}"`);
      if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain', 'x-request-id': id }).end('Application error (H13)\n');
      finish();
    });
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
      finish();
    });
    req.pipe(up);
  }

  private upgrade(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const id = this.requestId(req);
    const b = this.pick();
    if (!b) {
      client.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n');
      return;
    }
    b.active++;
    this.tunnels.add(client);
    const up = connectTo(b.dyno.endpoint);
    const headers = this.headers(req, id, Date.now());
    up.on('connect', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`, ...Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : [`${k}: ${v}`]))];
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.tunnels.delete(client);
      up.destroy();
      client.destroy();
      this.done(b);
    };
    up.on('error', close);
    up.on('close', close);
    client.on('error', close);
    client.on('close', close);
    this.log.write('slipway', 'router', `at=info method=${req.method} path="${req.url}" upgrade=websocket dyno=${b.dyno.spec.name} request_id=${id}`);
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    this.server = createServer({ keepAlive: true }, (req, res) => this.handle(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.port = await listenOn(this.server, port, host);
    return this.port;
  }

  async close(): Promise<void> {
    for (const t of this.tunnels) t.destroy();
    await closeServer(this.server);
    for (const b of this.backends.values()) b.agent.destroy();
  }
}
