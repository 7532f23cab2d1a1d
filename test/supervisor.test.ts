/**
 * The supervisor's own suite, over a fake DynoRuntime whose dynos do what their command says
 * (serve, hang, crash, ignore SIGTERM, start slowly): every state change in milliseconds, against
 * the real database, log and router.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { addRelease, finishReleasePhase, listReleases, type BuiltRelease } from '../src/release/releases.js';
import type { DynoIo, DynoRuntime, DynoSpec, Exit, RunningDyno } from '../src/runtime/dyno.js';
import { AppLog, readLog } from '../src/runtime/logs.js';
import { Router } from '../src/runtime/router.js';
import { Supervisor, type SupervisorOptions } from '../src/runtime/supervisor.js';
import { openDb, type Db } from '../src/store/db.js';
import { processToken } from '../src/store/owner-token.js';
import { httpGet } from './helpers/apps.js';
import { tempDir } from './helpers/tmp.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Above any pid_max: no fake dyno's pid names a real process (release phase claims read /proc).
let nextPid = 5_000_000;

/** A dyno whose command is its behaviour: `serve`, `hang` (never listens), `crash`, `stubborn` (ignores SIGTERM). */
class FakeDyno implements RunningDyno {
  readonly pid = nextPid++;
  readonly endpoint = { host: '127.0.0.1', port: 1 };
  readonly exited: Promise<Exit>;
  readonly signals: string[] = [];
  readonly startedAt = Date.now();
  done = false;
  private finish!: (e: Exit) => void;

  constructor(readonly spec: DynoSpec) {
    this.exited = new Promise((r) => (this.finish = r));
    if (spec.command === 'crash' || spec.command === 'migrate-fail') setTimeout(() => this.exit({ code: 1, signal: null }), 5);
    if (spec.command === 'migrate') setTimeout(() => this.exit({ code: 0, signal: null }), 5);
  }

  exit(e: Exit): void {
    if (this.done) return;
    this.done = true;
    this.finish(e);
  }

  async listening(): Promise<boolean> {
    return !this.done && ['serve', 'stubborn'].includes(this.spec.command);
  }

  async signal(sig: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    this.signals.push(sig);
    if (sig === 'SIGKILL' || this.spec.command !== 'stubborn') setTimeout(() => this.exit({ code: null, signal: sig }), 1);
  }
}

class FakeRuntime implements DynoRuntime {
  readonly kind = 'container' as const;
  readonly notes: string[] = [];
  readonly started: FakeDyno[] = [];
  /** How long start() takes (a slow OCI runtime). */
  startMs = 0;

  async start(spec: DynoSpec, _io: DynoIo): Promise<RunningDyno> {
    if (this.startMs) await sleep(this.startMs);
    const d = new FakeDyno(spec);
    this.started.push(d);
    return d;
  }

  of(name: string): FakeDyno[] {
    return this.started.filter((d) => d.spec.name === name);
  }

  alive(): FakeDyno[] {
    return this.started.filter((d) => !d.done);
  }
}

const stopping: Supervisor[] = [];
const closing: (() => unknown)[] = [];
afterEach(async () => {
  for (const s of stopping.splice(0)) await s.stop();
  for (const c of closing.splice(0)) await c();
});

interface Setup {
  sup: Supervisor;
  rt: FakeRuntime;
  db: Db;
  home: string;
  router: Router;
  log: () => string;
  release: (types: Record<string, string>, opts?: { claim?: string }) => BuiltRelease;
}

/** An app whose releases declare the given process types (kept here, not in a slug). */
async function setup(types: Record<string, string>, opts: Partial<SupervisorOptions> = {}): Promise<Setup> {
  const home = await tempDir();
  const db = openDb(home);
  const log = new AppLog(home, 'demo');
  const router = new Router(log);
  closing.push(() => router.close(), () => log.close(), () => db.close());
  const rt = new FakeRuntime();
  const typesOf = new Map<number, Record<string, string>>();
  const release = (t: Record<string, string>, o: { claim?: string } = {}): BuiltRelease => {
    const stack = { name: 'tiny', version: 1, digest: `sha256:${'1'.repeat(64)}` };
    const r = addRelease(db, 'demo', () => ({ slug: `sha256:${'2'.repeat(64)}`, stack, config: {}, description: 'Deploy', releaseCommand: t.release ?? '' }), o) as BuiltRelease;
    typesOf.set(r.version, t);
    return r;
  };
  release(types);
  const sup = new Supervisor({
    home, db, app: 'demo', runtime: rt, log, router,
    stopTimeoutMs: 200, bootTimeoutMs: 300, backoffMs: 50, maxBackoffMs: 200, pollMs: 60_000, settleMs: 30,
    processTypes: async (r) => typesOf.get(r.version)!,
    ...opts,
  });
  stopping.push(sup);
  const text = (): string => readLog(home, 'demo').map((l) => `${l.dyno}: ${l.line}`).join('\n');
  return { sup, rt, db, home, router, log: text, release };
}

const count = (text: string, re: RegExp): number => text.match(new RegExp(re.source, 'g'))?.length ?? 0;

async function until(what: string, fn: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('the supervisor', () => {
  it('restarts a crashing dyno at once, then after a doubling backoff, up to the cap', async () => {
    const { sup, rt, log } = await setup({ worker: 'crash' });
    // Crashed within the first moments (settleMs): start() reports it, as a web dyno that did not boot.
    expect(await sup.start({ worker: 1 })).toEqual(['worker.1']);
    await until('six starts', () => rt.of('worker.1').length >= 6, 3000);
    const t = rt.of('worker.1').map((d) => d.startedAt);
    const gaps = t.slice(1).map((x, i) => x - t[i]!);
    // crash 1: at once; then 50, 100, 200 ms, and 200 again (the cap); each gap includes the 5 ms run.
    // Only lower bounds on time (a loaded CI machine stretches every gap); "at once" is read from the log.
    expect(gaps[1]).toBeGreaterThanOrEqual(50);
    expect(gaps[2]).toBeGreaterThanOrEqual(100);
    expect(gaps[3]).toBeGreaterThanOrEqual(200);
    expect(gaps[4]).toBeGreaterThanOrEqual(200);
    expect(log()).toMatch(/worker\.1: Process exited with status 1\nworker\.1: State changed from up to crashed\nworker\.1: Starting process/);
    expect(log()).not.toMatch(/Restarting in [\d.]+ s \(crash 1\)/);
    expect(log()).toMatch(/Restarting in 0\.05 s \(crash 2\)[\s\S]*Restarting in 0\.1 s \(crash 3\)[\s\S]*Restarting in 0\.2 s \(crash 4\)[\s\S]*Restarting in 0\.2 s \(crash 5\)/);
  });

  it('kills a web dyno that does not listen within the boot timeout (R10) and starts it again', async () => {
    const { sup, rt, log } = await setup({ web: 'hang' });
    expect(await sup.start()).toEqual(['web.1']);
    expect(rt.of('web.1')[0]!.signals).toEqual(['SIGKILL']);
    expect(log()).toMatch(/web\.1: Error R10 \(Boot timeout\) -> Web process failed to bind to \$PORT within 0\.3 seconds of launch\nweb\.1: Stopping process with SIGKILL/);
    await until('a second boot', () => rt.of('web.1').length === 2);
  });

  it('scales live up and down; only the release\'s own process types scale', async () => {
    const { sup, rt, router } = await setup({ web: 'serve', worker: 'serve' });
    await sup.start();
    expect(await sup.scale({ web: 3 })).toEqual({ web: 3 });
    expect(sup.status().dynos.map((d) => `${d.name} ${d.state}`)).toEqual(['web.1 up', 'web.2 up', 'web.3 up']);
    expect(router.ready()).toHaveLength(3);
    await sup.scale({ web: 1, worker: 2 });
    expect(sup.status().dynos.map((d) => d.name)).toEqual(['web.1', 'worker.1', 'worker.2']);
    expect(rt.of('web.3')[0]!.signals).toEqual(['SIGTERM']);
    expect(router.ready().map((d) => d.spec.name)).toEqual(['web.1']);
    await expect(sup.scale({ nosuch: 1 })).rejects.toThrow(/demo v1 has no nosuch process type/);
    await expect(sup.scale({ constructor: 1 })).rejects.toMatchObject({ message: expect.stringMatching(/no constructor process type/), hint: 'its process types: web, worker' });
    expect(rt.started.filter((d) => /constructor|function/.test(d.spec.command + d.spec.name))).toEqual([]);
    await expect(sup.scale({ release: 1 })).rejects.toThrow(/the release process type runs once per release \(its release phase\) and cannot be scaled/);
  });

  it('a deploy whose dynos do not boot restores the old release and its process types: ps and scale use them', async () => {
    const { sup, rt, release, log } = await setup({ web: 'serve' });
    await sup.start();
    const v2 = release({ web: 'hang', worker: 'serve' });
    expect(await sup.deploy(v2)).toBe(false);
    expect(log()).toMatch(/v2 did not boot: keeping v1 running/);
    const s = sup.status();
    expect(s.release).toBe(1);
    expect(s.processTypes).toEqual({ web: 'serve' });
    await until('v2 dynos gone', () => sup.status().dynos.length === 1);
    expect(sup.status().dynos.map((d) => `${d.name} v${d.release} ${d.command} ${d.state}`)).toEqual(['web.1 v1 serve up']);
    await sup.scale({ web: 2 });
    const web2 = rt.of('web.2').at(-1)!;
    expect([web2.spec.release.version, web2.spec.command]).toEqual([1, 'serve']);
    await expect(sup.scale({ worker: 1 })).rejects.toThrow(/demo v1 has no worker process type/);
    expect(rt.alive().map((d) => `${d.spec.name} v${d.spec.release.version}`).sort()).toEqual(['web.1 v1', 'web.2 v1']);
  });

  it('a failed deploy stops every dyno of the failed release, those `scale` started during it too; the scale applies to the kept release', async () => {
    const { sup, rt, release, log } = await setup({ web: 'serve', worker: 'serve' });
    await sup.start();
    const deploying = sup.deploy(release({ web: 'hang', worker: 'serve' }));
    await until('v2 web.1 booting', () => rt.of('web.1').length === 2);
    await sup.scale({ worker: 1 });
    expect(await deploying).toBe(false);
    expect(log()).toMatch(/v2 did not boot: keeping v1 running/);
    await until('v2 dynos gone', () => rt.alive().every((d) => d.spec.release.version === 1));
    expect(rt.alive().map((d) => `${d.spec.name} v${d.spec.release.version}`).sort()).toEqual(['web.1 v1', 'worker.1 v1']);
    expect(sup.status().dynos.map((d) => `${d.name} v${d.release} ${d.state}`)).toEqual(['web.1 v1 up', 'worker.1 v1 up']);
  });

  it('rolls to a release that boots: new dynos up, then the old ones stop', async () => {
    const { sup, rt, release } = await setup({ web: 'serve' });
    await sup.start({ web: 2 });
    expect(await sup.deploy(release({ web: 'serve' }))).toBe(true);
    expect(sup.status().release).toBe(2);
    await until('only v2', () => rt.alive().every((d) => d.spec.release.version === 2));
    expect(rt.alive()).toHaveLength(2);
  });

  it('restarts one dyno and leaves the others alone', async () => {
    const { sup, rt } = await setup({ web: 'serve' });
    await sup.start({ web: 2 });
    const [w1, w2] = [rt.of('web.1')[0]!, rt.of('web.2')[0]!];
    expect(await sup.restart('web.1')).toEqual(['web.1']);
    expect(w1.done).toBe(true);
    expect(w2.signals).toEqual([]);
    const after = sup.status().dynos;
    expect(after.map((d) => `${d.name} ${d.state}`)).toEqual(['web.1 up', 'web.2 up']);
    expect(after[0]!.pid).not.toBe(w1.pid);
    expect(after[1]!.pid).toBe(w2.pid);
    await expect(sup.restart('web.9')).rejects.toThrow(/no dyno web\.9/);
  });

  it('stop during boot leaves nothing running: neither a dyno the runtime is still starting nor one not yet listening', async () => {
    const slow = await setup({ web: 'serve', worker: 'serve' });
    slow.rt.startMs = 150;
    const started = slow.sup.start({ web: 1, worker: 1 });
    await sleep(30);
    await slow.sup.stop();
    await started;
    await sleep(200);
    expect(slow.rt.started).toHaveLength(2);
    expect(slow.rt.alive()).toEqual([]);
    expect(slow.sup.status().dynos).toEqual([]);

    const hanging = await setup({ web: 'hang' }, { bootTimeoutMs: 5000 });
    const booting = hanging.sup.start();
    await until('web.1 started', () => hanging.rt.started.length === 1);
    const t = Date.now();
    await hanging.sup.stop();
    expect(await booting).toEqual(['web.1']);
    expect(Date.now() - t).toBeLessThan(1000);
    expect(hanging.rt.alive()).toEqual([]);
    expect(hanging.log()).not.toMatch(/R10/);
    expect(hanging.log()).toMatch(/web\.1: State changed from starting to down/);
    expect(hanging.log()).not.toMatch(/from up to down/);
  });

  it('a dyno that ignores SIGTERM is killed after the stop timeout (R12)', async () => {
    const { sup, rt, log } = await setup({ web: 'stubborn' });
    await sup.start();
    const t = Date.now();
    await sup.stop();
    expect(Date.now() - t).toBeGreaterThanOrEqual(200);
    expect(rt.of('web.1')[0]!.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(log()).toMatch(/web\.1: Stopping all processes of v1 with SIGTERM\nweb\.1: Error R12 \(Exit timeout\) -> At least one process failed to exit within 0\.2 seconds of SIGTERM\nweb\.1: Stopping all processes with SIGKILL/);
  });

  it('the router answers H14 when web is scaled to 0, H10 when web dynos are wanted but none is up', async () => {
    const { sup, router, log } = await setup({ web: 'serve' });
    const port = await router.listen(0, '127.0.0.1');
    await sup.start();
    await sup.scale({ web: 0 });
    const r = await httpGet(port, '/');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/H14/);
    await until('router line', () => /code=H14/.test(log()));
    expect(log()).toMatch(/router: at=error code=H14 desc="No web processes running" .*status=503/);
    router.webScaledToZero = false;
    expect((await httpGet(port, '/')).body).toMatch(/H10/);
  });

  it('rolls to new releases as they appear: runs each pending release command once, passes over a failed one, waits for one a build is running', async () => {
    const { sup, rt, db, release, log } = await setup({ web: 'serve' }, { pollMs: 20 });
    await sup.start();
    release({ web: 'serve', release: 'migrate' });
    await until('v2 live', () => sup.status().release === 2 && sup.status().dynos.every((d) => d.release === 2));
    release({ web: 'serve', release: 'migrate-fail' });
    await until('v3 failed', () => listReleases(db, 'demo')[0]!.status === 'failed');
    await sleep(200);
    expect(sup.status().release).toBe(2);
    // A build holding v4's release phase: the supervisor waits for it, then deploys what it decided.
    const build = spawn('sleep', ['30']);
    try {
      release({ web: 'serve', release: 'migrate' }, { claim: processToken(build.pid!)! });
      await sleep(200);
      expect(sup.status().release).toBe(2);
      finishReleasePhase(db, 'demo', 4, 'succeeded', 'migrate');
      await until('v4 live', () => sup.status().release === 4);
    } finally {
      build.kill('SIGKILL');
    }
    expect(rt.started.filter((d) => d.spec.type === 'release').map((d) => `${d.spec.release.version} ${d.spec.command}`)).toEqual(['2 migrate', '3 migrate-fail']);
    expect(listReleases(db, 'demo').map((r) => `v${r.version} ${r.status}`)).toEqual(['v4 succeeded', 'v3 failed', 'v2 succeeded', 'v1 succeeded']);
    expect(log()).toMatch(/release: Release command for v3 failed \(exit 1\): v3 does not go live/);
    // Said once, with who runs it, while the supervisor waited for the build's release phase.
    expect(count(log(), new RegExp(`release: v4 waits for its release phase, running in process ${build.pid}: v2 runs until it ends`))).toBe(1);
  });

  it('stop ends a release phase the supervisor runs (at start or for a new release): its dyno is stopped and the release fails', async () => {
    const { sup, rt, db, release, log } = await setup({ web: 'serve' }, { pollMs: 20 });
    await sup.start();
    release({ web: 'serve', release: 'hang' });
    await until('v2 release command running', () => rt.alive().some((d) => d.spec.type === 'release'));
    await sup.stop();
    expect(rt.alive()).toEqual([]);
    expect(rt.started.find((d) => d.spec.type === 'release')!.signals).toEqual(['SIGTERM']);
    expect(listReleases(db, 'demo')[0]).toMatchObject({ version: 2, status: 'failed' });
    expect(log()).toMatch(/release: Stopping the release command \(release\.\d+\) with SIGTERM: v2 does not go live/);

    const first = await setup({ web: 'serve', release: 'hang' });
    const starting = first.sup.start();
    await until('v1 release command running', () => first.rt.started.length === 1);
    await first.sup.stop();
    expect(await starting).toEqual([]);
    await sleep(50);
    expect(first.rt.alive()).toEqual([]);
    expect(first.rt.started.map((d) => d.spec.type)).toEqual(['release']);
  });
});
