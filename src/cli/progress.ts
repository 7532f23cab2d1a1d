import cliProgress from 'cli-progress';
import type { CopyEvents } from '../copy.js';
import { shortDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import { formatBytes } from './format.js';

/**
 * Copy progress: one bar per blob on a TTY; on pipes and in CI, one quiet line per
 * finished blob (stderr, so stdout stays clean for --json).
 */
export function copyProgress(stream: NodeJS.WriteStream = process.stderr, quiet = false): CopyEvents & { stop(): void } {
  if (quiet) return { stop() {} };
  if (!stream.isTTY) {
    return {
      blobDone(desc: Descriptor, outcome) {
        const verb = outcome === 'exists' ? 'exists ' : outcome === 'mounted' ? 'mounted' : 'copied ';
        stream.write(`${verb} ${shortDigest(desc.digest)} ${formatBytes(desc.size)}\n`);
      },
      stop() {},
    };
  }
  const multi = new cliProgress.MultiBar(
    {
      stream,
      format: '{label} [{bar}] {percentage}% {done}/{size}',
      hideCursor: true,
      clearOnComplete: false,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; value: number }>();
  return {
    blobStart(desc) {
      // Not "total": cli-progress fills that token with the raw byte count itself.
      const bar = multi.create(desc.size, 0, { label: shortDigest(desc.digest), done: '0 B', size: formatBytes(desc.size) });
      bars.set(desc.digest, { bar, value: 0 });
    },
    blobBytes(desc, n) {
      const b = bars.get(desc.digest);
      if (!b) return;
      b.value += n;
      b.bar.update(b.value, { done: formatBytes(b.value) });
    },
    blobDone(desc, outcome) {
      const b = bars.get(desc.digest);
      b?.bar.update(desc.size, { done: outcome === 'copied' ? formatBytes(desc.size) : outcome });
    },
    stop() {
      multi.stop();
    },
  };
}

/** Progress of packing a directory into a layer: a live byte count on a TTY, one line at the end otherwise. */
export function packProgress(label: string, stream: NodeJS.WriteStream = process.stderr, quiet = false): { onBytes(n: number): void; done(): void } {
  let total = 0;
  let last = 0;
  const started = Date.now();
  return {
    onBytes(n) {
      total += n;
      if (quiet || !stream.isTTY || Date.now() - last < 100) return;
      last = Date.now();
      stream.write(`\rpacking ${label}: ${formatBytes(total)}`);
    },
    done() {
      if (quiet || total === 0) return;
      const bytes = total;
      total = 0;
      const line = `packed ${label}: ${formatBytes(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s`;
      stream.write(stream.isTTY ? `\r${line}\x1b[K\n` : `${line}\n`);
    },
  };
}
