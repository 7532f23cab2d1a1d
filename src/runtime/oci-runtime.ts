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
  /**
   * Who makes the container's cgroups: the runtime (from the config's resources), or Slipway
   * (`cgroup.ts`), the runtime then run with its cgroup manager disabled.
   */
  cgroups: 'runtime' | 'slipway';
}

/** How the runtime is named to users. */
export function describe(rt: OciRuntime): string {
  return rt.cgroups === 'slipway' ? `${rt.name} (cgroup manager disabled; cgroups made by Slipway)` : rt.name;
}

/** The v2 controller list crun 1.8 reads on hybrid hosts. */
const V2_CONTROLLERS = '/sys/fs/cgroup/unified/cgroup.controllers';
const CHILD_TCP_HASH = '/proc/sys/net/ipv4/tcp_child_ehash_entries';
/** Buckets of a container's own TCP hash table: plenty for one dyno's connections. */
const CONTAINER_TCP_HASH = 4096;

/**
 * Run by /bin/sh before the runtime: joins the cgroup.procs files given first (count, then
 * paths), then the steps for the namespaces `unshare` gave it, then execs the runtime.
 */
const JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done';
/**
 * A network namespace of its own whose children get their own small TCP hash table (Linux 6.1+)
 * instead of sharing the host's: reading a container's /proc/PID/net/tcp, as the readiness check
 * does, walks every bucket of that table (the host's has 262,144 here: 4 ms of kernel time per
 * read, against next to nothing).
 */
const SMALL_TCP_HASH = `if [ -w ${CHILD_TCP_HASH} ]; then echo ${CONTAINER_TCP_HASH} > ${CHILD_TCP_HASH} || exit 125; fi`;
/**
 * On a hybrid host crun refuses to start while the v2 hierarchy lists any controller, even with
 * its cgroup manager disabled, when it would use none: in a mount namespace of its own (host
 * mounts still propagate into it) /dev/null, which reads empty, is shown over that list.
 */
const HIDE_V2_CONTROLLERS = `if [ -e ${V2_CONTROLLERS} ]; then mount --bind /dev/null ${V2_CONTROLLERS} || exit 125; fi`;

/**
 * argv that runs the OCI runtime with `args`. `procs` (cgroup.procs files): the process joins
 * them first, so the runtime and the container it forks start inside them, limited from their
 * first instruction. `ownTcpHash`: the container's network namespace gets its own TCP hash table.
 */
export function runtimeCommand(rt: OciRuntime, args: string[], o: { procs?: string[]; ownTcpHash?: boolean } = {}): string[] {
  const procs = o.procs ?? [];
  const slipwayCgroups = rt.cgroups === 'slipway';
  const argv = [rt.name, ...(slipwayCgroups ? ['--cgroup-manager=disabled'] : []), '--root', rt.root, ...args];
  if (!slipwayCgroups && !o.ownTcpHash && procs.length === 0) return argv;
  const steps = [JOIN_CGROUPS, ...(o.ownTcpHash ? [SMALL_TCP_HASH] : []), ...(slipwayCgroups ? [HIDE_V2_CONTROLLERS] : []), 'exec "$@"'];
  const unshare = [...(o.ownTcpHash ? ['--net'] : []), ...(slipwayCgroups ? ['--mount', '--propagation', 'slave'] : [])];
  return [...(unshare.length ? ['unshare', ...unshare] : []), '/bin/sh', '-c', steps.join('\n'), 'slipway-oci', String(procs.length), ...procs, ...argv];
}

function exists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/**
 * The OCI runtime to use: crun when it can run a container on this host, else (when the caller
 * can make the cgroups itself: `slipwayCgroups`) crun with its cgroup manager disabled, since
 * crun 1.8 refuses hybrid cgroup hosts, else runc. `probe` runs a trivial container; `why` says
 * what was skipped.
 */
export async function pickOciRuntime(
  stateRoot: string,
  probe: (rt: OciRuntime) => Promise<void>,
  o: { slipwayCgroups?: boolean } = {},
): Promise<{ runtime: OciRuntime; why: string[] }> {
  // The answer is a property of the host: remember it for a day instead of probing every build.
  const memo = join(stateRoot, o.slipwayCgroups ? 'picked-slipway-cgroups.json' : 'picked.json');
  try {
    const m = JSON.parse(await readFile(memo, 'utf8')) as { runtime: OciRuntime; why: string[]; at: number };
    if (Date.now() - m.at < 24 * 3600 * 1000 && exists(m.runtime.name)) return { runtime: m.runtime, why: [] };
  } catch {
    // no memo yet
  }
  const why: string[] = [];
  const candidates: OciRuntime[] = [
    { name: 'crun', root: `${stateRoot}/crun`, cgroups: 'runtime' },
    ...(o.slipwayCgroups ? [{ name: 'crun', root: `${stateRoot}/crun`, cgroups: 'slipway' } as const] : []),
    { name: 'runc', root: `${stateRoot}/runc`, cgroups: 'runtime' },
  ];
  for (const rt of candidates) {
    const name = describe(rt);
    if (!exists(rt.name)) {
      if (!why.some((w) => w.startsWith(`${rt.name}:`))) why.push(`${rt.name}: not installed`);
      continue;
    }
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
    const [cmd, ...args] = runtimeCommand(rt, ['list', '--format', 'json']);
    const { stdout } = await run(cmd!, args);
    list = (JSON.parse(stdout || '[]') as { id: string; status: string }[] | null) ?? [];
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const c of list.filter((x) => x.id.startsWith(prefix))) {
    for (const args of [['kill', c.id, 'KILL'], ['delete', '--force', c.id]]) {
      const [cmd, ...rest] = runtimeCommand(rt, args);
      await run(cmd!, rest).catch(() => undefined);
    }
    reaped.push(c.id);
  }
  return reaped;
}
