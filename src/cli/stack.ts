import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { SlipwayError } from '../errors.js';
import { openDb, type Db } from '../store/db.js';
import { bootstrapStack as bootstrapStackVersion, DEFAULT_MIRROR } from '../stack/bootstrap.js';
import { importStack, listStacks, removeStack, resolveStack, setDefaultStack, stackTag, type Stack } from '../stack/stacks.js';
import { imageStorePath } from '../home.js';
import { inspectImage } from '../inspect.js';
import { openSource } from '../transport/open.js';
import { formatBytes, table } from './format.js';
import { copyProgress, packProgress } from './progress.js';
import { print, registryOptions, withDb } from './shared.js';
import type { Globals } from './main.js';


export function registerStackCommands(program: Command, globals: () => Globals): void {
  const stack = program.command('stack').description('shared read-only base root filesystems apps are built and run on');

  stack
    .command('import')
    .description('import an image (any transport) or dir:ROOTFS as a new version of a stack')
    .argument('<name>', 'stack name, e.g. bookworm')
    .argument('<source>', 'oci:, docker-archive:, docker://, dir: or a local NAME:TAG')
    .option('--build <source>', 'its build variant (the same image plus compilers and headers), where builds run')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (name: string, source: string, o: { build?: string; creds?: string; insecure?: boolean }) => {
      const g = globals();
      const db = openDb(g.home);
      const progress = copyProgress(process.stderr, g.quiet || g.json);
      const packing = packProgress(source, process.stderr, g.quiet || g.json);
      try {
        const { stack: s, created } = await importStack(
          db,
          {
            home: g.home,
            registry: registryOptions(o),
            onDirProgress: (n) => packing.onBytes(n),
          },
          name,
          source,
          { ...progress, blobStart: (d) => (packing.done(), progress.blobStart?.(d)) },
          o.build,
        );
        progress.stop();
        const build = s.build ? `; build variant ${s.build.digest}, ${formatBytes(s.build.size)}` : '';
        print(g, { ...s, created }, created ? `stack ${s.name}@v${s.version} imported (${s.digest}, ${formatBytes(s.size)}${build})` : `stack ${s.name}@v${s.version} already has this content (${s.digest}${build})`);
      } finally {
        progress.stop();
        db.close();
      }
    });

  stack
    .command('bootstrap')
    .description('build a Debian stack with debootstrap --variant=minbase and import it')
    .argument('<name>', 'stack name')
    .option('--suite <suite>', 'Debian suite', 'bookworm')
    .option('--include <pkgs>', 'extra packages, comma separated', '')
    .option('--include-from <file>', 'extra packages from a file, one per line (# comments)')
    .option('--mirror <url>', 'Debian mirror', DEFAULT_MIRROR)
    .option('--no-build', 'make only the run image (builds then run on it, without compilers)')
    .action(async (name: string, o: { suite: string; include: string; includeFrom?: string; mirror: string; build: boolean }) => {
      const g = globals();
      const include = o.include.split(',').map((p) => p.trim()).filter(Boolean);
      if (o.includeFrom !== undefined) include.push(...(await packageList(o.includeFrom)));
      const db = openDb(g.home);
      try {
        const started = Date.now();
        const { stack: st, created, steps } = await bootstrapStack(g, db, name, { suite: o.suite, include, mirror: o.mirror, build: o.build });
        const took = (Date.now() - started) / 1000;
        const build = st.build ? `; build variant ${st.build.digest}, ${formatBytes(st.build.size)}` : '';
        print(g, { ...st, created, seconds: took, steps }, `stack ${st.name}@v${st.version} bootstrapped from ${o.suite} in ${took.toFixed(0)} s (${st.digest}, ${formatBytes(st.size)}${build})`);
      } finally {
        db.close();
      }
    });

  stack
    .command('ls')
    .description('list stacks and their versions')
    .action(async () => {
      const g = globals();
      await withDb(g, async (db) => {
        const rows = listStacks(db);
        print(
          g,
          rows,
          rows.length === 0
            ? 'no stacks (slipway stack bootstrap bookworm, or slipway stack import NAME SOURCE)'
            : table([
                ['NAME', 'VERSION', 'RUN IMAGE', 'SIZE', 'BUILD IMAGE', 'SIZE', 'RELEASES', 'IMPORTED'],
                ...rows.map((s) => [
                  `${s.name}${s.isDefault ? ' (default)' : ''}`,
                  `v${s.version}`,
                  s.digest.slice(0, 19),
                  formatBytes(s.size),
                  s.build?.digest.slice(0, 19) ?? '- (builds use the run image)',
                  s.build ? formatBytes(s.build.size) : '',
                  String(s.releases),
                  s.createdAt.slice(0, 19),
                ]),
              ]),
        );
      });
    });

  stack
    .command('inspect')
    .description('show a stack version (default: the latest of the default stack)')
    .argument('[stack]', 'NAME or NAME@vN')
    .action(async (spec: string | undefined) => {
      const g = globals();
      await withDb(g, async (db) => {
        const s = resolveStack(db, spec);
        const src = await openSource(`oci:${imageStorePath(g.home)}:${stackTag(s.name, s.digest)}`, { home: g.home });
        try {
          const info = await inspectImage(src);
          const build = s.build ? [`Build:     ${s.build.digest} (${formatBytes(s.build.size)}; builds run on it)`] : ['Build:     none (builds run on the run image)'];
          print(
            g,
            { ...s, image: info },
            [`Stack:     ${s.name}@v${s.version}`, `Digest:    ${s.digest} (the run image: dynos, exports, slugs)`, ...build, `Source:    ${s.source}`, `Imported:  ${s.createdAt}`, `Platform:  ${info.platform}`, `Size:      ${formatBytes(s.size)}`, `Layers:    ${info.layers.length}`].join('\n'),
          );
        } finally {
          await src.close();
        }
      });
    });

  stack
    .command('default')
    .description('set the stack builds use when none is named')
    .argument('<name>', 'stack name')
    .action(async (name: string) => {
      const g = globals();
      await withDb(g, async (db) => {
        setDefaultStack(db, name);
        print(g, { default: name }, `default stack: ${name}`);
      });
    });

  stack
    .command('rm')
    .description('remove a stack version, or all versions of a name (refused while a release uses one)')
    .argument('<stack>', 'NAME or NAME@vN')
    .option('--force', 'remove even if releases use it')
    .action(async (spec: string, o: { force?: boolean }) => {
      const g = globals();
      await withDb(g, async (db) => {
        const removed = await removeStack(db, g.home, spec, o.force === true);
        print(g, removed, removed.map((s) => `removed stack ${s.name}@v${s.version}`).join('\n'));
      });
    });
}

/** A package list file: one name per line, blank lines and # comments ignored. */
async function packageList(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch((err: Error) => {
    throw new SlipwayError(`--include-from ${file}: cannot read it (${err.message})`, { exitCode: 2 });
  });
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

/** What the default stack carries beyond minbase: what the built-in buildpacks need to fetch and run Node.js. */
export const DEFAULT_STACK = { name: 'bookworm', suite: 'bookworm', include: ['ca-certificates', 'curl', 'libatomic1'] };

/** debootstrap a stack version (run image and build variant) and import it, with progress on stderr. */
export async function bootstrapStack(
  g: Globals,
  db: Db,
  name: string,
  o: { suite: string; include: string[]; mirror?: string; build?: boolean },
): Promise<{ stack: Stack; created: boolean; steps: number }> {
  const started = Date.now();
  const tty = process.stderr.isTTY && !g.quiet && !g.json;
  const elapsed = (): string => `[${((Date.now() - started) / 1000).toFixed(0)} s]`;
  let steps = 0;
  const result = await bootstrapStackVersion(db, g.home, name, {
    suite: o.suite,
    include: o.include,
    mirror: o.mirror ?? DEFAULT_MIRROR,
    build: o.build !== false,
    onStep: (step) => {
      steps++;
      if (g.quiet || g.json) return;
      const line = `debootstrap ${o.suite} ${elapsed()} ${step}`;
      if (tty) process.stderr.write(`\r${line.slice(0, (process.stderr.columns || 80) - 1)}\x1b[K`);
      // Without a terminal: the phases, not one line per package.
      else if (/^(Retrieving|Validating|Extracting|Installing|Configuring|Unpacking|Base system)/.test(step) && !/^\w+ \S+( \S*\d\S*)?$/.test(step)) process.stderr.write(`${line}\n`);
    },
    onPhase: (phase) => {
      if (!g.quiet && !g.json) process.stderr.write(`${tty ? '\r\x1b[K' : ''}stack ${name} ${elapsed()} ${phase}\n`);
    },
  });
  return { stack: result.stack, created: result.created, steps };
}
