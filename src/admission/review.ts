/**
 * Kubernetes admission, as a pure function: an AdmissionReview (admission.k8s.io/v1) for a Pod or a
 * pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) in, the response out.
 * The Restrictions document's privilege and process rules map onto the pod spec; images are judged
 * by the same evaluator (through `judgeImage`, which the server backs with a registry and a cache).
 */
import type { Restrictions } from '../restrictions/document.js';
import type { Verdict } from '../restrictions/evaluate.js';
import { capName, isEngineSocket } from '../restrictions/rules.js';

export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind: string };
  operation?: string;
  object?: Record<string, unknown>;
}

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
}

export interface Decision {
  deny: string[];
  warn: string[];
}

interface Container {
  name?: string;
  image?: string;
  securityContext?: { privileged?: boolean; runAsUser?: number; runAsNonRoot?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { add?: string[] } };
}
interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  ephemeralContainers?: Container[];
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: { runAsUser?: number; runAsNonRoot?: boolean };
  volumes?: { name?: string; hostPath?: { path?: string }; persistentVolumeClaim?: unknown }[];
}


/** The pod spec inside whatever kind of object was sent. */
export function podSpecOf(kind: string, object: Record<string, unknown>): PodSpec | undefined {
  const spec = object.spec as Record<string, unknown> | undefined;
  if (!spec) return undefined;
  switch (kind) {
    case 'Pod':
      return spec as PodSpec;
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'Job':
      return (spec.template as { spec?: PodSpec } | undefined)?.spec;
    case 'CronJob':
      return ((spec.jobTemplate as { spec?: { template?: { spec?: PodSpec } } } | undefined)?.spec?.template)?.spec;
    default:
      return undefined;
  }
}


/** What the document says about a pod spec, before its images are judged. */
export function judgePodSpec(doc: Restrictions, pod: PodSpec, opts: { requireDigests?: boolean } = {}): Decision {
  const out: Decision = { deny: [], warn: [] };
  const put = (rule: { severity: 'deny' | 'warn' } | undefined, id: string, message: string): void => {
    if (rule) out[rule.severity].push(`${id}: ${message}`);
  };
  const r = doc.rules;
  const containers = [...(pod.containers ?? []), ...(pod.initContainers ?? []), ...(pod.ephemeralContainers ?? [])];
  for (const c of containers) {
    const where = `container ${c.name ?? '?'}`;
    if (c.securityContext?.privileged) put(r['privileges.privileged'], 'privileges.privileged', `${where} is privileged`);
    const allowed = (r['privileges.capabilities']?.allow ?? []).map(capName);
    for (const cap of c.securityContext?.capabilities?.add ?? []) {
      if (!allowed.includes(capName(cap))) put(r['privileges.capabilities'], 'privileges.capabilities', `${where} adds ${capName(cap)}`);
    }
    const user = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
    const nonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
    if (user === 0) put(r['process.non-root'], 'process.non-root', `${where} runs as uid 0`);
    else if (user === undefined && nonRoot !== true) put(r['process.non-root'], 'process.non-root', `${where} may run as root: set runAsNonRoot: true or a non-zero runAsUser`);
    if (opts.requireDigests && c.image && !/@sha256:[a-f0-9]{64}$/.test(c.image)) out.deny.push(`images.pinned: ${where} uses ${c.image}, not pinned by digest`);
  }
  if (pod.hostNetwork) put(r['privileges.host-network'], 'privileges.host-network', 'the pod uses the host network');
  if (pod.hostPID) put(r['privileges.host-network'], 'privileges.host-network', 'the pod shares the host\'s process namespace (hostPID)');
  if (pod.hostIPC) put(r['privileges.host-network'], 'privileges.host-network', 'the pod shares the host\'s IPC namespace (hostIPC)');
  const mounts = (r['privileges.host-mounts']?.allow ?? []).map((p) => `/${p.replace(/^\/+/, '')}`);
  for (const v of pod.volumes ?? []) {
    const path = v.hostPath?.path;
    if (path !== undefined && !mounts.includes(path)) {
      put(r['privileges.host-mounts'], 'privileges.host-mounts', isEngineSocket(path) ? `volume ${v.name} mounts the container engine socket ${path}: that is root on the host` : `volume ${v.name} mounts host path ${path}`);
    }
    if (v.persistentVolumeClaim) put(r['disk.volumes'], 'disk.volumes', `volume ${v.name} is a persistent volume claim`);
  }
  return out;
}

export function imagesOf(pod: PodSpec): string[] {
  return [...new Set([...(pod.containers ?? []), ...(pod.initContainers ?? []), ...(pod.ephemeralContainers ?? [])].map((c) => c.image).filter((i): i is string => !!i))];
}

/** The AdmissionReview response for a request; images are judged through `judgeImage`. */
export async function review(
  doc: Restrictions,
  body: AdmissionReview,
  judgeImage: (image: string) => Promise<{ verdict: Verdict; summary: string }>,
  opts: { requireDigests?: boolean } = {},
): Promise<object> {
  const req = body.request;
  if (!req?.uid) throw new Error('not an AdmissionReview request (no request.uid)');
  const kind = req.kind?.kind ?? (req.object?.kind as string | undefined) ?? '';
  const pod = req.object ? podSpecOf(kind, req.object) : undefined;
  const d: Decision = pod ? judgePodSpec(doc, pod, opts) : { deny: [], warn: [] };
  for (const image of pod ? imagesOf(pod) : []) {
    try {
      const v = await judgeImage(image);
      if (v.verdict === 'deny') d.deny.push(`image ${image}: ${v.summary}`);
      else if (v.verdict === 'warn') d.warn.push(`image ${image}: ${v.summary}`);
    } catch (err) {
      d.deny.push(`image ${image}: cannot be judged (${(err as Error).message.split('\n')[0]})`);
    }
  }
  const allowed = d.deny.length === 0;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: req.uid,
      allowed,
      ...(!allowed && { status: { code: 403, reason: 'Forbidden', message: `denied by restrictions ${doc.metadata.name}: ${d.deny.join('; ')}` } }),
      ...(d.warn.length > 0 && { warnings: d.warn.map((w) => w.slice(0, 256)) }),
    },
  };
}
