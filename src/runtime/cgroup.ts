/**
 * Cgroups Slipway manages itself, for an OCI runtime run with its cgroup manager disabled: crun
 * 1.8 refuses hosts with a hybrid cgroup layout (v1 controllers beside a v2 tree), and there it
 * still starts containers about five times faster than runc once it leaves cgroups alone. Each
 * dyno gets a group in the v1 memory, pids and devices hierarchies; the runtime is started from
 * inside it (`runtimeCommand` in oci-runtime.ts), so every process of the container is limited
 * from its first instruction, and signalled or counted through it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['memory', 'pids', 'devices'] as const;
const CGROUP_SUPER_MAGIC = 0x27e0eb;
const PARENT = 'slipway';

/**
 * The devices a dyno may use: those the OCI runtime creates in /dev (runc's and crun's default
 * list), nothing else. Written after a `deny a`.
 */
const ALLOWED_DEVICES = ['c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:1 rwm', 'c 5:2 rwm', 'c 136:* rwm', 'c 10:200 rwm'];

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
}

/** True where the v1 memory, pids and devices hierarchies are mounted (cgroup v1 or hybrid hosts). */
export function hasV1Controllers(): boolean {
  try {
    return CONTROLLERS.every((c) => statfsSync(join(ROOT, c)).type === CGROUP_SUPER_MAGIC);
  } catch {
    return false;
  }
}

/** One dyno's group in each of the three hierarchies. */
export class DynoCgroup {
  private constructor(readonly id: string) {}

  private static dirs(id: string): string[] {
    return CONTROLLERS.map((c) => join(ROOT, c, PARENT, id));
  }

  /** The groups of a dyno made earlier (by a Slipway process since gone), to remove them. */
  static existing(id: string): DynoCgroup {
    return new DynoCgroup(id);
  }

  /** Creates the groups and sets the limits; throws, naming the file, when the kernel refuses one. */
  static async create(id: string, limits: CgroupLimits): Promise<DynoCgroup> {
    const [memory, pids, devices] = DynoCgroup.dirs(id) as [string, string, string];
    const set = (dir: string, file: string, value: string): void => {
      try {
        writeFileSync(join(dir, file), value);
      } catch (err) {
        throw new Error(`cannot set ${join(dir, file)} to ${value}: ${(err as Error).message}`);
      }
    };
    for (const d of [memory, pids, devices]) mkdirSync(d, { recursive: true });
    const cg = new DynoCgroup(id);
    try {
      set(memory, 'memory.limit_in_bytes', String(limits.memoryBytes));
      // No swap beyond the limit, where the kernel accounts swap at all.
      if (existsSync(join(memory, 'memory.memsw.limit_in_bytes'))) set(memory, 'memory.memsw.limit_in_bytes', String(limits.memoryBytes));
      set(pids, 'pids.max', String(limits.pids));
      set(devices, 'devices.deny', 'a');
      for (const rule of ALLOWED_DEVICES) set(devices, 'devices.allow', rule);
    } catch (err) {
      await cg.remove();
      throw err;
    }
    return cg;
  }

  /** The files a process writes its pid to so that it (and all it starts) joins the groups. */
  procsFiles(): string[] {
    return DynoCgroup.dirs(this.id).map((d) => join(d, 'cgroup.procs'));
  }

  /** The host pids of every process in the dyno. */
  pids(): number[] {
    try {
      return readFileSync(join(ROOT, 'pids', PARENT, this.id, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /**
   * Signals every process in the dyno (what `runc kill --all` does through its own cgroup) but
   * `runtime`, the OCI runtime's own process, which started inside the groups and must live on
   * to report the container's exit.
   */
  signal(sig: NodeJS.Signals, runtime: number | undefined): void {
    for (const pid of this.pids().filter((p) => p !== runtime)) {
      try {
        process.kill(pid, sig);
      } catch {
        // exited meanwhile
      }
    }
  }

  /** Removes the groups; an exiting process may hold one for a moment, so this retries briefly. */
  async remove(): Promise<void> {
    for (const d of DynoCgroup.dirs(this.id)) {
      for (let i = 0; ; i++) {
        try {
          rmdirSync(d);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || i >= 50) throw new Error(`cannot remove cgroup ${d}: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  }

  /**
   * Empty groups left by a Slipway that died before it could remove them. A group is empty for a
   * moment before its dyno enters it, so only those older than a minute go.
   */
  static removeStale(prefix: string): void {
    for (const c of CONTROLLERS) {
      let ids: string[];
      try {
        ids = readdirSync(join(ROOT, c, PARENT), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
      } catch {
        continue;
      }
      for (const id of ids.filter((x) => x.startsWith(prefix))) {
        try {
          const dir = join(ROOT, c, PARENT, id);
          if (Date.now() - statSync(dir).mtimeMs < 60_000) continue;
          rmdirSync(dir);
        } catch {
          // still has processes: a dyno of another Slipway process
        }
      }
    }
  }
}
