import type { Command } from 'commander';
import { imageStorePath } from '../home.js';
import { rebaseImage } from '../release/rebase-image.js';
import { openDb } from '../store/db.js';
import { formatBytes, table } from './format.js';
import type { Globals } from './main.js';
import { print, registryOptions, withDb } from './shared.js';
import { UsageError } from '../errors.js';
import { rebaseFleet } from '../release/releases.js';
import { pushFleetImages } from '../release/fleet-push.js';
import { findStackByDigest, listStacks, resolveStack, stackTag } from '../stack/stacks.js';

export function registerRebaseCommand(program: Command, globals: () => Globals): void {
  program
    .command('rebase')
    .description('move an image (any transport) onto a new base by rewriting its manifest: no layer is rebuilt, downloaded or uploaded')
    .argument('[image]', 'the image to rebase')
    .option('--onto <newbase>', 'the new base image (any transport)')
    .option('--all', 'rebase every app\'s current release onto the latest version of its stack (new releases, no rebuild)')
    .option('--stack <name>', 'with --all: only apps on this stack')
    .option('--push <registry/prefix>', 'with --all: also rebase each app\'s image PREFIX/APP:v<old> in that registry, tagging it v<new>')
    .option('-j, --jobs <n>', 'with --push: images rebased at once', '16')
    .option('--old-base <image>', 'its current base (default: from its org.opencontainers.image.base.* annotations)')
    .option('--base-name <name>', 'record this as the new base\'s name (org.opencontainers.image.base.name)')
    .option('--tag <tag>', 'write the result under this tag instead of replacing the image')
    .option('--dry-run', 'show which blobs would be mounted, skipped or copied, and write nothing')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (image: string | undefined, o: { onto?: string; all?: boolean; stack?: string; push?: string; jobs: string; oldBase?: string; baseName?: string; tag?: string; dryRun?: boolean; creds?: string; insecure?: boolean }) => {
      const g = globals();
      // Images Slipway exported name their stack version by digest: find it in the local store.
      const resolveBase = (_name: string, digest: string): string | undefined => {
        const db = openDb(g.home);
        try {
          const s = findStackByDigest(db, digest);
          return s ? `oci:${imageStorePath(g.home)}:${stackTag(s.name, s.digest)}` : undefined;
        } finally {
          db.close();
        }
      };
      if (o.all) {
        if (image || o.onto) throw new UsageError('--all rebases releases onto their stack\'s latest version: give neither IMAGE nor --onto');
        await withDb(g, async (db) => {
          const stacks = o.stack ? [resolveStack(db, o.stack)] : [...new Set(listStacks(db).map((s) => s.name))].map((n) => resolveStack(db, n));
          const moves = stacks.flatMap((s) => rebaseFleet(db, s, { dryRun: o.dryRun === true }));
          const pushed = o.push && !o.dryRun && moves.length ? await pushFleetImages({ home: g.home, registry: registryOptions(o) }, moves, o.push, resolveBase, Math.max(1, Number(o.jobs) || 16)) : undefined;
          const rows = moves.map((m) => ({
            app: m.app,
            from: m.from.version,
            to: m.to.version,
            oldStack: m.from.stack!.digest,
            newStack: m.to.stack!.digest,
            ...(pushed && { image: pushed.images.find((i) => i.app === m.app)?.digest }),
          }));
          const summary = pushed
            ? `\nimages: ${pushed.images.length} rebased in ${pushed.seconds.toFixed(2)} s (${(pushed.images.length / pushed.seconds).toFixed(0)}/s), ${formatBytes(pushed.bytesSent)} sent, ${formatBytes(pushed.bytesReceived)} received, ${pushed.requests} requests; stack pushed once: ${formatBytes(pushed.stackPush.bytesSent)}`
            : '';
          print(
            g,
            pushed ? { releases: rows, push: pushed } : rows,
            rows.length === 0
              ? 'every app is on the latest version of its stack'
              : o.dryRun
                ? table([['APP', 'WOULD MOVE'], ...moves.map((m) => [m.app, `v${m.from.version} (${m.from.stack!.name}@v${m.from.stack!.version}) → v${m.to.version} (${m.to.stack!.name}@v${m.to.stack!.version})`])])
              : table([['APP', 'RELEASE', 'STACK'], ...moves.map((m) => [m.app, `v${m.from.version} → v${m.to.version}`, `${m.from.stack!.name}@v${m.from.stack!.version} ${m.from.stack!.digest.slice(7, 19)} → v${m.to.stack!.version} ${m.to.stack!.digest.slice(7, 19)}`])]) + summary,
          );
        });
        return;
      }
      if (!image || !o.onto) throw new UsageError('give IMAGE and --onto NEWBASE (or --all)');
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
