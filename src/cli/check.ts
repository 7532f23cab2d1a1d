import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { SlipwayError, UsageError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { parsePlatform } from '../oci/platform.js';
import { builtRelease } from '../release/releases.js';
import { judge } from '../restrictions/enforce.js';
import { FactsCache } from '../restrictions/layer-facts.js';
import { reportJson, reportSarif, reportText } from '../restrictions/report.js';
import type { Subject } from '../restrictions/rules.js';
import { hostRestrictions, hostRestrictionsPath, hostRestrictionsText, presetNames, restrictionsFor, setHostRestrictions } from '../restrictions/source.js';
import { appDirSubject, imageSubject, releaseSubject, slugSubject, usesHostStacks, type ScanOptions } from '../restrictions/subject.js';
import { dbPath, openDb, type Db } from '../store/db.js';
import { openSource } from '../transport/open.js';
import type { Globals } from './main.js';
import { print, registryOptions, withDb } from './shared.js';

const TRANSPORT = /^(oci|docker-archive|docker|dir):/;

/** Reads a target into a Subject: app dir, slug:APP[@vN], APP[@vN] in the store, or any image reference. */
type TargetOptions = ScanOptions & { platform?: string | undefined; creds?: string | undefined; insecure?: boolean | undefined };

async function subjectOf(target: string, db: () => Db, home: string, opts: TargetOptions): Promise<Subject> {
  if (TRANSPORT.test(target)) return imageOf(target, home, opts);
  if (target.startsWith('slug:')) {
    const rel = builtRelease(db(), target.slice(5));
    return slugSubject(home, rel.app, rel.slug as Digest, opts);
  }
  if (existsSync(target) && statSync(target).isDirectory()) return appDirSubject(target);
  const app = /^([^@:/]+)(@v?\d+)?$/.exec(target);
  if (app && db().prepare('SELECT 1 FROM apps WHERE name = ?').get(app[1])) return releaseSubject(home, builtRelease(db(), target), opts);
  return imageOf(target, home, opts);
}

async function imageOf(ref: string, home: string, opts: TargetOptions): Promise<Subject> {
  const src = await openSource(ref, { home, registry: registryOptions(opts) });
  const { platform, ...scan } = opts;
  try {
    return await imageSubject(src, { ...scan, ...(platform && { platform: parsePlatform(platform) }) });
  } finally {
    await src.close();
  }
}

export function registerCheckCommands(program: Command, globals: () => Globals): void {
  program
    .command('check')
    .description('judge an app directory, slug, release or any image against a Restrictions document')
    .argument('<target>', 'APP_DIR, APP[@vN], slug:APP[@vN], or an image (oci:, docker-archive:, docker://, NAME:TAG)')
    .option('-r, --restrictions <file|preset>', `a document, or a preset (${presetNames().join(', ')}); default: the host's`)
    .option('--format <text|json|sarif>', 'output format', 'text')
    .option('--platform <os/arch[/variant]>', 'which image of a multi-platform index')
    .option('--no-cache', 'read every layer even if its facts are cached')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (target: string, o: { restrictions?: string; format: string; platform?: string; cache: boolean; creds?: string; insecure?: boolean }) => {
      const g = globals();
      const format = g.json ? 'json' : o.format;
      if (!['text', 'json', 'sarif'].includes(format)) throw new UsageError(`--format ${o.format}: use text, json or sarif`);
      try {
        const doc = restrictionsFor(g.home, o.restrictions);
        if (!doc) throw new SlipwayError('no restrictions to check against', { hint: `give --restrictions FILE or a preset (${presetNames().join(', ')}), or set a host default with slipway restrictions set` });
        // The metadata database only when the target or the stacks vouched for need it (it costs memory).
        let opened: Db | undefined;
        const db = (): Db => (opened ??= openDb(g.home));
        const report = await (async () => {
          const verbose = !g.quiet && format === 'text' && process.stderr.isTTY;
          const subject = await subjectOf(target, db, g.home, {
            platform: o.platform,
            creds: o.creds,
            insecure: o.insecure,
            ...(o.cache && { cache: new FactsCache(g.home) }),
            onLayer: (i, digest, cached) => void (verbose && process.stderr.write(`layer ${i} ${digest.slice(0, 19)} ${cached ? 'from cache' : 'read'}\n`)),
          });
          return judge(doc, subject, usesHostStacks(doc) && existsSync(dbPath(g.home)) ? db() : undefined, g.home);
        })().finally(() => opened?.close());
        if (format === 'json') process.stdout.write(`${JSON.stringify(reportJson(report), null, 2)}\n`);
        else if (format === 'sarif') process.stdout.write(`${JSON.stringify(reportSarif(report, program.version() ?? '0'), null, 2)}\n`);
        else process.stdout.write(reportText(report));
        if (report.verdict === 'deny') process.exitCode = 1;
      } catch (err) {
        // The check contract: 1 is a deny verdict, so a failure to judge at all is 2.
        if (err instanceof SlipwayError && err.exitCode !== 2) throw new SlipwayError(err.message, { hint: err.hint, exitCode: 2, cause: err });
        throw err;
      }
    });

  const r = program.command('restrictions').description('the host\'s default Restrictions document (checked at build, export and run)');
  r.command('set')
    .description('validate a document (file or preset) and make it the host default')
    .argument('<file|preset>')
    .action(async (spec: string) => {
      const g = globals();
      await withDb(g, () => undefined);
      const doc = await setHostRestrictions(g.home, spec);
      print(g, { name: doc.metadata.name, rules: Object.keys(doc.rules), path: hostRestrictionsPath(g.home) }, `host restrictions set: ${doc.metadata.name} (${Object.keys(doc.rules).length} rules)`);
    });
  r.command('show')
    .description('print the host default')
    .action(() => {
      const g = globals();
      const text = hostRestrictionsText(g.home);
      if (text === undefined) throw new SlipwayError('no host restrictions are set', { hint: 'slipway restrictions set FILE|PRESET' });
      if (g.json) print(g, hostRestrictions(g.home), '');
      else process.stdout.write(text);
    });
  r.command('presets')
    .description('list the shipped presets')
    .action(() => {
      const g = globals();
      print(g, presetNames(), presetNames().join('\n'));
    });
}
