import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { review, type AdmissionReview } from '../src/admission/review.js';
import { loadRestrictions } from '../src/restrictions/source.js';
import { busyboxWebApp } from './helpers/apps.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { BIN, ok, run, slipway } from './helpers/cli.js';
import { freePort, startRegistry, type Registry } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const doc = loadRestrictions('kubernetes-restricted');
const DIGEST = `@sha256:${'a'.repeat(64)}`;
const safe = { runAsNonRoot: true, runAsUser: 1000 };

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
    ['added capabilities beyond the document', pod({ containers: [container({ securityContext: { ...safe, capabilities: { add: ['NET_BIND_SERVICE', 'SYS_ADMIN'] } } })] }), /privileges\.capabilities: container app adds CAP_SYS_ADMIN$/],
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

describe('the webhook over real TLS, judging real images', () => {
  let reg: Registry;
  let hook: ChildProcess;
  afterAll(async () => {
    hook?.kill();
    await reg?.stop();
  });

  it('denies a pod running the Debian stack image (setuid root files) and allows one running a Slipway export', async () => {
    reg = await startRegistry();
    const dir = await tempDir();
    await ok(run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]));
    const home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'deb', `dir:${inject('debootstrapRootfs')}`]));
    const digest = (JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect', 'deb']))).stdout) as { digest: string }).digest;
    await ok(slipway(home, ['-q', 'image', 'copy', `stacks/deb:${digest.slice(7)}`, `docker://${reg.host}/stacks/deb:1`]));
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    await ok(slipway(home, ['-q', 'build', await busyboxWebApp(), '--app', 'web', '--stack', 'tiny', '--runtime', 'process']));
    await ok(slipway(home, ['-q', 'export', 'web', `docker://${reg.host}/apps/web:1`]));

    const port = await freePort();
    hook = spawn(process.execPath, [BIN, 'admission', '--listen', `127.0.0.1:${port}`, '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem'), '-r', 'heroku-like'], { env: { ...process.env, SLIPWAY_HOME: home } });
    await new Promise((r) => hook.stdout!.once('data', r));
    const ca = readFileSync(join(dir, 'cert.pem'));
    const post = (body: AdmissionReview): Promise<Response> => new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/validate', method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(JSON.parse(text) as Response));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
    const denied = await post(pod({ containers: [container({ image: `${reg.host}/stacks/deb:1` })] }));
    expect(denied.response.allowed).toBe(false);
    expect(denied.response.status!.message).toMatch(/image 127\.0\.0\.1:\d+\/stacks\/deb:1: files\.setuid \/usr\/bin\/\w+: setuid file owned by root/);
    const allowed = await post(pod({ containers: [container({ image: `${reg.host}/apps/web:1` })] }));
    expect(allowed.response).toMatchObject({ allowed: true });
  });
});
