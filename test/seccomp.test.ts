import { spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { dynoConfig } from '../src/runtime/container-dyno.js';
import { hasV1Controllers } from '../src/runtime/cgroup.js';
import { runtimeCommand, type OciRuntime } from '../src/runtime/oci-runtime.js';
import { seccompProfile } from '../src/runtime/seccomp.js';
import { buildpack } from './helpers/buildpacks.js';
import { ok, slipway } from './helpers/cli.js';
import { compileProbe, probeResults } from './helpers/syscall-probe.js';
import { tempDir } from './helpers/tmp.js';

/** Each class the profile blocks, and what the probe must see: EPERM, or ENOSYS for clone3 (libc then uses clone). */
const BLOCKED: Record<string, string> = {
  'unshare-user': 'EPERM',
  'unshare-mount': 'EPERM',
  'clone-newuser': 'EPERM',
  clone3: 'ENOSYS',
  setns: 'EPERM',
  keyctl: 'EPERM',
  add_key: 'EPERM',
  request_key: 'EPERM',
  bpf: 'EPERM',
  perf_event_open: 'EPERM',
  ptrace: 'EPERM',
  process_vm_readv: 'EPERM',
  init_module: 'EPERM',
  finit_module: 'EPERM',
  delete_module: 'EPERM',
  kexec_load: 'EPERM',
  reboot: 'EPERM',
  mount: 'EPERM',
  umount2: 'EPERM',
  swapon: 'EPERM',
  open_by_handle_at: 'EPERM',
  userfaultfd: 'EPERM',
  personality: 'EPERM',
  io_uring_setup: 'EPERM',
};
const ALLOWED = ['fork', 'thread-clone'];
const JDK = '/usr/lib/jvm/temurin-25-jdk-amd64';
const STACK_ROOTFS = (): string => inject('debootstrapRootfs');

let probeDir: string;
beforeAll(async () => {
  probeDir = await tempDir('slipway-probe-');
  await chmod(probeDir, 0o755);
  await compileProbe(probeDir);
  await writeFile(join(probeDir, 'Threads.java'), 'public class Threads { public static void main(String[] a) throws Exception { var ts = new java.util.ArrayList<Thread>(); for (int i = 0; i < 16; i++) { var t = new Thread(() -> {}); t.start(); ts.add(t); } for (var t : ts) t.join(); System.out.println("java threads ok " + Runtime.version().feature()); } }\n');
});

/**
 * Runs a dyno-shaped container (dynoConfig: user namespace, no capabilities, the profile) on the
 * real stack with runc or crun, the probe directory at /mnt and extra read-only binds.
 */
async function inContainer(name: 'runc' | 'crun', cmd: string, o: { binds?: Record<string, string>; seccomp?: boolean } = {}): Promise<string> {
  const dir = await tempDir('slipway-seccomp-');
  await chmod(dir, 0o755);
  const bundle = join(dir, 'bundle');
  await mkdir(bundle);
  const rt: OciRuntime = { name, root: join(dir, 'state'), cgroups: name === 'crun' && hasV1Controllers() ? 'slipway' : 'runtime' };
  const bind = (destination: string, source: string): object => ({ destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev'] });
  const config = dynoConfig({
    rootfs: STACK_ROOTFS(),
    readonlyRoot: true,
    uidBase: 0x100000 - 0x20000,
    hostname: 'probe',
    args: ['/bin/sh', '-c', cmd],
    env: ['PATH=/usr/bin:/bin', 'HOME=/tmp'],
    mounts: Object.entries({ '/mnt': probeDir, ...o.binds }).map(([d, s]) => bind(d, s)),
  }) as { process: { cwd: string }; linux: { seccomp?: unknown } };
  config.process.cwd = '/';
  if (o.seccomp === false) delete config.linux.seccomp;
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
  const id = `slipway-seccomp-test-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const [c, ...args] = runtimeCommand(rt, ['run', '--bundle', bundle, id]);
  const r = spawnSync(c!, args, { encoding: 'utf8', timeout: 60_000 });
  const [d, ...dargs] = runtimeCommand(rt, ['delete', '--force', id]);
  spawnSync(d!, dargs);
  return `${r.stdout}${r.stderr}`;
}

describe('the seccomp profile', () => {
  it('is an allowlist that leaves out every blocked class', () => {
    const p = seccompProfile('x64');
    expect(p.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(p.defaultErrnoRet).toBe(1);
    const allowed = new Set(p.syscalls.filter((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args).flatMap((s) => s.names));
    for (const name of ['unshare', 'setns', 'clone', 'clone3', 'keyctl', 'add_key', 'request_key', 'bpf', 'perf_event_open', 'ptrace', 'process_vm_readv', 'process_vm_writev', 'init_module', 'finit_module', 'delete_module', 'reboot', 'kexec_load', 'kexec_file_load', 'mount', 'umount2', 'pivot_root', 'chroot', 'swapon', 'swapoff', 'acct', 'open_by_handle_at', 'userfaultfd', 'personality', 'syslog', 'io_uring_setup', 'io_uring_enter', 'socket', 'fsopen', 'fsmount', 'move_mount', 'open_tree', 'settimeofday', 'clock_settime']) {
      expect(allowed.has(name), name).toBe(false);
    }
    expect(p.syscalls.find((s) => s.names.includes('clone3'))).toMatchObject({ action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
  });

  for (const name of ['runc', 'crun'] as const) {
    describe(`applied by ${name} to a dyno-shaped container on the real stack`, () => {
      let results: Map<string, string>;
      let status: string;
      beforeAll(async () => {
        const out = await inContainer(name, `grep -E '^Seccomp(_filters)?:' /proc/self/status; /mnt/probe ${[...ALLOWED, ...Object.keys(BLOCKED), 'compat-abi'].join(' ')}`);
        status = out;
        results = probeResults(out);
      });

      it('Seccomp: 2 (filter mode)', () => {
        expect(status).toMatch(/^Seccomp:\s+2$/m);
      });
      it('fork and thread-style clone still work', () => {
        for (const c of ALLOWED) expect(results.get(c), c).toBe('ok');
      });
      it.each(Object.entries(BLOCKED))('%s is refused (%s)', (call, errno) => {
        expect(results.get(call), `${call} in:\n${status}`).toBe(errno);
      });
      it('a call through the 32-bit ABI is refused (the filter knows the host\'s architecture only)', () => {
        expect(results.get('compat-abi')).toMatch(/^(E[A-Z]+|killed-[A-Z]+)$/);
      });
      it('unshare -Ur (util-linux, from the stack) fails, so a nested user namespace cannot mount', async () => {
        const out = await inContainer(name, 'unshare -Urm mount -t tmpfs none /tmp && echo MOUNTED; unshare -U true && echo UNSHARED; echo done');
        expect(out).toContain('done');
        expect(out).not.toMatch(/MOUNTED|UNSHARED/);
        expect(out).toMatch(/Operation not permitted/);
      });
      it('the JVM (threads, GC, JIT) and Node.js (worker threads, child processes) run', async () => {
        const out = await inContainer(name, [
          '/opt/bin/java -Xshare:auto /mnt/Threads.java',
          `/srv/${basename(process.execPath)} -e "const w=new (require('worker_threads').Worker)('process.exit(0)',{eval:true}); w.on('exit',()=>console.log('node worker ok', require('child_process').execFileSync('/bin/echo',['child ok']).toString().trim()))"`,
        ].join('; '), { binds: { '/opt': JDK, '/srv': dirname(process.execPath) } });
        expect(out).toMatch(/java threads ok \d+/);
        expect(out).toContain('node worker ok child ok');
      });
    });
  }

  it('without the profile the same probe reaches the kernel (the test can tell the difference)', async () => {
    const out = await inContainer('runc', `grep -E '^Seccomp:' /proc/self/status; /mnt/probe ${Object.keys(BLOCKED).join(' ')}`, { seccomp: false });
    expect(out).toMatch(/^Seccomp:\s+0$/m);
    const r = probeResults(out);
    // Only these two fail for lack of a capability even without a filter: every other answer above is the filter's.
    const sameWithout = Object.keys(BLOCKED).filter((c) => r.get(c) === BLOCKED[c]);
    expect(sameWithout).toEqual(['unshare-mount', 'swapon']);
  });
});

describe('dynos and build steps on the real stack run under the profile', () => {
  let home: string;
  let buildLog: string;
  beforeAll(async () => {
    home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'bookworm', `dir:${STACK_ROOTFS()}`]));
    const src = await tempDir('slipway-app-');
    await mkdir(join(src, 'bin'));
    await copyFile(join(probeDir, 'probe'), join(src, 'bin/probe'));
    await chmod(join(src, 'bin/probe'), 0o755);
    await writeFile(join(src, 'Procfile'), 'web: sleep 1000\n');
    const bp = await buildpack({
      detect: 'echo probe',
      compile: `grep -E '^Seccomp:' /proc/self/status | sed 's/^/build-step /'; "$1/bin/probe" unshare-user clone-newuser keyctl bpf ptrace mount | sed 's/^/build-step /'; unshare -Ur true || echo "build-step unshare refused"`,
      release: 'echo "--- {}"',
    });
    buildLog = (await ok(slipway(home, ['build', src, '--app', 'sec', '--buildpack', bp, '--runtime', 'container']))).stdout;
  });

  it('a build step: Seccomp: 2, and namespaces, keyrings, bpf, ptrace and mount refused', () => {
    expect(buildLog).toMatch(/build-step Seccomp:\s+2/);
    for (const c of ['unshare-user', 'clone-newuser', 'keyctl', 'bpf', 'ptrace', 'mount']) expect(buildLog).toContain(`build-step ${c} EPERM`);
    expect(buildLog).toContain('build-step unshare refused');
  });

  it('a dyno: Seccomp: 2, every class refused, and the issue\'s nested mount fails', async () => {
    const r = await slipway(home, ['run', 'sec', '--runtime', 'container', '--', `grep -E '^Seccomp:' /proc/self/status; /app/bin/probe ${Object.keys(BLOCKED).join(' ')}; unshare -Urm mount -t tmpfs none /mnt && echo MOUNTED`]);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/^Seccomp:\s+2$/m);
    const results = probeResults(out);
    for (const [call, errno] of Object.entries(BLOCKED)) expect(results.get(call), call).toBe(errno);
    expect(out).not.toContain('MOUNTED');
  });
});
