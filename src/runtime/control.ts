/**
 * The supervisor's control API: JSON over HTTP on a Unix socket ($SLIPWAY_HOME/run/APP.sock,
 * mode 600), so `slipway ps`, `scale`, `restart` and `stop` from other shells act on a running
 * `slipway up`. Only the socket's owner (root) can reach it.
 */
import { existsSync, unlinkSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { basename, join } from 'node:path';
import { SlipwayError } from '../errors.js';
import { checkFormation } from '../release/formation.js';
import type { Supervisor } from './supervisor.js';

export function controlSocket(home: string, app: string): string {
  return join(home, 'run', `${app}.sock`);
}

export async function serveControl(path: string, sup: Supervisor, onStop: () => void): Promise<Server> {
  if (existsSync(path)) {
    if (await callControl(path, 'GET', '/ps').then(() => true, () => false)) throw new SlipwayError(`the app is already up (${path} answers)`, { hint: 'slipway ps APP, or slipway stop APP first' });
    unlinkSync(path);
  }
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      void (async () => {
        const input = body ? (JSON.parse(body) as Record<string, unknown>) : {};
        switch (`${req.method} ${req.url}`) {
          case 'GET /ps':
            return sup.status();
          case 'POST /scale':
            return { formation: await sup.scale(checkFormation(input.formation)) };
          case 'POST /restart':
            return { restarted: await sup.restart(input.dyno as string | undefined) };
          case 'POST /stop':
            setImmediate(onStop);
            return { stopping: true };
          default:
            throw new Error(`no such control call ${req.method} ${req.url}`);
        }
      })().then(
        (out) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out)),
        (err: Error) => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message, ...(err instanceof SlipwayError && err.hint && { hint: err.hint }) })),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  await chmod(path, 0o600);
  return server;
}

/** No supervisor answers for the app on this host. */
export class NotUpError extends SlipwayError {
  constructor(app: string, hint = `slipway up ${app}`) {
    super(`${app} is not up on this host`, { hint });
    this.name = 'NotUpError';
  }
}

/** Whether a supervisor answers for the app. */
export function isUp(home: string, app: string): Promise<boolean> {
  return callControl(controlSocket(home, app), 'GET', '/ps').then(() => true, () => false);
}

/** Asks the app's supervisor to stop, and returns once it is gone (its dynos with it). */
export async function stopApp(home: string, app: string): Promise<void> {
  const sock = controlSocket(home, app);
  await callControl(sock, 'POST', '/stop');
  // The supervisor removes nothing until its dynos are gone: wait for its socket to stop answering.
  while (await isUp(home, app)) await new Promise((r) => setTimeout(r, 100));
}

/** Calls a running supervisor; a NotUpError when none runs. */
export function callControl<T = unknown>(path: string, method: 'GET' | 'POST', url: string, body?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method, path: url, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        const out = JSON.parse(text || '{}') as T & { error?: string; hint?: string };
        if (res.statusCode !== 200) reject(new SlipwayError(out.error ?? `control call failed (${res.statusCode})`, { ...(out.hint && { hint: out.hint }) }));
        else resolve(out);
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? new NotUpError(basename(path, '.sock')) : err);
    });
    req.end(body ? JSON.stringify(body) : undefined);
  });
}
