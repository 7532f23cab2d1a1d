import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { busyboxRootfs } from './buildpacks.js';
import { ok, slipway } from './cli.js';
import { tempDir } from './tmp.js';

/** A busybox app: httpd on $PORT whose /cgi-bin/dyno answers with $DYNO and the release. */
export async function busyboxWebApp(procfile = 'web: busybox httpd -f -p $PORT -h www\n'): Promise<string> {
  const src = await tempDir('slipway-app-');
  await mkdir(join(src, 'www', 'cgi-bin'), { recursive: true });
  await writeFile(join(src, 'Procfile'), procfile);
  await writeFile(join(src, 'www', 'index.html'), 'hello\n');
  await writeFile(join(src, 'www', 'cgi-bin', 'dyno'), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s %s\\n" "$DYNO" "$SLIPWAY_RELEASE"\n');
  await chmod(join(src, 'www', 'cgi-bin', 'dyno'), 0o755);
  return src;
}

export function httpGet(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: -1, body: '' }));
    });
    req.on('error', (e) => resolve({ status: -1, body: e.message }));
    req.end();
  });
}

/** Sends requests back to back (4 at a time) until stopped; counts what did not come back 200. */
export function load(port: number, path = '/'): { stop: () => Promise<{ sent: number; failed: { status: number; body: string }[] }> } {
  let running = true;
  let sent = 0;
  const failed: { status: number; body: string }[] = [];
  const worker = async (): Promise<void> => {
    while (running) {
      const r = await httpGet(port, path);
      sent++;
      if (r.status !== 200) failed.push(r);
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return { sent, failed };
    },
  };
}

/** A fresh SLIPWAY_HOME with the busybox stack imported as `tiny`. */
export async function tinyHome(): Promise<string> {
  const h = await tempDir();
  await ok(slipway(h, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
  return h;
}

/** Apps a test file starts: each is stopped after the file's tests, whatever happened. */
export function detachedApps(): { stopLater(home: string, app: string): void; up(home: string, app: string, args: string[]): Promise<number> } {
  const running: { home: string; app: string }[] = [];
  afterAll(async () => {
    for (const r of running) await slipway(r.home, ['stop', r.app]);
  });
  return {
    stopLater: (home, app) => void running.push({ home, app }),
    /** `up APP --detach ARGS`: the router's port. */
    up: async (home, app, args) => {
      running.push({ home, app });
      return (JSON.parse((await ok(slipway(home, ['--json', 'up', app, '--detach', ...args]))).stdout) as { port: number }).port;
    },
  };
}

/** The app's log, the last thousand lines. */
export const logText = async (h: string, app: string): Promise<string> => (await ok(slipway(h, ['logs', app, '-n', '1000']))).stdout;
