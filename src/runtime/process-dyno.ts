/**
 * Dynos as plain host processes, foreman-style, for hosts where no OCI runtime works: the slug
 * unpacked once per release, each dyno a process group of its own on a port of its own, its init a
 * child subreaper (so that it outlives what it started when stopped). No isolation beyond that;
 * the same environment, init, signals and logs as a container dyno.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Digest } from '../oci/digest.js';
import { unpackedSlug } from '../slug/unpacked.js';
import { acceptsOn, childStdio, connectStdio, dynoArgs, nativeProgram, type DynoIo, type DynoRuntime, type DynoSpec, type Exit, type RunningDyno } from './dyno.js';

export class ProcessRuntime implements DynoRuntime {
  readonly kind = 'process' as const;
  readonly notes = ['process runtime: dynos are plain host processes, without isolation'];

  constructor(private readonly home: string) {}

  async start(spec: DynoSpec, io: DynoIo): Promise<RunningDyno> {
    const app = join(await unpackedSlug(this.home, spec.release.slug as Digest, 0), 'app');
    const [init, ...args] = dynoArgs(nativeProgram('dyno-init'), spec.command);
    const child = spawn(init!, args, {
      cwd: app,
      env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: app, ...spec.env },
      // A process group of its own: a session of its own, or, on the caller's terminal, one the
      // init makes and gives the terminal to (so that Ctrl-C and job control reach the dyno).
      detached: io.stdio !== 'tty',
      stdio: childStdio(io),
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${spec.name}: could not start ${init}`);
    const output = connectStdio(child, io);
    const exited = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => {
      // The init is gone: nothing of the dyno may outlive it (a container's pid namespace does the same).
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // the group is already empty
      }
      // Its output is read to the end, unless something that left the group holds it open.
      void Promise.race([output, new Promise((r) => setTimeout(r, 1000))]).then(() => resolve({ code, signal }));
    }));
    return {
      spec,
      pid,
      endpoint: { host: '127.0.0.1', port: spec.port },
      exited,
      listening: () => acceptsOn(spec.port),
      signal: async (sig) => {
        try {
          process.kill(sig === 'SIGKILL' ? -pid : pid, sig);
        } catch {
          // already gone
        }
      },
    };
  }
}
