import { spawnSync } from 'node:child_process';
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ok, slipway } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

/** The containers the OCI runtimes of a home know: id and init pid. */
function containers(home: string): { id: string; pid: number }[] {
  const out: { id: string; pid: number }[] = [];
  for (const rt of ['runc', 'crun']) {
    const root = join(home, 'run', rt);
    if (!existsSync(root)) continue;
    const r = spawnSync(rt, ['--root', root, 'list', '--format', 'json'], { encoding: 'utf8' });
    out.push(...((JSON.parse(r.stdout || '[]') as { id: string; pid: number }[] | null) ?? []));
  }
  return out;
}
const webDynos = (home: string, app: string): { id: string; pid: number }[] => containers(home).filter((c) => new RegExp(`^slipway-dyno-${app}-web\\.\\d+-[0-9a-f]{6}$`).test(c.id));

/** Host pids whose command line names `needle` (the app's dyno bundles: the runtime, the socat bridge). */
async function processesNaming(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const p of (await readdir('/proc')).filter((x) => /^\d+$/.test(x))) {
    const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle) && Number(p) !== process.pid) pids.push(Number(p));
  }
  return pids;
}

/** The detached supervisor of `app` in `home`: `slipway up APP` with that SLIPWAY_HOME. */
async function supervisorPid(home: string, app: string): Promise<number> {
  for (const p of (await readdir('/proc')).filter((x) => /^\d+$/.test(x))) {
    const argv = (await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const env = (await readFile(`/proc/${p}/environ`, 'utf8').catch(() => '')).split('\0');
    const i = argv.indexOf('up');
    if (i > 0 && argv[i + 1] === app && env.includes(`SLIPWAY_HOME=${home}`)) return Number(p);
  }
  throw new Error(`no supervisor of ${app} found`);
}

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }).stdout);

async function killSupervisor(home: string, app: string): Promise<void> {
  const pid = await supervisorPid(home, app);
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  expect(alive(pid)).toBe(false);
}

describe('dynos of a supervisor killed with SIGKILL', () => {
  let home: string;
  afterAll(async () => {
    for (const app of ['orph', 'orph-2']) await slipway(home, ['stop', app]);
    // Should stop have left anything (it does not reap without the fix), the runtimes and the bridges go here.
    for (const rt of ['runc', 'crun']) {
      for (const c of containers(home)) for (const a of [['kill', c.id, 'KILL'], ['delete', '--force', c.id]]) spawnSync(rt, ['--root', join(home, 'run', rt), ...a]);
    }
    for (const pid of await processesNaming(join(home, 'dynos'))) process.kill(pid, 'SIGKILL');
  });

  it('are reaped by stop and by the next up, exactly for their app (orph, not orph-2)', async () => {
    home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'bookworm', `dir:${inject('debootstrapRootfs')}`]));
    const src = await tempDir('slipway-app-');
    await copyFile('/bin/busybox', join(src, 'busybox'));
    await writeFile(join(src, 'Procfile'), 'web: ./busybox httpd -f -p $PORT\n');
    for (const app of ['orph', 'orph-2']) {
      await ok(slipway(home, ['-q', 'build', src, '--app', app, '--runtime', 'process']));
      await ok(slipway(home, ['-q', 'up', app, '--detach', '--runtime', 'container']));
      expect(webDynos(home, app)).toHaveLength(1);
    }
    await killSupervisor(home, 'orph');
    await killSupervisor(home, 'orph-2');
    const [orphan] = webDynos(home, 'orph');
    expect(alive(orphan!.pid)).toBe(true);
    expect((await ok(slipway(home, ['ps', 'orph']))).stdout).toMatch(/not up/);

    // stop: the orphan of orph goes, with every process it had; orph-2's stays (a prefix is no match).
    const stopped = await ok(slipway(home, ['stop', 'orph']));
    expect(stopped.stdout).toMatch(/removed 1 orphaned dyno/);
    expect(webDynos(home, 'orph')).toEqual([]);
    expect(alive(orphan!.pid)).toBe(false);
    expect(await processesNaming(join(home, 'dynos', 'slipway-dyno-orph-web'))).toEqual([]);
    expect(webDynos(home, 'orph-2')).toHaveLength(1);

    // up: exactly one web.1, for orph (started anew) and for orph-2 (its orphan reaped first).
    for (const app of ['orph', 'orph-2']) {
      await ok(slipway(home, ['-q', 'up', app, '--detach', '--runtime', 'container']));
      const dynos = webDynos(home, app);
      expect(dynos.map((d) => d.id.replace(/-[0-9a-f]{6}$/, ''))).toEqual([`slipway-dyno-${app}-web.1`]);
      expect((await ok(slipway(home, ['ps', app]))).stdout).toMatch(/web\.1\s+up/);
    }
    for (const app of ['orph', 'orph-2']) await ok(slipway(home, ['stop', app]));
    expect(containers(home).filter((c) => c.id.startsWith('slipway-dyno-'))).toEqual([]);
    expect(await processesNaming(join(home, 'dynos'))).toEqual([]);
  }, 180_000);
});
