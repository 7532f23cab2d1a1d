import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { appendFile, chmod, chown, cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { SlipwayError } from '../errors.js';
import { checkAppName } from '../release/apps.js';
import { headRelease, releaseSlug, type Release } from '../release/releases.js';
import { parseProcfile, type ProcessTypes } from '../slug/procfile.js';
import { createSlug, slugTag, type BuildpackUsed, type Slug } from '../slug/slug.js';
import type { Restrictions } from '../restrictions/document.js';
import { judge, refuseIfDenied } from '../restrictions/enforce.js';
import { FactsCache } from '../restrictions/layer-facts.js';
import { slugSubject } from '../restrictions/subject.js';
import type { Stack } from '../stack/stacks.js';
import type { Db } from '../store/db.js';
import { processAlive } from '../store/lock.js';
import { OciLayout } from '../store/layout.js';
import { ownerToken } from '../store/owner-token.js';
import { imageStorePath } from '../home.js';
import { debug } from '../debug.js';
import { slugignoreMatcher } from './slugignore.js';
import { BUILTIN_BUILDPACKS, fetchBuildpack, type FetchedBuildpack } from './source.js';
import type { BuildRuntime } from './step.js';

const run = promisify(execFile);

/**
 * The per-build directories on the host; the runtime maps them to what scripts see. All of
 * them live under one per-app workspace, so a buildpack can hard-link from its cache into the
 * build dir (one mount, one filesystem) instead of copying thousands of files every build.
 */
export interface BuildDirs {
  workspace: string;
  root: string;
  app: string;
  cache: string;
  env: string;
  buildpacks: string;
  log: string;
}

export interface BuildOptions {
  home: string;
  db: Db;
  app: string;
  source: string;
  stack: Stack;
  /** Buildpacks named on the command line; else .buildpacks, app.json, then autodetect. */
  buildpacks: string[];
  /** Makes the step runtime once the build dirs exist (container on the stack, or processes). */
  runtime: (dirs: BuildDirs) => Promise<BuildRuntime>;
  /** Every output line, as Heroku prints it (headers start with "-----> "). */
  out: (line: string) => void;
  /** When set, the slug is judged before it is released; a deny leaves no release. */
  restrictions?: Restrictions | undefined;
  /**
   * Runs the new release's release command once (a one-off dyno) and says whether it succeeded.
   * Without it the release stays pending and the next `slipway up` runs it.
   */
  releasePhase?: (release: Release, say: (line: string) => void) => Promise<boolean>;
}

export interface BuildResult {
  release: Release;
  slug: Slug;
  log: string;
  seconds: number;
}

const header = (s: string): string => `-----> ${s}`;
const indent = (s: string): string => `       ${s}`;

/** Removes what builds killed mid-way left behind (their pid is gone). */
async function reapBuildDirs(workspace: string): Promise<void> {
  for (const name of await readdir(workspace).catch(() => [] as string[])) {
    const m = /^work-(\d+)-/.exec(name);
    if (m && !processAlive(Number(m[1]))) await rm(join(workspace, name), { recursive: true, force: true });
  }
}

/** Copies the app source into the build dir, leaving out .git and what .slugignore names. */
async function copySource(source: string, target: string): Promise<number> {
  if (!lstatSync(source, { throwIfNoEntry: false })?.isDirectory()) {
    throw new SlipwayError(`${source}: not a directory`, { hint: 'give the app source directory' });
  }
  const ignore = existsSync(join(source, '.slugignore')) ? slugignoreMatcher(await readFile(join(source, '.slugignore'), 'utf8')) : () => false;
  let skipped = 0;
  await cp(source, target, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => {
      const rel = relative(source, src);
      if (rel === '') return true;
      const drop = rel === '.git' || ignore(rel);
      if (drop) skipped++;
      return !drop;
    },
  });
  return skipped;
}

async function sourceVersion(source: string): Promise<string> {
  try {
    return (await run('git', ['-C', source, 'rev-parse', 'HEAD'])).stdout.trim();
  } catch {
    return '';
  }
}

/** The buildpacks an app asks for: .buildpacks (one URL a line) or app.json "buildpacks". */
async function declaredBuildpacks(source: string): Promise<string[]> {
  const file = join(source, '.buildpacks');
  if (existsSync(file)) {
    return (await readFile(file, 'utf8'))
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
  }
  const appJson = join(source, 'app.json');
  if (existsSync(appJson)) {
    let doc: { buildpacks?: { url?: string }[] };
    try {
      doc = JSON.parse(await readFile(appJson, 'utf8')) as typeof doc;
    } catch (err) {
      throw new SlipwayError(`${appJson}: invalid JSON (${(err as Error).message})`);
    }
    if (Array.isArray(doc.buildpacks)) return doc.buildpacks.map((b) => b.url).filter((u): u is string => typeof u === 'string' && u !== '');
  }
  return [];
}

interface ReleaseYaml {
  default_process_types?: ProcessTypes;
  config_vars?: Record<string, string>;
  addons?: unknown[];
}

function parseReleaseYaml(text: string, where: string): ReleaseYaml {
  let doc: unknown;
  try {
    doc = text.trim() === '' ? {} : parseYaml(text);
  } catch (err) {
    throw new SlipwayError(`${where}: bin/release printed invalid YAML (${(err as Error).message})`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new SlipwayError(`${where}: bin/release must print a YAML mapping`);
  const d = doc as ReleaseYaml;
  for (const [k, v] of Object.entries(d.default_process_types ?? {})) {
    if (typeof v !== 'string') throw new SlipwayError(`${where}: default_process_types.${k} is not a command string`);
  }
  return d;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs Heroku's classic buildpack contract over an app's source: detect, compile (ENV_DIR
 * holds the config vars, nothing exported), release; several buildpacks chain through their
 * `export` files. The result is a slug and a new release, created together at the very end:
 * a failed or killed build leaves no release, only its log.
 */
export async function build(opts: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const { db, home, out } = opts;
  // The app itself is created with its first release: a failed first build leaves no app.
  const app = { name: checkAppName(opts.app) };
  const workspace = join(home, 'builds', app.name);
  await reapBuildDirs(workspace);
  const id = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
  const root = join(workspace, `work-${process.pid}-${id}`);
  const dirs: BuildDirs = {
    workspace,
    root,
    app: join(root, 'app'),
    cache: join(workspace, 'cache'),
    env: join(root, 'env'),
    buildpacks: join(root, 'buildpacks'),
    log: join(workspace, 'logs', `${id}.log`),
  };
  for (const d of [dirs.env, dirs.buildpacks, dirs.cache, join(workspace, 'logs')]) await mkdir(d, { recursive: true });
  await writeFile(dirs.log, '');
  const say = (line: string): void => {
    debug('build', () => line);
    out(line);
    void appendFile(dirs.log, `${line}\n`);
  };
  let runtime: BuildRuntime | undefined;
  try {
    const skipped = await copySource(opts.source, dirs.app);
    say(header(`Building ${app.name} on the ${opts.stack.name}@v${opts.stack.version} stack`));
    if (skipped) say(indent(`.slugignore: left out ${skipped} path(s)`));
    const config = headRelease(db, app.name)?.config ?? {};
    for (const [k, v] of Object.entries(config)) await writeFile(join(dirs.env, k), v, { mode: 0o600 });

    const specs = opts.buildpacks.length ? opts.buildpacks : await declaredBuildpacks(opts.source);
    const autodetect = specs.length === 0;
    const candidates = autodetect ? BUILTIN_BUILDPACKS : specs;
    const fetched: FetchedBuildpack[] = [];
    for (const [i, spec] of candidates.entries()) fetched.push(await fetchBuildpack(spec, join(dirs.buildpacks, String(i))));

    debug('build', () => 'source copied, buildpacks fetched');
    runtime = await opts.runtime(dirs);
    debug('build', () => `runtime ${runtime!.name} ready`);
    if (runtime.name === 'container') {
      const b = opts.stack.build;
      say(indent(b ? `Compiling on the stack's build image (${b.digest.slice(0, 19)}); the slug runs on its run image (${opts.stack.digest.slice(0, 19)})` : 'Compiling on the run image: this stack version has no build variant (no compilers)'));
    }
    if (runtime.name === 'container' && process.getuid?.() === 0) {
      // The build runs as the unprivileged app user, who must own what it writes.
      await run('chown', ['-R', '1000:1000', dirs.app, dirs.cache, dirs.buildpacks]);
      await chown(workspace, 1000, 1000);
      await chown(root, 1000, 1000);
      await chmod(dirs.env, 0o755);
      for (const f of readdirSync(dirs.env)) await chown(join(dirs.env, f), 1000, 1000);
    }
    debug('build', () => 'ownership set');
    const env = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: runtime.appDir,
      LANG: 'C.UTF-8',
      STACK: opts.stack.name,
      SOURCE_VERSION: await sourceVersion(opts.source),
    };

    // Detect: every named buildpack must apply; autodetect takes the first built-in that does.
    const chosen: { index: number; name: string; bp: FetchedBuildpack }[] = [];
    for (const [index, bp] of fetched.entries()) {
      const r = await runtime.run({ buildpack: index, script: 'detect', env, exports: [], onLine: (l) => void appendFile(dirs.log, `${l}\n`), captureStdout: true });
      const name = r.stdout.split('\n')[0]?.trim() || bp.url;
      if (r.code === 0) {
        chosen.push({ index, name, bp });
        if (autodetect) break;
      } else if (!autodetect) {
        throw new SlipwayError(`buildpack ${bp.url}: bin/detect exited ${r.code}: it does not apply to this app`, { hint: `build log: ${dirs.log}` });
      }
    }
    if (chosen.length === 0) {
      throw new SlipwayError(`no buildpack applies to this app (tried ${candidates.join(', ')})`, {
        hint: 'add a Procfile, a package.json, or name a buildpack with --buildpack',
      });
    }

    const exports: string[] = [];
    const defaults: ProcessTypes = {};
    const used: BuildpackUsed[] = [];
    for (const { index, name, bp } of chosen) {
      say(header(`${name} app detected`));
      const c = await runtime.run({ buildpack: index, script: 'compile', env, exports, onLine: say, captureStdout: false });
      if (c.code !== 0) {
        throw new SlipwayError(`build failed: ${name} (${bp.url}) bin/compile exited ${c.code}`, { hint: `no release was made; the build log is kept at ${dirs.log}` });
      }
      if (existsSync(join(bp.dir, 'bin', 'release'))) {
        const r = await runtime.run({ buildpack: index, script: 'release', env, exports, onLine: say, captureStdout: true });
        if (r.code !== 0) throw new SlipwayError(`build failed: ${name} bin/release exited ${r.code}`, { hint: `build log: ${dirs.log}` });
        const rel = parseReleaseYaml(r.stdout, name);
        Object.assign(defaults, rel.default_process_types ?? {});
        const vars = Object.entries(rel.config_vars ?? {});
        if (vars.length) {
          // Legacy config_vars: defaults the app's own config overrides, set at dyno start.
          const profile = join(dirs.app, '.profile.d');
          await mkdir(profile, { recursive: true });
          const script = vars.map(([k, v]) => `export ${k}=\${${k}:-${shellQuote(String(v))}}`).join('\n');
          await writeFile(join(profile, `000_buildpack_${index}_config_vars.sh`), `${script}\n`);
        }
      }
      exports.push(`${runtime.buildpackDir(index)}/export`);
      used.push({ name, url: bp.url, ...(bp.version !== undefined && { version: bp.version }) });
    }

    const procfile = join(dirs.app, 'Procfile');
    const declared = existsSync(procfile) ? parseProcfile(await readFile(procfile, 'utf8'), `${opts.source}/Procfile`) : {};
    const processTypes = { ...defaults, ...declared };
    say(header(`Discovering process types`));
    say(indent(`Procfile declares types -> ${Object.keys(declared).join(', ') || '(none)'}`));
    say(indent(`Default types for buildpack -> ${Object.keys(defaults).join(', ') || '(none)'}`));
    say(header('Compressing...'));
    debug('build', () => 'slug: packing');
    const slug = await createSlug(home, app.name, dirs.app, { processTypes, buildpacks: used, stack: { name: opts.stack.name, digest: opts.stack.digest } });
    say(indent(`Done: ${(slug.metadata.size.compressed / 1e6).toFixed(1)}M (${slug.digest.slice(0, 19)})`));
    if (opts.restrictions) {
      const report = await judge(opts.restrictions, await slugSubject(home, app.name, slug.digest, { cache: new FactsCache(home) }, slug.metadata), db, home);
      say(header(`Checking restrictions ${report.restrictions}: ${report.verdict}`));
      try {
        refuseIfDenied(report, `build of ${app.name}`, (text) => say(text.trimEnd()));
      } catch (err) {
        // No release, and the refused slug is not kept tagged (a gc reclaims its blobs).
        await (await OciLayout.open(imageStorePath(home), { create: false })).untag(slugTag(app.name, slug.digest));
        throw err;
      }
    }
    const releaseCommand = Object.hasOwn(processTypes, 'release') ? processTypes.release! : '';
    // The build claims the release phase it runs, so a running supervisor waits for it.
    let release = releaseSlug(db, app.name, slug.digest, opts.stack, `Deploy ${slug.digest.slice(7, 14)}`, releaseCommand, opts.releasePhase ? { claim: ownerToken() } : {});
    if (release.status === 'pending' && opts.releasePhase) {
      say(header('Running release command...'));
      if (!(await opts.releasePhase(release, (l) => say(indent(l))))) {
        say(header(`Release phase of v${release.version} failed: v${release.version} is not current`));
        throw new SlipwayError(`release command of ${app.name} v${release.version} failed: the release does not go live`, {
          hint: `see the output above and slipway logs ${app.name}; fix it and build again (slipway releases ${app.name} shows what is current)`,
        });
      }
      release = { ...release, status: 'succeeded' };
    }
    const later = release.status === 'pending' && !opts.releasePhase;
    say(header(`Released v${release.version}${later ? `: its release command runs at the next slipway up ${app.name}` : ''}`));
    return { release, slug, log: dirs.log, seconds: (Date.now() - started) / 1000 };
  } finally {
    await runtime?.close();
    await rm(root, { recursive: true, force: true });
  }
}
