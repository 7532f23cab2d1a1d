import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import { STEP_WRAPPER, type BuildRuntime, type StepRequest, type StepResult } from '../buildpack/step.js';
import { BuildNetwork } from './build-network.js';
import { pickOciRuntime, type OciRuntime } from './oci-runtime.js';
import { MASKED_PATHS, NO_CAPABILITIES, READONLY_PATHS, standardMounts } from './spec.js';
import { seccompProfile } from './seccomp.js';
import { spawnStep } from './step-process.js';

export const BUILD_UID = 1000;
const HOST_CERTS = '/etc/ssl/certs';
const HOST_BUNDLE = `${HOST_CERTS}/ca-certificates.crt`;

/** Network settings of the host that a build needs to reach registries the way the host does. */
export function hostNetworkEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) {
    const v = process.env[k];
    if (v) out[k] = v;
  }
  if (existsSync(HOST_BUNDLE)) {
    // Node.js ignores the system store unless told; curl and git read SSL_CERT_FILE.
    out.NODE_EXTRA_CA_CERTS = HOST_BUNDLE;
    out.SSL_CERT_FILE = HOST_BUNDLE;
  }
  return out;
}
export const BUILD_CONTAINER_PREFIX = 'slipway-build-';


/** Host directories of a build: all under `workspace`, which is mounted at /workspace. */
interface Binds {
  workspace: string;
  app: string;
  cache: string;
  env: string;
  buildpacks: string;
}

const WORKSPACE = '/workspace';

/**
 * The runtime-spec config of one build step: read-only stack, no capabilities, the app user, the
 * build's network namespace (without one, as for the probe, an empty namespace of its own).
 */
function buildConfig(rootfs: string, binds: Binds, args: string[], env: Record<string, string>, net?: BuildNetwork): object {
  const bind = (destination: string, source: string, rw: boolean) => ({ destination, type: 'bind', source, options: ['rbind', rw ? 'rw' : 'ro', 'nosuid', 'nodev'] });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: BUILD_UID, gid: BUILD_UID },
      args,
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: WORKSPACE,
      capabilities: NO_CAPABILITIES,
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: 'build',
    mounts: [
      ...standardMounts(),
      bind(WORKSPACE, binds.workspace, true),
      bind('/etc/resolv.conf', net?.resolvConf ?? '/etc/resolv.conf', false),
      // Builds reach registries through whatever the host trusts (corporate or proxy CAs too).
      ...(existsSync(HOST_CERTS) ? [bind(HOST_CERTS, HOST_CERTS, false)] : []),
    ],
    linux: {
      // Builds reach package registries through the NAT of their network (build-network.ts), not the host.
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network', ...(net && { path: net.netnsPath }) }],
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: seccompProfile(),
      resources: { devices: [{ allow: false, access: 'rwm' }] },
    },
  };
}

/**
 * Build steps in a container on the unpacked stack (runc or crun): the stack read-only, the
 * build dir, cache, env dir and buildpacks bind-mounted, run as the app user with no
 * capabilities and no new privileges, in the build's own network namespace. Each step is one
 * short-lived container.
 */
export class ContainerBuildRuntime implements BuildRuntime {
  readonly name = 'container' as const;
  readonly appDir: string;
  readonly cacheDir: string;
  readonly envDir: string;
  private counter = 0;

  private constructor(
    private readonly rt: OciRuntime,
    private readonly rootfs: string,
    private readonly binds: Binds,
    private readonly work: string,
    private readonly net: BuildNetwork,
  ) {
    this.appDir = this.inside(binds.app);
    this.cacheDir = this.inside(binds.cache);
    this.envDir = this.inside(binds.env);
  }

  /** A host path under the workspace, as the container sees it. */
  private inside(hostPath: string): string {
    return posix.join(WORKSPACE, relative(this.binds.workspace, hostPath));
  }

  /**
   * Picks crun or runc by running a trivial container on the stack (`why` lists what was skipped),
   * and makes the build's network (`notes` says what that changed on the host).
   */
  static async open(stateRoot: string, rootfs: string, binds: Binds, work: string): Promise<{ runtime: ContainerBuildRuntime; why: string[]; notes: string[] }> {
    await mkdir(work, { recursive: true });
    const probeEnv = { PATH: '/usr/bin:/bin' };
    const { runtime, why } = await pickOciRuntime(stateRoot, async (rt) => {
      const r = await runContainer(rt, work, `${BUILD_CONTAINER_PREFIX}probe-${randomBytes(4).toString('hex')}`, buildConfig(rootfs, binds, ['/bin/true'], probeEnv), () => undefined, false);
      if (r.code !== 0) throw new Error(`probe exited ${r.code}`);
    });
    const net = await BuildNetwork.create(work);
    return { runtime: new ContainerBuildRuntime(runtime, rootfs, binds, work, net), why, notes: net.notes };
  }

  get runtimeName(): string {
    return this.rt.name;
  }

  buildpackDir(index: number): string {
    return this.inside(join(this.binds.buildpacks, String(index)));
  }

  run(step: StepRequest): Promise<StepResult> {
    const script = `${this.buildpackDir(step.buildpack)}/bin/${step.script}`;
    const args = step.script === 'compile' ? [this.appDir, this.cacheDir, this.envDir] : [this.appDir];
    const env = { ...hostNetworkEnv(), ...step.env, SLIPWAY_EXPORTS: step.exports.join(' ') };
    const config = buildConfig(this.rootfs, this.binds, ['/bin/sh', '-c', STEP_WRAPPER, 'slipway-step', script, ...args], env, this.net);
    const id = `${BUILD_CONTAINER_PREFIX}${process.pid}-${++this.counter}-${randomBytes(3).toString('hex')}`;
    return runContainer(this.rt, this.work, id, config, step.onLine, step.captureStdout);
  }

  async close(): Promise<void> {
    await this.net.remove();
    await rm(this.work, { recursive: true, force: true });
  }
}

async function runContainer(rt: OciRuntime, work: string, id: string, config: object, onLine: (l: string) => void, captureStdout: boolean): Promise<StepResult> {
  const bundle = join(work, id);
  await mkdir(bundle, { recursive: true });
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config), { mode: 0o600 }); // holds the build's env
  try {
    const lines: string[] = [];
    const r = await spawnStep(rt.name, ['--root', rt.root, 'run', '--bundle', bundle, id], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      onLine: (l) => {
        lines.push(l);
        onLine(l);
      },
      captureStdout,
    });
    if (r.code !== 0 && lines.some((l) => /^(time=.*level=error|crun: )/.test(l))) {
      throw new Error(lines.filter((l) => /level=error|crun: /.test(l)).join('\n'));
    }
    return r;
  } finally {
    await rm(bundle, { recursive: true, force: true });
  }
}
