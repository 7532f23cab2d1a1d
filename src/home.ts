import { homedir } from 'node:os';
import { join } from 'node:path';

/** Slipway's state directory: $SLIPWAY_HOME, else ~/.local/share/slipway (XDG data home). */
export function slipwayHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SLIPWAY_HOME) return env.SLIPWAY_HOME;
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'slipway');
}

/** The local image store: an OCI image layout. */
export function imageStorePath(home: string): string {
  return join(home, 'images');
}
