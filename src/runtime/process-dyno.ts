/**
 * Dynos as plain host processes, foreman-style, for hosts where no OCI runtime works: the slug
 * unpacked once per release, each dyno a process group of its own on a port of its own. No
 * isolation beyond that; the same environment, init, signals and logs as a container dyno.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Digest } from '../oci/digest.js';
import { unpackedSlug } from '../slug/unpacked.js';
import { acceptsOn, DYNO_INIT, type DynoIo, type DynoRuntime, type DynoSpec, type Exit, type RunningDyno } from './dyno.js';

export class ProcessRuntime implements DynoRuntime {
  readonly kind = 'process' as const;
  readonly notes = ['process runtime: dynos are plain host processes, without isolation'];

  constructor(private readonly home: string) {}

  async start(spec: DynoSpec, io: DynoIo): Promise<RunningDyno> {
    const app = join(await unpackedSlug(this.home, spec.release.slug as Digest, 0), 'app');
    const child = spawn('/bin/sh', ['-c', DYNO_INIT, 'init', spec.command], {
      cwd: app,
      env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: app, ...spec.env },
      detached: true,
      stdio: io.stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${spec.name}: could not start /bin/sh`);
    if (io.stdio === 'pipe') {
      child.stdout!.on('data', (c: Buffer) => io.onOutput?.(c));
      child.stderr!.on('data', (c: Buffer) => io.onOutput?.(c));
    }
    const exited = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => {
      // The init is gone: nothing of the dyno may outlive it (a container's pid namespace does the same).
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // the group is already empty
      }
      resolve({ code, signal });
    }));
    return {
      spec,
      pid,
      endpoint: { host: '127.0.0.1', port: spec.port },
      exited,
      listening: () => acceptsOn(spec.port),
      signal: async (sig) => {
        try {
          process.kill(-pid, sig);
        } catch {
          // already gone
        }
      },
    };
  }
}
