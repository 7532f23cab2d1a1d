/**
 * The dyno manager of one app: keeps the formation of the current release running, restarts
 * crashes (at once, then with exponential backoff), enforces the web boot timeout (R10), rolls to
 * a new release (release phase first; new dynos up before old ones drain and stop) and stops
 * everything with SIGTERM, then SIGKILL after the grace period. Everything it does is logged in
 * the app's log stream, as Heroku does.
 */
import { createServer } from 'node:net';
import { constants as osConstants } from 'node:os';
import { imageStorePath } from '../home.js';
import type { Digest } from '../oci/digest.js';
import { getFormation, setFormation, type Formation } from '../release/formation.js';
import { currentRelease } from '../release/releases.js';
import type { Restrictions } from '../restrictions/document.js';
import { judge } from '../restrictions/enforce.js';
import { FactsCache } from '../restrictions/layer-facts.js';
import { reportText } from '../restrictions/report.js';
import { releaseSubject } from '../restrictions/subject.js';
import { verifySlugManifest } from '../slug/slug.js';
import type { Db } from '../store/db.js';
import { OciLayout } from '../store/layout.js';
import type { DynoRuntime, DynoSpec, Exit, RunningDyno } from './dyno.js';
import type { AppLog } from './logs.js';
import type { Router } from './router.js';

export type BuiltRelease = DynoSpec['release'];

export interface SupervisorOptions {
  home: string;
  db: Db;
  app: string;
  runtime: DynoRuntime;
  log: AppLog;
  router: Router;
  restrictions?: Restrictions | undefined;
  stopTimeoutMs?: number;
  bootTimeoutMs?: number;
  maxBackoffMs?: number;
  /** How often the current release is looked up (a build, config change or rebase makes a new one). */
  pollMs?: number;
}

type State = 'starting' | 'up' | 'crashed' | 'stopping';

interface Dyno {
  name: string;
  type: string;
  index: number;
  release: BuiltRelease;
  state: State;
  running?: RunningDyno;
  since: number;
  crashes: number;
  restartTimer?: NodeJS.Timeout;
  /** Resolves when the dyno is up (true) or failed to boot (false). */
  booted?: Promise<boolean>;
}

export interface DynoStatus {
  name: string;
  type: string;
  state: State;
  release: number;
  since: string;
  command: string;
  pid?: number;
}

const DYNO_PORT = 5000;

/** A shell's view of an exit: the code, or 128 + the signal's number. */
export function exitStatus(e: Exit): number {
  if (e.code !== null) return e.code;
  return 128 + (e.signal ? (osConstants.signals[e.signal as keyof typeof osConstants.signals] ?? 0) : 0);
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const a = srv.address();
  await new Promise((r) => srv.close(r));
  return typeof a === 'object' && a ? a.port : 0;
}

export class Supervisor {
  private readonly dynos = new Set<Dyno>();
  private release: BuiltRelease | undefined;
  private processTypes: Record<string, string> = {};
  private formation: Formation = {};
  private poll: NodeJS.Timeout | undefined;
  private deploying = false;
  /** The last release version a deploy was attempted for. */
  private tried: number | undefined;
  private stopped = false;
  private readonly stopMs: number;
  private readonly bootMs: number;
  private readonly maxBackoffMs: number;

  constructor(private readonly o: SupervisorOptions) {
    this.stopMs = o.stopTimeoutMs ?? 30_000;
    this.bootMs = o.bootTimeoutMs ?? 60_000;
    this.maxBackoffMs = o.maxBackoffMs ?? 300_000;
  }

  private say(dyno: string, text: string): void {
    this.o.log.write('slipway', dyno, text);
  }

  private async typesOf(rel: BuiltRelease): Promise<Record<string, string>> {
    const layout = await OciLayout.open(imageStorePath(this.o.home), { create: false });
    return (await verifySlugManifest(layout, rel.slug as Digest, `${rel.app} v${rel.version}`)).processTypes;
  }

  private current(): BuiltRelease {
    const rel = currentRelease(this.o.db, this.o.app);
    if (!rel?.slug || !rel.stack) throw new Error(`${this.o.app} has no release with a slug yet: build it first (slipway build DIR --app ${this.o.app})`);
    return rel as BuiltRelease;
  }

  /** Refuses a release the host's restrictions deny; the findings go to the log and the error. */
  private async admit(rel: BuiltRelease): Promise<void> {
    if (!this.o.restrictions) return;
    const report = await judge(this.o.restrictions, await releaseSubject(this.o.home, rel, { cache: new FactsCache(this.o.home) }), this.o.db, this.o.home);
    if (report.verdict === 'deny') {
      const text = reportText(report).trimEnd();
      this.say('release', `v${rel.version} refused by restrictions ${report.restrictions}`);
      for (const l of text.split('\n')) this.say('release', l);
      throw new Error(`${rel.app} v${rel.version} refused by restrictions ${report.restrictions}:\n${text}`);
    }
  }

  /** The `release` process type, once, before a release goes live; false when it failed. */
  private async releasePhase(rel: BuiltRelease, types: Record<string, string>): Promise<boolean> {
    const command = types.release;
    if (!command) return true;
    this.say('release', `Running release command for v${rel.version}: ${command}`);
    const exit = await this.oneOff(rel, 'release', command);
    if (exit.code === 0) return true;
    this.say('release', `Release command for v${rel.version} failed (exit ${exit.code ?? exit.signal}): v${rel.version} does not go live`);
    return false;
  }

  private async spec(rel: BuiltRelease, type: string, name: string, command: string): Promise<DynoSpec> {
    const port = this.o.runtime.kind === 'container' ? DYNO_PORT : await freePort();
    return { app: this.o.app, name, type, command, port, release: rel, env: { ...rel.config, PORT: String(port), DYNO: name, PS: name, SLIPWAY_RELEASE: `v${rel.version}` } };
  }

  private async oneOff(rel: BuiltRelease, type: string, command: string): Promise<Exit> {
    const name = `${type}.${1000 + Math.floor(Math.random() * 9000)}`;
    const out = this.o.log.lineWriter('app', name);
    const d = await this.o.runtime.start(await this.spec(rel, type, name, command), { stdio: 'pipe', onOutput: out.push });
    const e = await d.exited;
    out.end();
    return e;
  }

  /** Starts the current release's formation; returns the dynos that did not come up. */
  async start(formation?: Formation): Promise<string[]> {
    const rel = this.current();
    await this.admit(rel);
    const types = await this.typesOf(rel);
    if (formation) setFormation(this.o.db, this.o.app, formation);
    this.formation = this.effective(types);
    if (!(await this.releasePhase(rel, types))) throw new Error(`the release command of ${rel.app} v${rel.version} failed; see slipway logs ${rel.app}`);
    this.release = rel;
    this.processTypes = types;
    for (const n of this.o.runtime.notes) this.say('supervisor', n);
    const dynos = this.launchFormation(rel);
    const booted = await Promise.all(dynos.map((d) => d.booted));
    this.poll = setInterval(() => void this.checkRelease(), this.o.pollMs ?? 1000);
    return dynos.filter((_, i) => !booted[i]).map((d) => d.name);
  }

  /** The stored formation, or web=1 for an app that has a web type and no formation yet. */
  private effective(types: Record<string, string>): Formation {
    const f = getFormation(this.o.db, this.o.app);
    if (Object.keys(f).length === 0 && types.web) return setFormation(this.o.db, this.o.app, { web: 1 });
    for (const t of Object.keys(f)) if (!types[t] && f[t]! > 0) this.say('supervisor', `formation has ${t}=${f[t]}, but the release has no ${t} process type: skipped`);
    return f;
  }

  private launchFormation(rel: BuiltRelease): Dyno[] {
    const started: Dyno[] = [];
    for (const [type, n] of Object.entries(this.formation)) {
      if (!this.processTypes[type]) continue;
      for (let i = 1; i <= n; i++) started.push(this.launch(rel, type, i));
    }
    return started;
  }

  private launch(rel: BuiltRelease, type: string, index: number): Dyno {
    const d: Dyno = { name: `${type}.${index}`, type, index, release: rel, state: 'starting', since: Date.now(), crashes: 0 };
    this.dynos.add(d);
    d.booted = this.boot(d);
    return d;
  }

  private async boot(d: Dyno): Promise<boolean> {
    const command = this.processTypes[d.type] ?? (await this.typesOf(d.release))[d.type]!;
    d.state = 'starting';
    d.since = Date.now();
    this.say(d.name, `Starting process with command \`${command}\``);
    const out = this.o.log.lineWriter('app', d.name);
    let running: RunningDyno;
    try {
      running = await this.o.runtime.start(await this.spec(d.release, d.type, d.name, command), { stdio: 'pipe', onOutput: out.push });
    } catch (err) {
      this.say(d.name, `Failed to start: ${(err as Error).message}`);
      this.crashed(d, { code: null, signal: null });
      return false;
    }
    d.running = running;
    void running.exited.then((e) => {
      out.end();
      this.exited(d, running, e);
    });
    if (d.type !== 'web') {
      this.up(d);
      return true;
    }
    const deadline = Date.now() + this.bootMs;
    while (Date.now() < deadline) {
      if (d.running !== running || d.state !== 'starting') return false;
      if (await running.listening()) {
        this.o.router.add(running);
        this.up(d);
        return true;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.say(d.name, `Error R10 (Boot timeout) -> Web process failed to bind to $PORT within ${Math.round(this.bootMs / 1000)} seconds of launch`);
    this.say(d.name, 'Stopping process with SIGKILL');
    await running.signal('SIGKILL');
    return false;
  }

  private up(d: Dyno): void {
    this.say(d.name, `State changed from starting to up`);
    d.state = 'up';
    d.since = Date.now();
  }

  private exited(d: Dyno, running: RunningDyno, e: Exit): void {
    this.o.router.remove(running);
    if (d.running !== running) return;
    d.running = undefined;
    this.say(d.name, `Process exited with status ${exitStatus(e)}`);
    if (d.state === 'stopping' || this.stopped) {
      this.say(d.name, `State changed from ${d.state === 'stopping' ? 'up' : d.state} to down`);
      this.dynos.delete(d);
      return;
    }
    this.crashed(d, e);
  }

  /** Crash: restart at once the first time, then after 1 s, 2 s, 4 s... up to the cap. */
  private crashed(d: Dyno, _e: Exit): void {
    // A dyno that ran a while before crashing starts its backoff over.
    if (d.state === 'up' && Date.now() - d.since > 60_000) d.crashes = 0;
    this.say(d.name, `State changed from ${d.state} to crashed`);
    d.state = 'crashed';
    d.since = Date.now();
    const delay = d.crashes === 0 ? 0 : Math.min(this.maxBackoffMs, 1000 * 2 ** (d.crashes - 1));
    d.crashes++;
    if (delay > 0) this.say(d.name, `Restarting in ${delay / 1000} s (crash ${d.crashes})`);
    d.restartTimer = setTimeout(() => {
      if (this.stopped || !this.dynos.has(d)) return;
      d.booted = this.boot(d);
    }, delay);
  }

  /** Drains a dyno from the router, then SIGTERM, then SIGKILL after the grace period. */
  private async stopDyno(d: Dyno): Promise<void> {
    clearTimeout(d.restartTimer);
    const running = d.running;
    if (!running) {
      this.dynos.delete(d);
      return;
    }
    d.state = 'stopping';
    await this.o.router.drain(running, this.stopMs);
    this.say(d.name, `Stopping all processes of v${d.release.version} with SIGTERM`);
    await running.signal('SIGTERM');
    const killed = await Promise.race([running.exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), this.stopMs))]);
    if (killed) {
      this.say(d.name, `Error R12 (Exit timeout) -> At least one process failed to exit within ${Math.round(this.stopMs / 1000)} seconds of SIGTERM`);
      this.say(d.name, 'Stopping all processes with SIGKILL');
      await running.signal('SIGKILL');
      await running.exited;
    }
  }

  /** Live scaling: new dynos join the router when up; surplus ones drain first. */
  async scale(change: Formation): Promise<Formation> {
    for (const t of Object.keys(change)) if (!this.processTypes[t]) throw new Error(`no ${t} process type in ${this.o.app} v${this.release?.version}`);
    this.formation = setFormation(this.o.db, this.o.app, change);
    const rel = this.release!;
    const boots: Promise<boolean>[] = [];
    const stops: Promise<void>[] = [];
    for (const [type, n] of Object.entries(change)) {
      const mine = [...this.dynos].filter((d) => d.type === type && d.release.version === rel.version && d.state !== 'stopping');
      const have = new Set(mine.map((d) => d.index));
      for (let i = 1; i <= n; i++) if (!have.has(i)) boots.push(this.launch(rel, type, i).booted!);
      for (const d of mine.filter((x) => x.index > n)) stops.push(this.stopDyno(d));
    }
    await Promise.all([...boots, ...stops]);
    this.say('supervisor', `Scaled to ${Object.entries(this.formation).map(([t, n]) => `${t}@${n}`).join(', ')}`);
    return this.formation;
  }

  /** Restarts one dyno (web.1) or all of them. */
  async restart(name?: string): Promise<string[]> {
    const targets = [...this.dynos].filter((d) => d.state !== 'stopping' && (!name || d.name === name || d.type === name));
    if (name && targets.length === 0) throw new Error(`no dyno ${name} in ${this.o.app}`);
    await Promise.all(targets.map(async (d) => {
      this.say(d.name, 'Restarting');
      await this.stopDyno(d);
      this.dynos.delete(d);
      await this.launch(d.release, d.type, d.index).booted;
    }));
    return targets.map((d) => d.name);
  }

  /** Rolls to the current release when it changed: new dynos up first, then the old ones drain. */
  private async checkRelease(): Promise<void> {
    if (this.deploying || this.stopped) return;
    const rel = currentRelease(this.o.db, this.o.app);
    // Each new release is tried once: one refused by restrictions, or whose release command or dynos
    // failed, is not retried every poll; the next release is.
    if (!rel?.slug || !rel.stack || rel.version === this.release?.version || rel.version === this.tried) return;
    this.tried = rel.version;
    this.deploying = true;
    try {
      await this.deploy(rel as BuiltRelease);
    } catch (err) {
      this.say('supervisor', `Deploy of v${rel.version} failed: ${(err as Error).message.split('\n')[0]}; v${this.release?.version} keeps running`);
    } finally {
      this.deploying = false;
    }
  }

  async deploy(rel: BuiltRelease): Promise<void> {
    await this.admit(rel);
    const types = await this.typesOf(rel);
    if (!(await this.releasePhase(rel, types))) return;
    this.say('supervisor', `Deploying v${rel.version} (${rel.description})`);
    const old = [...this.dynos];
    const previousTypes = this.processTypes;
    this.processTypes = types;
    this.release = rel;
    const fresh = this.launchFormation(rel);
    const ok = (await Promise.all(fresh.map((d) => d.booted))).every(Boolean);
    if (!ok) {
      this.say('supervisor', `v${rel.version} did not boot: keeping the running dynos`);
      await Promise.all(fresh.map((d) => this.stopDyno(d)));
      this.processTypes = previousTypes;
      return;
    }
    await Promise.all(old.map((d) => this.stopDyno(d)));
    this.say('supervisor', `v${rel.version} is live`);
  }

  status(): { app: string; release?: number; runtime: string; router: number; formation: Formation; dynos: DynoStatus[] } {
    return {
      app: this.o.app,
      ...(this.release && { release: this.release.version }),
      runtime: this.o.runtime.kind,
      router: this.o.router.port,
      formation: this.formation,
      dynos: [...this.dynos].sort((a, b) => a.name.localeCompare(b.name)).map((d) => ({
        name: d.name,
        type: d.type,
        state: d.state,
        release: d.release.version,
        since: new Date(d.since).toISOString(),
        command: this.processTypes[d.type] ?? '',
        ...(d.running && { pid: d.running.pid }),
      })),
    };
  }

  /** Stops every dyno (drained, SIGTERM, SIGKILL after the grace period). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poll);
    await Promise.all([...this.dynos].map((d) => this.stopDyno(d)));
    this.say('supervisor', 'All dynos stopped');
  }
}

