import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { SlipwayError, UsageError } from '../errors.js';
import { formatFormation, isFormationType, parseFormation, scaleStored, type Formation } from '../release/formation.js';
import { appInfo } from '../release/info.js';
import { builtRelease, getRelease } from '../release/releases.js';
import { findStackByDigest } from '../stack/stacks.js';
import { getSetting, openDb, setSetting } from '../store/db.js';
import { callControl, controlSocket, isUp, NotUpError, serveControl, stopApp } from '../runtime/control.js';
import { dynoFilter, followLog, formatLine, readLog, AppLog, type LogLine } from '../runtime/logs.js';
import { openDynoRuntime, type RuntimeChoice } from '../runtime/open.js';
import { reapOrphanDynos } from '../runtime/orphans.js';
import { Router } from '../runtime/router.js';
import { runOneOff } from '../runtime/one-off.js';
import { Supervisor, type SupervisorStatus } from '../runtime/supervisor.js';
import { checkAppName } from '../release/apps.js';
import { restrictionsFor } from '../restrictions/source.js';
import { table } from './format.js';
import type { Globals } from './main.js';
import { print, withDb } from './shared.js';

function runtimeChoice(v: string): RuntimeChoice {
  if (v !== 'auto' && v !== 'container' && v !== 'process') throw new UsageError(`--runtime ${v}: use container, process or auto`);
  return v;
}

function seconds(v: string, flag: string): number {
  if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`${flag} ${v}: give seconds`);
  return Number(v) * 1000;
}

interface UpOptions {
  scale?: string;
  runtime: string;
  port?: string;
  detach?: boolean;
  stopTimeout: string;
  bootTimeout: string;
  maxBackoff: string;
  restrictions?: string;
}

/** Runs the supervisor and router in this process until stopped (Ctrl-C, slipway stop). */
/** `up` of an app already up touches nothing (its router port included) and says so. */
async function refuseIfUp(home: string, app: string): Promise<void> {
  if (await isUp(home, app)) throw new SlipwayError(`${app} is already up`, { hint: `slipway ps ${app}; slipway stop ${app} first to start it again` });
}

/** What `up` prints once the supervisor has started (and, as JSON, what `up --detach` reads). */
interface Ready {
  port: number;
  failed: string[];
  /** A pending release whose release phase failed at this start; `release` runs instead. */
  releasePhaseFailed?: number;
  release?: number;
}

function phaseFailedText(app: string, r: Ready): string {
  return `the release phase of ${app} v${r.releasePhaseFailed} failed: ${r.release === undefined ? 'no release runs' : `v${r.release} runs instead`} (see slipway logs ${app} --dyno release)`;
}

async function upForeground(g: Globals, app: string, o: UpOptions, printLogs: boolean): Promise<void> {
  await refuseIfUp(g.home, app);
  const db = openDb(g.home);
  // The head release (its release phase may still have to run), else the error saying why none can run.
  const rel = builtRelease(db, app);
  const stack = findStackByDigest(db, rel.stack.digest);
  if (!stack) throw new SlipwayError(`${app} v${rel.version} is on stack ${rel.stack.name} ${rel.stack.digest}, which is not on this host`, { hint: 'import that stack version' });
  const log = new AppLog(g.home, app);
  const runtime = await openDynoRuntime(g.home, db, runtimeChoice(o.runtime), stack, (s) => log.write('slipway', 'supervisor', s));
  const router = new Router(log);
  const wanted = o.port !== undefined ? Number(o.port) : Number(getSetting(db, `router-port:${app}`) ?? 0);
  const port = await router.listen(wanted).catch(() => (o.port !== undefined ? Promise.reject(new SlipwayError(`port ${o.port} is taken`, { hint: 'pick another with --port' })) : router.listen(0)));
  setSetting(db, `router-port:${app}`, String(port));
  const sup = new Supervisor({
    home: g.home, db, app, runtime, log, router,
    restrictions: restrictionsFor(g.home, o.restrictions),
    stopTimeoutMs: seconds(o.stopTimeout, '--stop-timeout'),
    bootTimeoutMs: seconds(o.bootTimeout, '--boot-timeout'),
    maxBackoffMs: seconds(o.maxBackoff, '--max-backoff'),
  });
  const unsubscribe = printLogs ? log.subscribe((l) => process.stdout.write(`${formatLine(l)}\n`)) : () => false;
  let stopping: Promise<void> | undefined;
  const control: { server?: Awaited<ReturnType<typeof serveControl>> } = {};
  const stop = (): Promise<void> => (stopping ??= (async () => {
    await sup.stop();
    await router.close();
    control.server?.close();
    unsubscribe();
    log.close();
    db.close();
  })());
  mkdirSync(join(g.home, 'run'), { recursive: true });
  control.server = await serveControl(controlSocket(g.home, app), sup, () => void stop().then(() => process.exit(0)));
  // Now the only supervisor of the app: dynos a dead one left running would double the formation.
  const orphans = await reapOrphanDynos(g.home, app);
  if (orphans.length) log.write('slipway', 'supervisor', `removed ${orphans.length} orphaned dyno(s) left by a supervisor that died: ${orphans.join(', ')}`);
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));
  let failed: string[];
  try {
    failed = await sup.start(o.scale ? parseFormation([o.scale]) : undefined);
  } catch (err) {
    await stop();
    throw err;
  }
  const s = sup.status();
  // The head was pending and its release phase failed now: the current release runs instead.
  const phaseFailed = rel.status === 'pending' && getRelease(db, app, rel.version).status === 'failed';
  const ready: Ready = { port, failed, ...(phaseFailed && { releasePhaseFailed: rel.version }), ...(s.release !== undefined && { release: s.release }) };
  const where = `http://127.0.0.1:${port} (${formatFormation(s.formation)}, ${runtime.kind} runtime)`;
  if (!printLogs) process.stdout.write(`${JSON.stringify({ ready: true, ...ready })}\n`);
  else {
    if (phaseFailed) process.stderr.write(`${phaseFailedText(app, ready)}\n`);
    if (failed.length === 0) process.stderr.write(`${app} v${s.release} is up: ${where}\n`);
    else process.stderr.write(`${app} v${s.release}: ${failed.join(', ')} did not come up or crashed at once (restarting); ${where}; see slipway logs ${app}\n`);
  }
  await new Promise(() => undefined);
}

/** Starts `up` as a background process and returns once its dynos are up (or it failed). */
async function upDetached(g: Globals, app: string, argv: string[]): Promise<void> {
  await refuseIfUp(g.home, app);
  const logDir = join(g.home, 'logs');
  mkdirSync(logDir, { recursive: true });
  const out = join(logDir, `${app}.supervisor.log`);
  const fd = openSync(out, 'a');
  const args = argv.slice(1).filter((a) => a !== '--detach' && a !== '-d');
  const child = spawn(process.execPath, [...process.execArgv, ...args], { detached: true, stdio: ['ignore', 'pipe', fd], env: { ...process.env, SLIPWAY_HOME: g.home, SLIPWAY_SUPERVISOR_CHILD: '1' } });
  const ready = await new Promise<Ready | undefined>((resolve) => {
    let text = '';
    child.stdout!.on('data', (c: Buffer) => {
      text += c.toString();
      const line = text.split('\n').find((l) => l.startsWith('{"ready"'));
      if (line) resolve(JSON.parse(line) as Ready);
    });
    child.on('exit', () => resolve(undefined));
  });
  if (!ready) {
    const tail = readFileSync(out, 'utf8').split('\n').filter(Boolean).slice(-15).join('\n');
    throw new SlipwayError(`${app} did not come up:\n${tail}`, { hint: `slipway logs ${app}` });
  }
  child.stdout!.destroy();
  child.unref();
  if (ready.releasePhaseFailed !== undefined && !g.json) process.stderr.write(`${phaseFailedText(app, ready)}\n`);
  const s = await callControl<SupervisorStatus>(controlSocket(g.home, app), 'GET', '/ps');
  const shown = { ...s, port: ready.port, url: `http://127.0.0.1:${ready.port}`, failed: ready.failed, ...(ready.releasePhaseFailed !== undefined && { releasePhaseFailed: ready.releasePhaseFailed }) };
  if (ready.failed.length) {
    // Not "up": say which dynos failed and why (their last lines, the app's own and the platform's), and exit non-zero.
    const why = readLog(g.home, app).filter((l) => ready.failed.includes(l.dyno)).slice(-10).map(formatLine);
    const err = new SlipwayError(`${app} did not come up: ${ready.failed.join(', ')} failed to boot or crashed at once (the supervisor keeps restarting them)\n${why.join('\n')}`, {
      hint: `slipway logs ${app}; slipway stop ${app}`,
    });
    if (!g.json) throw err;
    // One JSON document: the status with the failed dynos and the error.
    process.stderr.write(`error: ${err.message}\nhint: ${err.hint}\n`);
    print(g, { ...shown, error: err.message.split('\n')[0], hint: err.hint }, '');
    process.exitCode = 1;
    return;
  }
  print(g, shown, `${app} v${s.release} is up: http://127.0.0.1:${ready.port} (${formatFormation(s.formation)}, ${s.runtime} runtime)\nslipway ps ${app} · slipway logs ${app} -f · slipway stop ${app}`);
}

function psText(s: SupervisorStatus): string {
  const rows = s.dynos.map((d) => [d.name, d.state, `v${d.release}`, d.since.replace('T', ' ').slice(0, 19), d.command]);
  return `=== ${s.app} v${s.release} (${s.runtime} runtime) at http://127.0.0.1:${s.router}\n${table([['DYNO', 'STATE', 'RELEASE', 'SINCE', 'COMMAND'], ...rows])}`;
}

/** `ps` of an app that is not up: what would run, per process type. */
function stoppedText(app: string, release: number | undefined, formation: Formation, types: Record<string, string>): string {
  const rows = Object.entries(types).filter(([t]) => isFormationType(t)).map(([t, c]) => [t, String(formation[t] ?? 0), c]);
  const head = `${app} is not up (formation: ${formatFormation(formation)}); ${release === undefined ? 'no release to run yet' : `current release v${release}`}; start it with slipway up ${app}`;
  return rows.length ? `${head}\n${table([['TYPE', 'SCALE', 'COMMAND'], ...rows])}` : head;
}

export function registerDynoCommands(program: Command, globals: () => Globals): void {
  program
    .command('up')
    .description('run the current release\'s formation and its router (foreground, or --detach)')
    .argument('<app>')
    .option('--scale <formation>', 'set the formation first, e.g. web=2,worker=1')
    .option('--runtime <kind>', 'container, process or auto', 'auto')
    .option('-p, --port <n>', 'router port (default: the app\'s last one, else a free one)')
    .option('-d, --detach', 'run in the background and return once the dynos are up')
    .option('--stop-timeout <s>', 'seconds from SIGTERM to SIGKILL', '30')
    .option('--boot-timeout <s>', 'seconds a web dyno has to listen on $PORT (R10)', '60')
    .option('--max-backoff <s>', 'longest wait before restarting a crashing dyno', '300')
    .option('-r, --restrictions <file|preset>', 'refuse releases this document denies (default: the host\'s, if set)')
    .action(async (app: string, o: UpOptions) => {
      const g = globals();
      checkAppName(app);
      if (o.detach) return upDetached(g, app, process.argv);
      await upForeground(g, app, o, process.env.SLIPWAY_SUPERVISOR_CHILD !== '1');
    });

  program
    .command('ps')
    .description('list an app\'s dynos')
    .argument('<app>')
    .action(async (app: string) => {
      const g = globals();
      try {
        const s = await callControl<SupervisorStatus>(controlSocket(g.home, app), 'GET', '/ps');
        print(g, { ...s, up: true }, psText(s));
      } catch (err) {
        if (!(err instanceof NotUpError)) throw err;
        const i = await withDb(g, (db) => appInfo(g.home, db, app));
        print(
          g,
          { app, up: false, ...(i.current && { release: i.current.version }), formation: i.formation, processTypes: i.processTypes, dynos: [] },
          stoppedText(app, i.current?.version, i.formation, i.processTypes),
        );
      }
    });

  program
    .command('scale')
    .description('change the formation (live when the app is up)')
    .argument('<app>')
    .argument('<formation...>', 'TYPE=COUNT ...')
    .action(async (app: string, args: string[]) => {
      const g = globals();
      const change = parseFormation(args);
      const f = await callControl<{ formation: Formation }>(controlSocket(g.home, app), 'POST', '/scale', { formation: change }).then(
        (r) => r.formation,
        (err: unknown) => {
          if (!(err instanceof NotUpError)) throw err;
          return withDb(g, (db) => scaleStored(g.home, db, app, change));
        },
      );
      print(g, { app, formation: f }, `${app}: ${formatFormation(f)}`);
    });

  program
    .command('restart')
    .description('restart all dynos, one (web.1) or one type (web)')
    .argument('<app>')
    .argument('[dyno]')
    .action(async (app: string, dyno: string | undefined) => {
      const g = globals();
      const r = await callControl<{ restarted: string[] }>(controlSocket(g.home, app), 'POST', '/restart', dyno ? { dyno } : {});
      print(g, r, `restarted ${r.restarted.join(', ')}`);
    });

  program
    .command('stop')
    .description('stop every dyno (SIGTERM, SIGKILL after the grace period) and the router')
    .argument('<app>')
    .action(async (app: string) => {
      const g = globals();
      const up = await isUp(g.home, app);
      if (up) await stopApp(g.home, app);
      // Then what no supervisor looks after any more: dynos of one that was killed.
      const orphans = await reapOrphanDynos(g.home, app);
      if (!up && orphans.length === 0) throw new NotUpError(app, 'nothing to stop: no supervisor and no dyno of it runs here');
      print(g, { app, stopped: true, orphans }, `${app} stopped${orphans.length ? ` (removed ${orphans.length} orphaned dyno(s): ${orphans.join(', ')})` : ''}`);
    });

  program
    .command('logs')
    .description('the app\'s log stream: app output, router and platform lines')
    .argument('<app>')
    .option('-f, --follow', 'keep printing new lines')
    .option('--dyno <name>', 'only this dyno (web.1), type (web) or source (router)')
    .option('-n, --num <lines>', 'how many past lines', '100')
    .action(async (app: string, o: { follow?: boolean; dyno?: string; num: string }) => {
      const g = globals();
      if (!/^\d{1,9}$/.test(o.num)) throw new UsageError(`--num ${o.num}: give a number of lines`);
      const num = Number(o.num);
      const keep = dynoFilter(o.dyno);
      const show = (l: LogLine): void => void process.stdout.write(g.json ? `${JSON.stringify(l)}\n` : `${formatLine(l)}\n`);
      // -n 0 prints no past lines (slice(-0) would be all of them).
      if (num > 0) readLog(g.home, app).filter(keep).slice(-num).forEach(show);
      if (o.follow) await followLog(g.home, app, (l) => keep(l) && show(l));
    });

  program
    .command('run')
    .description('run a one-off dyno of the current release, attached: a terminal when stdin is one, the exit status passed through')
    .argument('<app>')
    .argument('<command...>', 'one argument: a shell command line; several: a command and its arguments (after --)')
    .option('--runtime <kind>', 'container, process or auto', 'auto')
    .option('--no-tty', 'no terminal in the dyno even when stdin is one: stdin, stdout and stderr are passed as they are')
    .action(async (app: string, command: string[], o: { runtime: string; tty: boolean }) => {
      const g = globals();
      const tty = o.tty && process.stdin.isTTY === true;
      process.exitCode = await withDb(g, (db) => runOneOff(g.home, db, app, command, { runtime: runtimeChoice(o.runtime), tty, say: (s) => process.stderr.write(`${s}\n`) }));
    });
}
