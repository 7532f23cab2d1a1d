/**
 * Who owns what Slipway leaves on the host while it runs (a dyno, a build's network): the Slipway
 * process, named by its token (pid and start time, ../store/owner-token.ts), so that what a dead
 * process left can be told from what a live one looks after (orphans.ts, build-network.ts). A
 * dyno's bundle also names its app.
 */
import { ownerToken } from '../store/owner-token.js';

export const APP_ANNOTATION = 'io.slipway.app';
export const OWNER_ANNOTATION = 'io.slipway.owner';

/** The annotations of a dyno this process starts. */
export function dynoAnnotations(app: string): Record<string, string> {
  return { [APP_ANNOTATION]: app, [OWNER_ANNOTATION]: ownerToken() };
}
