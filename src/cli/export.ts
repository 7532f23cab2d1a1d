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
import { UsageError } from '../errors.js';
import { getFormation } from '../release/formation.js';
import { kubeManifests } from '../kube/manifests.js';
import { writeManifests } from '../kube/write.js';
import { restrictionsFor } from '../restrictions/source.js';
import { judge, refuseIfDenied } from '../restrictions/enforce.js';
import { FactsCache } from '../restrictions/layer-facts.js';
import { releaseSubject } from '../restrictions/subject.js';

export function registerExportCommand(program: Command, globals: () => Globals): void {
  program
    .command('export')
    .description('export a release as an OCI image (oci:, docker-archive:, docker://: the stack\'s layers + the slug layer) or as Kubernetes manifests (kube:DIR)')
    .argument('<app>', 'APP or APP@vN (default: the current release)')
    .argument('<dest>', 'destination image, or kube:DIR')
    .option('--image-ref <ref>', 'kube: the exported image the Deployments run')
    .option('--slug-volume', 'kube: run the stack image and mount the slug at /app as an image volume')
    .option('--stack-ref <ref>', 'kube --slug-volume: the stack image')
    .option('--slug-ref <ref>', 'kube --slug-volume: the slug artifact (as slipway slug push wrote it)')
    .option('--namespace <ns>', 'kube: the namespace of every object')
    .option('--with-config', 'put the config vars into the image Env (they are secrets: off by default)')
    .option('-r, --restrictions <file|preset>', 'refuse to export what this document denies (default: the host\'s, if set)')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (spec: string, dest: string, o: { withConfig?: boolean; restrictions?: string; creds?: string; insecure?: boolean; imageRef?: string; slugVolume?: boolean; stackRef?: string; slugRef?: string; namespace?: string }) => {
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
        if (dest.startsWith('kube:')) {
          const dir = dest.slice(5);
          if (!dir) throw new UsageError('kube: needs a directory', 'e.g. kube:./k8s');
          const imageRef = o.slugVolume ? o.stackRef : o.imageRef;
          if (!imageRef) {
            throw new UsageError(o.slugVolume ? '--slug-volume needs --stack-ref (the stack image) and --slug-ref (the slug)' : 'kube: needs --image-ref, the image the Deployments run', o.slugVolume ? `slipway slug push ${rel.app} docker://REG/slugs/${rel.app}:v${rel.version}` : `push it first: slipway export ${rel.app} docker://REG/apps/${rel.app}:v${rel.version}`);
          }
          if (o.slugVolume && !o.slugRef) throw new UsageError('--slug-volume needs --slug-ref', `slipway slug push ${rel.app} docker://REG/slugs/${rel.app}:v${rel.version}`);
          const objects = kubeManifests(rel.app, rel, meta, getFormation(db, rel.app), { imageRef, slugRef: o.slugVolume ? o.slugRef : undefined, namespace: o.namespace });
          const files = await writeManifests(dir, objects);
          print(g, { app: rel.app, release: rel.version, directory: dir, files }, `wrote ${files.length} objects for ${rel.app} v${rel.version} to ${dir}: ${files.join(', ')}`);
          return;
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
