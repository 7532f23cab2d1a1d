import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createSign, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './cli.js';
import { tempDir } from './tmp.js';

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface Registry {
  host: string;
  dataDir: string;
  /** The registry's own log (request lines at level info, when started with logLevel: 'info'). */
  logFile: string;
  stop(): Promise<void>;
  /** Kills the registry abruptly (as a crash would). */
  kill(): void;
  /** Starts it again on the same port and storage. */
  restart(): Promise<void>;
}

export type RegistryAuth = { kind: 'none' } | { kind: 'htpasswd'; user: string; password: string } | { kind: 'token'; user: string; password: string };

async function waitUp(host: string, child: ChildProcess, logFile: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${await readFile(logFile, 'utf8').catch(() => '')}`);
    const up = await fetch(`http://${host}/v2/`).then(
      () => true,
      () => false,
    );
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry on ${host} did not come up`);
}

/**
 * A network namespace this test run made, joined to the host by a veth pair on a random private
 * /30: an address off loopback that traffic to never leaves this machine.
 */
export interface TestNetns {
  name: string;
  /** The namespace side's address. */
  address: string;
  remove(): Promise<void>;
}

export async function testNetns(): Promise<TestNetns> {
  const id = randomBytes(4).toString('hex');
  const name = `swt${id}`;
  const net = `10.213.${randomBytes(1)[0]!}.${4 * (randomBytes(1)[0]! % 63)}`.split('.').map(Number);
  const addr = (last: number): string => [...net.slice(0, 3), net[3]! + last].join('.');
  const ip = async (...args: string[]): Promise<void> => {
    const r = await run('ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  };
  const remove = async (): Promise<void> => {
    await run('ip', ['netns', 'del', name]);
    await run('ip', ['link', 'del', `vh-${id}`]);
  };
  try {
    await ip('netns', 'add', name);
    await ip('link', 'add', `vh-${id}`, 'type', 'veth', 'peer', 'name', `vn-${id}`);
    await ip('link', 'set', `vn-${id}`, 'netns', name);
    await ip('addr', 'add', `${addr(1)}/30`, 'dev', `vh-${id}`);
    await ip('link', 'set', `vh-${id}`, 'up');
    await ip('netns', 'exec', name, 'ip', 'addr', 'add', `${addr(2)}/30`, 'dev', `vn-${id}`);
    await ip('netns', 'exec', name, 'ip', 'link', 'set', `vn-${id}`, 'up');
    await ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    await remove();
    throw err;
  }
  return { name, address: addr(2), remove };
}

/**
 * Starts Debian's docker-registry with temp storage: on a free loopback port, or inside a
 * network namespace (`netns`) on its address.
 */
export async function startRegistry(auth: RegistryAuth = { kind: 'none' }, opts: { logLevel?: 'error' | 'info'; netns?: TestNetns } = {}): Promise<Registry> {
  const dir = await tempDir('slipway-registry-');
  const host = opts.netns ? `${opts.netns.address}:5000` : `127.0.0.1:${await freePort()}`;
  let authYaml = '';
  let tokenServer: Server | undefined;
  if (auth.kind === 'htpasswd') {
    const r = await run('htpasswd', ['-Bbn', auth.user, auth.password]);
    await writeFile(join(dir, 'htpasswd'), r.stdout);
    authYaml = `auth:\n  htpasswd:\n    realm: slipway-test\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (auth.kind === 'token') {
    const t = await startTokenServer(dir, auth.user, auth.password);
    tokenServer = t.server;
    authYaml = `auth:\n  token:\n    realm: http://127.0.0.1:${t.port}/token\n    service: slipway-test\n    issuer: slipway-test-issuer\n    rootcertbundle: ${t.certFile}\n`;
  }
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: ${opts.logLevel ?? 'error'}\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n${authYaml}`,
  );
  const logFile = join(dir, 'registry.log');
  const { openSync } = await import('node:fs');
  const fd = openSync(logFile, 'a');
  const start = async (): Promise<ChildProcess> => {
    const serve = ['docker-registry', 'serve', config];
    const c = opts.netns ? spawn('ip', ['netns', 'exec', opts.netns.name, ...serve], { stdio: ['ignore', fd, fd] }) : spawn(serve[0]!, serve.slice(1), { stdio: ['ignore', fd, fd] });
    await waitUp(host, c, logFile);
    return c;
  };
  let child = await start();
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  };
  return {
    host,
    logFile,
    dataDir: join(dir, 'data'),
    kill: () => child.kill('SIGKILL'),
    async restart() {
      await stop();
      child = await start();
    },
    async stop() {
      await stop();
      tokenServer?.close();
    },
  };
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * A minimal Docker token server (the distribution "token" auth flow): checks basic
 * credentials and issues ES256 JWTs whose x5c chain the registry trusts.
 */
async function startTokenServer(dir: string, user: string, password: string): Promise<{ server: Server; port: number; certFile: string }> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=slipway-test-token']);
  if (r.code !== 0) throw new Error(`openssl: ${r.stderr}`);
  const key = await readFile(keyFile, 'utf8');
  const cert = new X509Certificate(await readFile(certFile));
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const access = url.searchParams.getAll('scope').map((s) => {
      const [type, name, actions] = s.split(':');
      return { type, name, actions: (actions ?? '').split(',') };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [cert.raw.toString('base64')] };
    const claims = { iss: 'slipway-test-issuer', sub: user, aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('SHA256').update(input).sign({ key, dsaEncoding: 'ieee-p1363' });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${input}.${b64url(sig)}` }));
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return { server, port: (server.address() as { port: number }).port, certFile };
}
