import { spawn, spawnSync } from 'node:child_process';

/**
 * "The internet" for tests: a network namespace of the test's own behind a veth pair on
 * 198.18.K.0/30 (RFC 2544's benchmarking range), running a Node.js server script in it. Build
 * containers reach it through their NAT like any outside host; the host's loopback they cannot.
 */
export interface Internet {
  /** The server's address, inside the namespace. */
  address: string;
  /** The host's own address on the link to it (what the server sees of a NATed build). */
  host: string;
  port: number;
  /** What the script printed after "ready", a line each. */
  lines: string[];
  close(): void;
}

let made = 0;

function sh(cmd: string): void {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

/**
 * Starts `script` (Node.js source; ADDR and PORT in its environment, extra in `env`) in a fresh
 * namespace; it must print "ready" once it listens on ADDR:PORT.
 */
export async function startInternet(script: string, env: Record<string, string> = {}, port = 8080): Promise<Internet> {
  const k = (process.pid + made++) % 250;
  const ns = `slipway-test-inet-${process.pid}-${made}`;
  const link = `slwi${process.pid % 10000}x${made}`;
  const host = `198.18.${k}.1`;
  const address = `198.18.${k}.2`;
  const remove = (): void => {
    spawnSync('ip', ['netns', 'delete', ns]);
    spawnSync('ip', ['link', 'delete', link]);
  };
  sh(`ip netns add ${ns} && ip link add ${link} type veth peer name ${link}c && ip link set ${link}c netns ${ns} name eth0`);
  sh(`ip addr add ${host}/30 dev ${link} && ip link set ${link} up && ip -n ${ns} addr add ${address}/30 dev eth0 && ip -n ${ns} link set eth0 up && ip -n ${ns} link set lo up`);
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
    env: { ...process.env, ...env, ADDR: address, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let rest = '';
  let ready: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const l of parts) if (l === 'ready') ready();
    else lines.push(l);
  });
  const died = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the internet's server exited (${code}) before it was ready`))));
  try {
    await Promise.race([isReady, died]);
  } catch (e) {
    remove();
    throw e;
  }
  return {
    address,
    host,
    port,
    lines,
    close: () => {
      child.kill('SIGKILL');
      remove();
    },
  };
}
