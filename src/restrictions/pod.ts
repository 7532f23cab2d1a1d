/**
 * A Kubernetes pod as Restrictions judge it: the fields of a pod spec (and of its metadata's
 * annotations) that Pod Security Standards and Slipway's rules read. Every container counts: app,
 * init and ephemeral ones alike.
 */

export interface SecurityProfile {
  type?: string;
  localhostProfile?: string;
}

export interface ContainerSecurityContext {
  privileged?: boolean;
  runAsUser?: number;
  runAsNonRoot?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  procMount?: string;
  seccompProfile?: SecurityProfile;
  appArmorProfile?: SecurityProfile;
}

export interface PodContainer {
  name?: string;
  image?: string;
  ports?: { containerPort?: number; hostPort?: number; protocol?: string }[];
  securityContext?: ContainerSecurityContext;
}

export interface PodSpec {
  containers?: PodContainer[];
  initContainers?: PodContainer[];
  ephemeralContainers?: PodContainer[];
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  nodeSelector?: Record<string, string>;
  securityContext?: {
    runAsUser?: number;
    runAsNonRoot?: boolean;
    seccompProfile?: SecurityProfile;
    appArmorProfile?: SecurityProfile;
    sysctls?: { name?: string; value?: string }[];
  };
  volumes?: { name?: string; hostPath?: { path?: string }; persistentVolumeClaim?: unknown }[];
}

/** A pod spec with the annotations of the object (or template) it came from. */
export interface Pod {
  spec: PodSpec;
  annotations: Record<string, string>;
}

export interface PlacedContainer {
  container: PodContainer;
  /** How findings name it: `container app`, `init container setup`, `ephemeral container debug`. */
  where: string;
}

/** Every container of the pod, app, init and ephemeral, named for findings. */
export function containersOf(spec: PodSpec): PlacedContainer[] {
  const named = (list: PodContainer[] | undefined, kind: string): PlacedContainer[] => (Array.isArray(list) ? list : []).map((c) => ({ container: c, where: `${kind} ${c.name ?? '?'}` }));
  return [...named(spec.containers, 'container'), ...named(spec.initContainers, 'init container'), ...named(spec.ephemeralContainers, 'ephemeral container')];
}

/** What a nodeSelector can pin of an image's platform. */
export interface PinnedPlatform {
  os?: string;
  architecture?: string;
}

/** The platform a pod's nodeSelector pins (kubernetes.io/os, kubernetes.io/arch), if any. */
export function pinnedPlatform(spec: PodSpec): PinnedPlatform | undefined {
  const os = spec.nodeSelector?.['kubernetes.io/os'];
  const architecture = spec.nodeSelector?.['kubernetes.io/arch'];
  if (os === undefined && architecture === undefined) return undefined;
  return { ...(os !== undefined && { os }), ...(architecture !== undefined && { architecture }) };
}
