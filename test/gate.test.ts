import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { busyboxWebApp } from './helpers/apps.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { BIN, ok, run, slipway } from './helpers/cli.js';
import { freePort, startRegistry, type Registry } from './helpers/registry.js';
import { fileEntry, tarOf, writeImage, writeIndex } from './helpers/images.js';
import { tempDir } from './helpers/tmp.js';

interface Gate {
  host: string;
  child: ChildProcess;
  log: () => string;
  /** Peak resident memory of the gate process so far. */
  peak: () => number;
}
const gates: Gate[] = [];

async function startGate(home: string, upstream: string, args: string[]): Promise<Gate> {
  const port = await freePort();
  let log = '';
  const child = spawn(process.execPath, [BIN, 'gate', '--upstream', `http://${upstream}`, '--listen', `127.0.0.1:${port}`, ...args], { env: { ...process.env, SLIPWAY_HOME: home } });
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`gate exited ${code}: ${log}`)));
  });
  const gate: Gate = {
    host: `127.0.0.1:${port}`,
    child,
    log: () => log,
    peak: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024,
  };
  gates.push(gate);
  return gate;
}

const skopeo = (src: string, dst: string, extra: string[] = []): ReturnType<typeof run> => run('skopeo', ['copy', '-q', '--dest-tls-verify=false', ...extra, src, dst]);
const inRegistry = async (ref: string): Promise<boolean> => (await run('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).code === 0;

let reg: Registry;
let home: string;
let stackRef: string;
beforeAll(async () => {
  reg = await startRegistry();
  home = await tempDir();
  await ok(slipway(home, ['-q', 'stack', 'import', 'deb', `dir:${inject('debootstrapRootfs')}`]));
  const digest = (JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect', 'deb']))).stdout) as { digest: string }).digest;
  const layout = join(await tempDir(), 'oci');
  await ok(slipway(home, ['-q', 'image', 'copy', `stacks/deb:${digest.slice(7)}`, `oci:${layout}:deb`]));
  stackRef = `oci:${layout}:deb`;
});
afterAll(async () => {
  for (const g of gates) g.child.kill();
  await reg?.stop();
});

describe('the registry gate in front of docker-registry', () => {
  it('refuses the Debian stack under heroku-like with its setuid findings, and it is not in the registry after', async () => {
    const gate = await startGate(home, reg.host, ['-r', 'heroku-like']);
    const r = await skopeo(stackRef, `docker://${gate.host}/stacks/deb:1`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/denied: denied by restrictions heroku-like: .*files\.setuid \/usr\/bin\/su: setuid file owned by root/);
    expect(await inRegistry(`${reg.host}/stacks/deb:1`)).toBe(false);
    // Slipway's own copy prints the same reason.
    const ours = await slipway(home, ['image', 'copy', stackRef, `docker://${gate.host}/stacks/deb:2`]);
    expect([ours.code, ours.stderr]).toEqual([1, expect.stringMatching(/DENIED|denied by restrictions heroku-like/)]);
    expect(gate.log()).toMatch(/slipway\[gate\]: deny stacks\/deb:1 sha256:/);
  });

  it('accepts it under permissive (warnings), and judges a digest once', async () => {
    const gate = await startGate(home, reg.host, ['-r', 'permissive']);
    await ok(skopeo(stackRef, `docker://${gate.host}/stacks/deb:ok`));
    expect(await inRegistry(`${reg.host}/stacks/deb:ok`)).toBe(true);
    await ok(skopeo(stackRef, `docker://${gate.host}/stacks/deb:again`));
    expect(gate.log().match(/warn stacks\/deb:(ok|again) /g)).toHaveLength(2);
    expect(gate.log()).toMatch(/findings, cached\)/);
  });

  it('accepts a compliant Slipway-exported app image under heroku-like; pulls pass through', async () => {
    const h = await tempDir();
    await ok(slipway(h, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    await ok(slipway(h, ['-q', 'build', await busyboxWebApp(), '--app', 'web', '--runtime', 'process']));
    const gate = await startGate(home, reg.host, ['-r', 'heroku-like']);
    await ok(slipway(h, ['-q', 'export', 'web', `docker://${gate.host}/apps/web:1`]));
    expect(await inRegistry(`${reg.host}/apps/web:1`)).toBe(true);
    expect(await inRegistry(`${gate.host}/apps/web:1`)).toBe(true);
  });

  it('judges a multi-platform index by each child', async () => {
    const dir = join(await tempDir(), 'oci');
    const clean = await writeImage(dir, 'amd', [await tarOf([fileEntry('bin/tool', 'x', { mode: 0o755 })])]);
    const suid = await writeImage(dir, 'arm', [await tarOf([fileEntry('bin/tool', 'x', { mode: 0o4755 })])], { arch: 'arm64' });
    await writeIndex(dir, 'mixed', [{ image: clean, arch: 'amd64' }, { image: suid, arch: 'arm64' }]);
    await writeIndex(dir, 'clean', [{ image: clean, arch: 'amd64' }]);
    const policy = join(await tempDir(), 'suid.yaml');
    await writeFile(policy, 'apiVersion: slipway/v1\nkind: Restrictions\nmetadata: {name: no-suid}\nrules:\n  files.setuid: {severity: deny}\n');
    const gate = await startGate(home, reg.host, ['-r', policy]);
    const mixed = await skopeo(`oci:${dir}:mixed`, `docker://${gate.host}/multi/app:1`, ['--all']);
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toMatch(/denied by restrictions no-suid: files\.setuid \/bin\/tool/);
    expect(await inRegistry(`${reg.host}/multi/app:1`)).toBe(false);
    await ok(skopeo(`oci:${dir}:clean`, `docker://${gate.host}/multi/app:2`, ['--all']));
  });

  it('requires its token when given one', async () => {
    const gate = await startGate(home, reg.host, ['-r', 'permissive', '--token', 's3cret']);
    const anon = await skopeo(stackRef, `docker://${gate.host}/stacks/deb:tok`);
    expect(anon.code).not.toBe(0);
    await ok(skopeo(stackRef, `docker://${gate.host}/stacks/deb:tok`, ['--dest-creds', 'ci:s3cret']));
    expect(await inRegistry(`${reg.host}/stacks/deb:tok`)).toBe(true);
  });

  it('streams a 1 GiB push through in under 150 MB of gate memory', async () => {
    const tree = join(await tempDir(), 'big');
    await run('mkdir', ['-p', tree]);
    for (let i = 0; i < 8; i++) await ok(run('sh', ['-c', `head -c 134217728 /dev/urandom > ${tree}/f${i}`]));
    await writeFile(join(tree, 'README'), 'big\n');
    const layout = join(await tempDir(), 'oci');
    await ok(slipway(home, ['-q', 'image', 'copy', `dir:${tree}`, `oci:${layout}:big`]));
    const gate = await startGate(home, reg.host, ['-r', 'permissive']);
    await ok(skopeo(`oci:${layout}:big`, `docker://${gate.host}/big/one:1`));
    expect(await inRegistry(`${reg.host}/big/one:1`)).toBe(true);
    expect(gate.peak()).toBeLessThan(150 * 1024 * 1024);
  });
});
