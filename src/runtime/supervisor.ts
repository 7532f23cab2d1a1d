/**
 * The dyno manager of one app: keeps the formation of the current release running, restarts
 * crashes (at once, then with exponential backoff), enforces the web boot timeout (R10), rolls to
 * a new release (release phase first; new dynos up before old ones drain and stop) and stops
 * everything with SIGTERM, then SIGKILL after the grace period. Everything it does is logged in
 * the app's log stream, as Heroku does.
 */
import { constants as osConstants } from 'node:os';
import { SlipwayError } from '../errors.js';
import { getFormation, isFormationType, refuseUnknownTypes, setFormation, typeMap, type Formation } from '../release/formation.js';
import { currentRelease, headRelease, isBuilt, runningRelease, type BuiltRelease } from '../release/releases.js';
import type { Restrictions } from '../restrictions/document.js';
import { judge } from '../restrictions/enforce.js';
import { FactsCache } from '../restrictions/layer-facts.js';
import { reportText } from '../restrictions/report.js';
import { releaseSubject } from '../restrictions/subject.js';
import type { Db } from '../store/db.js';
import type { DynoRuntime, Exit, RunningDyno } from './dyno.js';
import { dynoSpec } from './dyno-spec.js';
import type { AppLog } from './logs.js';
import { runReleasePhase, settleReleases, slugProcessTypes, waitingText, type ReleasePhaseContext } from './release-phase.js';
import type { Router } from './router.js';

export type { BuiltRelease };

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
  /** The wait before the second restart of a crashing dyno; it doubles with each crash after. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** How often the current release is looked up (a build, config change or rebase makes a new one). */
  pollMs?: number;
  /** How long after launch start() watches for dynos that crash at once (default 2 s). */
  settleMs?: number;
  /** A release's process types (default: read from its slug). */
  processTypes?: (rel: BuiltRelease) => Promise<Record<string, string>>;
}

type State = 'starting' | 'up' | 'crashed' | 'stopping';

interface Dyno {
  name: string;
  type: string;
  index: number;
  release: BuiltRelease;
  command: string;
  state: State;
  /** The state a stopping dyno was in when it was told to stop. */
  stoppedFrom?: State;
  running?: RunningDyno;
  /** Set while the runtime is starting the dyno's process. */
  launching?: Promise<RunningDyno>;
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

export interface SupervisorStatus {
  app: string;
  release?: number;
  runtime: string;
  router: number;
  formation: Formation;
  processTypes: Record<string, string>;
  dynos: DynoStatus[];
}

const seconds = (ms: number): number => Math.round(ms / 10) / 100;

/** A shell's view of an exit: the code, or 128 + the signal's number. */
export function exitStatus(e: Exit): number {
  if (e.code !== null) return e.code;
  return 128 + (e.signal ? (osConstants.signals[e.signal as keyof typeof osConstants.signals] ?? 0) : 0);
}

export class Supervisor {
  private readonly dynos = new Set<Dyno>();
  private release: BuiltRelease | undefined;
  private processTypes = new Map<string, string>();
  private formation: Formation = {};
  private poll: NodeJS.Timeout | undefined;
  private deploying = false;
  /** The last release version a deploy was attempted for. */
  private tried: number | undefined;
  /** The release command's dyno while this supervisor runs a release phase: stop() ends it. */
  private phaseDyno: RunningDyno | undefined;
  /** The pending release last said to wait for another process's release phase. */
  private waitedFor: number | undefined;
  private stopped = false;
  private readonly stopMs: number;
  private readonly bootMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(private readonly o: SupervisorOptions) {
    this.stopMs = o.stopTimeoutMs ?? 30_000;
    this.bootMs = o.bootTimeoutMs ?? 60_000;
    this.backoffMs = o.backoffMs ?? 1000;
    this.maxBackoffMs = o.maxBackoffMs ?? 300_000;
  }

  private say(dyno: string, text: string): void {
    this.o.log.write('slipway', dyno, text);
  }

  private async typesOf(rel: BuiltRelease): Promise<Map<string, string>> {
    return typeMap(await (this.o.processTypes ?? ((r) => slugProcessTypes(this.o.home, r)))(rel));
  }

  private get phase(): ReleasePhaseContext {
    return {
      home: this.o.home, db: this.o.db, runtime: this.o.runtime, log: this.o.log,
      ...(this.o.processTypes && { processTypes: this.o.processTypes }),
      onDyno: (d) => {
        this.phaseDyno = d;
        // Stopped while the runtime was starting it: it is not left running.
        if (d && this.stopped) void this.stopPhase();
      },
    };
  }

  /** Refuses a release the host's restrictions deny; the findings go to the log and the error. */
  private async admit(rel: BuiltRelease): Promise<void> {
    if (!this.o.restrictions) return;
    const report = await judge(this.o.restrictions, await releaseSubject(this.o.home, rel, { cache: new FactsCache(this.o.home) }), this.o.db, this.o.home);
    if (report.verdict === 'deny') {
      const text = reportText(report).trimEnd();
      this.say('release', `v${rel.version} refused by restrictions ${report.restrictions}`);
      for (const l of text.split('\n')) this.say('release', l);
      throw new SlipwayError(`${rel.app} v${rel.version} refused by restrictions ${report.restrictions}:\n${text}`, { hint: 'build a release these restrictions allow, or change them (slipway check explains each finding)' });
    }
  }

  /** The web dynos the formation asks for: none means H14 at the router, not H10. */
  private tellRouter(): void {
    this.o.router.webScaledToZero = !this.processTypes.has('web') || (this.formation.web ?? 0) === 0;
  }

  /**
   * Starts the formation of the current release (the newest whose release phase succeeded; a
   * pending newer one has its release phase run first); returns the dynos that did not come up:
   * a web dyno that did not boot, or any dyno that crashed within the first seconds (settleMs).
   */
  async start(formation?: Formation): Promise<string[]> {
    await settleReleases(this.phase, this.o.app);
    if (this.stopped) return [];
    const rel = runningRelease(this.o.db, this.o.app);
    await this.admit(rel);
    const types = await this.typesOf(rel);
    if (formation) {
      refuseUnknownTypes(formation, types, `${rel.app} v${rel.version}`);
      setFormation(this.o.db, this.o.app, formation);
    }
    this.release = rel;
    this.tried = rel.version;
    this.processTypes = types;
    this.formation = this.effective(types);
    this.tellRouter();
    for (const n of this.o.runtime.notes) this.say('supervisor', n);
    const launched = Date.now();
    const dynos = this.topUp(rel);
    const booted = await Promise.all(dynos.map((d) => d.booted));
    const settle = launched + (this.o.settleMs ?? 2000) - Date.now();
    if (settle > 0 && !this.stopped) await new Promise((r) => setTimeout(r, settle));
    if (!this.stopped) this.poll = setInterval(() => void this.checkRelease(), this.o.pollMs ?? 1000);
    return dynos.filter((d, i) => !booted[i] || d.crashes > 0).map((d) => d.name);
  }

  /** The stored formation, with web=1 for an app that has a web type never scaled (as Heroku's first deploy). */
  private effective(types: Map<string, string>): Formation {
    const f = getFormation(this.o.db, this.o.app);
    if (!Object.hasOwn(f, 'web') && types.has('web')) return setFormation(this.o.db, this.o.app, { web: 1 });
    for (const [t, n] of Object.entries(f)) if ((!types.has(t) || !isFormationType(t)) && n > 0) this.say('supervisor', `formation has ${t}=${n}, but the release has no ${t} process type: skipped`);
    return f;
  }

  /** Launches the dynos of `rel` the formation asks for that it does not run yet. */
  private topUp(rel: BuiltRelease): Dyno[] {
    const started: Dyno[] = [];
    for (const [type, n] of Object.entries(this.formation)) {
      const command = this.processTypes.get(type);
      if (command === undefined || !isFormationType(type)) continue;
      const have = new Set([...this.dynos].filter((d) => d.type === type && d.release.version === rel.version && d.state !== 'stopping').map((d) => d.index));
      for (let i = 1; i <= n; i++) if (!have.has(i)) started.push(this.launch(rel, type, command, i));
    }
    return started;
  }

  private launch(rel: BuiltRelease, type: string, command: string, index: number): Dyno {
    const d: Dyno = { name: `${type}.${index}`, type, index, release: rel, command, state: 'starting', since: Date.now(), crashes: 0 };
    this.dynos.add(d);
    d.booted = this.boot(d);
    return d;
  }

  private gone(d: Dyno): boolean {
    return this.stopped || !this.dynos.has(d) || d.state === 'stopping';
  }

  private async boot(d: Dyno): Promise<boolean> {
    d.state = 'starting';
    d.since = Date.now();
    this.say(d.name, `Starting process with command \`${d.command}\``);
    const out = this.o.log.lineWriter('app', d.name);
    let running: RunningDyno;
    try {
      d.launching = dynoSpec(this.o.runtime, d.release, d.type, d.name, d.command).then((spec) => this.o.runtime.start(spec, { stdio: 'pipe', onOutput: out.push }));
      running = await d.launching;
    } catch (err) {
      d.launching = undefined;
      if (this.gone(d)) return false;
      this.say(d.name, `Failed to start: ${(err as Error).message}`);
      this.crashed(d);
      return false;
    }
    d.launching = undefined;
    d.running = running;
    void running.exited.then((e) => {
      out.end();
      this.exited(d, running, e);
    });
    // Stopped while the runtime was starting it: stopDyno waited for the process, and ends it.
    if (this.gone(d)) return false;
    if (d.type !== 'web') {
      this.up(d);
      return true;
    }
    const booting = (): boolean => d.running === running && d.state === 'starting';
    const deadline = Date.now() + this.bootMs;
    while (Date.now() < deadline) {
      if (!booting()) return false;
      if ((await running.listening()) && booting()) {
        this.o.router.add(running);
        this.up(d);
        return true;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!booting()) return false;
    this.say(d.name, `Error R10 (Boot timeout) -> Web process failed to bind to $PORT within ${seconds(this.bootMs)} seconds of launch`);
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
    if (this.gone(d)) {
      this.say(d.name, `State changed from ${d.state === 'stopping' ? (d.stoppedFrom ?? 'up') : d.state} to down`);
      this.dynos.delete(d);
      return;
    }
    this.crashed(d);
  }

  /** Crash: restart at once the first time, then after 1 s, 2 s, 4 s... up to the cap. */
  private crashed(d: Dyno): void {
    // A dyno that ran a while before crashing starts its backoff over.
    if (d.state === 'up' && Date.now() - d.since > 60_000) d.crashes = 0;
    this.say(d.name, `State changed from ${d.state} to crashed`);
    d.state = 'crashed';
    d.since = Date.now();
    const delay = d.crashes === 0 ? 0 : Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (d.crashes - 1));
    d.crashes++;
    if (delay > 0) this.say(d.name, `Restarting in ${seconds(delay)} s (crash ${d.crashes})`);
    d.restartTimer = setTimeout(() => {
      if (this.gone(d)) return;
      d.booted = this.boot(d);
    }, delay);
  }

  /** Drains a dyno from the router, then SIGTERM, then SIGKILL after the grace period. */
  private async stopDyno(d: Dyno): Promise<void> {
    clearTimeout(d.restartTimer);
    if (d.state !== 'stopping') d.stoppedFrom = d.state;
    d.state = 'stopping';
    // A dyno the runtime is still starting is stopped once its process exists, never left running.
    if (d.launching) await d.launching.catch(() => undefined);
    const running = d.running;
    if (!running) {
      this.dynos.delete(d);
      return;
    }
    await this.o.router.drain(running, this.stopMs);
    this.say(d.name, `Stopping all processes of v${d.release.version} with SIGTERM`);
    await running.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([running.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.stopMs)))]);
    clearTimeout(timer);
    if (killed) {
      this.say(d.name, `Error R12 (Exit timeout) -> At least one process failed to exit within ${seconds(this.stopMs)} seconds of SIGTERM`);
      this.say(d.name, 'Stopping all processes with SIGKILL');
      await running.signal('SIGKILL');
      await running.exited;
    }
  }

  /** Live scaling: new dynos join the router when up; surplus ones drain first. */
  async scale(change: Formation): Promise<Formation> {
    const rel = this.release;
    if (!rel) throw new SlipwayError(`${this.o.app} is still starting`, { hint: 'scale it once slipway up has returned' });
    refuseUnknownTypes(change, this.processTypes, `${rel.app} v${rel.version}`);
    this.formation = setFormation(this.o.db, this.o.app, change);
    this.tellRouter();
    const boots: Promise<boolean>[] = [];
    const stops: Promise<void>[] = [];
    for (const [type, n] of Object.entries(change)) {
      const mine = [...this.dynos].filter((d) => d.type === type && d.release.version === rel.version && d.state !== 'stopping');
      const have = new Set(mine.map((d) => d.index));
      for (let i = 1; i <= n; i++) if (!have.has(i)) boots.push(this.launch(rel, type, this.processTypes.get(type)!, i).booted!);
      for (const d of mine.filter((x) => x.index > n)) stops.push(this.stopDyno(d));
    }
    await Promise.all([...boots, ...stops]);
    this.say('supervisor', `Scaled to ${Object.entries(this.formation).map(([t, n]) => `${t}@${n}`).join(', ')}`);
    return this.formation;
  }

  /** Restarts one dyno (web.1) or all of them. */
  async restart(name?: string): Promise<string[]> {
    const targets = [...this.dynos].filter((d) => d.state !== 'stopping' && (!name || d.name === name || d.type === name));
    if (name && targets.length === 0) throw new SlipwayError(`no dyno ${name} in ${this.o.app}`, { hint: `see slipway ps ${this.o.app}` });
    await Promise.all(targets.map(async (d) => {
      this.say(d.name, 'Restarting');
      await this.stopDyno(d);
      this.dynos.delete(d);
      if (!this.stopped) await this.launch(d.release, d.type, d.command, d.index).booted;
    }));
    return targets.map((d) => d.name);
  }

  /**
   * Rolls to a new release when one appears: a pending one has its release phase run (once)
   * first; a failed one is passed over; a succeeded one is deployed.
   */
  private async checkRelease(): Promise<void> {
    if (this.deploying || this.stopped) return;
    const latest = headRelease(this.o.db, this.o.app);
    if (!isBuilt(latest) || latest.version <= (this.release?.version ?? 0) || latest.version === this.tried) return;
    this.deploying = true;
    try {
      // Pending while a build runs its release phase: looked at again at the next poll.
      if (latest.status === 'pending' && (await runReleasePhase(this.phase, latest)) === 'pending') {
        if (this.waitedFor !== latest.version) this.say('release', waitingText(this.o.db, latest));
        this.waitedFor = latest.version;
        return;
      }
      // Each new release is tried once: one refused by restrictions, or whose release phase or
      // dynos failed, is not retried every poll; the next release is.
      this.tried = latest.version;
      if (this.stopped) return;
      const rel = currentRelease(this.o.db, this.o.app);
      if (isBuilt(rel) && rel.version > (this.release?.version ?? 0)) await this.deploy(rel);
    } catch (err) {
      this.tried = latest.version;
      this.say('supervisor', `Deploy of v${latest.version} failed: ${(err as Error).message.split('\n')[0]}; v${this.release?.version} keeps running`);
    } finally {
      this.deploying = false;
    }
  }

  /** New dynos of `rel` up first, then the old ones drain; if they do not boot, nothing changes. */
  async deploy(rel: BuiltRelease): Promise<boolean> {
    await this.admit(rel);
    const types = await this.typesOf(rel);
    this.say('supervisor', `Deploying v${rel.version} (${rel.description})`);
    const old = [...this.dynos];
    const previous = { release: this.release, types: this.processTypes };
    this.release = rel;
    this.processTypes = types;
    this.tellRouter();
    const fresh = this.topUp(rel);
    const ok = (await Promise.all(fresh.map((d) => d.booted))).every(Boolean);
    if (!ok) {
      this.say('supervisor', `v${rel.version} did not boot: keeping v${previous.release?.version} running`);
      this.release = previous.release;
      this.processTypes = previous.types;
      this.tellRouter();
      // Every dyno of the failed release, `scale`'s during the deploy too; the kept release then
      // gets what the formation asks for now (a scale during the deploy applies to it).
      await Promise.all([...this.dynos].filter((d) => d.release.version === rel.version).map((d) => this.stopDyno(d)));
      if (previous.release && !this.stopped) await Promise.all(this.topUp(previous.release).map((d) => d.booted));
      return false;
    }
    await Promise.all(old.map((d) => this.stopDyno(d)));
    this.say('supervisor', `v${rel.version} is live`);
    return true;
  }

  status(): SupervisorStatus {
    return {
      app: this.o.app,
      ...(this.release && { release: this.release.version }),
      runtime: this.o.runtime.kind,
      router: this.o.router.port,
      formation: this.formation,
      processTypes: Object.fromEntries(this.processTypes),
      dynos: [...this.dynos].sort((a, b) => a.name.localeCompare(b.name) || a.release.version - b.release.version).map((d) => ({
        name: d.name,
        type: d.type,
        state: d.state,
        release: d.release.version,
        since: new Date(d.since).toISOString(),
        command: d.command,
        ...(d.running && { pid: d.running.pid }),
      })),
    };
  }

  /** A release phase this supervisor runs: SIGTERM, SIGKILL after the grace period; it fails. */
  private async stopPhase(): Promise<void> {
    const d = this.phaseDyno;
    if (!d) return;
    this.say('release', `Stopping the release command (${d.spec.name}) with SIGTERM: v${d.spec.release.version} does not go live`);
    await d.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([d.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.stopMs)))]);
    clearTimeout(timer);
    if (killed) {
      await d.signal('SIGKILL');
      await d.exited;
    }
  }

  /** Stops every dyno (drained, SIGTERM, SIGKILL after the grace period), a release phase's too. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poll);
    await Promise.all([this.stopPhase(), ...[...this.dynos].map((d) => this.stopDyno(d))]);
    this.say('supervisor', 'All dynos stopped');
  }
}
