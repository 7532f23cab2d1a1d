/** What every dyno of a release is given: its name, port and the release's environment. */
import { createServer } from 'node:net';
import type { BuiltRelease } from '../release/releases.js';
import type { DynoRuntime, DynoSpec } from './dyno.js';

/** Inside a container every dyno has its own network namespace, so all listen on one port. */
const CONTAINER_PORT = 5000;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const a = srv.address();
  await new Promise((r) => srv.close(r));
  return typeof a === 'object' && a ? a.port : 0;
}

export async function dynoSpec(runtime: DynoRuntime, rel: BuiltRelease, type: string, name: string, command: string): Promise<DynoSpec> {
  const port = runtime.kind === 'container' ? CONTAINER_PORT : await freePort();
  return { app: rel.app, name, type, command, port, release: rel, env: { ...rel.config, PORT: String(port), DYNO: name, PS: name, SLIPWAY_RELEASE: `v${rel.version}` } };
}

/** run.4821, release.1234: a one-off dyno's name. */
export function oneOffName(type: string): string {
  return `${type}.${1000 + Math.floor(Math.random() * 9000)}`;
}
