import type { Command } from 'commander';
import { copyImage } from '../copy.js';
import { imageStorePath } from '../home.js';
import { inspectImage, readSmallBlob, resolvePlatform } from '../inspect.js';
import { SlipwayError } from '../errors.js';
import { unpackImage } from '../unpack.js';
import { shortDigest } from '../oci/digest.js';
import { parsePlatform } from '../oci/platform.js';
import { OciLayout, REF_NAME } from '../store/layout.js';
import { OciLayoutDestination } from '../transport/oci-layout.js';
import { openDestination, openSource, type TransportContext } from '../transport/open.js';
import { formatBytes, table } from './format.js';
import { copyProgress, packProgress } from './progress.js';
import { print, registryOptions } from './shared.js';
import type { Globals } from './main.js';


export function registerImageCommands(program: Command, globals: () => Globals): void {
  const image = program.command('image').description('copy, inspect and manage OCI images in any transport');

  image
    .command('copy')
    .description('copy an image between transports (oci:, docker-archive:, docker://, dir:, local NAME:TAG)')
    .argument('<src>', 'source image')
    .argument('<dst>', 'destination image')
    .option('--platform <os/arch[/variant]>', 'copy only this platform out of a multi-platform index')
    .option('--src-creds <user:password>', 'credentials for the source registry')
    .option('--dest-creds <user:password>', 'credentials for the destination registry')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .option('-j, --jobs <n>', 'blobs transferred in parallel', '4')
    .action(async (srcRef: string, dstRef: string, o: { platform?: string; srcCreds?: string; destCreds?: string; insecure?: boolean; jobs: string }) => {
      const g = globals();
      const started = Date.now();
      const dst = await openDestination(dstRef, { home: g.home, registry: registryOptions({ ...o, creds: o.destCreds }) });
      const progress = copyProgress(process.stderr, g.quiet || g.json);
      const packing = packProgress(srcRef, process.stderr, g.quiet || g.json);
      const ctx: TransportContext = {
        onDirProgress: (n) => packing.onBytes(n),
        home: g.home,
        registry: registryOptions({ ...o, creds: o.srcCreds }),
        ...(dst instanceof OciLayoutDestination && { scratch: await dst.layout.scratchDir() }),
        onSkip: (path, why) => process.stderr.write(`warning: skipped ${path}: ${why}\n`),
      };
      let src;
      try {
        src = await openSource(srcRef, ctx);
        const result = await copyImage(src, dst, {
          ...(o.platform && { platform: parsePlatform(o.platform) }),
          concurrency: Math.max(1, Number(o.jobs) || 4),
          // A dir: source has built its layer by the time the first blob moves.
          events: { ...progress, blobStart: (d) => (packing.done(), progress.blobStart?.(d)) },
        });
        progress.stop();
        const moved = result.blobs.filter((b) => b.outcome === 'copied').reduce((a, b) => a + b.size, 0);
        const counts = ['copied', 'mounted', 'exists'].map((k) => `${result.blobs.filter((b) => b.outcome === k).length} ${k}`).join(', ');
        print(
          g,
          { source: srcRef, destination: dstRef, digest: result.digest, mediaType: result.mediaType, blobs: result.blobs, bytesCopied: moved, seconds: (Date.now() - started) / 1000 },
          `${dstRef} ← ${srcRef}\ndigest ${result.digest}\nblobs: ${counts} (${formatBytes(moved)} transferred in ${((Date.now() - started) / 1000).toFixed(1)} s)`,
        );
      } finally {
        progress.stop();
        await src?.close();
        await dst.close();
      }
    });

  image
    .command('inspect')
    .description('show an image: digest, platform, config, layers')
    .argument('<src>', 'image in any transport')
    .option('--raw', 'print the manifest (or index) bytes exactly as stored')
    .option('--config', 'with --raw: print the config blob instead')
    .option('--platform <os/arch[/variant]>', 'which image of an index to describe (default: the host)')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .action(async (ref: string, o: { raw?: boolean; config?: boolean; platform?: string; creds?: string; insecure?: boolean }) => {
      const g = globals();
      const src = await openSource(ref, { home: g.home, registry: registryOptions(o) });
      try {
        if (o.raw) {
          const top = await src.getManifest();
          if (o.config) {
            const m = await resolvePlatform(src, top, o.platform ? parsePlatform(o.platform) : undefined);
            process.stdout.write(await readSmallBlob(src, m.manifest.config));
          } else process.stdout.write(top.bytes);
          return;
        }
        const info = await inspectImage(src, o.platform ? parsePlatform(o.platform) : undefined);
        const c = info.config ?? {};
        const lines = [
          `Name:        ${info.name}`,
          `Digest:      ${info.digest}`,
          `MediaType:   ${info.mediaType}`,
          ...(info.platforms ? [`Platforms:   ${info.platforms.join(', ')}`] : []),
          `Platform:    ${info.platform}`,
          ...(info.created ? [`Created:     ${info.created}`] : []),
          `Size:        ${formatBytes(info.size)}`,
          ...(c.User ? [`User:        ${c.User}`] : []),
          ...(c.Entrypoint ? [`Entrypoint:  ${JSON.stringify(c.Entrypoint)}`] : []),
          ...(c.Cmd ? [`Cmd:         ${JSON.stringify(c.Cmd)}`] : []),
          ...(c.WorkingDir ? [`WorkingDir:  ${c.WorkingDir}`] : []),
          ...(c.Env?.length ? ['Env:', ...c.Env.map((e) => `  ${e}`)] : []),
          ...(info.labels ? ['Labels:', ...Object.entries(info.labels).map(([k, v]) => `  ${k}=${v}`)] : []),
          `Layers (${info.layers.length}):`,
          ...info.layers.map((l) => `  ${l.digest}  ${formatBytes(l.size).padStart(9)}  ${l.mediaType}`),
        ];
        print(g, info, lines.join('\n'));
      } finally {
        await src.close();
      }
    });

  image
    .command('unpack')
    .description('unpack an image\'s root filesystem into a new directory (layers verified, whiteouts applied)')
    .argument('<src>', 'image in any transport')
    .argument('<dir>', 'directory to create')
    .option('--platform <os/arch[/variant]>', 'which image of an index to unpack (default: the host)')
    .option('--creds <user:password>', 'registry credentials')
    .option('--insecure', 'allow plain HTTP to a non-loopback registry')
    .option('--no-devices', 'skip device nodes and FIFOs')
    .action(async (ref: string, dir: string, o: { platform?: string; creds?: string; insecure?: boolean; devices: boolean }) => {
      const g = globals();
      const src = await openSource(ref, { home: g.home, registry: registryOptions(o) });
      try {
        const r = await unpackImage(src, dir, { ...(o.platform && { platform: parsePlatform(o.platform) }), ...(!o.devices && { devices: 'skip' as const }) });
        for (const s of r.stats.skipped) process.stderr.write(`warning: skipped ${s}\n`);
        print(g, { directory: dir, ...r }, `unpacked ${r.layers} layers, ${r.stats.entries} entries (${formatBytes(r.stats.bytes)}) into ${dir}`);
      } finally {
        await src.close();
      }
    });

  image
    .command('ls')
    .description('list images in the local store')
    .action(async () => {
      const g = globals();
      const layout = await OciLayout.open(imageStorePath(g.home), { create: true });
      const index = await layout.readIndex();
      const rows = [];
      for (const m of index.manifests) {
        const ref = m.annotations?.[REF_NAME];
        const colon = ref?.lastIndexOf(':') ?? -1;
        rows.push({
          name: ref && colon > 0 ? ref.slice(0, colon) : (ref ?? '<none>'),
          tag: ref && colon > 0 ? ref.slice(colon + 1) : '<none>',
          digest: m.digest,
          mediaType: m.mediaType,
        });
      }
      print(
        g,
        rows,
        rows.length === 0 ? 'no images (copy one in: slipway image copy SRC NAME:TAG)' : table([['NAME', 'TAG', 'DIGEST'], ...rows.map((r) => [r.name, r.tag, shortDigest(r.digest)])]),
      );
    });

  image
    .command('rm')
    .description('remove a tag from the local store (blobs go at the next gc)')
    .argument('<name:tag>', 'image to untag')
    .action(async (ref: string) => {
      const g = globals();
      const layout = await OciLayout.open(imageStorePath(g.home), { create: true });
      const name = ref.includes(':') ? ref : `${ref}:latest`;
      if (!(await layout.untag(name))) {
        throw new SlipwayError(`local store: no image "${name}"`, { hint: 'see slipway image ls' });
      }
      print(g, { removed: name }, `untagged ${name}`);
    });

  image
    .command('gc')
    .description('remove blobs no image in the local store references')
    .option('--dry-run', 'only report what would be removed')
    .action(async (o: { dryRun?: boolean }) => {
      const g = globals();
      const layout = await OciLayout.open(imageStorePath(g.home), { create: true });
      const r = await layout.gc({ dryRun: o.dryRun === true });
      print(g, { removed: r.removed, bytes: r.bytes, dryRun: o.dryRun === true }, `${o.dryRun ? 'would remove' : 'removed'} ${r.removed.length} blobs (${formatBytes(r.bytes)})`);
    });
}
