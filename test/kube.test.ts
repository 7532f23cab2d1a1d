import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { Secret, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { judgePod, podOf } from '../src/admission/review.js';
import { loadRestrictions } from '../src/restrictions/source.js';
import { busyboxWebApp } from './helpers/apps.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { ok, slipway } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

type Obj = { apiVersion: string; kind: string; metadata: { name: string }; spec?: Record<string, unknown>; stringData?: Record<string, string> };
const MODELS: Record<string, new (o: Obj) => { validate: () => void }> = { Deployment, Job, Secret, Service } as never;

async function exported(args: string[]): Promise<Obj[]> {
  const home = await tempDir();
  await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
  const src = await busyboxWebApp('web: busybox httpd -f -p $PORT -h www\nworker: sleep 1000\nrelease: echo migrate\n');
  await ok(slipway(home, ['-q', 'build', src, '--app', 'shop', '--runtime', 'process']));
  await ok(slipway(home, ['-q', 'config', 'set', 'shop', 'DATABASE_URL=postgres://db/shop']));
  await ok(slipway(home, ['-q', 'scale', 'shop', 'web=3', 'worker=1']));
  const dir = join(await tempDir(), 'k8s');
  await ok(slipway(home, ['-q', 'export', 'shop', `kube:${dir}`, ...args]));
  return Promise.all((await readdir(dir)).sort().map(async (f) => parse(await readFile(join(dir, f), 'utf8')) as Obj));
}

/** The Pod Security Standards `restricted` profile, checked field by field on a pod spec. */
function restrictedViolations(spec: Record<string, unknown>): string[] {
  const out: string[] = [];
  const pod = spec as { hostNetwork?: boolean; hostPID?: boolean; hostIPC?: boolean; volumes?: Record<string, unknown>[]; securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } }; containers: { securityContext?: { allowPrivilegeEscalation?: boolean; privileged?: boolean; runAsNonRoot?: boolean; runAsUser?: number; capabilities?: { drop?: string[]; add?: string[] }; seccompProfile?: { type: string } } }[] };
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) out.push('host namespaces');
  for (const v of pod.volumes ?? []) if (!['configMap', 'secret', 'emptyDir', 'projected', 'downwardAPI', 'persistentVolumeClaim', 'ephemeral', 'csi', 'image', 'name'].some((k) => k in v) || 'hostPath' in v) out.push(`volume ${JSON.stringify(v)}`);
  for (const c of pod.containers) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) out.push('privileged');
    if (sc.allowPrivilegeEscalation !== false) out.push('allowPrivilegeEscalation');
    if (!(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot)) out.push('runAsNonRoot');
    if (sc.runAsUser === 0) out.push('runAsUser 0');
    if (!sc.capabilities?.drop?.includes('ALL')) out.push('drop ALL');
    if ((sc.capabilities?.add ?? []).some((a) => a !== 'NET_BIND_SERVICE')) out.push('add');
    if (!['RuntimeDefault', 'Localhost'].includes((sc.seccompProfile ?? pod.securityContext?.seccompProfile)?.type ?? '')) out.push('seccomp');
  }
  return out;
}

describe('slipway export APP kube:DIR', () => {
  it('writes a Deployment per process type, a Service for web, a Secret, the release Job: valid, and restricted', async () => {
    const objects = await exported(['--image-ref', 'registry.example/apps/shop:v3']);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['Deployment/shop-web', 'Deployment/shop-worker', 'Job/shop-release-v2', 'Secret/shop-config', 'Service/shop']);
    for (const o of objects) expect(() => new MODELS[o.kind]!(o).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
    const web = objects.find((o) => o.metadata.name === 'shop-web')!.spec as { replicas: number; strategy: unknown; template: { spec: { terminationGracePeriodSeconds: number; containers: { image: string; readinessProbe: unknown; envFrom: unknown }[] } } };
    expect(web.replicas).toBe(3);
    expect(web.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    expect(web.template.spec.terminationGracePeriodSeconds).toBe(30);
    expect(web.template.spec.containers[0]).toMatchObject({ image: 'registry.example/apps/shop:v3', readinessProbe: { tcpSocket: { port: 5000 } }, envFrom: [{ secretRef: { name: 'shop-config' } }] });
    expect((objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'shop-worker')!.spec as { replicas: number }).replicas).toBe(1);
    expect(objects.find((o) => o.kind === 'Secret')!.stringData).toEqual({ DATABASE_URL: 'postgres://db/shop' });
    const doc = loadRestrictions('kubernetes-restricted');
    for (const o of objects.filter((x) => x.kind === 'Deployment' || x.kind === 'Job')) {
      const pod = podOf(o.kind, o as never)!;
      expect(restrictedViolations(pod.spec as never), `${o.kind}/${o.metadata.name}`).toEqual([]);
      expect(judgePod(doc, pod, { requireDigests: false })).toEqual({ deny: [], warn: [] });
    }
  });

  it('with --slug-volume runs the stack image and mounts the slug read-only at /app as an image volume', async () => {
    const objects = await exported(['--slug-volume', '--stack-ref', 'registry.example/stacks/tiny:v1', '--slug-ref', 'registry.example/slugs/shop:v3']);
    const web = objects.find((o) => o.metadata.name === 'shop-web')!;
    expect(() => new Deployment(web as never).validate()).not.toThrow();
    const spec = (web.spec as { template: { spec: { volumes: unknown[]; containers: { image: string; volumeMounts: unknown[] }[] } } }).template.spec;
    expect(spec.containers[0]!.image).toBe('registry.example/stacks/tiny:v1');
    expect(spec.volumes).toEqual([{ name: 'slug', image: { reference: 'registry.example/slugs/shop:v3', pullPolicy: 'IfNotPresent' } }]);
    expect(spec.containers[0]!.volumeMounts).toEqual([{ name: 'slug', mountPath: '/app', subPath: 'app', readOnly: true }]);
    expect(restrictedViolations(spec as never)).toEqual([]);
  });

  it('says what is missing', async () => {
    const home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    await ok(slipway(home, ['-q', 'build', await busyboxWebApp(), '--app', 'shop', '--runtime', 'process']));
    const r = await slipway(home, ['export', 'shop', `kube:${await tempDir()}`]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/kube: needs --image-ref[\s\S]*slipway export shop docker:\/\/REG\/apps\/shop:v1/)]);
  });
});
