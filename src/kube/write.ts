/** Writes Kubernetes objects as YAML, one file per object, each atomically. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { writeFileAtomic } from '../store/atomic.js';

export async function writeManifests(dir: string, objects: Record<string, unknown>[]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const o of objects) {
    const name = `${String(o.kind).toLowerCase()}-${String((o.metadata as { name: string }).name)}.yaml`;
    await writeFileAtomic(join(dir, name), stringify(o));
    files.push(name);
  }
  return files;
}
