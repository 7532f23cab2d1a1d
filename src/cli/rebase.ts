import type { Command } from 'commander';
import { imageStorePath } from '../home.js';
import { rebaseImage } from '../release/rebase-image.js';
import { stackTag } from '../stack/stacks.js';
import { openDb } from '../store/db.js';
import { formatBytes, table } from './format.js';
import type { Globals } from './main.js';
import { print, registryOptions } from './shared.js';

export function registerRebaseCommand(program: Command, globals: () => Globals): void {
  program
    .command('rebase')
    .description('move an image (any transport) onto a new base by rewriting its manifest: no layer is rebuilt, downloaded or uploaded')
    .argument('<image>', 'the image to rebase')
    .requiredOption('--onto <newbase>', 'the new base image (any transport)')
    .option('--old-base <image>', 'its current base (default: from its org.opencontainers.image.base.* annotations)')
    .option('--base-name <name>', 'record this as the new base\'s name (org.opencontainers.image.base.name)')
    .option('--tag <tag>', 'write the result under this tag instead of replacing the image')
    .option('--dry-run', 'show which blobs would be mounted, skipped or copied, and write nothing')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (image: string, o: { onto: string; oldBase?: string; baseName?: string; tag?: string; dryRun?: boolean; creds?: string; insecure?: boolean }) => {
      const g = globals();
      // Images Slipway exported name their stack version by digest: find it in the local store.
      const resolveBase = (_name: string, digest: string): string | undefined => {
        const db = openDb(g.home);
        try {
          const row = db.prepare('SELECT name, digest FROM stacks WHERE digest = ? LIMIT 1').get(digest) as { name: string; digest: string } | undefined;
          return row ? `oci:${imageStorePath(g.home)}:${stackTag(row.name, row.digest)}` : undefined;
        } finally {
          db.close();
        }
      };
      const report = await rebaseImage({ home: g.home, registry: registryOptions(o) }, image, o.onto, {
        resolveBase,
        ...(o.oldBase && { oldBase: o.oldBase }),
        ...(o.baseName && { newBaseName: o.baseName }),
        ...(o.tag && { tag: o.tag }),
        ...(o.dryRun && { dryRun: true }),
      });
      // After a real run, show what happened to each blob rather than what was planned.
      const done = new Map(report.result?.blobs.map((b) => [b.digest as string, b.outcome]) ?? []);
      const action = (b: { digest: string; action: string }): string => done.get(b.digest) ?? b.action;
      const moved = report.blobs.filter((b) => ['copy', 'copied'].includes(action(b)) && b.role !== 'config').reduce((a, b) => a + b.size, 0);
      const lines = [
        `${report.dryRun ? 'would rebase' : 'rebased'} ${report.image} → ${report.destination}`,
        `${report.oldDigest} → ${report.newDigest}`,
        table([['BLOB', 'ROLE', 'SIZE', report.dryRun ? 'WOULD' : 'DONE'], ...report.blobs.map((b) => [b.digest.slice(0, 19), b.role, formatBytes(b.size), action(b)])]),
        `layer bytes ${report.dryRun ? 'to copy' : 'copied'}: ${formatBytes(moved)}`,
      ];
      print(g, report, lines.join('\n'));
    });
}
