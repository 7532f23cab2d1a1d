/**
 * A release as Kubernetes objects, for when one host is not enough: a Deployment per process type
 * (replicas from the formation, rolling updates that never go below the wanted count), a Service for
 * web, the config vars in a Secret, the `release` process type as a Job, and a securityContext that
 * meets the Pod Security Standards' `restricted` profile. With a slug volume, the slug model at
 * cluster scale: containers run the stack image and mount the slug read-only at /app as an OCI
 * image volume, so a stack patch is one image reference changed cluster-wide.
 */
import { DEFAULT_PORT, LAUNCHER } from '../release/image.js';
import type { Formation } from '../release/formation.js';
import type { Release } from '../release/releases.js';
import type { SlugMetadata } from '../slug/slug.js';

export interface KubeOptions {
  /** The exported image (or, with slugVolume, the stack image). */
  imageRef: string;
  /** The slug artifact's reference, mounted at /app as an image volume. */
  slugRef?: string | undefined;
  namespace?: string | undefined;
}

type Obj = Record<string, unknown>;

const APP_UID = 1000;

function labels(app: string, type?: string): Record<string, string> {
  return { 'app.kubernetes.io/name': app, 'app.kubernetes.io/managed-by': 'slipway', ...(type && { 'slipway.dev/process-type': type }) };
}

function container(app: string, release: Release, type: string, command: string, o: KubeOptions): Obj {
  return {
    name: type,
    image: o.imageRef,
    command: ['/bin/sh', '-c', LAUNCHER, 'launcher'],
    args: ['/bin/sh', '-c', command],
    workingDir: '/app',
    env: [
      { name: 'PORT', value: String(DEFAULT_PORT) },
      { name: 'HOME', value: '/app' },
      { name: 'SLIPWAY_RELEASE', value: `v${release.version}` },
      { name: 'DYNO', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    ],
    envFrom: [{ secretRef: { name: `${app}-config` } }],
    ...(type === 'web' && {
      ports: [{ name: 'http', containerPort: DEFAULT_PORT, protocol: 'TCP' }],
      readinessProbe: { tcpSocket: { port: DEFAULT_PORT }, periodSeconds: 5, failureThreshold: 3 },
      startupProbe: { tcpSocket: { port: DEFAULT_PORT }, periodSeconds: 1, failureThreshold: 60 },
    }),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: APP_UID,
      runAsGroup: APP_UID,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    ...(o.slugRef && { volumeMounts: [{ name: 'slug', mountPath: '/app', subPath: 'app', readOnly: true }] }),
    resources: { requests: { memory: '256Mi', cpu: '100m' }, limits: { memory: '512Mi' } },
  };
}

function podSpec(app: string, release: Release, type: string, command: string, o: KubeOptions, restartPolicy: 'Always' | 'Never'): Obj {
  return {
    restartPolicy,
    terminationGracePeriodSeconds: 30,
    automountServiceAccountToken: false,
    securityContext: { runAsNonRoot: true, runAsUser: APP_UID, runAsGroup: APP_UID, fsGroup: APP_UID, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [container(app, release, type, command, o)],
    ...(o.slugRef && { volumes: [{ name: 'slug', image: { reference: o.slugRef, pullPolicy: 'IfNotPresent' } }] }),
  };
}

export function kubeManifests(app: string, release: Release, slug: SlugMetadata, formation: Formation, o: KubeOptions): Obj[] {
  const meta = (name: string, type?: string): Obj => ({ name, ...(o.namespace && { namespace: o.namespace }), labels: labels(app, type), annotations: { 'slipway.dev/release': `v${release.version}`, 'slipway.dev/slug': release.slug ?? '' } });
  const out: Obj[] = [
    { apiVersion: 'v1', kind: 'Secret', metadata: meta(`${app}-config`), type: 'Opaque', stringData: { ...release.config } },
  ];
  for (const [type, command] of Object.entries(slug.processTypes)) {
    if (type === 'release') continue;
    const replicas = formation[type] ?? (type === 'web' ? 1 : 0);
    out.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(`${app}-${type}`, type),
      spec: {
        replicas,
        selector: { matchLabels: labels(app, type) },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: { metadata: { labels: labels(app, type) }, spec: podSpec(app, release, type, command, o, 'Always') },
      },
    });
    if (type === 'web') {
      out.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: meta(app, type),
        spec: { selector: labels(app, type), ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
      });
    }
  }
  if (slug.processTypes.release) {
    out.push({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: meta(`${app}-release-v${release.version}`, 'release'),
      spec: { backoffLimit: 0, template: { metadata: { labels: labels(app, 'release') }, spec: podSpec(app, release, 'release', slug.processTypes.release, o, 'Never') } },
    });
  }
  return out;
}
