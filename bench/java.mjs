#!/usr/bin/env node
// Java figures, in one run on this machine:
// (a) building examples/java-war with an empty cache, then again with the Maven cache (~/.m2 kept
//     in the build cache), offline against Debian's packaged Maven repository;
// (b) WAR boot time, dyno start → first HTTP 200, median of 20, against `java -jar` of the same
//     servlet container and WAR (the slug's JRE and Jetty runner) straight on the host.
//
//   npm run bench:java
//   SLIPWAY_BENCH_JAVA_ROOTFS=DIR SLIPWAY_BENCH_BOOTS=20 npm run bench:java
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleEntry, freePort, log, work } from './lib.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/slipway.js');
const BOOTS = process.env.SLIPWAY_BENCH_BOOTS ?? '20';
// The same JVM options on both sides of (b): what .profile.d/java.sh gives a 512 MiB dyno.
const JAVA_OPTS = '-Xmx307m -Xss512k -XX:CICompilerCount=2 -XX:+UseSerialGC -Dfile.encoding=UTF-8';
const home = join(work, 'home');
const slipway = (...args) => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, SLIPWAY_HOME: home }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`slipway ${args.join(' ')}: ${r.stdout.slice(-3000)}${r.stderr}`);
  return { out: r.stdout, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
};

try {
  const rootfs = process.env.SLIPWAY_BENCH_JAVA_ROOTFS;
  if (rootfs && existsSync(join(rootfs, 'usr/share/maven-repo'))) slipway('-q', 'stack', 'import', 'java', `dir:${rootfs}`);
  else {
    log('bootstrapping the Java stack (about a minute)...');
    slipway('-q', 'stack', 'bootstrap', 'java', '--include-from', join(ROOT, 'examples/java-war/stack-packages.txt'));
  }
  slipway('-q', 'apps', 'create', 'hello');
  // Nothing listens there: the builds resolve offline, as they must on this machine.
  slipway('-q', 'config', 'set', 'hello', `MAVEN_REPOSITORY_URL=http://127.0.0.1:${await freePort()}/maven2`, `JAVA_OPTS=${JAVA_OPTS}`);
  // The build container's stack is unpacked by an untimed first build of another app.
  slipway('-q', 'build', join(ROOT, 'examples/java-jar'), '--app', 'warmup', '--stack', 'java');
  log('(a) building examples/java-war: empty cache, then with the Maven cache...');
  const cold = slipway('-q', 'build', join(ROOT, 'examples/java-war'), '--app', 'hello', '--stack', 'java').seconds;
  const warm = slipway('-q', 'build', join(ROOT, 'examples/java-war'), '--app', 'hello', '--stack', 'java').seconds;

  const entry = await bundleEntry('java');
  log(`(b) ${BOOTS} WAR boots each way...`);
  const ran = spawnSync(process.execPath, [entry, home, 'hello', BOOTS, String(await freePort())], { encoding: 'utf8', cwd: ROOT });
  if (ran.status !== 0) throw new Error(`boot bench failed: ${ran.stderr}`);
  const boot = JSON.parse(ran.stdout.trim().split('\n').pop());

  const f = (x) => x.toFixed(0);
  console.log(`(a) examples/java-war build: empty cache ${cold.toFixed(1)} s, with the Maven cache ${warm.toFixed(1)} s: ${(cold / warm).toFixed(2)}x faster`);
  console.log(`(b) WAR boot to first HTTP 200, median of ${BOOTS} (JAVA_OPTS ${boot.javaOpts}):`);
  console.log(`    container dyno (${boot.runtime})  ${f(boot.dyno)} ms`);
  console.log(`    java -jar on the host     ${f(boot.host)} ms`);
  console.log(`    ratio ${(boot.dyno / boot.host).toFixed(2)}x (goal <= 1.1x)`);
  const p = boot.phases;
  console.log(`    medians, ms after start: process running ${f(p.dyno.started)} (dyno) / ${f(p.host.started)} (host); port listening ${f(p.dyno.listening)} / ${f(p.host.listening)}; Jetty's own "Started @" (JVM uptime) ${f(p.dyno.jettyStarted)} / ${f(p.host.jettyStarted)}`);
} finally {
  spawnSync(process.execPath, [BIN, 'stop', 'hello'], { env: { ...process.env, SLIPWAY_HOME: home }, stdio: 'ignore' });
  await rm(work, { recursive: true, force: true });
}
