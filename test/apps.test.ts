/**
 * Apps and releases as a user inspects and changes them, against the real OCI runtime and the
 * process runtime: the release phase, `apps info / destroy`, `releases info`, `ps` of a stopped
 * app, scale refusals, H14, `logs -n 0`.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSqlite } from '../src/native.js';
import { addRelease, claimReleasePhase, currentRelease, finishReleasePhase, getRelease, phaseStarted, rebaseFleet, setConfig, type Release } from '../src/release/releases.js';
import type { Stack } from '../src/stack/stacks.js';
import { openDb } from '../src/store/db.js';
import { processToken } from '../src/store/owner-token.js';
import { busyboxWebApp, detachedApps, httpGet, logText, tinyHome } from './helpers/apps.js';
import { buildpack } from './helpers/buildpacks.js';
import { BIN, ok, run, slipway } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const { up, stopLater } = detachedApps();
const home = tinyHome;

const json = async <T>(h: string, args: string[]): Promise<T> => JSON.parse((await ok(slipway(h, ['--json', ...args]))).stdout) as T;
const count = (text: string, re: RegExp): number => text.match(new RegExp(re.source, 'g'))?.length ?? 0;

interface ReleaseRow { version: number; status: string; current: boolean; description: string }

describe.each(['container', 'process'])('the release phase on the %s runtime', (runtime) => {
  it('a failed release command fails the build and never goes live; up runs the newest succeeded release; each release command runs once', async () => {
    const h = await home();
    const src = await busyboxWebApp('web: busybox httpd -f -p $PORT -h www\nrelease: echo "migrating $SLIPWAY_RELEASE"\n');
    const v1 = await ok(slipway(h, ['build', src, '--app', 'rp', '--runtime', runtime]));
    expect(v1.stdout).toMatch(/-----> Running release command\.\.\.\n.*Running release command for v1[^\n]*\n +migrating v1\n[\s\S]*-----> Released v1\n/);

    await writeFile(join(src, 'Procfile'), 'web: busybox httpd -f -p $PORT -h www\nrelease: echo "migrating $SLIPWAY_RELEASE"; exit 3\n');
    const v2 = await slipway(h, ['build', src, '--app', 'rp', '--runtime', runtime]);
    expect(v2.code).toBe(1);
    expect(v2.stdout).toMatch(/migrating v2\n.*Release command for v2 failed \(exit 3\)/);
    expect(v2.stdout).not.toMatch(/Released v2/);
    expect(v2.stderr).toMatch(/release command of rp v2 failed: the release does not go live/);
    expect((await json<ReleaseRow[]>(h, ['releases', 'rp'])).map((r) => [r.version, r.status, r.current])).toEqual([[2, 'failed', false], [1, 'succeeded', true]]);
    expect((await ok(slipway(h, ['releases', 'rp']))).stdout).toMatch(/^=== rp releases \(current: v1\)\nVERSION +STATUS[^\n]*\nv2 +failed +Deploy[^\n]*\nv1 \* +succeeded +Deploy/);

    // up runs v1, the newest release whose release phase succeeded, and does not run it again.
    let port = await up(h, 'rp', ['--runtime', runtime]);
    expect((await httpGet(port, '/cgi-bin/dyno')).body).toBe('web.1 v1\n');
    await ok(slipway(h, ['stop', 'rp']));

    // A config change while the app is down builds on v1 (not the failed v2); its release phase runs at the next up, once.
    await ok(slipway(h, ['config', 'set', 'rp', 'COLOUR=blue']));
    expect((await json<ReleaseRow[]>(h, ['releases', 'rp']))[0]).toMatchObject({ version: 3, status: 'pending', current: false });
    port = await up(h, 'rp', ['--runtime', runtime]);
    expect((await httpGet(port, '/cgi-bin/dyno')).body).toBe('web.1 v3\n');
    await ok(slipway(h, ['stop', 'rp']));
    port = await up(h, 'rp', ['--runtime', runtime]);
    expect((await httpGet(port, '/cgi-bin/dyno')).body).toBe('web.1 v3\n');
    await ok(slipway(h, ['stop', 'rp']));
    const log = await logText(h, 'rp');
    expect(log).toMatch(/app\[release\.\d+\]: migrating v3/);
    expect([1, 2, 3].map((v) => count(log, new RegExp(`Running release command for v${v}:`)))).toEqual([1, 1, 1]);
    expect((await json<ReleaseRow[]>(h, ['releases', 'rp'])).map((r) => `v${r.version} ${r.status}${r.current ? ' current' : ''}`)).toEqual(['v3 succeeded current', 'v2 failed', 'v1 succeeded']);
  });
});

describe('apps and releases, inspected and scaled', () => {
  it('ps of a stopped app, apps info, releases info (--json and text); scale takes only the release\'s own types; H14 at web=0; logs -n 0', async () => {
    const h = await home();
    await ok(slipway(h, ['-q', 'build', await busyboxWebApp('web: busybox httpd -f -p $PORT -h www\nworker: sleep 1000\nrelease: true\n'), '--app', 'shop', '--runtime', 'process']));
    await ok(slipway(h, ['config', 'set', 'shop', 'SECRET=s3cret']));
    for (const bad of ['nosuch=1', 'constructor=1']) {
      const r = await slipway(h, ['scale', 'shop', bad]);
      expect(r.code).toBe(1);
      // v2 (the config change) is pending: v1 is current, and its types are what scales.
      expect(r.stderr).toMatch(new RegExp(`shop v1 has no ${bad.split('=')[0]} process type\\nhint: its process types: web, worker`));
    }
    expect((await slipway(h, ['scale', 'shop', 'release=1'])).stderr).toMatch(/the release process type runs once per release \(its release phase\) and cannot be scaled/);
    // Scaling another type leaves web at its first-deploy default of 1, as on Heroku.
    await ok(slipway(h, ['scale', 'shop', 'worker=2']));

    const ps = await json<{ up: boolean; release: number; formation: Record<string, number>; processTypes: Record<string, string>; dynos: unknown[] }>(h, ['ps', 'shop']);
    // v2 (the config change) is pending: its release phase runs at the next up, so v1 is current.
    expect(ps).toEqual({ app: 'shop', up: false, release: 1, formation: { web: 1, worker: 2 }, processTypes: { web: 'busybox httpd -f -p $PORT -h www', worker: 'sleep 1000', release: 'true' }, dynos: [] });
    expect((await ok(slipway(h, ['ps', 'shop']))).stdout).toMatch(/^shop is not up \(formation: web=1 worker=2\); current release v1; start it with slipway up shop\nTYPE +SCALE +COMMAND\nweb +1 +busybox httpd -f -p \$PORT -h www\nworker +2 +sleep 1000\n$/);

    const info = await json<Record<string, unknown>>(h, ['apps', 'info', 'shop']);
    expect(info).toMatchObject({ name: 'shop', releases: 2, current: { version: 1 }, latest: { version: 2, status: 'pending', description: 'Set SECRET config vars' }, stack: { name: 'tiny', version: 1 }, formation: { web: 1, worker: 2 }, buildpacks: [{ name: 'Procfile' }] });
    expect(info.slugSize).toBeGreaterThan(100);
    expect(info.url).toBeUndefined();
    expect((await ok(slipway(h, ['apps', 'info', 'shop']))).stdout).toMatch(/^=== shop\nCurrent release: +v1 \(Deploy \w+\)\nLatest release: +v2 pending \(Set SECRET config vars\)\nStack: +tiny@v1\nDynos: +web: 1, worker: 2\nWeb URL: +- \(not run yet\)\nSlug size: +\d+ B\nBuildpacks: +Procfile\n[\s\S]*=== Process types\nTYPE +COMMAND\nweb +busybox/);

    const rel = await json<Record<string, unknown>>(h, ['releases', 'info', 'shop', 'v1']);
    expect(rel).toMatchObject({ version: 1, status: 'succeeded', current: true, config: {}, processTypes: { worker: 'sleep 1000' }, buildpacks: [{ name: 'Procfile' }], stack: { name: 'tiny' } });
    expect(await json(h, ['releases', 'info', 'shop', '2'])).toMatchObject({ status: 'pending', current: false, config: { SECRET: '••••••' } });
    expect((await ok(slipway(h, ['releases', 'info', 'shop', 'v2', '--reveal']))).stdout).toMatch(/^=== Release v2\nStatus: +pending\nChange: +Set SECRET config vars[\s\S]*=== v2 config vars\nSECRET=s3cret$/m);
    expect((await slipway(h, ['releases', 'info', 'shop', 'v9'])).stderr).toMatch(/shop has no release v9/);

    await ok(slipway(h, ['scale', 'shop', 'web=1', 'worker=0']));
    const port = await up(h, 'shop', ['--runtime', 'process']);
    expect(await json(h, ['apps', 'info', 'shop'])).toMatchObject({ url: `http://127.0.0.1:${port}`, current: { version: 2 } });
    for (const bad of ['nosuch=1', 'constructor=1']) expect((await slipway(h, ['scale', 'shop', bad])).stderr).toMatch(/has no .* process type\nhint: its process types: web, worker/);
    expect((await json<{ dynos: { name: string }[] }>(h, ['ps', 'shop'])).dynos.map((d) => d.name)).toEqual(['web.1']);

    // logs -n 0: no past lines; with -f, only what comes next.
    expect((await ok(slipway(h, ['logs', 'shop', '-n', '0']))).stdout).toBe('');
    const follow = spawn(process.execPath, [BIN, 'logs', 'shop', '-n', '0', '-f'], { env: { ...process.env, SLIPWAY_HOME: h } });
    let followed = '';
    follow.stdout.on('data', (c: Buffer) => (followed += c.toString()));
    try {
      await new Promise((r) => setTimeout(r, 500));
      await ok(slipway(h, ['scale', 'shop', 'web=0']));
      const r = await httpGet(port, '/');
      expect([r.status, r.body]).toEqual([503, 'Application error: no web dynos are running (H14)\n']);
      const end = Date.now() + 5000;
      while (!/code=H14/.test(followed) && Date.now() < end) await new Promise((res) => setTimeout(res, 100));
    } finally {
      follow.kill();
    }
    expect(followed).toMatch(/slipway\[router\]: at=error code=H14 desc="No web processes running" .*status=503/);
    expect(followed).not.toMatch(/Starting process/);
    await ok(slipway(h, ['scale', 'shop', 'web=1']));
    expect((await httpGet(port, '/')).status).toBe(200);
    await ok(slipway(h, ['stop', 'shop']));
  });

  it('a failed first build leaves no app; apps destroy stops the dynos and removes releases, slugs no other app uses, logs and build cache', async () => {
    const h = await home();
    const failing = await buildpack({ detect: 'echo Failing', compile: 'exit 3' });
    const src = await busyboxWebApp();
    expect((await slipway(h, ['build', src, '--app', 'first', '--runtime', 'process', '--buildpack', failing])).code).toBe(1);
    expect(await json(h, ['apps'])).toEqual([]);
    expect((await slipway(h, ['apps', 'info', 'first'])).stderr).toMatch(/no app "first"/);
    // Its build log and cache stay (the error names the log) until apps destroy removes them.
    expect(existsSync(join(h, 'builds', 'first', 'logs'))).toBe(true);
    expect(await json(h, ['apps', 'destroy', 'first', '--confirm', 'first'])).toEqual({ app: 'first', releases: 0, slugsReleased: [], stopped: false });
    expect(existsSync(join(h, 'builds', 'first'))).toBe(false);
    expect((await slipway(h, ['apps', 'destroy', 'first', '--confirm', 'first'])).stderr).toMatch(/no app "first"/);

    // keep and gone share one slug; gone has a second one of its own.
    await ok(slipway(h, ['-q', 'build', src, '--app', 'keep', '--runtime', 'process']));
    await ok(slipway(h, ['-q', 'build', src, '--app', 'gone', '--runtime', 'process']));
    const other = await busyboxWebApp('web: busybox httpd -f -p $PORT -h www\nrelease: echo once\n');
    await ok(slipway(h, ['-q', 'build', other, '--app', 'gone', '--runtime', 'process']));
    const slugs = (await json<{ slug: string }[]>(h, ['releases', 'gone'])).map((r) => r.slug);
    const shared = (await json<{ slug: string }[]>(h, ['releases', 'keep']))[0]!.slug;
    expect(slugs).toEqual([expect.not.stringMatching(shared), shared]);
    const port = await up(h, 'gone', ['--runtime', 'container']);
    expect((await httpGet(port, '/cgi-bin/dyno')).body).toBe('web.1 v2\n');

    const refused = await slipway(h, ['apps', 'destroy', 'gone']);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/nothing was removed\nhint: to go ahead: slipway apps destroy gone --confirm gone/)]);
    const wrong = await slipway(h, ['apps', 'destroy', 'gone', '--confirm', 'keep']);
    expect([wrong.code, wrong.stderr]).toEqual([1, expect.stringMatching(/--confirm keep does not name the app being destroyed \(gone\); nothing was removed/)]);
    expect((await httpGet(port, '/cgi-bin/dyno')).body).toBe('web.1 v2\n');

    const gone = await json<{ stopped: boolean; releases: number; slugsReleased: string[] }>(h, ['apps', 'destroy', 'gone', '--confirm', 'gone']);
    expect(gone).toEqual({ app: 'gone', releases: 2, slugsReleased: [slugs[0]], stopped: true });
    expect((await httpGet(port, '/')).status).toBe(-1);
    expect((await run('runc', ['--root', join(h, 'run', 'runc'), 'list', '-q'])).stdout + (await run('crun', ['--root', join(h, 'run', 'crun'), 'list', '-q'])).stdout).not.toMatch(/gone/);
    expect((await json<{ name: string }[]>(h, ['apps'])).map((a) => a.name)).toEqual(['keep']);
    for (const p of ['logs/gone.log', 'logs/gone.supervisor.log', 'builds/gone', 'run/gone.sock']) expect(existsSync(join(h, p)), p).toBe(false);
    expect((await readdir(join(h, 'slugs'))).filter((d) => d.startsWith(slugs[0]!.slice(7)))).toEqual([]);
    const tags = (await ok(slipway(h, ['image', 'ls']))).stdout;
    expect(tags).not.toMatch(/slugs\/gone/);
    expect(tags).toMatch(/slugs\/keep/);
    await ok(slipway(h, ['image', 'gc']));
    expect(existsSync(join(h, 'images', 'blobs', 'sha256', slugs[0]!.slice(7)))).toBe(false);
    expect(existsSync(join(h, 'images', 'blobs', 'sha256', shared.slice(7)))).toBe(true);

    // A slug pull that fails (its stack is not on that host) leaves no app there.
    const layoutDir = join(await tempDir(), 'slugs');
    await ok(slipway(h, ['-q', 'slug', 'push', 'keep', `oci:${layoutDir}:keep`]));
    const bare = await tempDir();
    const pulled = await slipway(bare, ['slug', 'pull', `oci:${layoutDir}:keep`, '--app', 'pulled']);
    expect([pulled.code, pulled.stderr]).toEqual([1, expect.stringMatching(/the slug was built on stack tiny sha256:\w+, which is not here/)]);
    expect(await json(bare, ['apps'])).toEqual([]);

    // keep still runs, and a new app by the old name starts from nothing.
    const keepPort = await up(h, 'keep', ['--runtime', 'process']);
    expect((await httpGet(keepPort, '/cgi-bin/dyno')).body).toBe('web.1 v1\n');
    await ok(slipway(h, ['stop', 'keep']));
    await ok(slipway(h, ['-q', 'build', src, '--app', 'gone', '--runtime', 'process']));
    expect((await json<ReleaseRow[]>(h, ['releases', 'gone'])).map((r) => r.version)).toEqual([1]);
    expect(await logText(h, 'gone')).toBe('');
  });
});

describe('the current release, and what up reports', () => {
  it('run, scale and ps use the current release, never a pending one; up says when a pending release phase fails, refuses an app already up, and reports a worker that crashes at once', async () => {
    const h = await home();
    const src = await busyboxWebApp('web: busybox httpd -f -p $PORT -h www\nrelease: true\n');
    await ok(slipway(h, ['-q', 'build', src, '--app', 'cur', '--runtime', 'process']));
    await writeFile(join(src, 'Procfile'), 'web: busybox httpd -f -p $PORT -h www\nworker: echo boom; exit 1\nrelease: exit 3\n');
    expect((await slipway(h, ['-q', 'build', src, '--app', 'cur', '--runtime', 'process'])).code).toBe(1);
    // v3: v2's slug again (a worker type, a failing release command), pending while the app is stopped.
    await ok(slipway(h, ['rollback', 'cur', 'v2']));
    expect((await json<ReleaseRow[]>(h, ['releases', 'cur'])).map((r) => `v${r.version} ${r.status}`)).toEqual(['v3 pending', 'v2 failed', 'v1 succeeded']);
    const scaled = await slipway(h, ['scale', 'cur', 'worker=1']);
    expect([scaled.code, scaled.stderr]).toEqual([1, expect.stringMatching(/cur v1 has no worker process type\nhint: its process types: web\n/)]);
    expect((await json<{ processTypes: Record<string, string> }>(h, ['ps', 'cur'])).processTypes).toEqual({ web: 'busybox httpd -f -p $PORT -h www', release: 'true' });
    expect((await ok(slipway(h, ['run', 'cur', '--runtime', 'process', 'echo $SLIPWAY_RELEASE']))).stdout).toBe('v1\n');

    stopLater(h, 'cur');
    const upped = await ok(slipway(h, ['up', 'cur', '--detach', '--runtime', 'process']));
    expect(upped.stderr).toMatch(/the release phase of cur v3 failed: v1 runs instead/);
    expect(upped.stdout).toMatch(/^cur v1 is up: http:\/\/127\.0\.0\.1:(\d+)/);
    const url = (await json<{ url: string }>(h, ['apps', 'info', 'cur'])).url;
    const again = await slipway(h, ['up', 'cur', '--detach', '--runtime', 'process', '--port', '1']);
    expect([again.code, again.stderr]).toEqual([1, expect.stringMatching(/^error: cur is already up\nhint: slipway ps cur; slipway stop cur first/)]);
    expect((await json<{ url: string }>(h, ['apps', 'info', 'cur'])).url).toBe(url);
    await ok(slipway(h, ['stop', 'cur']));

    // A worker that crashes at once is no "up": exit 1, and --json says which dynos failed.
    await writeFile(join(src, 'Procfile'), 'web: busybox httpd -f -p $PORT -h www\nworker: echo boom; exit 1\n');
    await ok(slipway(h, ['-q', 'build', src, '--app', 'cur', '--runtime', 'process']));
    await ok(slipway(h, ['scale', 'cur', 'worker=1']));
    const crashing = await slipway(h, ['--json', 'up', 'cur', '--detach', '--runtime', 'process']);
    expect(crashing.code).toBe(1);
    expect(JSON.parse(crashing.stdout)).toMatchObject({ release: 4, failed: ['worker.1'] });
    expect(crashing.stderr).toMatch(/cur did not come up: worker\.1 failed to boot or crashed at once[\s\S]*slipway\[worker\.1\]: Process exited with status 1/);
    // The app's own last words are among the lines shown, not only the platform's.
    expect(crashing.stderr).toMatch(/app\[worker\.1\]: boom/);
    await ok(slipway(h, ['stop', 'cur']));
    const fine = await json<{ failed: string[] }>(h, ['up', 'cur', '--detach', '--runtime', 'process', '--scale', 'worker=0']);
    expect(fine.failed).toEqual([]);
    await ok(slipway(h, ['stop', 'cur']));
  });
});

describe('the release statuses migration', () => {
  it('keeps a home made before statuses working: its releases count as succeeded, and a new release of theirs is pending until its release command is known', async () => {
    const h = await tempDir();
    // The schema as it was (migrations 1 and 2), with one app and one built release in it.
    const old = new (loadSqlite())(join(h, 'slipway.db'));
    old.exec(`CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE stacks (name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL, source TEXT NOT NULL, size INTEGER NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (name, version), UNIQUE (name, digest));
      CREATE TABLE apps (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
      CREATE TABLE releases (app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE, version INTEGER NOT NULL, slug TEXT, stack_name TEXT, stack_version INTEGER, stack_digest TEXT,
        config TEXT NOT NULL, description TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (app, version));
      CREATE TABLE formations (app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE, type TEXT NOT NULL, quantity INTEGER NOT NULL CHECK (quantity >= 0), PRIMARY KEY (app, type));
      CREATE TABLE uid_ranges (app TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE, base INTEGER NOT NULL UNIQUE);
      INSERT INTO apps VALUES ('legacy', '2026-01-01T00:00:00Z');
      INSERT INTO releases VALUES ('legacy', 1, 'sha256:${'2'.repeat(64)}', 'tiny', 1, 'sha256:${'1'.repeat(64)}', '{"A":"1"}', 'Deploy 2222222', '2026-01-01T00:00:00Z');
      PRAGMA user_version = 2;`);
    old.close();
    const db = openDb(h);
    try {
      expect(currentRelease(db, 'legacy')).toMatchObject({ version: 1, status: 'succeeded', config: { A: '1' } });
      expect(currentRelease(db, 'legacy')!.releaseCommand).toBeUndefined();
      // Whether the slug has a release command is not known yet: the new release waits for its release phase.
      expect(setConfig(db, 'legacy', { B: '2' })).toMatchObject({ version: 2, status: 'pending' });
      expect(claimReleasePhase(db, 'legacy', 2)).toBe(true);
      finishReleasePhase(db, 'legacy', 2, 'succeeded', '');
      expect(setConfig(db, 'legacy', { C: '3' })).toMatchObject({ version: 3, status: 'succeeded', config: { A: '1', B: '2', C: '3' } });
    } finally {
      db.close();
    }
    // --json says null for a release without a release command, whether made before the migration or after.
    expect((await json<{ version: number; releaseCommand: unknown }[]>(h, ['releases', 'legacy'])).map((r) => [r.version, r.releaseCommand])).toEqual([[3, null], [2, null], [1, null]]);
  });
});

describe('rebase --all --dry-run', () => {
  it('reports the release it would make: the next version, pending when the slug has a release command', async () => {
    const h = await tempDir();
    const db = openDb(h);
    try {
      const stack = (version: number, digit: string): Stack => ({ name: 'tiny', version, digest: `sha256:${digit.repeat(64)}`, source: 'test', size: 0, createdAt: '' });
      const make = (): Release => addRelease(db, 'fleet', () => ({ slug: `sha256:${'2'.repeat(64)}`, stack: stack(1, '1'), config: {}, description: 'Deploy', releaseCommand: 'migrate' }));
      finishReleasePhase(db, 'fleet', make().version, 'succeeded', 'migrate');
      finishReleasePhase(db, 'fleet', make().version, 'failed', 'migrate');
      const [dry] = rebaseFleet(db, stack(2, '3'), { dryRun: true });
      expect([dry!.from.version, dry!.to.version, dry!.to.status]).toEqual([1, 3, 'pending']);
      const [made] = rebaseFleet(db, stack(2, '3'));
      expect([made!.to.version, made!.to.status]).toEqual([3, 'pending']);
    } finally {
      db.close();
    }
  });
});

describe('release phase claims', () => {
  it('a release phase held by a live process or its dyno is not run twice; a dead or reused pid holds nothing', async () => {
    const h = await tempDir();
    const db = openDb(h);
    const procs: ReturnType<typeof spawn>[] = [];
    const sleeper = (): ReturnType<typeof spawn> => procs[procs.push(spawn('sleep', ['30'])) - 1]!;
    const killed = async (p: ReturnType<typeof spawn>): Promise<void> => {
      p.kill('SIGKILL');
      await new Promise((r) => p.once('close', r));
    };
    try {
      const stack = { name: 'tiny', version: 1, digest: `sha256:${'1'.repeat(64)}` };
      const make = (claim: string) => addRelease(db, 'claims', () => ({ slug: `sha256:${'2'.repeat(64)}`, stack, config: {}, description: 'Deploy', releaseCommand: 'migrate' }), { claim });
      const builder = sleeper();
      const rel = make(processToken(builder.pid!)!);
      expect(rel.status).toBe('pending');
      expect(claimReleasePhase(db, 'claims', rel.version)).toBe(false);
      expect(getRelease(db, 'claims', rel.version).phasePid).toBe(builder.pid);
      // The builder started the release command's dyno, then was killed: the dyno holds the claim.
      const dyno = sleeper();
      phaseStarted(db, 'claims', rel.version, processToken(dyno.pid!)!, processToken(builder.pid!)!);
      await killed(builder);
      expect(claimReleasePhase(db, 'claims', rel.version)).toBe(false);
      expect(getRelease(db, 'claims', rel.version).phasePid).toBe(dyno.pid);
      // Once the dyno is gone too, the next process runs the phase.
      await killed(dyno);
      expect(getRelease(db, 'claims', rel.version).phasePid).toBeUndefined();
      expect(claimReleasePhase(db, 'claims', rel.version)).toBe(true);
      finishReleasePhase(db, 'claims', rel.version, 'failed', 'migrate');
      expect(claimReleasePhase(db, 'claims', rel.version)).toBe(false);
      expect(currentRelease(db, 'claims')).toBeUndefined();

      // A live pid that is not the claimant (the pid was reused: another start time) holds nothing.
      const reused = make(`${process.pid}@1`);
      expect(getRelease(db, 'claims', reused.version).phasePid).toBeUndefined();
      expect(claimReleasePhase(db, 'claims', reused.version)).toBe(true);
    } finally {
      for (const p of procs) p.kill('SIGKILL');
      db.close();
    }
  });
});

describe('a build stopped during its release phase', () => {
  const until = async (what: string, fn: () => boolean | Promise<boolean>, ms: number): Promise<void> => {
    const end = Date.now() + ms;
    while (!(await fn())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const build = (h: string, src: string, app: string): ReturnType<typeof spawn> =>
    spawn(process.execPath, [BIN, 'build', src, '--app', app, '--runtime', 'process'], { env: { ...process.env, SLIPWAY_HOME: h }, stdio: 'ignore' });

  it('killed with SIGKILL: its release dyno holds the release; up runs the current one and runs the command again only once that dyno ended', async () => {
    const h = await home();
    const lock = await tempDir();
    // The release command fails if another copy of it runs at the same time.
    const src = await busyboxWebApp(`web: busybox httpd -f -p $PORT -h www\nrelease: mkdir ${lock}/running || exit 9; sleep 4; rmdir ${lock}/running\n`);
    await ok(slipway(h, ['-q', 'build', src, '--app', 'killed', '--runtime', 'process']));
    await writeFile(join(src, 'www', 'index.html'), 'v2\n');
    const b = build(h, src, 'killed');
    await until('v2 release command running', () => existsSync(join(lock, 'running')), 60_000);
    b.kill('SIGKILL');
    await new Promise((r) => b.once('close', r));

    const port = await up(h, 'killed', ['--runtime', 'process']);
    expect((await httpGet(port, '/cgi-bin/dyno')).body).toBe('web.1 v1\n');
    const v2 = (await json<(ReleaseRow & { phasePid?: number })[]>(h, ['releases', 'killed']))[0]!;
    expect(v2).toMatchObject({ version: 2, status: 'pending', phasePid: expect.any(Number) });
    expect((await ok(slipway(h, ['releases', 'killed']))).stdout).toMatch(new RegExp(`v2 +pending \\(release phase running in process ${v2.phasePid}\\)`));
    expect(await logText(h, 'killed')).toMatch(new RegExp(`slipway\\[release\\]: v2 waits for its release phase, running in process ${v2.phasePid}: v1 runs until it ends`));
    // Once the killed build's dyno ended, the supervisor runs the command again, alone, and rolls to v2.
    await until('v2 live', async () => (await httpGet(port, '/cgi-bin/dyno')).body === 'web.1 v2\n', 30_000);
    expect((await json<ReleaseRow[]>(h, ['releases', 'killed'])).map((r) => `v${r.version} ${r.status}`)).toEqual(['v2 succeeded', 'v1 succeeded']);
    await ok(slipway(h, ['stop', 'killed']));
  });

  it('SIGTERM: its release dyno is stopped and the build fails', async () => {
    const h = await home();
    const marker = `${(Math.random() * 1000 + 100).toFixed(3)}`;
    const src = await busyboxWebApp(`web: busybox httpd -f -p $PORT -h www\nrelease: sleep ${marker}\n`);
    const sleeping = (): boolean => readdirSync('/proc').some((p) => {
      try {
        return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${marker}\0`;
      } catch {
        return false;
      }
    });
    const b = build(h, src, 'term');
    const code = new Promise<number | null>((r) => b.once('close', r));
    await until('the release command running', sleeping, 60_000);
    b.kill('SIGTERM');
    expect(await code).toBe(1);
    expect(sleeping()).toBe(false);
    expect((await json<ReleaseRow[]>(h, ['releases', 'term'])).map((r) => `v${r.version} ${r.status}`)).toEqual(['v1 failed']);
  });
});
