import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { review, type AdmissionReview } from '../src/admission/review.js';
import { RULE_IDS } from '../src/restrictions/document.js';
import { loadRestrictions } from '../src/restrictions/source.js';
import { busyboxWebApp } from './helpers/apps.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { BIN, ok, run, slipway } from './helpers/cli.js';
import { freePort, startRegistry, type Registry } from './helpers/registry.js';
import { fileEntry, tarOf, writeImage, writeIndex } from './helpers/images.js';
import { tempDir } from './helpers/tmp.js';

const doc = loadRestrictions('kubernetes-restricted');
const DIGEST = `@sha256:${'a'.repeat(64)}`;
/** A container security context Pod Security Standards "restricted" accepts. */
const safe = { runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } };

function reviewOf(kind: string, object: Record<string, unknown>): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: `uid-${kind}`, kind: { group: '', version: 'v1', kind }, operation: 'CREATE', object } };
}
const pod = (spec: Record<string, unknown>): AdmissionReview => reviewOf('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec });
const container = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ name: 'app', image: `reg.example/app${DIGEST}`, securityContext: { ...safe }, ...extra });
type Response = { response: { uid: string; allowed: boolean; status?: { code: number; message: string }; warnings?: string[] } };
const allowImages = async (): Promise<{ verdict: 'allow'; summary: string }> => ({ verdict: 'allow', summary: 'allowed' });

describe('admission reviews, denial by denial', () => {
  const cases: [string, AdmissionReview, RegExp][] = [
    ['privileged', pod({ containers: [container({ securityContext: { ...safe, privileged: true } })] }), /privileges\.privileged: container app is privileged/],
    ['added capabilities beyond the document', pod({ containers: [container({ securityContext: { ...safe, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE', 'SYS_ADMIN'] } } })] }), /privileges\.capabilities: container app adds CAP_SYS_ADMIN$/],
    ['a hostPath', pod({ containers: [container()], volumes: [{ name: 'logs', hostPath: { path: '/var/log' } }] }), /privileges\.host-mounts: volume logs mounts host path \/var\/log/],
    ['the engine socket, by name', pod({ containers: [container()], volumes: [{ name: 'sock', hostPath: { path: '/var/run/docker.sock' } }] }), /mounts the container engine socket \/var\/run\/docker\.sock/],
    ['host network', pod({ hostNetwork: true, containers: [container()] }), /privileges\.host-network: the pod uses the host network/],
    ['host PID', pod({ hostPID: true, containers: [container()] }), /hostPID/],
    ['running as root', pod({ containers: [container({ securityContext: { runAsUser: 0 } })] }), /process\.non-root: container app runs as uid 0/],
    ['maybe root (no runAsNonRoot, no user)', pod({ containers: [container({ securityContext: {} })] }), /container app may run as root/],
    ['a Deployment\'s template', reviewOf('Deployment', { spec: { template: { spec: { containers: [container({ securityContext: { ...safe, privileged: true } })] } } } }), /container app is privileged/],
    ['a CronJob\'s job template', reviewOf('CronJob', { spec: { jobTemplate: { spec: { template: { spec: { hostIPC: true, containers: [container()] } } } } } }), /hostIPC/],
  ];
  for (const [what, input, message] of cases) {
    it(`denies ${what}`, async () => {
      const out = (await review(doc, input, allowImages)) as Response;
      expect(out.response.uid).toBe(input.request!.uid);
      expect(out.response.allowed).toBe(false);
      expect(out.response.status!.code).toBe(403);
      expect(out.response.status!.message).toMatch(message);
    });
  }

  it('allows what Pod Security Standards allow: safe sysctls, runtime/default and localhost AppArmor, Localhost seccomp, a declared containerPort', async () => {
    const out = (await review(doc, reviewOf('Pod', {
      metadata: { name: 'ok', annotations: { 'container.apparmor.security.beta.kubernetes.io/app': 'runtime/default', 'container.apparmor.security.beta.kubernetes.io/side': 'localhost/k8s-nginx' } },
      spec: {
        securityContext: { sysctls: [{ name: 'net.ipv4.tcp_syncookies', value: '1' }, { name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }], seccompProfile: { type: 'Localhost', localhostProfile: 'p.json' } },
        containers: [container({ ports: [{ containerPort: 8080 }] }), container({ name: 'side', securityContext: { ...safe, seccompProfile: undefined, procMount: 'Default', appArmorProfile: { type: 'RuntimeDefault' } } })],
      },
    }), allowImages)) as Response;
    expect(out.response).toMatchObject({ allowed: true });
  });

  it('denies images not pinned by digest when required, and images whose verdict is deny', async () => {
    const unpinned = (await review(doc, pod({ containers: [container({ image: 'reg.example/app:latest' })] }), allowImages, { requireDigests: true })) as Response;
    expect(unpinned.response.status!.message).toMatch(/images\.pinned: container app uses reg\.example\/app:latest, not pinned by digest/);
    const bad = (await review(doc, pod({ containers: [container()] }), async () => ({ verdict: 'deny', summary: 'files.setuid /usr/bin/su: setuid file owned by root' }))) as Response;
    expect(bad.response.status!.message).toMatch(/image reg\.example\/app@sha256:a+: files\.setuid \/usr\/bin\/su/);
  });

  it('allows a compliant pod, with warn rules as warnings', async () => {
    const out = (await review(doc, pod({ containers: [container()], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'x' } }] }), allowImages)) as Response;
    expect(out.response.allowed).toBe(true);
    expect(out.response.status).toBeUndefined();
    expect(out.response.warnings).toEqual(['disk.volumes: volume data is a persistent volume claim']);
  });
});

describe('Pod Security Standards (restricted and baseline) as pod.* rules, in every kind of container', () => {
  const cases: [string, AdmissionReview, RegExp][] = [
    ['pod.host-ports', pod({ containers: [container({ ports: [{ containerPort: 80, hostPort: 80 }] })] }), /pod\.host-ports: container app binds host port 80/],
    ['pod.privilege-escalation', pod({ containers: [container()], initContainers: [container({ name: 'setup', securityContext: { ...safe, allowPrivilegeEscalation: true } })] }), /pod\.privilege-escalation: init container setup allows privilege escalation/],
    ['pod.capabilities-drop', pod({ containers: [container()], ephemeralContainers: [container({ name: 'debug', securityContext: { ...safe, capabilities: {} } })] }), /pod\.capabilities-drop: ephemeral container debug does not drop ALL capabilities/],
    ['pod.seccomp', pod({ securityContext: { seccompProfile: { type: 'Unconfined' } }, containers: [container({ securityContext: { ...safe, seccompProfile: undefined } })] }), /pod\.seccomp: the pod sets seccomp profile "Unconfined"; pod\.seccomp: container app has no seccomp profile/],
    ['pod.proc-mount', pod({ containers: [container({ securityContext: { ...safe, procMount: 'Unmasked' } })] }), /pod\.proc-mount: container app sets procMount "Unmasked"/],
    ['pod.sysctls', pod({ securityContext: { sysctls: [{ name: 'net.ipv4.tcp_syncookies', value: '1' }, { name: 'kernel.msgmax', value: '65536' }] }, containers: [container()] }), /^[^;]*pod\.sysctls: the pod sets sysctl "kernel\.msgmax", which is not in the safe set$/],
    ['pod.apparmor', reviewOf('Deployment', { spec: { template: { metadata: { annotations: { 'container.apparmor.security.beta.kubernetes.io/app': 'unconfined' } }, spec: { containers: [container({ securityContext: { ...safe, appArmorProfile: { type: 'Unconfined' } } })] } } } }),
      /pod\.apparmor: annotation container\.apparmor\.security\.beta\.kubernetes\.io\/app is "unconfined" \(only runtime\/default or localhost\/\*\); pod\.apparmor: container app sets AppArmor profile "Unconfined"/],
  ];

  it('has a case for every pod.* rule, and each is in the kubernetes-restricted preset', () => {
    const podRules = RULE_IDS.filter((id) => id.startsWith('pod.'));
    expect(cases.map(([id]) => id).sort()).toEqual([...podRules].sort());
    for (const id of podRules) expect(doc.rules[id], id).toEqual({ severity: 'deny' });
  });
  for (const [id, input, message] of cases) {
    it(`denies ${id}`, async () => {
      const out = (await review(doc, input, allowImages)) as Response;
      expect(out.response.allowed).toBe(false);
      expect(out.response.status!.message.replace(/^denied by restrictions kubernetes-restricted: /, '')).toMatch(message);
      // Under permissive, the same pod is let through with the finding as a warning.
      const warned = (await review(loadRestrictions('permissive'), input, allowImages)) as Response;
      expect(warned.response.allowed).toBe(true);
      expect(warned.response.warnings!.join('\n')).toContain(`${id}: `);
    });
  }
});

describe('the webhook over real TLS, judging real images', () => {
  let reg: Registry;
  let hook: ChildProcess;
  let port: number;
  let ca: Buffer;
  let home: string;
  afterAll(async () => {
    hook?.kill();
    await reg?.stop();
  });

  beforeAll(async () => {
    reg = await startRegistry();
    const dir = await tempDir();
    await ok(run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]));
    home = await tempDir();
    port = await freePort();
    // The webhook's own home has no stacks: it vouches for none, so every layer is judged.
    hook = spawn(process.execPath, [BIN, 'admission', '--listen', `127.0.0.1:${port}`, '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem'), '-r', 'heroku-like'], { env: { ...process.env, SLIPWAY_HOME: await tempDir() } });
    await new Promise((r) => hook.stdout!.once('data', r));
    ca = readFileSync(join(dir, 'cert.pem'));
  });

  /** POSTs a body (bytes, or a stream of them) to /validate; the status and the answer's text. */
  const send = (body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> => new Promise((resolve, reject) => {
    // A connection of its own: a request cut short must not leave its socket to the next one.
    const req = request({ host: '127.0.0.1', port, path: '/validate', method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, text });
        if (!req.writableFinished) req.destroy();
      });
    });
    req.on('error', reject);
    req.end(body);
  });
  /** Streams `mib` MiB of chunked body over a TLS socket of its own, to the end whatever the answer; the answer's status line. */
  const flood = async (mib: number): Promise<string> => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca });
    await once(socket, 'secureConnect');
    let answer = '';
    socket.on('data', (c: Buffer) => (answer += c.toString()));
    socket.write('POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = Buffer.concat([Buffer.from('100000\r\n'), Buffer.alloc(1024 * 1024, 0x20), Buffer.from('\r\n')]);
    for (let i = 0; i < mib; i++) if (!socket.write(chunk)) await once(socket, 'drain');
    socket.end('0\r\n\r\n');
    await once(socket, 'close');
    return answer.split('\r\n')[0]!;
  };
  const post = async (body: AdmissionReview): Promise<Response> => JSON.parse((await send(Buffer.from(JSON.stringify(body)))).text) as Response;
  const peak = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${hook.pid}/status`, 'utf8'))![1]) * 1024;

  it('denies a pod running the Debian stack image (setuid root files) and allows one running a Slipway export', async () => {
    await ok(slipway(home, ['-q', 'stack', 'import', 'deb', `dir:${inject('debootstrapRootfs')}`]));
    const digest = (JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect', 'deb']))).stdout) as { digest: string }).digest;
    await ok(slipway(home, ['-q', 'image', 'copy', `stacks/deb:${digest.slice(7)}`, `docker://${reg.host}/stacks/deb:1`]));
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    await ok(slipway(home, ['-q', 'build', await busyboxWebApp(), '--app', 'web', '--stack', 'tiny', '--runtime', 'process']));
    await ok(slipway(home, ['-q', 'export', 'web', `docker://${reg.host}/apps/web:1`]));
    const denied = await post(pod({ containers: [container({ image: `${reg.host}/stacks/deb:1` })] }));
    expect(denied.response.allowed).toBe(false);
    expect(denied.response.status!.message).toMatch(/image 127\.0\.0\.1:\d+\/stacks\/deb:1: files\.setuid \/usr\/bin\/\w+: setuid file owned by root/);
    const allowed = await post(pod({ containers: [container({ image: `${reg.host}/apps/web:1` })] }));
    expect(allowed.response).toMatchObject({ allowed: true });
  });

  it('judges an index by every child, or by the platform the pod\'s nodeSelector pins', async () => {
    const dir = join(await tempDir(), 'oci');
    const config = { User: '1000', Env: ['PORT=5000'], ExposedPorts: { '5000/tcp': {} } };
    const clean = await writeImage(dir, 'amd', [await tarOf([fileEntry('bin/tool', 'x', { mode: 0o755 })])], { config });
    const suid = await writeImage(dir, 'arm', [await tarOf([fileEntry('bin/tool', 'x', { mode: 0o4755 })])], { arch: 'arm64', config });
    await writeIndex(dir, 'mixed', [{ image: clean, arch: 'amd64' }, { image: suid, arch: 'arm64' }]);
    await ok(run('skopeo', ['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${dir}:mixed`, `docker://${reg.host}/multi/app:1`]));
    const image = `${reg.host}/multi/app:1`;
    const on = (nodeSelector?: Record<string, string>): AdmissionReview => pod({ ...(nodeSelector && { nodeSelector }), containers: [container({ image })] });
    const any = await post(on());
    expect([any.response.allowed, any.response.status?.message]).toEqual([false, expect.stringMatching(/image 127\.0\.0\.1:\d+\/multi\/app:1: files\.setuid \/bin\/tool/)]);
    expect((await post(on({ 'kubernetes.io/arch': 'arm64' }))).response.allowed).toBe(false);
    expect((await post(on({ 'kubernetes.io/arch': 'amd64', 'kubernetes.io/os': 'linux' }))).response).toMatchObject({ allowed: true });
    const none = await post(on({ 'kubernetes.io/arch': 's390x' }));
    expect(none.response.status!.message).toMatch(/no image in the index for \*\/s390x/);

    // A child a node could pick once it normalises names as containerd does (AMD64 is amd64, an
    // empty os is the node's own) is judged under the pin too, wherever it sits in the index.
    for (const [tag, odd] of [['shouty', { arch: 'AMD64' }], ['no-os', { arch: 'amd64', os: '' }]] as const) {
      await writeIndex(dir, tag, [{ image: suid, ...odd }, { image: clean, arch: 'amd64' }]);
      await ok(run('skopeo', ['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${dir}:${tag}`, `docker://${reg.host}/multi/${tag}:1`]));
      const pinned = await post(pod({ nodeSelector: { 'kubernetes.io/arch': 'amd64' }, containers: [container({ image: `${reg.host}/multi/${tag}:1` })] }));
      expect([tag, pinned.response.allowed]).toEqual([tag, false]);
    }
  });

  it('refuses a body over 3 MiB with 413 without holding it: a 600 MB review neither crashes nor balloons the webhook', async () => {
    const before = peak();
    const declared = await send(Buffer.alloc(0), { 'content-length': String(600 * 1024 * 1024) }).catch((err: Error) => ({ status: 0, text: err.message }));
    expect(declared.status).toBe(413);
    // Chunked, no length: refused once 3 MiB are in; the other 597 MB are read and dropped as they come.
    expect(await flood(600)).toBe('HTTP/1.1 413 Payload Too Large');
    expect(peak() - before).toBeLessThan(64 * 1024 * 1024);
    expect(hook.exitCode).toBeNull();
    // Still up, and answering.
    expect((await post(pod({ containers: [{ name: 'app', securityContext: safe }] }))).response).toMatchObject({ allowed: true });
  });
});
