/**
 * One function per rule id, each judging a Subject (what is known about an app, slug, release or
 * image) against the rule's parameters. Rules return raw findings; the evaluator adds severity,
 * waivers and the hidden-in-lower-layer notes. Each rule also says why it exists and how to fix
 * a finding: the text output and docs/restrictions.md carry both.
 */
import type { ImageConfig } from '../oci/types.js';
import { bytesOf, type RuleId, type RuleParams } from './document.js';
import type { FileFact } from './layer-facts.js';
import type { MergedFiles, PlacedFact } from './merge.js';
import { containersOf, type Pod, type SecurityProfile } from './pod.js';
import type { Requirements } from './requirements.js';

export type SubjectKind = 'app-dir' | 'slug' | 'release' | 'image';

export interface SubjectLayer {
  digest: string;
  size: number;
  diffId?: string;
  /** Bytes once decompressed (known after a scan). */
  uncompressedSize?: number;
}

/** A stack the provider vouches for, resolved to what an image built on it starts with. */
export interface AllowedBase {
  label: string;
  manifestDigest?: string;
  layers: string[];
  diffIds: string[];
}

export interface Subject {
  kind: SubjectKind;
  name: string;
  platform?: { os: string; architecture: string; variant?: string };
  config?: NonNullable<ImageConfig['config']>;
  annotations?: Record<string, string>;
  layers: SubjectLayer[];
  /**
   * How many bottom layers the image says are its stack's (its io.slipway.base.layers annotation):
   * a claim, never trusted; base.allowed refuses an image whose claim is not a vouched stack's length.
   */
  claimedBaseLayers?: string;
  /** The stack a slug was compiled on. */
  stack?: { name: string; digest: string };
  processTypes?: Record<string, string>;
  requirements?: Requirements;
  /** Keys of the release's config vars (values are never read). */
  configVars?: string[];
  files?: MergedFiles;
}

export interface RawFinding {
  message: string;
  path?: string;
  layer?: number;
  digest?: string;
}

export interface RuleContext {
  /** The stacks the provider vouches for: base.allowed's, or without that rule, every stack on this host. */
  allowedBases: AllowedBase[];
}

/** Whether the image's bottom layers are exactly this base's, by layer digest or diff_id. */
function sitsOn(layers: SubjectLayer[], b: AllowedBase): boolean {
  const n = Math.max(b.layers.length, b.diffIds.length);
  if (n === 0 || n > layers.length || b.layers.length !== b.diffIds.length) return false;
  for (let i = 0; i < n; i++) {
    const have = [layers[i]!.digest, layers[i]!.diffId];
    if (!have.includes(b.layers[i]) && !have.includes(b.diffIds[i])) return false;
  }
  return true;
}

/** The vouched-for bases an image's bottom layers are, longest first. */
export function basesOf(layers: SubjectLayer[], bases: AllowedBase[]): AllowedBase[] {
  return bases.filter((b) => sitsOn(layers, b)).sort((a, b) => b.layers.length - a.layers.length);
}

/**
 * How many bottom layers are a stack the provider vouches for (what `scope: app` skips): matched by
 * digest against the allowed stacks, never taken from what the image says about itself.
 */
export function baseLayerCount(s: Subject, ctx: RuleContext): number {
  if (s.kind === 'slug' || s.kind === 'app-dir') return 0;
  return basesOf(s.layers, ctx.allowedBases)[0]?.layers.length ?? 0;
}

interface RuleDef<R extends RuleId> {
  /** What the rule checks, why a provider wants it, how an app fixes a finding. */
  why: string;
  fix: string;
  /** Rules over files are judged against hidden (deleted-above) entries too, as info. */
  files?: (p: RuleParams<R>, f: FileFact) => string | undefined;
  check?: (p: RuleParams<R>, s: Subject, ctx: RuleContext) => RawFinding[];
  /** What the rule says about a Kubernetes pod (the admission webhook): one message per finding. */
  pod?: (p: RuleParams<R>, pod: Pod) => string[];
}

/** `usr/bin/su` matches `/usr/bin/su`; `opt/tool/**` matches the tree. */
export function pathAllowed(path: string, allow: string[] | undefined): boolean {
  return (allow ?? []).some((a) => {
    const p = a.replace(/^\/+/, '').replace(/\/+$/, '');
    if (p.endsWith('/**')) {
      const dir = p.slice(0, -3);
      return path === dir || path.startsWith(`${dir}/`);
    }
    return path === p;
  });
}

const owner = (f: FileFact): string => (f.uid === 0 ? 'root' : `uid ${f.uid}`);
const kindOf = (f: FileFact): string => (f.type === 'dir' ? 'directory' : f.type === 'file' ? 'file' : f.type);
const fmtBytes = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`);
/** NET_ADMIN and CAP_NET_ADMIN are the same capability. */
export const capName = (c: string): string => (c.startsWith('CAP_') ? c : `CAP_${c}`);
const ENGINE_SOCKETS = ['var/run/docker.sock', 'run/docker.sock', 'run/containerd/containerd.sock', 'var/run/containerd/containerd.sock', 'run/podman/podman.sock', 'var/run/crio/crio.sock', 'run/crio/crio.sock'];
/** Whether a host path is a container engine's socket: mounting it is root on the host. */
export const isEngineSocket = (path: string): boolean => ENGINE_SOCKETS.includes(path.replace(/^\/+/, ''));

function envKeys(s: Subject): string[] {
  return [...(s.config?.Env ?? []).map((e) => e.split('=')[0]!), ...(s.configVars ?? [])];
}
function keyMatches(key: string, pattern: string): boolean {
  return pattern.endsWith('*') ? key.startsWith(pattern.slice(0, -1)) : key === pattern;
}
function portsOf(s: Subject): number[] {
  if (s.config?.ExposedPorts) return Object.keys(s.config.ExposedPorts).map((p) => Number(p.split('/')[0]));
  return s.requirements?.ports ?? [];
}
function portAllowed(port: number, allowed: (number | string)[]): boolean {
  return allowed.some((a) => {
    if (typeof a === 'number') return a === port;
    const [lo, hi] = a.split('-').map(Number);
    return port >= lo! && port <= hi!;
  });
}
/** The layers above the vouched-for stack; with none, the whole image is the app's. */
function slugBytes(s: Subject, ctx: RuleContext): number {
  return s.layers.slice(baseLayerCount(s, ctx)).reduce((a, l) => a + l.size, 0);
}

/** uid of the process user: numeric, or a name looked up in the image's own /etc/passwd. */
export function resolveUser(user: string | undefined, passwd: string | undefined): { uid?: number; error?: string } {
  const name = (user ?? '').split(':')[0]!;
  if (name === '') return { uid: 0 };
  if (/^\d+$/.test(name)) return { uid: Number(name) };
  if (passwd === undefined) return { error: `user "${name}" cannot be resolved: the image has no /etc/passwd` };
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3 && /^\d+$/.test(f[2]!)) return { uid: Number(f[2]) };
  }
  return { error: `user "${name}" is not in the image's /etc/passwd, so no runtime can resolve it` };
}

const req = (s: Subject): Requirements => s.requirements ?? {};

/** Pod Security Standards' safe sysctls: namespaced, and isolated from the node and other pods. */
export const SAFE_SYSCTLS = ['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes'];
const APPARMOR_ANNOTATION = 'container.apparmor.security.beta.kubernetes.io/';
const confined = (p: SecurityProfile | undefined): boolean => p?.type === 'RuntimeDefault' || p?.type === 'Localhost';
const profileName = (p: SecurityProfile | undefined): string => (p?.type === undefined ? 'unset' : JSON.stringify(p.type));

export const RULES: { [R in RuleId]: RuleDef<R> } = {
  'files.setuid': {
    why: 'a setuid file runs with its owner\'s uid whoever starts it: setuid-root binaries are the classic way from an app bug to root',
    fix: 'remove the file or its bit in the build (chmod u-s FILE), or list the path under allow if the provider agrees',
    files: (p, f) => ((f.mode & 0o4000) !== 0 && (p.includeDirectories || f.type !== 'dir') && (!p.rootOwnedOnly || f.uid === 0) && !pathAllowed(f.path, p.allow)
      ? `setuid ${kindOf(f)} owned by ${owner(f)} (mode ${(f.mode & 0o7777).toString(8).padStart(4, '0')})` : undefined),
  },
  'files.setgid': {
    why: 'a setgid file runs with its group whoever starts it (shadow, mail, tty groups give reach into other users\' data)',
    fix: 'remove the file or its bit (chmod g-s FILE), or list the path under allow',
    files: (p, f) => ((f.mode & 0o2000) !== 0 && (p.includeDirectories || f.type !== 'dir') && (!p.rootOwnedOnly || f.gid === 0) && !pathAllowed(f.path, p.allow)
      ? `setgid ${kindOf(f)} of gid ${f.gid} (mode ${(f.mode & 0o7777).toString(8).padStart(4, '0')})` : undefined),
  },
  'files.capabilities': {
    why: 'file capabilities (security.capability) grant privileges on exec, like a finer-grained setuid',
    fix: 'drop the xattr in the build (setcap -r FILE) or list the path under allow',
    files: (p, f) => (f.cap && !pathAllowed(f.path, p.allow) ? `${kindOf(f)} carries file capabilities (security.capability)` : undefined),
  },
  'files.devices': {
    why: 'device nodes in an image give direct access to host hardware where a runtime does not mask them; FIFOs in layers are a smell',
    fix: 'remove the node from the image; devices are the runtime\'s job (requirements.devices)',
    files: (p, f) => ((f.type === 'char' || f.type === 'block' || f.type === 'fifo') && !pathAllowed(f.path, p.allow) ? `${f.type === 'fifo' ? 'FIFO' : `${f.type} device`} in the image` : undefined),
  },
  'files.world-writable': {
    why: 'anyone in the container can change a world-writable file or plant files in such a directory',
    fix: 'chmod o-w the path in the build; scratch space belongs in /tmp',
    files: (p, f) => (f.type !== 'symlink' && (f.mode & 0o002) !== 0 && !pathAllowed(f.path, p.allow ?? ['tmp/**', 'var/tmp/**'])
      && !(f.type === 'dir' && (f.mode & 0o1000) !== 0 && p.allowSticky !== false)
      ? `world-writable ${kindOf(f)} (mode ${(f.mode & 0o7777).toString(8).padStart(4, '0')})` : undefined),
  },
  'files.owners': {
    why: 'files owned by ids outside the provider\'s range map to unexpected host users under a user namespace',
    fix: 'chown the files in the build to an id within the range',
    files: (p, f) => {
      if (p.uid && (f.uid < p.uid.min || f.uid > p.uid.max)) return `owned by uid ${f.uid}, outside ${p.uid.min}-${p.uid.max}`;
      if (p.gid && (f.gid < p.gid.min || f.gid > p.gid.max)) return `group gid ${f.gid}, outside ${p.gid.min}-${p.gid.max}`;
      return undefined;
    },
  },
  'size.image': {
    why: 'every launch on a new host moves the image; big images are slow launches and full disks',
    fix: 'use a smaller stack, add a .slugignore, drop build-time files from the slug',
    check: (p, s) => {
      if (s.kind === 'app-dir') return [];
      const out: RawFinding[] = [];
      const compressed = s.layers.reduce((a, l) => a + l.size, 0);
      const expanded = s.layers.reduce((a, l) => a + (l.uncompressedSize ?? 0), 0);
      if (p.maxCompressed !== undefined && compressed > bytesOf(p.maxCompressed)) out.push({ message: `image is ${fmtBytes(compressed)} compressed, over ${fmtBytes(bytesOf(p.maxCompressed))}` });
      if (p.maxUncompressed !== undefined && expanded > bytesOf(p.maxUncompressed)) out.push({ message: `image is ${fmtBytes(expanded)} uncompressed, over ${fmtBytes(bytesOf(p.maxUncompressed))}` });
      return out;
    },
  },
  'size.layer': {
    why: 'huge single layers defeat parallel pulls and resumable uploads',
    fix: 'split the content, or move bulky data out of the image',
    check: (p, s) => s.layers.flatMap((l, i) => {
      const out: RawFinding[] = [];
      if (p.maxCompressed !== undefined && l.size > bytesOf(p.maxCompressed)) out.push({ message: `layer is ${fmtBytes(l.size)} compressed, over ${fmtBytes(bytesOf(p.maxCompressed))}`, layer: i, digest: l.digest });
      if (p.maxUncompressed !== undefined && (l.uncompressedSize ?? 0) > bytesOf(p.maxUncompressed)) out.push({ message: `layer is ${fmtBytes(l.uncompressedSize!)} uncompressed, over ${fmtBytes(bytesOf(p.maxUncompressed))}`, layer: i, digest: l.digest });
      return out;
    }),
  },
  'size.layers': {
    why: 'overlay filesystems and registries slow down (or refuse) images with very many layers',
    fix: 'squash build steps into fewer layers',
    check: (p, s) => (s.kind !== 'app-dir' && s.layers.length > p.max ? [{ message: `${s.layers.length} layers, more than ${p.max}` }] : []),
  },
  'size.slug': {
    why: 'the slug is what every new release downloads; Heroku caps it at 500 MB',
    fix: 'add a .slugignore, prune dev dependencies, keep caches out of /app',
    check: (p, s, ctx) => {
      const n = slugBytes(s, ctx);
      return n > bytesOf(p.max) ? [{ message: `slug is ${fmtBytes(n)} compressed, over ${fmtBytes(bytesOf(p.max))}` }] : [];
    },
  },
  'base.allowed': {
    why: 'only stacks the provider patches may run: a rebase can then fix every app at once',
    fix: 'build on (or rebase onto) one of the allowed stacks',
    check: (_p, s, ctx) => {
      if (s.kind === 'app-dir') return [];
      const labels = ctx.allowedBases.map((b) => b.label).join(', ') || 'none resolved on this host';
      if (s.kind === 'slug') {
        const ok = ctx.allowedBases.some((b) => b.manifestDigest === s.stack?.digest);
        return ok ? [] : [{ message: `compiled on stack ${s.stack?.name ?? '?'} ${s.stack?.digest ?? ''}, not an allowed stack (allowed: ${labels})` }];
      }
      const on = basesOf(s.layers, ctx.allowedBases);
      if (on.length === 0) return [{ message: `the bottom layers match no allowed stack (allowed: ${labels})`, layer: 0, ...(s.layers[0] && { digest: s.layers[0].digest }) }];
      // An image that says where its stack ends must end it where an allowed stack does.
      const claim = s.claimedBaseLayers;
      if (claim === undefined || on.some((b) => String(b.layers.length) === claim)) return [];
      const b = on[0]!;
      const n = b.layers.length;
      return [{ message: `the image claims ${JSON.stringify(claim)} base layers, but its allowed stack ${b.label} has ${n}: layers from ${n} up are not the stack's`, layer: n, ...(s.layers[n] && { digest: s.layers[n].digest }) }];
    },
  },
  'base.annotations': {
    why: 'base annotations say which stack an image sits on, so a rebase (and its audit) can find it',
    fix: 'export with slipway export, or add the annotations when building the image',
    check: (p, s) => (s.kind === 'image' || s.kind === 'release'
      ? (p.require ?? ['org.opencontainers.image.base.name', 'org.opencontainers.image.base.digest']).filter((k) => !s.annotations?.[k]).map((k) => ({ message: `manifest annotation ${k} is missing` }))
      : []),
  },
  'platform.allowed': {
    why: 'the provider\'s hosts run these platforms only',
    fix: 'build for an allowed platform',
    check: (p, s) => {
      const plat = s.platform ?? (s.requirements?.arch || s.requirements?.os
        ? { os: s.requirements.os ?? 'linux', architecture: (s.requirements.arch ?? '').split('/')[0]!, variant: (s.requirements.arch ?? '').split('/')[1] } : undefined);
      if (!plat) return [];
      const arch = plat.architecture === 'aarch64' ? 'arm64' : plat.architecture === 'x86_64' ? 'amd64' : plat.architecture;
      const ok = p.platforms.some((a) => {
        const [os, ar, variant] = a.split('/');
        return os === plat.os && (ar === arch || (!ar)) && (variant === undefined || variant === plat.variant);
      });
      const name = `${plat.os}/${arch}${plat.variant ? `/${plat.variant}` : ''}`;
      return ok ? [] : [{ message: `platform ${name} is not allowed (allowed: ${p.platforms.join(', ')})` }];
    },
  },
  'process.non-root': {
    why: 'root in a container is one kernel bug away from root on the host',
    fix: 'set USER to a numeric non-zero uid (Slipway\'s exports run as 1000), and drop requirements.root',
    check: (_p, s) => {
      const out: RawFinding[] = [];
      if (s.requirements?.root) out.push({ message: 'app.json requires running as root', path: 'app/app.json' });
      if (s.config && (s.kind === 'image' || s.kind === 'release')) {
        const r = resolveUser(s.config.User, s.files?.captured['etc/passwd']);
        if (r.error) out.push({ message: r.error, path: 'etc/passwd' });
        else if (r.uid === 0) out.push({ message: s.config.User ? `USER ${s.config.User} is uid 0` : 'no USER: the process runs as root' });
      }
      return out;
    },
    pod: (_p, { spec }) => containersOf(spec).flatMap(({ container: c, where }) => {
      const user = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
      const nonRoot = c.securityContext?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot;
      if (user === 0) return [`${where} runs as uid 0`];
      return user === undefined && nonRoot !== true ? [`${where} may run as root: set runAsNonRoot: true or a non-zero runAsUser`] : [];
    }),
  },
  'process.command': {
    why: 'a provider must know what to run',
    fix: 'set ENTRYPOINT or CMD, or declare process types in a Procfile',
    check: (_p, s) => {
      if (s.kind === 'app-dir') return [];
      if (s.config && (s.config.Entrypoint?.length || s.config.Cmd?.length)) return [];
      if (!s.config && s.processTypes && Object.keys(s.processTypes).length > 0) return [];
      return [{ message: s.config ? 'neither Entrypoint nor Cmd is set' : 'no process types (no Procfile and no buildpack default)' }];
    },
  },
  'process.env': {
    why: 'some variables change what the loader or runtime does (LD_PRELOAD) or leak secrets into images',
    fix: 'remove the variable from the image config (or config vars); set required ones',
    check: (p, s) => {
      const keys = envKeys(s);
      const out: RawFinding[] = [];
      for (const k of keys) for (const f of p.forbidden ?? []) if (keyMatches(k, f)) out.push({ message: `environment sets ${k}, which matches forbidden ${f}` });
      if (s.kind !== 'app-dir') for (const r of p.required ?? []) if (!keys.includes(r)) out.push({ message: `environment lacks required ${r}` });
      return out;
    },
  },
  'process.memory': {
    why: 'a dyno gets the memory its size has; an app needing more will be killed',
    fix: 'lower requirements.memory or pick a provider with bigger dynos',
    check: (p, s) => (s.requirements?.memory !== undefined && bytesOf(s.requirements.memory) > bytesOf(p.max)
      ? [{ message: `app.json asks for ${fmtBytes(bytesOf(s.requirements.memory))} of memory, more than ${fmtBytes(bytesOf(p.max))}`, path: 'app/app.json' }] : []),
  },
  'network.ports': {
    why: 'a dyno gets one port, $PORT, reached through the router; other ports are unreachable',
    fix: 'listen on $PORT only; remove EXPOSE of other ports and requirements.ports',
    check: (p, s) => {
      const out: RawFinding[] = [];
      const ports = portsOf(s);
      // Without an image config, the app listens on $PORT plus whatever app.json asks for.
      const names = [...(s.config ? [] : ['$PORT']), ...ports.map(String)];
      if (p.max !== undefined && names.length > p.max) out.push({ message: `${names.length} ports (${names.join(', ')}), more than ${p.max}` });
      if (p.allowed) for (const port of ports) if (!portAllowed(port, p.allowed)) out.push({ message: `port ${port} is not allowed (allowed: ${p.allowed.join(', ')})` });
      if (p.requirePort) {
        if (s.config && (s.kind === 'image' || s.kind === 'release') && !envKeys(s).includes('PORT')) out.push({ message: 'no PORT in the environment: web processes must listen on $PORT' });
        if (s.requirements?.ports?.length) out.push({ message: `app.json wants fixed ports ${s.requirements.ports.join(', ')}; web processes must listen on $PORT`, path: 'app/app.json' });
      }
      return out;
    },
  },
  'disk.volumes': {
    why: 'dynos have ephemeral disk only: whatever is written is gone at the next restart',
    fix: 'remove VOLUME from the image and requirements.disk.persistent; keep state in a backing service',
    check: (_p, s) => [
      ...Object.keys(s.config?.Volumes ?? {}).map((v) => ({ message: `VOLUME ${v} asks for persistent disk`, path: v.replace(/^\/+/, '') })),
      ...(s.requirements?.disk?.persistent ? [{ message: 'app.json requires persistent disk', path: 'app/app.json' }] : []),
    ],
    pod: (_p, { spec }) => (spec.volumes ?? []).filter((v) => v.persistentVolumeClaim).map((v) => `volume ${v.name} is a persistent volume claim`),
  },
  'privileges.capabilities': {
    why: 'dynos run with no capabilities; each one added widens the kernel surface',
    fix: 'remove the capability from requirements.capabilities',
    check: (p, s) => (req(s).capabilities ?? []).map(capName).filter((c) => !(p.allow ?? []).map(capName).includes(c))
      .map((c) => ({ message: `app.json requests ${c}, not allowed${p.allow?.length ? ` (allowed: ${p.allow.map(capName).join(', ')})` : ''}`, path: 'app/app.json' })),
    pod: (p, pod) => containersOf(pod.spec).flatMap(({ container: c, where }) => (c.securityContext?.capabilities?.add ?? [])
      .filter((cap) => !(p.allow ?? []).map(capName).includes(capName(cap))).map((cap) => `${where} adds ${capName(cap)}`)),
  },
  'privileges.devices': {
    why: 'host devices bypass the container\'s isolation',
    fix: 'remove the device from requirements.devices',
    check: (p, s) => (req(s).devices ?? []).filter((d) => !pathAllowed(d.replace(/^\/+/, ''), p.allow))
      .map((d) => ({ message: `app.json requests host device ${d}`, path: 'app/app.json' })),
  },
  'privileges.host-mounts': {
    why: 'host mounts reach outside the container; the engine socket is root on the host',
    fix: 'remove the path from requirements.hostMounts',
    check: (p, s) => (req(s).hostMounts ?? []).filter((m) => !pathAllowed(m.replace(/^\/+/, ''), p.allow))
      .map((m) => ({ message: isEngineSocket(m) ? `app.json mounts the container engine socket ${m}: that is root on the host` : `app.json requests host mount ${m}`, path: 'app/app.json' })),
    pod: (p, pod) => (pod.spec.volumes ?? []).flatMap((v) => {
      const path = v.hostPath?.path;
      if (path === undefined || pathAllowed(path.replace(/^\/+/, ''), p.allow)) return [];
      return [isEngineSocket(path) ? `volume ${v.name} mounts the container engine socket ${path}: that is root on the host` : `volume ${v.name} mounts host path ${path}`];
    }),
  },
  'privileges.privileged': {
    why: 'a privileged container is the host',
    fix: 'remove requirements.privileged',
    check: (_p, s) => (req(s).privileged ? [{ message: 'app.json requests privileged mode', path: 'app/app.json' }] : []),
    pod: (_p, pod) => containersOf(pod.spec).filter(({ container: c }) => c.securityContext?.privileged).map(({ where }) => `${where} is privileged`),
  },
  'privileges.host-network': {
    why: 'the host network lets a dyno reach every host service and bypass the router',
    fix: 'remove requirements.hostNetwork; listen on $PORT behind the router',
    check: (_p, s) => (req(s).hostNetwork ? [{ message: 'app.json requests the host network', path: 'app/app.json' }] : []),
    pod: (_p, { spec }) => [
      ...(spec.hostNetwork ? ['the pod uses the host network'] : []),
      ...(spec.hostPID ? ['the pod shares the host\'s process namespace (hostPID)'] : []),
      ...(spec.hostIPC ? ['the pod shares the host\'s IPC namespace (hostIPC)'] : []),
    ],
  },
  'pod.host-ports': {
    why: 'a host port binds the node\'s own address: it bypasses the Service and network policy, and two pods cannot share a node',
    fix: 'remove hostPort from the container\'s ports; expose the pod through a Service',
    pod: (p, { spec }) => containersOf(spec).flatMap(({ container: c, where }) => (c.ports ?? [])
      .filter((port) => (port.hostPort ?? 0) !== 0 && !(p.allow ?? []).includes(port.hostPort!)).map((port) => `${where} binds host port ${port.hostPort}`)),
  },
  'pod.privilege-escalation': {
    why: 'unless allowPrivilegeEscalation is false, a process can gain privileges its parent lacks (setuid binaries, file capabilities): no_new_privs is off',
    fix: 'set securityContext.allowPrivilegeEscalation: false on every container',
    pod: (_p, { spec }) => containersOf(spec).filter(({ container: c }) => c.securityContext?.allowPrivilegeEscalation !== false)
      .map(({ container: c, where }) => `${where} ${c.securityContext?.allowPrivilegeEscalation ? 'allows' : 'does not forbid'} privilege escalation (set allowPrivilegeEscalation: false)`),
  },
  'pod.capabilities-drop': {
    why: 'a container keeps the runtime\'s default capabilities (CAP_NET_RAW, CAP_CHOWN, CAP_SETUID...) unless it drops them',
    fix: 'set securityContext.capabilities.drop: [ALL] on every container, adding back only what the provider allows',
    pod: (_p, { spec }) => containersOf(spec).filter(({ container: c }) => !(c.securityContext?.capabilities?.drop ?? []).includes('ALL'))
      .map(({ where }) => `${where} does not drop ALL capabilities`),
  },
  'pod.seccomp': {
    why: 'without a seccomp profile every system call reaches the kernel (Unconfined): the kernel surface is the container\'s to probe',
    fix: 'set securityContext.seccompProfile.type: RuntimeDefault (or Localhost) on the pod or every container',
    pod: (_p, { spec }) => [
      ...(spec.securityContext?.seccompProfile && !confined(spec.securityContext.seccompProfile) ? [`the pod sets seccomp profile ${profileName(spec.securityContext.seccompProfile)}`] : []),
      ...containersOf(spec).flatMap(({ container: c, where }) => {
        const own = c.securityContext?.seccompProfile;
        if (own) return confined(own) ? [] : [`${where} sets seccomp profile ${profileName(own)}`];
        return confined(spec.securityContext?.seccompProfile) ? [] : [`${where} has no seccomp profile (RuntimeDefault or Localhost), on itself or the pod`];
      }),
    ],
  },
  'pod.proc-mount': {
    why: 'an Unmasked /proc exposes the kernel paths runtimes mask (/proc/kcore, /proc/sysrq-trigger...)',
    fix: 'remove securityContext.procMount or set it to Default',
    pod: (_p, { spec }) => containersOf(spec).filter(({ container: c }) => (c.securityContext?.procMount ?? 'Default') !== 'Default')
      .map(({ container: c, where }) => `${where} sets procMount ${JSON.stringify(c.securityContext!.procMount)}`),
  },
  'pod.sysctls': {
    why: 'sysctls outside the safe set change the node\'s kernel for every pod on it',
    fix: `set only the safe sysctls (${SAFE_SYSCTLS.join(', ')}), or ask the provider to allow one`,
    pod: (p, { spec }) => (spec.securityContext?.sysctls ?? []).map((x) => x.name ?? '')
      .filter((name) => !SAFE_SYSCTLS.includes(name) && !(p.allow ?? []).includes(name)).map((name) => `the pod sets sysctl ${JSON.stringify(name)}, which is not in the safe set`),
  },
  'pod.apparmor': {
    why: 'an Unconfined (or unknown) AppArmor profile turns off the runtime\'s confinement of the container',
    fix: 'use runtime/default or localhost/NAME (annotations), or appArmorProfile.type RuntimeDefault or Localhost; never unconfined',
    pod: (_p, { spec, annotations }) => [
      ...Object.entries(annotations).filter(([k, v]) => k.startsWith(APPARMOR_ANNOTATION) && v !== 'runtime/default' && !v.startsWith('localhost/'))
        .map(([k, v]) => `annotation ${k} is ${JSON.stringify(v)} (only runtime/default or localhost/*)`),
      ...(spec.securityContext?.appArmorProfile && !confined(spec.securityContext.appArmorProfile) ? [`the pod sets AppArmor profile ${profileName(spec.securityContext.appArmorProfile)}`] : []),
      ...containersOf(spec).filter(({ container: c }) => c.securityContext?.appArmorProfile && !confined(c.securityContext.appArmorProfile))
        .map(({ container: c, where }) => `${where} sets AppArmor profile ${profileName(c.securityContext!.appArmorProfile)}`),
    ],
  },
};

export type { PlacedFact };
