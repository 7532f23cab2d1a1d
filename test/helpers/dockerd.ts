import { spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type RunResult } from './cli.js';
import { tempDir } from './tmp.js';

export interface Dockerd {
  /** Runs the docker client against this daemon. */
  docker(args: string[]): Promise<RunResult>;
  stop(): Promise<void>;
}

/**
 * A private Docker engine (Debian's docker.io: dockerd 20.10, the classic image store) on a Unix
 * socket in a temp directory: no bridge, no iptables, its own data root. Stopped by stop().
 */
export async function startDockerd(): Promise<Dockerd> {
  const dir = await tempDir('slipway-dockerd-');
  const sock = join(dir, 'docker.sock');
  const log = openSync(join(dir, 'log'), 'a');
  const daemon = spawn(
    'dockerd',
    ['--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'), '-H', `unix://${sock}`, '--bridge=none', '--iptables=false', '--ip6tables=false', '--containerd-namespace', `slipway-test-${process.pid}`],
    { stdio: ['ignore', log, log] },
  );
  const exited = new Promise((r) => daemon.once('exit', r));
  const docker = (args: string[]): Promise<RunResult> => run('/usr/bin/docker', ['-H', `unix://${sock}`, ...args]);
  let ready = false;
  for (let i = 0; i < 300 && !ready && daemon.exitCode === null; i++) {
    ready = existsSync(sock) && (await docker(['version'])).code === 0;
    if (!ready) await new Promise((r) => setTimeout(r, 100));
  }
  if (!ready) {
    daemon.kill('SIGKILL');
    throw new Error(`dockerd did not start: ${(await readFile(join(dir, 'log'), 'utf8')).slice(-2000)}`);
  }
  return {
    docker,
    async stop() {
      daemon.kill('SIGTERM');
      await exited;
    },
  };
}
