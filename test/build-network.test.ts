import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildpack } from './helpers/buildpacks.js';
import { BIN, ok, slipway } from './helpers/cli.js';
import { startInternet, type Internet } from './helpers/internet.js';
import { tempDir } from './helpers/tmp.js';

const sh = (cmd: string): string => {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
};
/** What Slipway's build networks leave on the host: namespaces, links, rules. */
const leftovers = (): string[] => [
  ...sh('ip netns list').split('\n').filter((l) => l.startsWith('slipway-build-')),
  ...sh('ip -o link show').split('\n').filter((l) => /^\d+: slipway\d+/.test(l)),
  ...sh('iptables-save').split('\n').filter((l) => l.includes('slipway-build-')),
];

describe('the build network', () => {
  let home: string;
  let src: string;
  let internet: Internet;
  let loopback: Server;
  let anyAddress: Server;
  const ports = { loopback: 0, any: 0 };
  const hostIp = sh("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1").trim();

  beforeAll(async () => {
    // "The internet": a server in a namespace of the test's own that answers with the address it sees.
    internet = await startInternet(`require('http').createServer((q, s) => s.end('internet saw ' + q.socket.remoteAddress)).listen(Number(process.env.PORT), process.env.ADDR, () => console.log('ready'))`);
    const listen = async (host: string): Promise<[Server, number]> => {
      const s = createServer((c) => c.end('HTTP/1.0 200 OK\r\n\r\nhost secret\n'));
      await new Promise<void>((r) => s.listen(0, host, r));
      return [s, (s.address() as { port: number }).port];
    };
    [loopback, ports.loopback] = await listen('127.0.0.1');
    [anyAddress, ports.any] = await listen('0.0.0.0');

    home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'bookworm', `dir:${inject('debootstrapRootfs')}`]));
    src = await tempDir('slipway-app-');
    await writeFile(join(src, 'Procfile'), 'web: true\n');
  });

  afterAll(async () => {
    internet?.close();
    loopback?.close();
    anyAddress?.close();
    // Slipway leaves its chains in place, empty; a test host gets them removed when no build uses them.
    if (!sh('iptables-save').includes('slipway-build-')) {
      for (const [table, from, chain] of [['filter', 'INPUT', 'SLIPWAY-BUILD-IN'], ['filter', 'FORWARD', 'SLIPWAY-BUILD-FWD'], ['nat', 'POSTROUTING', 'SLIPWAY-BUILD-NAT']] as const) {
        spawnSync('iptables', ['-w', '-t', table, '-D', from, '-j', chain]);
        spawnSync('iptables', ['-w', '-t', table, '-X', chain]);
      }
    }
  });

  const probe = (name: string, url: string): string => `curl -sS -m 3 ${url} 2>&1 | sed 's/^/${name}: /' || true`;

  it('a build step reaches the outside through NAT, but nothing listening on the host (loopback or its own address)', async () => {
    const bp = await buildpack({
      detect: 'echo net',
      compile: [
        probe('internet', `http://${internet.address}:${internet.port}/`),
        probe('host-loopback', `http://127.0.0.1:${ports.loopback}/`),
        probe('host-address', `http://${hostIp}:${ports.any}/`),
        probe('internet-side-host-address', `http://${internet.host}:${ports.any}/`),
      ].join('\n'),
    });
    const forwarding = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    const built = await ok(slipway(home, ['build', src, '--app', 'net', '--buildpack', bp, '--runtime', 'container']));
    const out = built.stdout;
    // The one host change: forwarding, turned on (and said) only when it was off.
    if (forwarding === '0') expect(built.stdout + built.stderr).toMatch(/enabled IPv4 forwarding on this host/);
    else expect(built.stdout + built.stderr).not.toMatch(/enabled IPv4 forwarding/);
    // Masqueraded: the server sees the host's address on its link, not the build's private one.
    expect(out).toContain(`internet: internet saw ${internet.host}`);
    for (const name of ['host-loopback', 'host-address', 'internet-side-host-address']) {
      expect(out).toMatch(new RegExp(`${name}: curl: \\((7|28)\\)`));
    }
    expect(out).not.toContain('host secret');
    expect(leftovers()).toEqual([]);
  });

  it('its namespace and rules go when a build fails', async () => {
    const bp = await buildpack({ detect: 'echo failing', compile: 'echo boom; exit 3' });
    const r = await slipway(home, ['build', src, '--app', 'net', '--buildpack', bp, '--runtime', 'container']);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('boom');
    expect(leftovers()).toEqual([]);
  });

  it('those of a build killed with SIGKILL go with the next build', async () => {
    const bp = await buildpack({ detect: 'echo slow', compile: 'echo compiling; sleep 120' });
    const killed = spawn(process.execPath, [BIN, 'build', src, '--app', 'net', '--buildpack', bp, '--runtime', 'container'], { env: { ...process.env, SLIPWAY_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    const closed = new Promise((r) => killed.once('close', r));
    let left: string[];
    try {
      await new Promise<void>((resolve) => killed.stdout!.on('data', (c: Buffer) => c.toString().includes('compiling') && resolve()));
      left = leftovers();
    } finally {
      // Slipway's step wrapper ends the step once slipway is gone.
      killed.kill('SIGKILL');
      await closed;
    }
    expect(left.some((l) => l.startsWith('slipway-build-'))).toBe(true);
    expect(leftovers()).toEqual(left);
    const quick = await buildpack({ detect: 'echo quick', compile: 'true' });
    await ok(slipway(home, ['-q', 'build', src, '--app', 'net', '--buildpack', quick, '--runtime', 'container']));
    expect(leftovers()).toEqual([]);
  });
});

