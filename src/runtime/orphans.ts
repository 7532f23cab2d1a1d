/**
 * Orphaned dynos: containers whose supervisor (or one-off `slipway run`) died without stopping them,
 * e.g. killed with SIGKILL. The OCI runtime still knows them (and runs them), but no `ps` lists
 * them, no router reaches them, and a new `up` would start a second web.1 beside them.
 *
 * Each dyno's bundle carries two annotations: the app it belongs to (matched exactly: an app's
 * name may be a prefix of another's, and a process type may contain dashes, so the container id
 * cannot say) and its owner, the pid and start time of the Slipway process that started it. A
 * dyno of the app whose owner is no longer running is an orphan: it is killed and deleted, with
 * the `socat` bridge its dead owner left running, its cgroups and its directory.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynoCgroup, hasV1Controllers } from './cgroup.js';
import { DYNO_PREFIX } from './container-dyno.js';
import { ownerAlive } from '../store/owner-token.js';
import { APP_ANNOTATION, OWNER_ANNOTATION } from './owner.js';
import { runtimeCommand, type OciRuntime } from './oci-runtime.js';

const run = promisify(execFile);

/** The OCI runtimes whose state this home holds, as Slipway ran them (see pickOciRuntime). */
function knownRuntimes(home: string): OciRuntime[] {
  return (['crun', 'runc'] as const)
    .map((name): OciRuntime => ({ name, root: join(home, 'run', name), cgroups: name === 'crun' && hasV1Controllers() ? 'slipway' : 'runtime' }))
    .filter((rt) => existsSync(rt.root));
}

async function oci(rt: OciRuntime, args: string[]): Promise<string> {
  const [cmd, ...rest] = runtimeCommand(rt, args);
  return (await run(cmd!, rest)).stdout;
}

/** Kills what a dead supervisor left running for this dyno beside the container: the router's socat bridge. */
function killBridges(socketPath: string): void {
  const needle = `UNIX-LISTEN:${socketPath},`;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((a) => a.startsWith(needle))) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Kills and deletes the dynos of `app` that the OCI runtimes of this home still know and whose
 * owner is gone. Returns their container ids.
 */
export async function reapOrphanDynos(home: string, app: string): Promise<string[]> {
  const reaped: string[] = [];
  for (const rt of knownRuntimes(home)) {
    let list: { id: string; bundle?: string }[];
    try {
      list = (JSON.parse((await oci(rt, ['list', '--format', 'json'])) || '[]') as typeof list | null) ?? [];
    } catch {
      continue; // the runtime is not installed any more, or knows nothing
    }
    for (const c of list.filter((x) => x.id.startsWith(DYNO_PREFIX))) {
      const bundle = join(home, 'dynos', c.id);
      if (c.bundle !== undefined && c.bundle !== bundle) continue; // not a dyno of this home
      let annotations: Record<string, string> = {};
      try {
        annotations = (JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { annotations?: Record<string, string> }).annotations ?? {};
      } catch {
        continue; // no bundle to tell whose it is
      }
      if (annotations[APP_ANNOTATION] !== app || ownerAlive(annotations[OWNER_ANNOTATION])) continue;
      await oci(rt, ['kill', c.id, 'KILL']).catch(() => undefined);
      await oci(rt, ['delete', '--force', c.id]).catch(() => undefined);
      killBridges(join(bundle, 'port.sock'));
      if (rt.cgroups === 'slipway') await DynoCgroup.existing(c.id).remove().catch(() => undefined);
      rmSync(bundle, { recursive: true, force: true });
      reaped.push(c.id);
    }
  }
  return reaped;
}
