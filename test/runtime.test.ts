import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { busyboxWebApp, detachedApps, httpGet, load, logText, tinyHome } from './helpers/apps.js';
import { buildpack } from './helpers/buildpacks.js';
import { ok, slipway } from './helpers/cli.js';

const { up, stopLater } = detachedApps();
const home = tinyHome;

async function until(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(['container', 'process'])('the %s runtime', (runtime) => {
  it('runs web=2 behind the router, scales live to 3 and back to 1 without dropping a request, restarts a killed dyno', async () => {
    const h = await home();
    await ok(slipway(h, ['-q', 'build', await busyboxWebApp(), '--app', 'web', '--runtime', 'process']));
    const port = await up(h, 'web', ['--scale', 'web=2', '--runtime', runtime]);
    const answered = new Set<string>();
    for (let i = 0; i < 6; i++) answered.add((await httpGet(port, '/cgi-bin/dyno')).body.trim());
    expect(answered).toEqual(new Set(['web.1 v1', 'web.2 v1']));

    const traffic = load(port, '/cgi-bin/dyno');
    await ok(slipway(h, ['scale', 'web', 'web=3']));
    await new Promise((r) => setTimeout(r, 500));
    await ok(slipway(h, ['scale', 'web', 'web=1']));
    await new Promise((r) => setTimeout(r, 500));
    const { sent, failed } = await traffic.stop();
    expect(sent).toBeGreaterThan(20);
    expect(failed).toEqual([]);
    const ps = JSON.parse((await ok(slipway(h, ['--json', 'ps', 'web']))).stdout) as { dynos: { name: string; state: string; pid: number }[] };
    expect(ps.dynos.map((d) => [d.name, d.state])).toEqual([['web.1', 'up']]);

    process.kill(ps.dynos[0]!.pid, 'SIGKILL');
    await until('web.1 back up', async () => {
      const again = JSON.parse((await ok(slipway(h, ['--json', 'ps', 'web']))).stdout) as typeof ps;
      return again.dynos[0]?.state === 'up' && again.dynos[0].pid !== ps.dynos[0]!.pid;
    });
    expect((await httpGet(port, '/cgi-bin/dyno')).body.trim()).toBe('web.1 v1');
    const log = await logText(h, 'web');
    expect(log).toMatch(/slipway\[web\.1\]: Process exited with status 137\n.*slipway\[web\.1\]: State changed from up to crashed\n.*slipway\[web\.1\]: Starting process/);
    expect(log).toMatch(/slipway\[router\]: at=info dyno=web\.\d .*status=200/);
    const before = (JSON.parse((await ok(slipway(h, ['--json', 'ps', 'web']))).stdout) as typeof ps).dynos[0]!.pid;
    expect(JSON.parse((await ok(slipway(h, ['--json', 'restart', 'web', 'web.1']))).stdout)).toEqual({ restarted: ['web.1'] });
    const after = (JSON.parse((await ok(slipway(h, ['--json', 'ps', 'web']))).stdout) as typeof ps).dynos[0]!;
    expect([after.state, after.pid === before]).toEqual(['up', false]);
    await ok(slipway(h, ['stop', 'web']));
    expect((await slipway(h, ['ps', 'web'])).stdout).toMatch(/web is not up \(formation: web=1\)/);
  });

  it('rolls to a new release without dropping requests; a failing release command keeps the old release', async () => {
    const h = await home();
    const src = await busyboxWebApp();
    await ok(slipway(h, ['-q', 'build', src, '--app', 'roll', '--runtime', 'process']));
    const port = await up(h, 'roll', ['--scale', 'web=2', '--runtime', runtime]);
    const traffic = load(port, '/cgi-bin/dyno');
    await ok(slipway(h, ['-q', 'config', 'set', 'roll', 'COLOUR=blue']));
    await until('v2 serving', async () => (await httpGet(port, '/cgi-bin/dyno')).body.includes('v2'));
    await new Promise((r) => setTimeout(r, 300));
    const { failed } = await traffic.stop();
    expect(failed).toEqual([]);
    await until('v1 gone', async () => !/v1/.test((await ok(slipway(h, ['ps', 'roll']))).stdout));

    await writeFile(join(src, 'Procfile'), 'web: busybox httpd -f -p $PORT -h www\nrelease: echo migrating; exit 3\n');
    const v3 = await slipway(h, ['-q', 'build', src, '--app', 'roll', '--runtime', 'process']);
    expect([v3.code, v3.stderr]).toEqual([1, expect.stringMatching(/release command of roll v3 failed/)]);
    expect(await logText(h, 'roll')).toMatch(/Release command for v3 failed \(exit 3\)/);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await httpGet(port, '/cgi-bin/dyno')).body).toMatch(/v2/);
    expect(await logText(h, 'roll')).toMatch(/app\[release\.\d+\]: migrating/);
  });

  it('kills a web dyno that does not bind $PORT in time (R10), and passes a one-off dyno\'s exit code through', async () => {
    const h = await home();
    await ok(slipway(h, ['-q', 'build', await busyboxWebApp('web: sleep 1000\n'), '--app', 'sleepy', '--runtime', 'process']));
    stopLater(h, 'sleepy');
    const r = await slipway(h, ['up', 'sleepy', '--detach', '--boot-timeout', '1', '--runtime', runtime]);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toMatch(/is up/);
    expect(r.stderr).toMatch(/sleepy did not come up: web\.1 failed to boot[\s\S]*Error R10 \(Boot timeout\)/);
    expect(await logText(h, 'sleepy')).toMatch(/Error R10 \(Boot timeout\) -> Web process failed to bind to \$PORT within 1 seconds of launch/);
    await ok(slipway(h, ['stop', 'sleepy']));
    const one = await slipway(h, ['run', 'sleepy', '--runtime', runtime, '--', 'echo $DYNO; exit 7']);
    expect(one.code).toBe(7);
    expect(one.stdout).toMatch(/^run\.\d+\n$/);
  });
});

describe('container isolation (each would fail without its protection)', () => {
  let h: string;
  const run = async (cmd: string): Promise<{ code: number; out: string }> => {
    const r = await slipway(h, ['run', 'iso', '--runtime', 'container', '--', cmd]);
    return { code: r.code, out: r.stdout + r.stderr };
  };

  it('builds an app whose slug carries a setuid copy of busybox (/app/bin/busybox)', async () => {
    h = await home();
    const bp = await buildpack({ detect: 'echo iso', compile: 'mkdir -p "$1/bin" && cp /bin/busybox "$1/bin/busybox" && chmod 4755 "$1/bin/busybox"', release: 'echo "default_process_types: {web: busybox httpd -f -p \\$PORT}"' });
    const src = await busyboxWebApp();
    await ok(slipway(h, ['-q', 'build', src, '--app', 'iso', '--buildpack', bp, '--runtime', 'process']));
  });

  it('writing h to /proc/sysrq-trigger fails', async () => {
    const r = await run('echo h > /proc/sysrq-trigger && echo WROTE');
    expect(r.out).not.toContain('WROTE');
    expect(r.code).not.toBe(0);
  });

  it('mount, mknod and loading a module fail for lack of privilege', async () => {
    expect((await run('mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo MOUNTED')).out).not.toContain('MOUNTED');
    const mknod = await run('mknod /tmp/null c 1 3 && echo MADE');
    expect(mknod.out).toMatch(/Operation not permitted/);
    // A zero-filled file is no module: with CAP_SYS_MODULE the kernel says so (invalid format), without it EPERM;
    // a kernel built without modules answers ENOSYS to everyone, so there the capability sets decide.
    const insmod = await run('head -c 4096 /dev/zero > /tmp/x.ko; insmod /tmp/x.ko; echo status=$?; grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status');
    expect(insmod.out).toMatch(/status=[1-9]/);
    const hostSays = spawnSync('sh', ['-c', 'head -c 4096 /dev/zero > /tmp/slipway-x.ko; busybox insmod /tmp/slipway-x.ko 2>&1; rm -f /tmp/slipway-x.ko'], { encoding: 'utf8' }).stdout;
    if (!/does not support/.test(hostSays)) expect(insmod.out).toMatch(/Operation not permitted/);
    for (const cap of ['CapEff', 'CapPrm', 'CapBnd']) expect(insmod.out).toMatch(new RegExp(`${cap}:\\s+0000000000000000`));
  });

  it('a setuid binary in the slug gives no privilege: uid 1000, and the app\'s unprivileged range on the host', async () => {
    const r = await run('ls -l /app/bin/busybox; /app/bin/busybox id -u; /app/bin/busybox id -un 2>/dev/null; cat /proc/self/uid_map');
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/^-rwsr-xr-x /);
    const [uid, map] = [lines[1], lines.slice(-2)[0]];
    expect(uid).toBe('1000');
    const [inside, hostBase, size] = map!.trim().split(/\s+/).map(Number);
    expect(inside).toBe(0);
    expect(hostBase).toBeGreaterThanOrEqual(0x100000);
    expect(size).toBe(65536);
  });

  it('a dyno is held to its memory and pids limits (512 MiB, 512 processes)', async () => {
    // 700 MB in a shell variable: the OOM killer ends the dyno long before it has it all.
    const mem = await run('x=$(head -c 700000000 /dev/zero | tr "\\0" a); echo SURVIVED ${#x}');
    expect(mem.out).not.toContain('SURVIVED');
    expect(mem.code).toBe(137);
    // Counted with shell builtins only: at the limit nothing more can be forked.
    // The shell that meets the limit gives up, so the forking happens in a subshell.
    const pids = await run('(i=0; while [ $i -lt 600 ]; do sleep 30 & i=$((i + 1)); done); set -- /proc/[0-9]*; echo $#');
    expect(pids.out).toMatch(/can't fork|Resource temporarily unavailable/);
    const count = Number(/^(\d+)$/m.exec(pids.out)?.[1]);
    expect(count).toBeGreaterThan(400);
    expect(count).toBeLessThanOrEqual(512);
  });

  it('the stack cannot be written, and what a dyno writes is gone with it', async () => {
    const stacks = join(h, 'stacks');
    expect((await run('touch /bin/owned && echo WROTE; echo x >> /etc/passwd && echo WROTE2')).out).not.toMatch(/WROTE/);
    expect((await run('echo scratch > /app/scratch && cat /app/scratch')).out).toContain('scratch');
    expect((await run('cat /app/scratch')).code).not.toBe(0);
    const unpacked = spawnSync('sh', ['-c', `ls ${stacks}/*/rootfs/bin/owned ${stacks}/*/rootfs/app/scratch 2>&1`], { encoding: 'utf8' }).stdout;
    expect(unpacked).toMatch(/No such file/);
  });

  it('host loopback services are not reachable; only loopback exists inside', async () => {
    const srv = createServer((s) => s.end('secret'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      const r = await run(`nc -w 2 127.0.0.1 ${port} </dev/null && echo CONNECTED; ip -o link 2>/dev/null | cut -d: -f2; cat /proc/net/dev | tail -n +3 | cut -d: -f1`);
      expect(r.out).not.toContain('CONNECTED');
      expect(r.out).not.toContain('secret');
      expect(r.out.split('\n').map((l) => l.trim()).filter((l) => /^(lo|eth|veth|ens|enp|wl)/.test(l))).toEqual(expect.arrayContaining(['lo']));
      expect(r.out).not.toMatch(/\beth\d|\bens\d|\benp\d/);
    } finally {
      srv.close();
    }
  });

  it('no engine socket is mounted, and another app\'s files and processes are invisible', async () => {
    expect((await run('ls /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock 2>&1')).out).not.toMatch(/^\/.*sock$/m);
    await ok(slipway(h, ['-q', 'build', await busyboxWebApp('web: busybox httpd -f -p $PORT -h www\nsecret: sleep 1000; : secret-marker\n'), '--app', 'other', '--runtime', 'process']));
    await up(h, 'other', ['--scale', 'web=1,secret=1', '--runtime', 'container']);
    const slugs = spawnSync('sh', ['-c', `ls -d ${h}/slugs/*/app`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    const r = await run(`cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; ls /proc | grep -c '^[0-9]'; ${slugs.map((s) => `ls ${s}`).join('; ')} 2>&1`);
    expect(r.out).not.toContain('secret-marker');
    // It does run: the host sees it.
    expect(spawnSync('sh', ['-c', "cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'secret-marke[r]'"], { encoding: 'utf8' }).stdout.trim()).not.toBe('0');
    expect(r.out).toMatch(/No such file or directory/);
    // Bundles hold the config vars and are reachable through /run/slipway's view: root's to read.
    const configs = readdirSync(join(h, 'dynos')).map((d) => join(h, 'dynos', d, 'config.json')).filter((f) => existsSync(f));
    expect(configs.length).toBeGreaterThan(0);
    for (const f of configs) expect((statSync(f).mode & 0o777).toString(8)).toBe('600');
    await ok(slipway(h, ['stop', 'other']));
  });
});

describe('restrictions at run time', () => {
  it('a release the host restrictions deny does not start, and the findings are printed', async () => {
    const h = await home();
    const src = await busyboxWebApp();
    await writeFile(join(src, 'app.json'), JSON.stringify({ requirements: { hostNetwork: true } }));
    await ok(slipway(h, ['-q', 'build', src, '--app', 'needy', '--runtime', 'process']));
    await ok(slipway(h, ['restrictions', 'set', 'heroku-like']));
    const r = await slipway(h, ['up', 'needy', '--runtime', 'process']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needy v1 refused by restrictions heroku-like:[\s\S]*privileges.host-network: 1 finding[\s\S]*app.json requests the host network/);
    expect(existsSync(join(h, 'run', 'needy.sock'))).toBe(false);
  });
});

