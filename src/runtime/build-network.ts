/**
 * The network of a build: a network namespace of its own (every step of the build joins it) that
 * reaches the outside, package registries and Debian's archive, through NAT, and nothing on the
 * host itself: not its loopback services (the namespace has a loopback of its own) and not
 * anything listening on any of the host's addresses, Slipway's own listeners included.
 *
 * Each build gets a veth pair (`slipwayN` on the host, `eth0` inside) on a /30 of 10.253.0.0/16
 * (SLIPWAY_BUILD_SUBNET to choose another /16), and rules in three chains of Slipway's own,
 * each rule commented `slipway-build-N`:
 *   filter SLIPWAY-BUILD-IN  (from INPUT):       what comes in on slipwayN is refused (but DNS to
 *                                                  a resolver that is a host address);
 *   filter SLIPWAY-BUILD-FWD (from FORWARD):     slipwayN may go out, replies come back, nothing
 *                                                  else gets in, and no build reaches another;
 *   nat    SLIPWAY-BUILD-NAT (from POSTROUTING): what leaves from its /30 is masqueraded.
 * IPv6 is off on both ends (a link-local address would reach the host). The kernel must forward
 * IPv4 (net.ipv4.ip_forward): it is turned on when off, which the build says.
 *
 * A build owns N through a file in /run/slipway/build-net (created exclusively: that is the
 * allocation) naming its process; the network is removed when the build ends, even on failure,
 * and a build whose process died (SIGKILL) has its network removed by the next one.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SlipwayError } from '../errors.js';
import { ownerAlive, ownerToken } from '../store/owner-token.js';

const REGISTRY = '/run/slipway/build-net';
const CHAINS = [
  { table: 'filter', chain: 'SLIPWAY-BUILD-IN', from: 'INPUT' },
  { table: 'filter', chain: 'SLIPWAY-BUILD-FWD', from: 'FORWARD' },
  { table: 'nat', chain: 'SLIPWAY-BUILD-NAT', from: 'POSTROUTING' },
] as const;
/** /30s in a /16. */
const SLOTS = 16384;
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/** Runs a command, `input` on its stdin; the error names the command and says what it said. */
function sh(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
    // A command that reads no input may be gone before it is written to.
    child.stdin?.on('error', () => undefined).end(input);
  });
}

/** Applies `iptables-save`-format lines per table in one transaction, leaving all else as it is. */
async function restore(byTable: Map<string, string[]>): Promise<void> {
  const text = [...byTable].filter(([, lines]) => lines.length).map(([table, lines]) => `*${table}\n${lines.join('\n')}\nCOMMIT\n`).join('');
  if (text) await sh('iptables-restore', ['-w', '--noflush'], text);
}

/** The /16 builds take their /30s from. */
function base(): number[] {
  const spec = process.env.SLIPWAY_BUILD_SUBNET ?? '10.253.0.0/16';
  const m = /^(\d+)\.(\d+)\.0\.0\/16$/.exec(spec);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) throw new SlipwayError(`SLIPWAY_BUILD_SUBNET=${spec} is not a /16 (A.B.0.0/16)`);
  return [Number(m[1]), Number(m[2])];
}

interface Slot {
  n: number;
  hostIf: string;
  netns: string;
  subnet: string;
  hostIp: string;
  buildIp: string;
}

function slot(n: number): Slot {
  const [a, b] = base();
  const c = n >> 6;
  const d = (n & 63) * 4;
  return { n, hostIf: `slipway${n}`, netns: `slipway-build-${n}`, subnet: `${a}.${b}.${c}.${d}/30`, hostIp: `${a}.${b}.${c}.${d + 1}`, buildIp: `${a}.${b}.${c}.${d + 2}` };
}

/** The rules of one build, by table, in `iptables-save` form. */
function rules(s: Slot, localResolvers: string[]): Map<string, string[]> {
  const tag = `-m comment --comment ${s.netns}`;
  return new Map([
    ['filter', [
      ...localResolvers.flatMap((ns) => ['udp', 'tcp'].map((p) => `-A SLIPWAY-BUILD-IN -i ${s.hostIf} -d ${ns}/32 -p ${p} -m ${p} --dport 53 ${tag} -j ACCEPT`)),
      // Refused rather than dropped: a build that tries the host fails at once instead of hanging.
      `-A SLIPWAY-BUILD-IN -i ${s.hostIf} ${tag} -j REJECT --reject-with icmp-port-unreachable`,
      `-A SLIPWAY-BUILD-FWD -i ${s.hostIf} -o slipway+ ${tag} -j DROP`,
      `-A SLIPWAY-BUILD-FWD -i ${s.hostIf} ${tag} -j ACCEPT`,
      `-A SLIPWAY-BUILD-FWD -o ${s.hostIf} -m conntrack --ctstate RELATED,ESTABLISHED ${tag} -j ACCEPT`,
      `-A SLIPWAY-BUILD-FWD -o ${s.hostIf} ${tag} -j DROP`,
    ]],
    ['nat', [`-A SLIPWAY-BUILD-NAT -s ${s.subnet} ! -o ${s.hostIf} ${tag} -j MASQUERADE`]],
  ]);
}

/** The host's rules, `iptables-save` lines by table. */
async function saved(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  let table = '';
  for (const line of (await sh('iptables-save', [])).split('\n')) {
    if (line.startsWith('*')) out.set((table = line.slice(1)), []);
    else if (table && !line.startsWith('#') && line !== 'COMMIT') out.get(table)!.push(line);
  }
  return out;
}

/**
 * Makes Slipway's chains where missing (one `iptables -N` each, which fails harmlessly for a build
 * starting at the same moment: a chain declared in `iptables-restore` input would be flushed) and
 * returns the jumps to them, at the top of INPUT, FORWARD and POSTROUTING, still to add.
 */
async function ensureChains(host: Map<string, string[]>): Promise<Map<string, string[]>> {
  const jumps = new Map<string, string[]>();
  for (const c of CHAINS) {
    const lines = host.get(c.table) ?? [];
    if (!lines.some((l) => l.startsWith(`:${c.chain} `))) await sh('iptables', ['-w', '-t', c.table, '-N', c.chain]).catch(() => undefined);
    if (!lines.includes(`-A ${c.from} -j ${c.chain}`)) jumps.set(c.table, [...(jumps.get(c.table) ?? []), `-I ${c.from} 1 -j ${c.chain}`]);
  }
  return jumps;
}

/** Removes every rule commented with this build's tag, its namespace (and veth pair with it) and its registry file. */
async function teardown(s: Slot, host?: Map<string, string[]>): Promise<void> {
  const del = new Map<string, string[]>();
  // `iptables-save` prints a rule the way `-D` takes it.
  for (const [table, lines] of host ?? (await saved().catch(() => new Map<string, string[]>()))) {
    del.set(table, lines.filter((l) => l.startsWith('-A ') && l.includes(`--comment ${s.netns} `)).map((l) => `-D ${l.slice(3)}`));
  }
  await restore(del).catch(() => undefined);
  await sh('ip', ['netns', 'delete', s.netns]).catch(() => undefined);
  await sh('ip', ['link', 'delete', s.hostIf]).catch(() => undefined);
  await rm(join(REGISTRY, String(s.n)), { force: true });
}

/** Networks of builds whose process is gone (killed): removed. */
async function removeLeftovers(): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(REGISTRY).filter((f) => /^\d+$/.test(f));
  } catch {
    return;
  }
  let host: Map<string, string[]> | undefined;
  for (const f of names) {
    const file = join(REGISTRY, f);
    const owner = readFileSync(file, 'utf8').trim();
    // A file not written yet belongs to a build starting now, unless it has been so for a minute.
    if (owner ? !ownerAlive(owner) : Date.now() - statSync(file).mtimeMs > 60_000) await teardown(slot(Number(f)), (host ??= await saved()));
  }
}

/** The host's resolvers as a build can reach them: loopback ones (systemd-resolved's stub) are replaced by its upstreams. */
function resolvConf(): { text: string; servers: string[] } {
  const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  const servers = (t: string): string[] => [...t.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!);
  let text = read('/etc/resolv.conf');
  if (servers(text).every((s) => /^127\.|^::1$/.test(s))) text = read('/run/systemd/resolve/resolv.conf');
  const v4 = servers(text).filter((s) => /^\d+\.\d+\.\d+\.\d+$/.test(s) && !s.startsWith('127.'));
  if (v4.length === 0) throw new SlipwayError('build network: the host has no IPv4 resolver a build can reach (only loopback or IPv6 ones in /etc/resolv.conf)', { hint: 'name a resolver in /etc/resolv.conf, or build with --runtime process' });
  const kept = text.split('\n').filter((l) => !/^\s*nameserver\s/.test(l));
  return { text: `${v4.map((s) => `nameserver ${s}`).join('\n')}\n${kept.join('\n')}\n`, servers: v4 };
}

function hostAddresses(out: string): string[] {
  return [...out.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!);
}

export class BuildNetwork {
  private constructor(
    private readonly s: Slot,
    /** The namespace's path, for the runtime spec (`linux.namespaces[].path`). */
    readonly netnsPath: string,
    /** A resolv.conf the build can use, written in the build's work directory. */
    readonly resolvConf: string,
    /** What changed on the host to make it work (said once). */
    readonly notes: string[],
  ) {}

  /** Makes the build's namespace, veth pair and rules; removes those of dead builds first. */
  static async create(work: string): Promise<BuildNetwork> {
    const resolv = resolvConf();
    await mkdir(REGISTRY, { recursive: true, mode: 0o700 });
    await removeLeftovers();
    const routes = await sh('ip', ['-4', 'route', 'show']);
    let s: Slot | undefined;
    for (let n = 0; n < SLOTS && !s; n++) {
      const candidate = slot(n);
      // A /30 a host route already covers (a VPN, a LAN on the same range) is skipped.
      if (routes.split('\n').some((r) => !r.includes(` dev slipway`) && routeCovers(r.split(' ')[0] ?? '', candidate.hostIp))) continue;
      try {
        await (await open(join(REGISTRY, String(n)), 'wx')).close();
        s = candidate;
      } catch {
        // taken by another build
      }
    }
    if (!s) throw new SlipwayError(`build network: no free /30 in ${process.env.SLIPWAY_BUILD_SUBNET ?? '10.253.0.0/16'}`, { hint: 'set SLIPWAY_BUILD_SUBNET to another A.B.0.0/16' });
    await writeFile(join(REGISTRY, String(s.n)), ownerToken());
    const notes: string[] = [];
    try {
      if ((await readFile(IP_FORWARD, 'utf8')).trim() !== '1') {
        await writeFile(IP_FORWARD, '1');
        notes.push('enabled IPv4 forwarding on this host (net.ipv4.ip_forward=1) for build networks: see docs/buildpacks.md');
      }
      // Rules first: the veth pair is up only once what it may reach is settled.
      const local = hostAddresses(await sh('ip', ['-4', '-o', 'addr', 'show']));
      const add = await ensureChains(await saved());
      for (const [table, lines] of rules(s, resolv.servers.filter((ns) => local.includes(ns)))) add.set(table, [...(add.get(table) ?? []), ...lines]);
      await restore(add);
      await sh('ip', ['-batch', '-'], [`netns add ${s.netns}`, `link add ${s.hostIf} type veth peer name ${s.hostIf}c`, `link set ${s.hostIf}c netns ${s.netns} name eth0`, `addr add ${s.hostIp}/30 dev ${s.hostIf}`, ''].join('\n'));
      await writeFile(`/proc/sys/net/ipv6/conf/${s.hostIf}/disable_ipv6`, '1').catch(() => undefined);
      await sh('ip', ['-n', s.netns, '-batch', '-'], [`addr add ${s.buildIp}/30 dev eth0`, 'link set lo up', 'link set eth0 up', `route add default via ${s.hostIp}`, ''].join('\n'));
      await sh('ip', ['netns', 'exec', s.netns, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6 || true']);
      await sh('ip', ['link', 'set', s.hostIf, 'up']);
      const conf = join(work, 'resolv.conf');
      await writeFile(conf, resolv.text, { mode: 0o644 });
      return new BuildNetwork(s, `/run/netns/${s.netns}`, conf, notes);
    } catch (err) {
      await teardown(s);
      throw new SlipwayError(`cannot set up the build's network namespace: ${(err as Error).message}`, { hint: 'Slipway needs root, iproute2 and iptables for container builds; or build with --runtime process' });
    }
  }

  /** Removes the namespace, the veth pair and the rules. */
  async remove(): Promise<void> {
    await teardown(this.s);
  }
}

/** Does the route's destination (`default`, `A.B.C.D` or `A.B.C.D/len`) cover `ip`? `default` covers nothing here: it is the way out. */
function routeCovers(dest: string, ip: string): boolean {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?$/.exec(dest);
  if (!m) return false;
  const num = (a: string): number => a.split('.').reduce((acc, x) => acc * 256 + Number(x), 0);
  const block = 2 ** (32 - Number(m[2] ?? 32));
  const masked = (v: number): number => Math.floor(v / block) * block;
  return masked(num(m[1]!)) === masked(num(ip));
}
