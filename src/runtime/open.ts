/** Picks the dyno runtime: containers where runc or crun works (said why when not), else processes. */
import type { Stack } from '../stack/stacks.js';
import { unpackedStack } from '../stack/unpacked.js';
import type { Db } from '../store/db.js';
import { ContainerRuntime } from './container-dyno.js';
import type { DynoRuntime } from './dyno.js';
import { ProcessRuntime } from './process-dyno.js';

export type RuntimeChoice = 'auto' | 'container' | 'process';

export async function openDynoRuntime(home: string, db: Db, choice: RuntimeChoice, stack: Stack, say: (s: string) => void): Promise<DynoRuntime> {
  if (choice === 'process') return new ProcessRuntime(home);
  try {
    return await ContainerRuntime.open(home, db, await unpackedStack(home, stack));
  } catch (err) {
    if (choice === 'container') throw err;
    say(`containers are not available here (${(err as Error).message.split('\n')[0]}): running dynos as plain processes`);
    return new ProcessRuntime(home);
  }
}
