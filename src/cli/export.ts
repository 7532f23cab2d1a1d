import type { Command } from 'commander';
import { copyImage } from '../copy.js';
import { imageStorePath } from '../home.js';
import type { Digest } from '../oci/digest.js';
import { releaseImage } from '../release/image.js';
import { builtRelease } from '../release/releases.js';
import { verifySlugManifest } from '../slug/slug.js';
import { OciLayout } from '../store/layout.js';
import { openDestination } from '../transport/open.js';
import type { Globals } from './main.js';
import { copyProgress } from './progress.js';
import { print, registryOptions, withDb } from './shared.js';
import { restrictionsFor } from './check.js';
import { judge, refuseIfDenied } from '../restrictions/enforce.js';
import { FactsCache } from '../restrictions/layer-facts.js';
import { releaseSubject } from '../restrictions/subject.js';

export function registerExportCommand(program: Command, globals: () => Globals): void {
  program
    .command('export')
    .description('export a release as an OCI image: the stack\'s layers + the slug layer (oci:, docker-archive:, docker://)')
    .argument('<app>', 'APP or APP@vN (default: the current release)')
    .argument('<dest>', 'destination image')
    .option('--with-config', 'put the config vars into the image Env (they are secrets: off by default)')
    .option('-r, --restrictions <file|preset>', 'refuse to export what this document denies (default: the host\'s, if set)')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (spec: string, dest: string, o: { withConfig?: boolean; restrictions?: string; creds?: string; insecure?: boolean }) => {
      const g = globals();
      await withDb(g, async (db) => {
        const rel = builtRelease(db, spec);
        const layout = await OciLayout.open(imageStorePath(g.home), { create: true });
        const meta = await verifySlugManifest(layout, rel.slug as Digest, `${rel.app} v${rel.version} slug`);
        const doc = restrictionsFor(g.home, o.restrictions);
        if (doc) {
          const report = await judge(doc, await releaseSubject(g.home, rel, { cache: new FactsCache(g.home) }), db, g.home);
          refuseIfDenied(report, `export of ${rel.app} v${rel.version}`, (text) => process.stderr.write(text));
        }
        const image = await releaseImage(g.home, rel, meta, { withConfig: o.withConfig === true });
        const dst = await openDestination(dest, { home: g.home, registry: registryOptions(o) });
        const progress = copyProgress(process.stderr, g.quiet || g.json);
        try {
          const r = await copyImage(image.source, dst, { events: progress });
          progress.stop();
          print(g, { app: rel.app, release: rel.version, digest: r.digest, destination: dest, blobs: r.blobs }, `exported ${rel.app} v${rel.version} as ${dest}\ndigest ${r.digest}`);
        } finally {
          progress.stop();
          await image.source.close();
          await dst.close();
        }
      });
    });
}
