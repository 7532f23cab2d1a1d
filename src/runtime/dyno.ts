/**
 * One dyno: a process of a release, in a container or on the host. Both runtimes start the same
 * init (below), give the same environment, and expose the same handle, so the supervisor and
 * the router never ask which one they have.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
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
  /** inherit: a one-off dyno attached to the terminal; pipe: output goes to onOutput. */
  stdio: 'inherit' | 'pipe';
  onOutput?: (chunk: Buffer) => void;
}

export type Endpoint = { socketPath: string } | { host: string; port: number };

export interface Exit {
  code: number | null;
  signal: string | null;
}

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
  /** To every process of the dyno. */
  signal(sig: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

export interface DynoRuntime {
  readonly kind: RuntimeKind;
  /** What the runtime could not apply on this host (e.g. no cgroup limits), said once. */
  readonly notes: string[];
  start(spec: DynoSpec, io: DynoIo): Promise<RunningDyno>;
}

/**
 * The dyno's init: sources .profile.d as Heroku does, runs the command as its child, passes
 * SIGTERM on and exits with the command's status, so a stop reaches the app even when it does not
 * handle signals as PID 1 would have to.
 */
export const DYNO_INIT = [
  'trap \'kill -TERM $c 2>/dev/null\' TERM INT',
  'cd "$HOME" || exit 1',
  SOURCE_PROFILE_D,
  '/bin/sh -c "$1" &',
  'c=$!',
  'while :; do wait $c; s=$?; kill -0 $c 2>/dev/null || exit $s; done',
].join('\n');

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
