#!/usr/bin/env node
// Writes schemas/*.json from the TypeBox definitions in src/restrictions (the single source);
// test/restrictions.test.ts fails when the committed files differ from what this writes.
import { build } from 'esbuild';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tmp = await mkdtemp(join(tmpdir(), 'slipway-schemas-'));
try {
  const out = join(tmp, 'schemas.mjs');
  await build({ entryPoints: [join(root, 'src/restrictions/schemas.ts')], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'error', banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" } });
  const { PUBLISHED_SCHEMAS, schemaText } = await import(pathToFileURL(out).href);
  for (const [name, schema] of Object.entries(PUBLISHED_SCHEMAS)) {
    await writeFile(join(root, 'schemas', name), schemaText(schema));
    console.log(`wrote schemas/${name}`);
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}
