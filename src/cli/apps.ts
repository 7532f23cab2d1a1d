import { join } from 'node:path';
import type { Command } from 'commander';
import { restrictionsFor } from '../restrictions/source.js';
import { bootstrapStack, DEFAULT_STACK } from './stack.js';
import { build, type BuildDirs } from '../buildpack/build.js';
import type { BuildRuntime } from '../buildpack/step.js';
import { SlipwayError, UsageError } from '../errors.js';
import { checkAppName, createApp, getApp, listApps } from '../release/apps.js';
import { appInfo, releaseInfo, releaseList, type AppInfo, type ReleaseInfo } from '../release/info.js';
import { headRelease, parseAssignments, parseVersion, rollback, setConfig, unsetConfig, type Release } from '../release/releases.js';
import { destroyApp } from '../runtime/destroy.js';
import { buildReleasePhase } from '../runtime/release-phase.js';
import { ContainerBuildRuntime, BUILD_CONTAINER_PREFIX } from '../runtime/build-container.js';
import { ProcessBuildRuntime } from '../runtime/build-process.js';
import { reapContainers } from '../runtime/oci-runtime.js';
import { listStacks, resolveStack, type Stack } from '../stack/stacks.js';
import { unpackedBuildStack } from '../stack/unpacked.js';
import { formatBytes, table } from './format.js';
import { print, withDb } from './shared.js';
import type { Globals } from './main.js';


/** The edge decides where build steps run: a container on the stack's build variant when possible, else processes. */
function buildRuntimeFactory(home: string, stack: Stack, wanted: string, warn: (s: string) => void): (dirs: BuildDirs) => Promise<BuildRuntime> {
  return async (dirs) => {
    const processes = (): BuildRuntime => new ProcessBuildRuntime(dirs.app, dirs.cache, dirs.env, dirs.buildpacks);
    if (wanted === 'process') return processes();
    const stateRoot = join(home, 'run');
    try {
      for (const rt of ['runc', 'crun']) await reapContainers({ name: rt, root: join(stateRoot, rt), cgroups: 'runtime' }, BUILD_CONTAINER_PREFIX);
      const rootfs = await unpackedBuildStack(home, stack);
      const { runtime, why, notes } = await ContainerBuildRuntime.open(stateRoot, rootfs, dirs, join(dirs.root, 'bundles'));
      for (const w of why) warn(`note: ${w}; using ${runtime.runtimeName}`);
      for (const n of notes) warn(`note: ${n}`);
      return runtime;
    } catch (err) {
      if (wanted === 'container') throw new SlipwayError(`cannot run the build container: ${(err as Error).message}`, { hint: 'use --runtime process on hosts without runc or crun' });
      warn(`note: no container runtime works here (${(err as Error).message}); building with plain processes`);
      return processes();
    }
  };
}

/** A release a config change or rollback made; a pending one says when its release command runs. */
function printMade(g: Globals, r: Release): void {
  const later = r.status === 'pending' ? ` (pending: its release command runs before it goes live, in the running app or at the next slipway up ${r.app})` : '';
  print(g, { version: r.version, description: r.description, status: r.status }, `${r.description}: v${r.version}${later}`);
}

/** A release's status; a pending one whose release phase runs says where. */
function statusText(r: Pick<Release, 'status' | 'phasePid'>): string {
  return r.phasePid !== undefined ? `${r.status} (release phase running in process ${r.phasePid})` : r.status;
}

function appInfoText(i: AppInfo): string {
  const types = Object.entries(i.processTypes);
  return [
    `=== ${i.name}`,
    table([
      ['Current release:', i.current ? `v${i.current.version} (${i.current.description})` : 'none'],
      ...(i.latest ? [['Latest release:', `v${i.latest.version} ${statusText(i.latest)} (${i.latest.description})`]] : []),
      ['Stack:', i.stack ? `${i.stack.name}@v${i.stack.version}` : '-'],
      ['Dynos:', Object.entries(i.formation).map(([t, n]) => `${t}: ${n}`).join(', ') || '-'],
      ['Web URL:', i.url ?? '- (not run yet)'],
      ['Slug size:', i.slugSize === undefined ? '-' : formatBytes(i.slugSize)],
      ['Buildpacks:', i.buildpacks.map((b) => b.name).join(', ') || '-'],
      ['Releases:', String(i.releases)],
      ['Created:', i.createdAt.slice(0, 19)],
    ]),
    ...(types.length ? ['', '=== Process types', table([['TYPE', 'COMMAND'], ...types])] : []),
  ].join('\n');
}

function releaseInfoText(r: ReleaseInfo): string {
  const types = Object.entries(r.processTypes);
  const vars = Object.entries(r.config);
  return [
    `=== Release v${r.version}${r.current ? ' (current)' : ''}`,
    table([
      ['Status:', statusText(r)],
      ['Change:', r.description],
      ['When:', r.createdAt.slice(0, 19)],
      ['Slug:', r.slug ? `${r.slug}${r.slugSize === undefined ? '' : ` (${formatBytes(r.slugSize)})`}` : '-'],
      ['Stack:', r.stack ? `${r.stack.name}@v${r.stack.version}` : '-'],
      ['Buildpacks:', r.buildpacks.map((b) => b.name).join(', ') || '-'],
    ]),
    ...(types.length ? ['', `=== v${r.version} process types`, table([['TYPE', 'COMMAND'], ...types])] : []),
    ...(vars.length ? ['', `=== v${r.version} config vars`, ...vars.map(([k, v]) => `${k}=${v}`)] : []),
  ].join('\n');
}

export function registerAppCommands(program: Command, globals: () => Globals): void {
  const apps = program.command('apps').description('list apps').action(async () => {
    const g = globals();
    await withDb(g, async (db) => {
      const rows = listApps(db);
      print(g, rows, rows.length === 0 ? 'no apps (slipway build DIR --app NAME creates one)' : table([['NAME', 'RELEASES', 'CREATED'], ...rows.map((a) => [a.name, String(a.releases), a.createdAt.slice(0, 19)])]));
    });
  });
  apps
    .command('create')
    .description('create an app')
    .argument('<name>', 'app name')
    .action(async (name: string) => {
      const g = globals();
      await withDb(g, async (db) => {
        print(g, createApp(db, name), `created ${name}`);
      });
    });
  apps
    .command('info')
    .description('show an app: current release, stack, formation, process types, URL, slug size, buildpacks')
    .argument('<name>', 'app name')
    .action(async (name: string) => {
      const g = globals();
      const info = await withDb(g, (db) => appInfo(g.home, db, name));
      print(g, info, appInfoText(info));
    });
  apps
    .command('destroy')
    .description('stop an app and remove its releases, unused slugs, logs and build cache')
    .argument('<name>', 'app name')
    .option('--confirm <name>', 'the app\'s name again: nothing is removed without it')
    .action(async (name: string, o: { confirm?: string }) => {
      const g = globals();
      if (o.confirm !== undefined && o.confirm !== name) {
        throw new SlipwayError(`--confirm ${o.confirm} does not name the app being destroyed (${name}); nothing was removed`, { hint: `to go ahead: slipway apps destroy ${name} --confirm ${name}` });
      }
      if (o.confirm !== name) {
        throw new SlipwayError(`destroying ${name} removes its releases, logs and build cache for good; nothing was removed`, { hint: `to go ahead: slipway apps destroy ${name} --confirm ${name}` });
      }
      const r = await withDb(g, (db) => destroyApp(g.home, db, name));
      print(g, r, `destroyed ${name}${r.stopped ? ' (its dynos stopped)' : ''}: ${r.releases} release(s); ${r.slugsReleased.length} slug(s) no longer used (slipway image gc reclaims their space)`);
    });

  program
    .command('build')
    .description('build app source into a slug with buildpacks, and release it')
    .argument('[src]', 'app source directory', '.')
    .requiredOption('-a, --app <name>', 'app (created on its first build)')
    .option('-s, --stack <stack>', 'stack NAME or NAME@vN (default: the default stack)')
    .option('-b, --buildpack <spec>', 'buildpack: built-in name, dir, .tgz file or URL, git URL[#ref] (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--runtime <kind>', 'where buildpack steps run: container, process or auto', 'auto')
    .option('-r, --restrictions <file|preset>', 'judge the slug against this document (default: the host\'s, if set)')
    .action(async (src: string, o: { app: string; stack?: string; buildpack: string[]; runtime: string; restrictions?: string }) => {
      const g = globals();
      if (!['auto', 'container', 'process'].includes(o.runtime)) throw new UsageError(`--runtime ${o.runtime}: use container, process or auto`);
      checkAppName(o.app);
      await withDb(g, async (db) => {
        // First use on a fresh host: the default stack is bootstrapped once, with progress.
        const none = o.stack === undefined && listStacks(db).length === 0;
        if (none) {
          if (!g.quiet) process.stderr.write(`No stack on this host yet: bootstrapping the default one, ${DEFAULT_STACK.name} (Debian minbase + ${DEFAULT_STACK.include.join(', ')}, and its build variant with compilers), once.\n`);
          const { stack: st } = await bootstrapStack(g, db, DEFAULT_STACK.name, DEFAULT_STACK);
          if (!g.quiet) process.stderr.write(`stack ${st.name}@v${st.version} ready (${st.digest})\n`);
        }
        const stack = resolveStack(db, o.stack);
        const quiet = g.quiet || g.json;
        const result = await build({
          home: g.home,
          db,
          app: o.app,
          source: src,
          stack,
          buildpacks: o.buildpack,
          restrictions: restrictionsFor(g.home, o.restrictions),
          runtime: buildRuntimeFactory(g.home, stack, o.runtime, (s) => process.stderr.write(`${s}\n`)),
          releasePhase: buildReleasePhase(g.home, db, stack, o.runtime as 'auto' | 'container' | 'process'),
          out: (line) => {
            if (!quiet) process.stdout.write(`${line}\n`);
          },
        });
        if (g.json) print(g, { release: result.release, slug: result.slug, log: result.log, seconds: result.seconds }, '');
      });
    });

  const releases = program
    .command('releases')
    .description('list an app\'s releases, newest first, with their status and which one is current')
    .argument('<app>', 'app name')
    .action(async (name: string) => {
      const g = globals();
      await withDb(g, async (db) => {
        const rows = await releaseList(g.home, db, name);
        const current = rows.find((r) => r.current)?.version;
        print(
          g,
          rows,
          rows.length === 0
            ? `${name} has no releases yet`
            : `=== ${name} releases (current: ${current === undefined ? 'none' : `v${current}`})\n${table([
              ['VERSION', 'STATUS', 'DESCRIPTION', 'SLUG', 'STACK', 'CREATED'],
              ...rows.map((r) => [`v${r.version}${r.current ? ' *' : ''}`, statusText(r), r.description, r.slug?.slice(0, 19) ?? '-', r.stack ? `${r.stack.name}@v${r.stack.version}` : '-', r.createdAt.slice(0, 19)]),
            ])}`,
        );
      });
    });
  releases
    .command('info')
    .description('show one release: status, slug, stack, process types, buildpacks, config vars')
    .argument('<app>', 'app name')
    .argument('<version>', 'vN')
    .option('--reveal', 'print the config values')
    .action(async (name: string, version: string, o: { reveal?: boolean }) => {
      const g = globals();
      const v = parseVersion(version);
      const info = await withDb(g, (db) => releaseInfo(g.home, db, name, v));
      const shown = { ...info, config: Object.fromEntries(Object.entries(info.config).map(([k, val]) => [k, o.reveal ? val : '••••••'])) };
      print(g, shown, releaseInfoText(shown));
    });

  const config = program
    .command('config')
    .description('show an app\'s config vars (values hidden unless --reveal)')
    .argument('<app>', 'app name')
    .option('--reveal', 'print the values')
    .action(async (name: string, o: { reveal?: boolean }) => {
      const g = globals();
      await withDb(g, async (db) => {
        getApp(db, name);
        const vars = headRelease(db, name)?.config ?? {};
        const shown = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, o.reveal ? v : '••••••']));
        print(g, shown, Object.keys(vars).length === 0 ? `${name} has no config vars` : Object.entries(shown).map(([k, v]) => `${k}=${v}`).join('\n'));
      });
    });
  config
    .command('set')
    .description('set config vars: a new release, no rebuild')
    .argument('<app>', 'app name')
    .argument('<assignments...>', 'KEY=VALUE ...')
    .action(async (name: string, assignments: string[]) => {
      const g = globals();
      await withDb(g, async (db) => {
        getApp(db, name);
        const r = setConfig(db, name, parseAssignments(assignments));
        printMade(g, r);
      });
    });
  config
    .command('unset')
    .description('remove config vars: a new release, no rebuild')
    .argument('<app>', 'app name')
    .argument('<keys...>', 'KEY ...')
    .action(async (name: string, keys: string[]) => {
      const g = globals();
      await withDb(g, async (db) => {
        getApp(db, name);
        const r = unsetConfig(db, name, keys);
        printMade(g, r);
      });
    });

  program
    .command('rollback')
    .description('make a new release with an earlier release\'s slug, stack and config')
    .argument('<app>', 'app name')
    .argument('<version>', 'vN')
    .action(async (name: string, version: string) => {
      const g = globals();
      const v = parseVersion(version);
      await withDb(g, async (db) => {
        getApp(db, name);
        const r = rollback(db, name, v);
        printMade(g, r);
      });
    });
}
