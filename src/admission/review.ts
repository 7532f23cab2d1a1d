/**
 * Kubernetes admission, as a pure function: an AdmissionReview (admission.k8s.io/v1) for a Pod or a
 * pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) in, the response out.
 * Each rule with a `pod` judgement (privileges, process, Pod Security Standards' pod.* rules) reads
 * the pod spec; images are judged by the same evaluator (through `judgeImage`, which the server
 * backs with a registry and a cache), on the platform the pod's nodeSelector pins, or every child.
 */
import { RULE_IDS, type Restrictions, type RuleId, type RuleParams } from '../restrictions/document.js';
import type { Verdict } from '../restrictions/evaluate.js';
import { containersOf, pinnedPlatform, type PinnedPlatform, type Pod, type PodSpec } from '../restrictions/pod.js';
import { RULES } from '../restrictions/rules.js';

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

/** The pod inside whatever kind of object was sent: its spec and the annotations next to it. */
export function podOf(kind: string, object: Record<string, unknown>): Pod | undefined {
  type Templated = { metadata?: { annotations?: Record<string, string> }; spec?: PodSpec };
  const spec = object.spec as Record<string, unknown> | undefined;
  if (!spec) return undefined;
  const pod = (t: Templated | undefined): Pod | undefined => (t?.spec ? { spec: t.spec, annotations: t.metadata?.annotations ?? {} } : undefined);
  switch (kind) {
    case 'Pod':
      return pod(object as Templated);
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'Job':
      return pod(spec.template as Templated | undefined);
    case 'CronJob':
      return pod((spec.jobTemplate as { spec?: { template?: Templated } } | undefined)?.spec?.template);
    default:
      return undefined;
  }
}

/** What the document's rules say about a pod (each rule's `pod` judgement), before its images are judged. */
export function judgePod(doc: Restrictions, pod: Pod, opts: { requireDigests?: boolean } = {}): Decision {
  const out: Decision = { deny: [], warn: [] };
  const rules = doc.rules as Partial<Record<RuleId, RuleParams<RuleId>>>;
  for (const id of RULE_IDS) {
    const params = rules[id];
    const judge = (RULES[id] as { pod?: (p: unknown, pod: Pod) => string[] }).pod;
    if (params && judge) for (const message of judge(params, pod)) out[params.severity].push(`${id}: ${message}`);
  }
  if (opts.requireDigests) {
    for (const { container: c, where } of containersOf(pod.spec)) {
      if (c.image && !/@sha256:[a-f0-9]{64}$/.test(c.image)) out.deny.push(`images.pinned: ${where} uses ${c.image}, not pinned by digest`);
    }
  }
  return out;
}

export function imagesOf(spec: PodSpec): string[] {
  return [...new Set(containersOf(spec).map(({ container: c }) => c.image).filter((i): i is string => !!i))];
}

/** Judges an image (by reference) for a pod, on the platform its nodeSelector pins (every child of an index otherwise). */
export type ImageJudge = (image: string, platform?: PinnedPlatform) => Promise<{ verdict: Verdict; summary: string }>;

/** The AdmissionReview response for a request; images are judged through `judgeImage`. */
export async function review(
  doc: Restrictions,
  body: AdmissionReview,
  judgeImage: ImageJudge,
  opts: { requireDigests?: boolean } = {},
): Promise<object> {
  const req = body.request;
  if (!req?.uid) throw new Error('not an AdmissionReview request (no request.uid)');
  const kind = req.kind?.kind ?? (req.object?.kind as string | undefined) ?? '';
  const pod = req.object ? podOf(kind, req.object) : undefined;
  const d: Decision = pod ? judgePod(doc, pod, opts) : { deny: [], warn: [] };
  const platform = pod && pinnedPlatform(pod.spec);
  for (const image of pod ? imagesOf(pod.spec) : []) {
    try {
      const v = await judgeImage(image, platform);
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
