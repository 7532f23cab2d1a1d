// Dyno launch figures, driven through Slipway's own runtime (bundled by bench/run.mjs):
// (a) launch latency, start → the app's first output, against raw `runc run` of an equivalent
// hand-written bundle (same config, namespaces, root and limits), and against raw `crun run` of it
// where crun is what Slipway uses (run as it must be on this host: see oci-runtime.ts);
// (b) sustained launches per minute with several launches in flight.
import { spawn } from 'node:child_process';
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DynoCgroup } from '../src/runtime/cgroup.js';
import { APP_UID, appOverlay, ContainerRuntime, DEFAULT_LIMITS, dynoConfig, HostView } from '../src/runtime/container-dyno.js';
import { runtimeCommand, type OciRuntime } from '../src/runtime/oci-runtime.js';
import type { DynoSpec } from '../src/runtime/dyno.js';
import { uidRange } from '../src/release/formation.js';
import { builtRelease } from '../src/release/releases.js';
import { findStackByDigest } from '../src/stack/stacks.js';
import { unpackedStack } from '../src/stack/unpacked.js';
import { unpackedSlug } from '../src/slug/unpacked.js';
import { openDb } from '../src/store/db.js';
import type { Digest } from '../src/oci/digest.js';

const [home, app, launchesArg, secondsArg, inFlightArg] = process.argv.slice(2) as [string, string, string, string, string];
const LAUNCHES = Number(launchesArg);
const SECONDS = Number(secondsArg);
const db = openDb(home);
const rel = builtRelease(db, app);
const stack = findStackByDigest(db, rel.stack.digest)!;
const runtime = await ContainerRuntime.open(home, db, await unpackedStack(home, stack));
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

function spec(i: number, command: string): DynoSpec {
  return { app, name: `bench.${i}`, type: 'bench', command, port: 5000, release: rel, env: { PORT: '5000', DYNO: `bench.${i}` } };
}

/** Slipway: start → first byte of output; then waits for the dyno to be gone. */
async function slipwayLaunch(i: number, command: string): Promise<number> {
  const t0 = now();
  let first = 0;
  const d = await runtime.start(spec(i, command), { stdio: 'pipe', onOutput: () => (first ||= now()) });
  await d.exited;
  return first - t0;
}

// The hand-written equivalent: the same config (stack root, /app overlay of the slug under a
// fresh upper directory, same namespaces and limits), written straight into a bundle.
const base = uidRange(db, app);
const view = await HostView.open(home);
const slug = await unpackedSlug(home, rel.slug as Digest, base);
const stackRoot = await unpackedStack(home, stack);
const raw = join(home, 'dynos', 'bench-raw');

/** The raw runtimes: runc managing its cgroups, and crun as Slipway runs it, when it does. */
const raws: Record<string, OciRuntime> = { runc: { name: 'runc', root: join(raw, 'runc'), cgroups: 'runtime' } };
if (runtime.rt.name === 'crun') raws.crun = { ...runtime.rt, root: join(raw, 'crun') };

async function rawLaunch(rt: OciRuntime, i: number, command: string): Promise<number> {
  const bundle = join(raw, `b${i}`);
  await mkdir(join(bundle, 'upper'), { recursive: true });
  await mkdir(join(bundle, 'work'));
  await chown(join(bundle, 'upper'), base + APP_UID, base + APP_UID);
  await chown(join(bundle, 'work'), base, base);
  const limits = rt.cgroups === 'runtime' ? DEFAULT_LIMITS : undefined;
  await writeFile(join(bundle, 'config.json'), JSON.stringify(dynoConfig({ rootfs: view.of(stackRoot), readonlyRoot: true, mounts: [appOverlay(view, slug, bundle)], uidBase: base, hostname: 'raw', args: ['/bin/sh', '-c', command], env: ['PATH=/usr/bin:/bin', 'HOME=/app'], limits })));
  const id = `slipway-bench-raw-${process.pid}-${i}`;
  const t0 = now();
  const cg = rt.cgroups === 'slipway' ? await DynoCgroup.create(id, DEFAULT_LIMITS) : undefined;
  let first = 0;
  const [cmd, ...args] = runtimeCommand(rt, ['run', '--bundle', bundle, id], { procs: cg?.procsFiles() ?? [], ownTcpHash: rt.cgroups === 'slipway' });
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', () => (first ||= now()));
  child.stderr.on('data', () => (first ||= now()));
  await new Promise((r) => child.on('exit', r));
  await cg?.remove();
  await rm(bundle, { recursive: true, force: true });
  return first - t0;
}

const stats = (xs: number[]): { median: number; p95: number } => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, p95: s[Math.floor(s.length * 0.95)]! };
};

const ours: number[] = [];
const theirs: Record<string, number[]> = Object.fromEntries(Object.keys(raws).map((k) => [k, []]));
// Interleaved, so all see the same machine.
for (let i = 0; i < LAUNCHES; i++) {
  ours.push(await slipwayLaunch(i, 'echo started'));
  for (const [k, rt] of Object.entries(raws)) theirs[k]!.push(await rawLaunch(rt, i, 'echo started'));
}

/** Launches completed in SECONDS with `inFlight` at a time, each running `true`. */
async function sustained(launch: (i: number, c: string) => Promise<number>, inFlight: number): Promise<number> {
  const end = now() + SECONDS * 1000;
  let done = 0;
  let n = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (now() < end) {
      await launch(100000 + n++, 'true');
      done++;
    }
  }));
  return (done / SECONDS) * 60;
}
const perMinute = await sustained(slipwayLaunch, Number(inFlightArg));
const rawFigures: Record<string, { median: number; p95: number; perMinute: number }> = {};
for (const [k, rt] of Object.entries(raws)) rawFigures[k] = { ...stats(theirs[k]!), perMinute: await sustained((i, c) => rawLaunch(rt, i, c), Number(inFlightArg)) };
db.close();
console.log(JSON.stringify({ runtime: runtime.rt.name, notes: runtime.notes, ours: stats(ours), perMinute, raw: rawFigures }));
