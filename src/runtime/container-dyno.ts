/**
 * Dynos in real containers (runc or crun). Root = overlay of the release's slug (unpacked once,
 * owned by the app's uid range) over the stack version (unpacked once, never written), upper = a
 * fresh ephemeral directory deleted with the dyno. A user namespace per app (container root is
 * the app's unprivileged host range), no capabilities, no new privileges, nosuid/nodev, masked
 * and read-only kernel paths, /tmp on tmpfs, a network namespace with loopback only: the router
 * reaches $PORT through a Unix socket bridged into that namespace, and nothing in the dyno can
 * reach any address outside it. Memory and pids limits where the host's cgroups allow.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from '../store/db.js';
import type { Digest } from '../oci/digest.js';
import { uidRange, UID_RANGE_SIZE } from '../release/formation.js';
import { unpackedSlug } from '../slug/unpacked.js';
import { unpackedStack } from '../stack/unpacked.js';
import { writeFileAtomic } from '../store/atomic.js';
import { DYNO_INIT, listensIn, type DynoIo, type DynoRuntime, type DynoSpec, type Exit, type RunningDyno } from './dyno.js';
import { pickOciRuntime, type OciRuntime } from './oci-runtime.js';
import { MASKED_PATHS, NO_CAPABILITIES, READONLY_PATHS, standardMounts } from './spec.js';

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

export function dynoConfig(o: { rootfs: string; uidBase: number; hostname: string; args: string[]; env: string[]; limits?: Limits | undefined; readonlyRoot?: boolean }): object {
  const map = [{ containerID: 0, hostID: o.uidBase, size: UID_RANGE_SIZE }];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
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
    mounts: [
      ...standardMounts('262144k'),
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    ],
    linux: {
      uidMappings: map,
      gidMappings: map,
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }, { type: 'user' }, { type: 'cgroup' }],
      maskedPaths: MASKED,
      readonlyPaths: READONLY_PATHS,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        ...(o.limits && { memory: { limit: o.limits.memoryBytes, swap: o.limits.memoryBytes }, pids: { limit: o.limits.pids } }),
      },
    },
  };
}

/** Runs a helper (mount, umount, runc kill) without blocking the event loop: dynos start in parallel. */
function sh(cmd: string, args: string[]): Promise<{ ok: boolean; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8' }, (err, _out, stderr) => resolve({ ok: !err, err: (stderr || err?.message || '').trim() }));
  });
}

/** Runs a probe container on the stack, bind-mounted where the user namespace can reach it. */
async function runOnce(rt: OciRuntime, dir: string, stackRoot: string, config: (rootfs: string) => object): Promise<{ code: number | null; stderr: string }> {
  const id = `${DYNO_PREFIX}probe-${randomBytes(4).toString('hex')}`;
  const bundle = join(dir, id);
  const root = join(await mountRoots(), id);
  await mkdir(bundle, { recursive: true });
  await mkdir(root, { recursive: true, mode: 0o755 });
  const bind = await sh('mount', ['--bind', stackRoot, root]);
  if (!bind.ok) return { code: 1, stderr: `cannot bind-mount the stack: ${bind.err}` };
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config(root)));
  try {
    const r = spawnSync(rt.name, ['--root', rt.root, 'run', '--bundle', bundle, id], { encoding: 'utf8' });
    return { code: r.status, stderr: `${r.stderr ?? ''}${r.error?.message ?? ''}` };
  } finally {
    spawnSync(rt.name, ['--root', rt.root, 'delete', '--force', id]);
    await sh('umount', ['-l', root]);
    await rm(root, { recursive: true, force: true });
    await rm(bundle, { recursive: true, force: true });
  }
}

export class ContainerRuntime implements DynoRuntime {
  readonly kind = 'container' as const;

  private constructor(
    private readonly home: string,
    private readonly db: Db,
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
    const base = PROBE_UID_BASE;
    const config = (withLimits: boolean) => (rootfs: string): object => dynoConfig({ rootfs, uidBase: base, hostname: 'probe', args: ['/bin/true'], env: ['PATH=/usr/bin:/bin'], limits: withLimits ? limits : undefined, readonlyRoot: true });
    const { runtime, why } = await pickOciRuntime(state, async (rt) => {
      const r = await runOnce(rt, probeDir, stackRoot, config(false));
      if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
    });
    const notes = why.map((w) => `${w}; using ${runtime.name}`);
    const memo = join(state, `limits-${runtime.name}.json`);
    let limited: boolean;
    if (existsSync(memo)) limited = (JSON.parse(readFileSync(memo, 'utf8')) as { limited: boolean }).limited;
    else {
      const r = await runOnce(runtime, probeDir, stackRoot, config(true));
      limited = r.code === 0;
      if (!limited) notes.push(`memory and pids limits are not applied: ${runtime.name} cannot set them on this host's cgroups (${r.stderr.split('\n').filter(Boolean).slice(-1)[0] ?? ''})`);
      await writeFileAtomic(memo, JSON.stringify({ limited }));
    }
    return new ContainerRuntime(home, db, runtime, limited ? limits : undefined, notes);
  }

  private readonly ranges = new Map<string, number>();

  async start(spec: DynoSpec, io: DynoIo): Promise<RunningDyno> {
    let base = this.ranges.get(spec.app);
    if (base === undefined) this.ranges.set(spec.app, (base = uidRange(this.db, spec.app)));
    const stack = await unpackedStack(this.home, { ...spec.release.stack, source: '', size: 0, createdAt: '' });
    const slug = await unpackedSlug(this.home, spec.release.slug as Digest, base);
    const id = `${DYNO_PREFIX}${spec.app}-${spec.name}-${randomBytes(3).toString('hex')}`;
    const dir = join(this.home, 'dynos', id);
    // runc sets up the root inside the user namespace, as the app's unprivileged host uid, so the
    // mount point sits where every directory on the way is searchable (the store may be 0700).
    const merged = join(await mountRoots(), id);
    // A few tiny synchronous calls: far cheaper here than the thread-pool round trips of async ones.
    mkdirSync(join(dir, 'upper'), { recursive: true });
    mkdirSync(join(dir, 'work'));
    mkdirSync(merged, { mode: 0o755 });
    const mount = await sh('mount', ['-t', 'overlay', 'overlay', '-o', `nosuid,nodev,lowerdir=${slug}:${stack},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`, merged]);
    if (!mount.ok) {
      await rm(dir, { recursive: true, force: true });
      await rm(merged, { recursive: true, force: true });
      throw new Error(`${spec.name}: cannot mount the dyno's overlay root: ${mount.err}`);
    }
    // MEMORY_AVAILABLE (MiB, as Heroku's buildpacks read it) lets runtimes such as the JVM size themselves.
    const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/app', ...(this.limits && { MEMORY_AVAILABLE: String(Math.floor(this.limits.memoryBytes / 1048576)) }), ...spec.env };
    const config = dynoConfig({ rootfs: merged, uidBase: base, hostname: spec.name.replace(/\./g, '-'), args: ['/bin/sh', '-c', DYNO_INIT, 'init', spec.command], env: Object.entries(env).map(([k, v]) => `${k}=${v}`), limits: this.limits });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const pidFile = join(dir, 'pid');
    const runc = spawn(this.rt.name, ['--root', this.rt.root, 'run', '--bundle', dir, '--pid-file', pidFile, id], {
      stdio: io.stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    });
    if (io.stdio === 'pipe') {
      runc.stdout!.on('data', (c: Buffer) => io.onOutput?.(c));
      runc.stderr!.on('data', (c: Buffer) => io.onOutput?.(c));
    }
    const ran = new Promise<Exit>((resolve) => runc.on('exit', (code, signal) => resolve({ code, signal })));
    let bridge: ChildProcess | undefined;
    const cleanup = async (): Promise<void> => {
      bridge?.kill('SIGKILL');
      // `runc run` deletes its container when it exits; only the mount and the directories remain.
      await sh('umount', ['-l', merged]);
      rmSync(merged, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    };
    const exited = ran.then(async (e) => {
      await cleanup();
      return e;
    });
    let gone = false;
    void ran.then(() => (gone = true));
    // A command that ends at once may be gone before its pid is seen: the exit tells the rest
    // (and runc's own error, when it could not start it at all, is in the dyno's output).
    const pid = (await waitForPid(pidFile, () => gone)) ?? 0;
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
      listening: async () => pid > 0 && (await listensIn(pid, spec.port)) && existsSync(socketPath),
      signal: async (sig) => {
        await sh(this.rt.name, ['--root', this.rt.root, 'kill', '--all', id, sig]);
      },
    };
  }
}

/** Where dyno roots are mounted: /run/slipway/roots (tmpfs, root-owned, searchable, gone at boot). */
async function mountRoots(): Promise<string> {
  const roots = '/run/slipway/roots';
  await mkdir(roots, { recursive: true, mode: 0o711 });
  await chmod('/run/slipway', 0o711);
  await chmod(roots, 0o711);
  return roots;
}

/** runc writes the pid file once the container's process exists; undefined if runc exits first. */
async function waitForPid(file: string, gone: () => boolean): Promise<number | undefined> {
  while (!gone()) {
    try {
      const pid = Number(readFileSync(file, 'utf8'));
      if (pid > 0) return pid;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return undefined;
}
