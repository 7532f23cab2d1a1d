import type { Command } from 'commander';
import { copyImage } from '../copy.js';
import { SlipwayError } from '../errors.js';
import { imageStorePath } from '../home.js';
import { checkAppName } from '../release/apps.js';
import { addRelease, builtRelease, type Release } from '../release/releases.js';
import { findStackByDigest } from '../stack/stacks.js';
import { slugDiffIds, slugStoreRef, slugTag, verifySlugManifest } from '../slug/slug.js';
import { OciLayout } from '../store/layout.js';
import { OciLayoutDestination } from '../transport/oci-layout.js';
import { openDestination, openSource } from '../transport/open.js';
import type { Digest } from '../oci/digest.js';
import type { Globals } from './main.js';
import { copyProgress } from './progress.js';
import { print, registryOptions, withDb } from './shared.js';



export function registerSlugCommands(program: Command, globals: () => Globals): void {
  const slug = program.command('slug').description('move slugs (OCI artifacts) between Slipway hosts through any registry');

  slug
    .command('push')
    .description('copy a release\'s slug to any image destination (docker://, oci:, docker-archive:)')
    .argument('<app>', 'APP or APP@vN (default: the current release)')
    .argument('<dest>', 'destination')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (spec: string, dest: string, o: { creds?: string; insecure?: boolean }) => {
      const g = globals();
      await withDb(g, async (db) => {
        const rel = builtRelease(db, spec);
        const src = await openSource(slugStoreRef(g.home, rel.app, rel.slug as Digest), { home: g.home });
        const dst = await openDestination(dest, { home: g.home, registry: registryOptions(o) });
        const progress = copyProgress(process.stderr, g.quiet || g.json);
        try {
          const r = await copyImage(src, dst, { events: progress });
          progress.stop();
          print(g, { app: rel.app, release: rel.version, digest: r.digest, destination: dest }, `pushed ${rel.app} v${rel.version} slug ${r.digest} to ${dest}`);
        } finally {
          progress.stop();
          await src.close();
          await dst.close();
        }
      });
    });

  slug
    .command('pull')
    .description('pull a slug and release it for an app (its stack version must be here)')
    .argument('<src>', 'source (docker://, oci:, docker-archive:)')
    .requiredOption('-a, --app <name>', 'app to release it for (created if needed)')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (srcRef: string, o: { app: string; creds?: string; insecure?: boolean }) => {
      const g = globals();
      await withDb(g, async (db) => {
        // The app is created with its release, at the end: a pull that fails leaves none.
        const app = { name: checkAppName(o.app) };
        const src = await openSource(srcRef, { home: g.home, registry: registryOptions(o) });
        const layout = await OciLayout.open(imageStorePath(g.home), { create: true });
        try {
          const top = await src.getManifest();
          const dst = new OciLayoutDestination(`slug for ${app.name}`, layout, slugTag(app.name, top.digest), true, slugDiffIds);
          try {
            await copyImage(src, dst);
          } finally {
            await dst.close();
          }
          let rel: Release;
          try {
            const meta = await verifySlugManifest(layout, top.digest, srcRef);
            const stack = findStackByDigest(db, meta.stack.digest);
            if (!stack) {
              throw new SlipwayError(`the slug was built on stack ${meta.stack.name} ${meta.stack.digest}, which is not here`, {
                hint: `import that stack version first (slipway stack import ${meta.stack.name} SOURCE)`,
              });
            }
            rel = addRelease(db, app.name, (cur) => ({ slug: top.digest, stack: { name: stack.name, version: stack.version, digest: stack.digest }, config: cur?.config ?? {}, description: `Slug pulled from ${srcRef}` }));
          } catch (err) {
            // No release: the slug is not kept tagged for the app (a gc reclaims its blobs), unless one of its releases has it.
            if (!db.prepare('SELECT 1 FROM releases WHERE app = ? AND slug = ?').get(app.name, top.digest)) await layout.untag(slugTag(app.name, top.digest));
            throw err;
          }
          print(g, { app: app.name, version: rel.version, slug: top.digest }, `released ${app.name} v${rel.version} with slug ${top.digest}`);
        } finally {
          await src.close();
        }
      });
    });
}
