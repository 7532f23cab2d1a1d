import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 15_000, hookTimeout: 15_000 });
import type { RunningDyno } from '../src/runtime/dyno.js';
import { AppLog, readLog, splitLong, MAX_LINE } from '../src/runtime/logs.js';
import { Router } from '../src/runtime/router.js';
import { tempDir } from './helpers/tmp.js';

/** Router lines are written once per turn of the event loop. */
const flushed = (): Promise<void> => new Promise((r) => setImmediate(r));

const servers: Server[] = [];
const routers: Router[] = [];
const sockets: import('node:stream').Duplex[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const r of routers.splice(0)) await r.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

/** A backend on a free port, posing as a dyno. */
async function backend(name: string, handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void): Promise<RunningDyno> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  s.on('upgrade', (_req, sock) => {
    sockets.push(sock);
    sock.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
    sock.on('data', (d: Buffer) => sock.write(`${name}:${d.toString()}`));
  });
  return { spec: { name } as RunningDyno['spec'], pid: 0, endpoint: { host: '127.0.0.1', port }, exited: new Promise(() => undefined), listening: async () => true, signal: async () => undefined };
}

async function router(firstByteMs?: number): Promise<{ r: Router; port: number; home: string }> {
  const home = await tempDir();
  const r = new Router(new AppLog(home, 'app'), firstByteMs);
  routers.push(r);
  return { r, port: await r.listen(0, '127.0.0.1'), home };
}

function get(port: number, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/x?y=1', headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    }).on('error', reject).end();
  });
}

describe('the router', () => {
  it('answers 503 and logs H10 when no web dyno is up', async () => {
    const { port, home } = await router();
    const r = await get(port);
    expect(r.status).toBe(503);
    await flushed();
    expect(readLog(home, 'app').at(-1)!.line).toMatch(/^at=error code=H10 desc="App crashed" .*status=503 .*method=GET path="\/x\?y=1"/);
  });

  it('spreads requests over dynos and adds the forwarding headers; keeps a sane X-Request-Id', async () => {
    const { r, port, home } = await router();
    const seen: Record<string, unknown>[] = [];
    for (const n of ['web.1', 'web.2']) r.add(await backend(n, (req, res) => (seen.push({ dyno: n, ...req.headers }), res.end(n))));
    const bodies = new Set<string>();
    for (let i = 0; i < 4; i++) bodies.add((await get(port)).body);
    expect(bodies).toEqual(new Set(['web.1', 'web.2']));
    await get(port, { 'x-request-id': 'client-given-request-id-123', 'x-forwarded-for': '10.0.0.9' });
    const last = seen.at(-1)!;
    expect(last['x-request-id']).toBe('client-given-request-id-123');
    expect(last['x-forwarded-for']).toBe('10.0.0.9, 127.0.0.1');
    expect(last).toMatchObject({ 'x-forwarded-proto': 'http', 'x-forwarded-port': String(port), via: '1.1 slipway' });
    expect(Math.abs(Number(last['x-request-start']) - Date.now())).toBeLessThan(5000);
    await get(port, { 'x-request-id': 'bad id' });
    expect(seen.at(-1)!['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    await flushed();
    expect(readLog(home, 'app').at(-1)!.line).toMatch(/^at=info dyno=web\.\d connect=\d+ms service=\d+ms status=200 bytes=5 /);
  });

  it('gives up after the first-byte timeout with 503 and an H12 line', async () => {
    const { r, port, home } = await router(300);
    r.add(await backend('web.1', () => undefined));
    const res = await get(port);
    expect(res.status).toBe(503);
    await flushed();
    expect(readLog(home, 'app').some((l) => /code=H12 desc="Request timeout" dyno=web.1/.test(l.line))).toBe(true);
  });

  it('passes WebSocket upgrades through both ways', async () => {
    const { r, port } = await router();
    r.add(await backend('web.1', (_q, s) => s.end()));
    const sock = connect(port, '127.0.0.1');
    await new Promise((res) => sock.once('connect', res));
    sock.write('GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString()));
    await new Promise((res) => setTimeout(res, 200));
    sock.write('ping');
    await new Promise((res) => setTimeout(res, 200));
    sock.destroy();
    expect(got).toMatch(/^HTTP\/1.1 101 Switching Protocols/);
    expect(got).toContain('web.1:ping');
  });

  it('drains: a dyno leaving rotation finishes the request it accepted, and gets no new ones', async () => {
    const { r, port } = await router();
    let release: () => void = () => undefined;
    const slow = await backend('web.1', (_q, res) => {
      release = () => res.end('slow done');
    });
    r.add(slow);
    const pending = get(port);
    await new Promise((res) => setTimeout(res, 100));
    const drained = r.drain(slow, 5000);
    r.add(await backend('web.2', (_q, res) => res.end('web.2')));
    expect((await get(port)).body).toBe('web.2');
    release();
    expect((await pending).body).toBe('slow done');
    await drained;
    expect(r.ready().map((d) => d.spec.name)).toEqual(['web.2']);
  });
});

describe('the log stream', () => {
  it('splits lines at 10,000 bytes and keeps a bounded ring on disk', async () => {
    expect(splitLong('x'.repeat(25_000)).map((l) => l.length)).toEqual([MAX_LINE, MAX_LINE, 5000]);
    expect(splitLong('é'.repeat(6000)).every((l) => Buffer.byteLength(l) <= MAX_LINE)).toBe(true);
    const home = await tempDir();
    const log = new AppLog(home, 'app', 64 * 1024);
    for (let i = 0; i < 2000; i++) log.write('app', 'web.1', `line ${i} ${'.'.repeat(80)}`);
    log.close();
    const lines = readLog(home, 'app');
    expect(lines.at(-1)!.line).toMatch(/^line 1999 /);
    expect(lines.length).toBeLessThan(2000);
    expect(lines[0]).toMatchObject({ source: 'app', dyno: 'web.1' });
  });
});
