/**
 * Dynos in real containers (runc or crun). Root = the stack version (unpacked once, shared
 * read-only by every dyno); /app = an overlay the runtime mounts inside the container of the
 * release's slug (unpacked once, owned by the app's uid range) under a fresh ephemeral upper
 * directory deleted with the dyno; /tmp, /var/tmp and /dev/shm are tmpfs. The overlay lives in the
 * container's own mount namespace and goes with it: starting a dyno spawns no mount or umount. A
 * user namespace per app (container root is the app's unprivileged host range), no capabilities,
 * no new privileges, nosuid/nodev, masked and read-only kernel paths, a network namespace with
 * loopback only: the router reaches $PORT through a Unix socket bridged into that namespace, and
 * nothing in the dyno can reach any address outside it. Memory and pids limits where the host's
 * cgroups allow.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { chmod, mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Db } from '../store/db.js';
import type { Digest } from '../oci/digest.js';
import { uidRange, UID_RANGE_SIZE } from '../release/formation.js';
import { unpackedSlug } from '../slug/unpacked.js';
import { unpackedStack } from '../stack/unpacked.js';
import { writeFileAtomic } from '../store/atomic.js';
import { childStdio, connectStdio, dynoArgs, listensIn, nativeProgram, type DynoIo, type DynoRuntime, type DynoSpec, type Exit, type RunningDyno } from './dyno.js';
import { DynoCgroup, hasV1Controllers } from './cgroup.js';
import { describe, pickOciRuntime, runtimeCommand, type OciRuntime } from './oci-runtime.js';
import { MASKED_PATHS, NO_CAPABILITIES, READONLY_PATHS, standardMounts } from './spec.js';
import { seccompProfile } from './seccomp.js';
import { dynoAnnotations } from './owner.js';

export const DYNO_PREFIX = 'slipway-dyno-';
export const APP_UID = 1000;
/** The probe container's uid range: below every app's (see formation.ts). */
const PROBE_UID_BASE = 0x100000 - UID_RANGE_SIZE;

/** runc's defaults, and more: nothing in /proc or /sys that tells about or changes the host. */
const MASKED = [...MASKED_PATHS, '/proc/sysrq-trigger', '/sys/kernel'];

export interface Limits {
  memoryBytes: number;
  pids: number;
}
export const DEFAULT_LIMITS: Limits = { memoryBytes: 512 * 1024 * 1024, pids: 512 };

export function dynoConfig(o: { rootfs: string; uidBase: number; hostname: string; args: string[]; env: string[]; limits?: Limits | undefined; readonlyRoot?: boolean; mounts?: object[]; annotations?: Record<string, string>; terminal?: boolean }): object {
  const map = [{ containerID: 0, hostID: o.uidBase, size: UID_RANGE_SIZE }];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: o.terminal ?? false,
      user: { uid: APP_UID, gid: APP_UID },
      args: o.args,
      env: o.env,
      cwd: '/app',
      capabilities: NO_CAPABILITIES,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 10000, soft: 10000 }],
      noNewPrivileges: true,
    },
    root: { path: o.rootfs, readonly: o.readonlyRoot ?? false },
    hostname: o.hostname,
    ...(o.annotations && { annotations: o.annotations }),
    mounts: [
      ...standardMounts('262144k'),
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      ...(o.mounts ?? []),
    ],
    linux: {
      uidMappings: map,
      gidMappings: map,
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }, { type: 'user' }, { type: 'cgroup' }],
      maskedPaths: MASKED,
      readonlyPaths: READONLY_PATHS,
      seccomp: seccompProfile(),
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        ...(o.limits && { memory: { limit: o.limits.memoryBytes, swap: o.limits.memoryBytes }, pids: { limit: o.limits.pids } }),
      },
    },
  };
}

/**
 * The dyno's /app, mounted by the OCI runtime inside the container: the unpacked slug's app/
 * under `dir`/upper (the app user's: it is /app's root directory), with `dir`/work beside it.
 */
export function appOverlay(view: HostView, slug: string, dir: string): object {
  return {
    destination: '/app',
    type: 'overlay',
    source: 'overlay',
    options: ['nosuid', 'nodev', `lowerdir=${view.of(join(slug, 'app'))}`, `upperdir=${view.of(join(dir, 'upper'))}`, `workdir=${view.of(join(dir, 'work'))}`],
  };
}

/** Where the dyno's init is seen inside: /dev is the runtime's own tmpfs, so a file can be bound there on a read-only root. */
const INIT_IN_DYNO = '/dev/init';
const APP_USER = `u${APP_UID}`;

function bindFile(source: string, destination: string): object {
  return { destination, type: 'bind', source, options: ['bind', 'ro', 'nosuid', 'nodev'] };
}

function writeOnce(path: string, data: string | Buffer): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o644 });
  renameSync(tmp, path);
}

/**
 * The stack's /etc/passwd or /etc/group with the app user (uid and gid 1000, HOME=/app) in place
 * of any entry it had for that id, or undefined when the stack has no such regular file to bind
 * over. Heroku's dyno user is named like this one: `u` and digits.
 */
function withAppUser(rootfs: string, file: 'passwd' | 'group'): string | undefined {
  const path = join(rootfs, 'etc', file);
  try {
    const st = lstatSync(path);
    if (!st.isFile() || st.size > 1 << 20 || lstatSync(join(rootfs, 'etc')).isSymbolicLink()) return undefined;
  } catch {
    return undefined;
  }
  const id = String(APP_UID);
  const kept = readFileSync(path, 'utf8').split('\n').filter((l) => l && l.split(':')[2] !== id && l.split(':')[0] !== APP_USER);
  const shell = existsSync(join(rootfs, 'bin', 'bash')) ? '/bin/bash' : '/bin/sh';
  kept.push(file === 'passwd' ? `${APP_USER}:x:${id}:${id}:dyno:/app:${shell}` : `${APP_USER}:x:${id}:`);
  return `${kept.join('\n')}\n`;
}

/** Runs a helper (a bind mount, the OCI runtime's kill) without blocking the event loop: dynos start in parallel. */
function sh(cmd: string, args: string[]): Promise<{ ok: boolean; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8' }, (err, _out, stderr) => resolve({ ok: !err, err: (stderr || err?.message || '').trim() }));
  });
}

/** Runs a probe container on the stack (as the host view shows it). */
async function runOnce(rt: OciRuntime, dir: string, stackRoot: string, config: (rootfs: string) => object): Promise<{ code: number | null; stderr: string }> {
  const id = `${DYNO_PREFIX}probe-${randomBytes(4).toString('hex')}`;
  const bundle = join(dir, id);
  await mkdir(bundle, { recursive: true });
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config(stackRoot)));
  try {
    const [cmd, ...args] = runtimeCommand(rt, ['run', '--bundle', bundle, id]);
    const r = spawnSync(cmd!, args, { encoding: 'utf8' });
    return { code: r.status, stderr: `${r.stderr ?? ''}${r.error?.message ?? ''}` };
  } finally {
    const [cmd, ...args] = runtimeCommand(rt, ['delete', '--force', id]);
    spawnSync(cmd!, args);
    await rm(bundle, { recursive: true, force: true });
  }
}

const VIEWED = ['stacks', 'slugs', 'dynos'] as const;

/**
 * Where containers see this home's stacks, slugs and dyno directories: bind mounts under
 * /run/slipway (root-owned, searchable, gone at boot), made once per home. A container sets up
 * its root and its /app overlay inside its user namespace, as the app's unprivileged host uid,
 * which cannot pass through the home itself when that is private (0700). Views of homes that have
 * since been deleted are unmounted on the way.
 */
export class HostView {
  private constructor(
    private readonly home: string,
    readonly root: string,
  ) {}

  static async open(home: string): Promise<HostView> {
    const root = `/run/slipway/h-${createHash('sha256').update(home).digest('hex').slice(0, 16)}`;
    const mounted = new Set<string>();
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [, , , source, target] = line.split(' ');
      if (!target?.startsWith('/run/slipway/h-')) continue;
      if (!source?.endsWith('//deleted')) {
        mounted.add(target);
        continue;
      }
      await sh('umount', ['-l', target]);
      // The view's directories go too once empty (the last of its three takes the view's own).
      await rmdir(target).catch(() => undefined);
      await rmdir(dirname(target)).catch(() => undefined);
    }
    await mkdir(root, { recursive: true, mode: 0o711 });
    await chmod('/run/slipway', 0o711);
    await chmod(root, 0o711);
    for (const d of VIEWED) {
      const target = join(root, d);
      if (mounted.has(target)) continue;
      await mkdir(join(home, d), { recursive: true, mode: 0o755 });
      await mkdir(target, { recursive: true });
      const r = await sh('mount', ['--bind', join(home, d), target]);
      if (!r.ok) throw new Error(`cannot bind-mount ${join(home, d)} at ${target}: ${r.err}`);
    }
    return new HostView(home, root);
  }

  /** The container-reachable path of a path under the home's stacks, slugs or dynos. */
  of(path: string): string {
    for (const d of VIEWED) {
      const prefix = join(this.home, d);
      if (path === prefix || path.startsWith(`${prefix}/`)) return join(this.root, d, path.slice(prefix.length));
    }
    throw new Error(`${path} is not under ${this.home}/{${VIEWED.join(',')}}`);
  }
}

export class ContainerRuntime implements DynoRuntime {
  readonly kind = 'container' as const;

  private constructor(
    private readonly home: string,
    private readonly db: Db,
    private readonly view: HostView,
    readonly rt: OciRuntime,
    private readonly limits: Limits | undefined,
    readonly notes: string[],
  ) {}

  /**
   * Picks crun or runc by running a trivial dyno-shaped container (user and network namespaces)
   * on the stack, and finds out once per host whether memory and pids limits can be applied.
   */
  static async open(home: string, db: Db, stackRoot: string, limits: Limits = DEFAULT_LIMITS): Promise<ContainerRuntime> {
    const state = join(home, 'run');
    const probeDir = join(state, 'probe');
    const view = await HostView.open(home);
    stackRoot = view.of(stackRoot);
    const base = PROBE_UID_BASE;
    const config = (withLimits: boolean) => (rootfs: string): object => dynoConfig({ rootfs, uidBase: base, hostname: 'probe', args: ['/bin/true'], env: ['PATH=/usr/bin:/bin'], limits: withLimits ? limits : undefined, readonlyRoot: true });
    const { runtime, why } = await pickOciRuntime(
      state,
      async (rt) => {
        const r = await runOnce(rt, probeDir, stackRoot, config(false));
        if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
      },
      { slipwayCgroups: hasV1Controllers() },
    );
    const notes = why.map((w) => `${w}; using ${describe(runtime)}`);
    let limited: boolean;
    if (runtime.cgroups === 'slipway') {
      DynoCgroup.removeStale(DYNO_PREFIX);
      try {
        await (await DynoCgroup.create(`${DYNO_PREFIX}probe-${randomBytes(4).toString('hex')}`, limits)).remove();
        limited = true;
      } catch (err) {
        limited = false;
        notes.push(`memory and pids limits are not applied: ${(err as Error).message}`);
      }
    } else {
      const memo = join(state, `limits-${runtime.name}.json`);
      if (existsSync(memo)) limited = (JSON.parse(readFileSync(memo, 'utf8')) as { limited: boolean }).limited;
      else {
        const r = await runOnce(runtime, probeDir, stackRoot, config(true));
        limited = r.code === 0;
        if (!limited) notes.push(`memory and pids limits are not applied: ${runtime.name} cannot set them on this host's cgroups (${r.stderr.split('\n').filter(Boolean).slice(-1)[0] ?? ''})`);
        await writeFileAtomic(memo, JSON.stringify({ limited }));
      }
    }
    return new ContainerRuntime(home, db, view, runtime, limited ? limits : undefined, notes);
  }

  private readonly ranges = new Map<string, number>();
  private readonly fileMounts = new Map<string, object[]>();

  /**
   * What every dyno on this stack version gets bound in, read-only, prepared once per host: its
   * init (a static binary, copied next to the stacks where containers can reach it), and
   * /etc/passwd and /etc/group naming the app user, so the stack itself is never written.
   */
  private dynoFiles(rootfs: string): object[] {
    let mounts = this.fileMounts.get(rootfs);
    if (mounts) return mounts;
    const init = nativeProgram('dyno-init');
    const initCopy = join(this.home, 'stacks', `dyno-init-${createHash('sha256').update(readFileSync(init)).digest('hex').slice(0, 16)}`);
    if (!existsSync(initCopy)) {
      copyFileSync(init, `${initCopy}.${process.pid}.tmp`);
      renameSync(`${initCopy}.${process.pid}.tmp`, initCopy);
    }
    mounts = [bindFile(this.view.of(initCopy), INIT_IN_DYNO)];
    for (const f of ['passwd', 'group'] as const) {
      const out = join(dirname(rootfs), f);
      if (!existsSync(out)) {
        const text = withAppUser(rootfs, f);
        if (text === undefined) continue;
        writeOnce(out, text);
      }
      mounts.push(bindFile(this.view.of(out), `/etc/${f}`));
    }
    this.fileMounts.set(rootfs, mounts);
    return mounts;
  }

  async start(spec: DynoSpec, io: DynoIo): Promise<RunningDyno> {
    let base = this.ranges.get(spec.app);
    if (base === undefined) this.ranges.set(spec.app, (base = uidRange(this.db, spec.app)));
    const stack = await unpackedStack(this.home, { ...spec.release.stack, source: '', size: 0, createdAt: '' });
    const slug = await unpackedSlug(this.home, spec.release.slug as Digest, base);
    const id = `${DYNO_PREFIX}${spec.app}-${spec.name}-${randomBytes(3).toString('hex')}`;
    const dir = join(this.home, 'dynos', id);
    // A few tiny synchronous calls: far cheaper here than the thread-pool round trips of async ones.
    // Upper: the app user's (it is /app's root directory); work: the container root's (overlay's own).
    mkdirSync(join(dir, 'upper'), { recursive: true });
    mkdirSync(join(dir, 'work'));
    chownSync(join(dir, 'upper'), base + APP_UID, base + APP_UID);
    chownSync(join(dir, 'work'), base, base);
    const app = appOverlay(this.view, slug, dir);
    const varTmp = existsSync(join(stack, 'var', 'tmp')) ? [{ destination: '/var/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] }] : [];
    // MEMORY_AVAILABLE (MiB, as Heroku's buildpacks read it) lets runtimes such as the JVM size themselves.
    const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/app', ...(this.limits && { MEMORY_AVAILABLE: String(Math.floor(this.limits.memoryBytes / 1048576)) }), ...spec.env };
    const config = dynoConfig({
      rootfs: this.view.of(stack),
      readonlyRoot: true,
      mounts: [app, ...varTmp, ...this.dynoFiles(stack)],
      uidBase: base,
      hostname: spec.name.replace(/\./g, '-'),
      args: dynoArgs(INIT_IN_DYNO, spec.command),
      terminal: io.stdio === 'tty',
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      limits: this.rt.cgroups === 'runtime' ? this.limits : undefined,
      annotations: dynoAnnotations(spec.app),
    });
    // 0600: it holds the config vars, and the bundle is reachable through /run/slipway's host view.
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
    const cg = this.rt.cgroups === 'slipway' && this.limits ? await DynoCgroup.create(id, this.limits) : undefined;
    // runc's foreground `run` attaches a terminal to its own stdio; crun sends it to a console socket.
    const terminal = io.stdio === 'tty' && this.rt.name === 'crun' ? await ConsoleAttach.start(id) : undefined;
    const [cmd, ...args] = runtimeCommand(this.rt, ['run', '--bundle', dir, '--pid-file', join(dir, 'pid'), ...(terminal ? ['--console-socket', terminal.socket] : []), id], { procs: cg?.procsFiles() ?? [], ownTcpHash: true });
    const oci = spawn(cmd!, args, {
      stdio: terminal ? ['ignore', 'inherit', 'inherit'] : childStdio(io),
      // Only the init hears of signals (the OCI runtime would pass a terminal's Ctrl-C on to it);
      // on a terminal, the runtime or the console stays in its foreground group, where SIGWINCH goes.
      detached: io.stdio !== 'tty',
    });
    const output = connectStdio(oci, io);
    let ended = false;
    const ran = new Promise<Exit>((resolve) => oci.on('exit', (code, signal) => {
      ended = true;
      resolve({ code, signal });
    })).then(async (e) => {
      await Promise.all([output, terminal?.detach()]);
      return e;
    });
    let bridge: ChildProcess | undefined;
    const cleanup = async (): Promise<void> => {
      bridge?.kill('SIGKILL');
      // `run` deletes the container, and with it the /app overlay; only the directories remain.
      rmSync(dir, { recursive: true, force: true });
      await cg?.remove().catch((err: Error) => io.onOutput?.(Buffer.from(`slipway: ${err.message}\n`)));
    };
    const exited = ran.then(async (e) => {
      await cleanup();
      return e;
    });
    // A command that ends at once may be gone before its pid is seen: the exit tells the rest
    // (and the OCI runtime's own error, when it could not start it at all, is in the dyno's output).
    const pid = (await waitForPid(dir, 'pid', ran)) ?? 0;
    const socketPath = join(dir, 'port.sock');
    if (spec.type === 'web' && pid > 0) {
      // The router's only way in: a Unix socket here, connected to 127.0.0.1:$PORT inside.
      bridge = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, 'socat', `UNIX-LISTEN:${socketPath},fork,mode=600`, `TCP:127.0.0.1:${spec.port}`], { stdio: 'ignore' });
    }
    return {
      spec,
      pid,
      endpoint: { socketPath },
      exited,
      listening: async () => pid > 0 && listensIn(pid, spec.port) && existsSync(socketPath),
      signal: async (sig) => {
        if (sig !== 'SIGKILL') {
          // To the init (PID 1 inside), which passes it on to every process and outlives them.
          if (pid > 0 && !ended) {
            try {
              process.kill(pid, sig);
            } catch {
              // gone meanwhile
            }
          }
          return;
        }
        if (cg) return cg.signal(sig, oci.pid);
        // Without cgroups of its own to find them by, crun kills the container's init, and the pid namespace goes with it.
        const [cmd, ...args] = runtimeCommand(this.rt, ['kill', ...(this.rt.cgroups === 'runtime' ? ['--all'] : []), id, sig]);
        await sh(cmd!, args);
      },
    };
  }
}

/**
 * console-attach (native/), crun's other end of a dyno's terminal: it listens on a socket, receives
 * the terminal from crun, and proxies it to the caller's, in raw mode, with its window size.
 */
class ConsoleAttach {
  private attached = false;
  private constructor(
    readonly socket: string,
    private readonly child: ChildProcess,
    private readonly gone: Promise<void>,
  ) {}

  static async start(id: string): Promise<ConsoleAttach> {
    // Short (a socket path has 108 bytes at most), under Slipway's root-only /run directory.
    const socket = join('/run/slipway', `console-${createHash('sha256').update(id).digest('hex').slice(0, 12)}.sock`);
    const child = spawn(nativeProgram('console-attach'), [socket], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'] });
    const gone = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const c = new ConsoleAttach(socket, child, gone);
    let said = '';
    const listening = new Promise<boolean>((resolve) => {
      child.stdio[3]!.on('data', (b: Buffer) => {
        said += b.toString();
        if (said.includes('listening\n')) resolve(true);
        if (said.includes('attached\n')) c.attached = true;
      });
      void gone.then(() => resolve(false));
    });
    if (!(await listening)) throw new Error(`console-attach could not listen on ${socket}`);
    return c;
  }

  /** After the OCI runtime exits: the rest of the output is copied, then the terminal is restored. */
  async detach(): Promise<void> {
    if (!this.attached) this.child.kill('SIGTERM');
    const late = setTimeout(() => this.child.kill('SIGTERM'), 2000);
    await this.gone;
    clearTimeout(late);
    rmSync(this.socket, { force: true });
  }
}

/**
 * The OCI runtime writes the pid file once the container's process exists: watched with inotify
 * rather than polled, so dynos starting together cost no busy loop. Undefined if the runtime
 * exits first.
 */
async function waitForPid(dir: string, file: string, ran: Promise<unknown>): Promise<number | undefined> {
  const read = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(dir, file), 'utf8'));
      return pid > 0 ? pid : undefined;
    } catch {
      return undefined; // not written yet
    }
  };
  let watcher: FSWatcher | undefined;
  try {
    return await new Promise<number | undefined>((resolve) => {
      watcher = watch(dir, (_event, name) => {
        if (name === file) {
          const pid = read();
          if (pid) resolve(pid);
        }
      });
      void ran.then(() => resolve(read()));
      const pid = read();
      if (pid) resolve(pid);
    });
  } finally {
    watcher?.close();
  }
}
