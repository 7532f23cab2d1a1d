/**
 * One dyno: a process of a release, in a container or on the host. Both runtimes start the same
 * init (below), give the same environment, and expose the same handle, so the supervisor and
 * the router never ask which one they have.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SlipwayError } from '../errors.js';
import { SOURCE_PROFILE_D } from '../release/image.js';
import type { BuiltRelease } from '../release/releases.js';

export type RuntimeKind = 'container' | 'process';

export interface DynoSpec {
  app: string;
  /** web.1, worker.2, run.4821 */
  name: string;
  type: string;
  command: string;
  /** Config vars, PORT, DYNO, PS: everything but PATH and HOME, which the runtime sets. */
  env: Record<string, string>;
  port: number;
  release: BuiltRelease;
}

export interface DynoIo {
  /**
   * attach: a one-off dyno's stdin, stdout and stderr are pipes to and from this process's (never
   * the caller's terminal itself: a dyno could push input into it); tty: a terminal in the dyno,
   * attached to the caller's (stdin must be one); pipe: output goes to onOutput, stdin is empty.
   */
  stdio: 'attach' | 'tty' | 'pipe';
  onOutput?: (chunk: Buffer) => void;
}

export type Endpoint = { socketPath: string } | { host: string; port: number };

export interface Exit {
  code: number | null;
  signal: string | null;
}

export type DynoSignal = 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP';

export interface RunningDyno {
  readonly spec: DynoSpec;
  /** The dyno's init process as the host sees it (0 if it ended before it was seen). */
  readonly pid: number;
  /** Where the router reaches $PORT. */
  readonly endpoint: Endpoint;
  /** Resolves when the dyno has exited and its resources are released. */
  readonly exited: Promise<Exit>;
  /** Whether something in the dyno listens on $PORT. */
  listening(): Promise<boolean>;
  /**
   * SIGKILL: to every process of the dyno at once. Others: to the dyno's init, which passes them
   * on to every process (each gets one) and, for SIGTERM, lives until they are all gone.
   */
  signal(sig: DynoSignal): Promise<void>;
}

export interface DynoRuntime {
  readonly kind: RuntimeKind;
  /** What the runtime could not apply on this host (e.g. no cgroup limits), said once. */
  readonly notes: string[];
  start(spec: DynoSpec, io: DynoIo): Promise<RunningDyno>;
}

/**
 * What the dyno's init (native/dyno-init.c, its first process) runs: sources .profile.d as Heroku
 * does, then the command, a shell command line. The init passes signals on to every process and
 * outlives them all when stopped; see there.
 */
export const DYNO_SCRIPT = ['cd "$HOME" || exit 1', SOURCE_PROFILE_D, 'exec /bin/sh -c "$1"'].join('\n');

/** argv of a dyno's main process under its init: `init` is where the init binary is seen. */
export function dynoArgs(init: string, command: string): string[] {
  return [init, '/bin/sh', '-c', DYNO_SCRIPT, 'dyno', command];
}

/** stdio of a dyno's child process for `io`. */
export function childStdio(io: DynoIo): 'inherit' | ['ignore' | 'pipe', 'pipe', 'pipe'] {
  return io.stdio === 'tty' ? 'inherit' : [io.stdio === 'attach' ? 'pipe' : 'ignore', 'pipe', 'pipe'];
}

/**
 * Connects a dyno's child process to `io`: its output to onOutput, or (attach) this process's
 * stdin to it and its output to this process's stdout and stderr. Resolves once its output ended
 * (every process of the dyno closed it) and this process's stdin is let go.
 */
export function connectStdio(child: ChildProcess, io: DynoIo): Promise<void> {
  if (io.stdio === 'tty') return Promise.resolve();
  const ended = (s: NodeJS.ReadableStream): Promise<void> => new Promise((r) => s.on('end', r).on('error', () => r()));
  const out = Promise.all([ended(child.stdout!), ended(child.stderr!)]);
  if (io.stdio === 'pipe') {
    child.stdout!.on('data', (c: Buffer) => io.onOutput?.(c));
    child.stderr!.on('data', (c: Buffer) => io.onOutput?.(c));
    return out.then(() => undefined);
  }
  child.stdout!.pipe(process.stdout, { end: false });
  child.stderr!.pipe(process.stderr, { end: false });
  // A dyno that stops reading before its input ends is no error of ours.
  child.stdin!.on('error', () => undefined);
  process.stdin.pipe(child.stdin!);
  return Promise.all([out, new Promise((r) => child.on('exit', r))]).then(() => {
    process.stdin.unpipe(child.stdin!);
    process.stdin.pause();
  });
}

/** A helper program built from native/ into dist/ by scripts/build, found whether bundled or not. */
export function nativeProgram(name: 'dyno-init' | 'console-attach'): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    for (const p of [join(dir, name), join(dir, 'dist', name)]) if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new SlipwayError(`${name} is missing from this installation`, { hint: 'npm run build compiles it from native/ (it needs cc: scripts/setup installs gcc)' });
}

/** Does a TCP connection to 127.0.0.1:port get accepted? The readiness check of a host process. */
export function acceptsOn(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/**
 * Reads /proc/PID/net/tcp6 and tcp: does the network namespace of PID have a listener on port?
 * Polled while a web dyno boots, so it is kept cheap: synchronous reads of these small in-memory
 * files cost a quarter of what the thread pool's round trips do (0.24 against 0.93 ms of CPU a
 * poll here), CPU the booting app would otherwise lose; tcp6 first, where dual-stack servers
 * (Java's, Node's) show up.
 */
export function listensIn(pid: number, port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const f of ['tcp6', 'tcp']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
    } catch {
      // the process is gone, or the kernel has no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(hex) && cols[3] === '0A') return true;
    }
  }
  return false;
}
