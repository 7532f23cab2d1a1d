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
      format: '{label} [{bar}] {percentage}% {done}/{total}',
      hideCursor: true,
      clearOnComplete: false,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; value: number }>();
  return {
    blobStart(desc) {
      const bar = multi.create(desc.size, 0, { label: shortDigest(desc.digest), done: '0 B', total: formatBytes(desc.size) });
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
