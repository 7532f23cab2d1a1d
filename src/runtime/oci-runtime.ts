import { execFile, spawnSync } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../store/atomic.js';

const run = promisify(execFile);

export interface OciRuntime {
  /** runc or crun */
  name: string;
  /** State directory (--root), Slipway's own, so its containers are easy to find and reap. */
  root: string;
}

function exists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/**
 * The OCI runtime to use: crun when it can run a container on this host, else runc (crun 1.8
 * refuses hybrid cgroup hosts). `probe` runs a trivial container; `why` says what was skipped.
 */
export async function pickOciRuntime(stateRoot: string, probe: (rt: OciRuntime) => Promise<void>): Promise<{ runtime: OciRuntime; why: string[] }> {
  // The answer is a property of the host: remember it for a day instead of probing every build.
  const memo = join(stateRoot, 'picked.json');
  try {
    const m = JSON.parse(await readFile(memo, 'utf8')) as { runtime: OciRuntime; why: string[]; at: number };
    if (Date.now() - m.at < 24 * 3600 * 1000 && exists(m.runtime.name)) return { runtime: m.runtime, why: [] };
  } catch {
    // no memo yet
  }
  const why: string[] = [];
  for (const name of ['crun', 'runc']) {
    if (!exists(name)) {
      why.push(`${name}: not installed`);
      continue;
    }
    const rt = { name, root: `${stateRoot}/${name}` };
    try {
      await probe(rt);
      await mkdir(stateRoot, { recursive: true });
      await writeFileAtomic(memo, JSON.stringify({ runtime: rt, why, at: Date.now() }));
      return { runtime: rt, why };
    } catch (err) {
      why.push(`${name}: ${(err as Error).message.split('\n').filter(Boolean).slice(-1)[0] ?? 'failed'}`);
    }
  }
  throw new Error(`no OCI runtime works here (${why.join('; ')})`);
}

/** Containers in our state root whose `runc run` parent is gone: killed and deleted. */
export async function reapContainers(rt: OciRuntime, prefix: string): Promise<string[]> {
  let list: { id: string; status: string }[];
  try {
    const { stdout } = await run(rt.name, ['--root', rt.root, 'list', '--format', 'json']);
    list = (JSON.parse(stdout || '[]') as { id: string; status: string }[] | null) ?? [];
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const c of list.filter((x) => x.id.startsWith(prefix))) {
    await run(rt.name, ['--root', rt.root, 'kill', c.id, 'KILL']).catch(() => undefined);
    await run(rt.name, ['--root', rt.root, 'delete', '--force', c.id]).catch(() => undefined);
    reaped.push(c.id);
  }
  return reaped;
}
