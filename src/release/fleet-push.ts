import { copyImage, forEachLimited } from '../copy.js';
import { imageStorePath } from '../home.js';
import { stackTag } from '../stack/stacks.js';
import { OciLayoutSource } from '../transport/oci-layout.js';
import { openDestination, type TransportContext } from '../transport/open.js';
import { traffic } from '../transport/registry/http.js';
import { BaseCache, rebaseImage, type RebaseReport } from './rebase-image.js';
import type { FleetMove } from './releases.js';

export interface FleetPushResult {
  images: { app: string; from: string; to: string; digest: string }[];
  /** Bodies over HTTP while rebasing (the stack push, done once, is counted apart). */
  bytesSent: number;
  bytesReceived: number;
  requests: number;
  stackPush: { bytesSent: number };
  /** The whole push, and the image rebases alone (after the one-time stack push). */
  seconds: number;
  rebaseSeconds: number;
}

/**
 * For each moved app, rebases its exported image `PREFIX/APP:v<old>` onto the new stack version
 * (pushed once as `PREFIX/stacks/NAME:vM`) and tags the result `v<new>`: per image, a config and a
 * manifest go up; base layers are mounted; nothing else moves. Images are done `concurrency` at a time.
 */
export async function pushFleetImages(
  ctx: TransportContext,
  moves: FleetMove[],
  prefix: string,
  resolveBase: (name: string, digest: string) => string | undefined,
  concurrency = 8,
): Promise<FleetPushResult> {
  const started = Date.now();
  const stacks = new Map(moves.map((m) => [`${m.to.stack!.name}@${m.to.stack!.version}`, m.to.stack!]));
  const before = traffic.sent;
  for (const s of stacks.values()) {
    const src = await OciLayoutSource.open(`stack ${s.name}@v${s.version}`, imageStorePath(ctx.home), stackTag(s.name, s.digest));
    const dst = await openDestination(`docker://${prefix}/stacks/${s.name}:v${s.version}`, ctx);
    try {
      await copyImage(src, dst);
    } finally {
      await src.close();
      await dst.close();
    }
  }
  const stackPush = { bytesSent: traffic.sent - before };
  const base = { sent: traffic.sent, received: traffic.received, requests: traffic.requests };
  const images: FleetPushResult['images'] = [];
  const bases = new BaseCache(ctx);
  const rebaseStarted = Date.now();
  try {
    await forEachLimited(moves, concurrency, async (m) => {
    const report: RebaseReport = await rebaseImage(ctx, `docker://${prefix}/${m.app}:v${m.from.version}`, `docker://${prefix}/stacks/${m.to.stack!.name}:v${m.to.stack!.version}`, {
      bases,
      resolveBase,
      tag: `v${m.to.version}`,
      newBaseName: `${prefix}/stacks/${m.to.stack!.name}:v${m.to.stack!.version}`,
    });
    images.push({ app: m.app, from: report.oldDigest, to: `v${m.to.version}`, digest: report.newDigest });
    });
  } finally {
    await bases.close();
  }
  return {
    rebaseSeconds: (Date.now() - rebaseStarted) / 1000,
    images,
    bytesSent: traffic.sent - base.sent,
    bytesReceived: traffic.received - base.received,
    requests: traffic.requests - base.requests,
    stackPush,
    seconds: (Date.now() - started) / 1000,
  };
}
