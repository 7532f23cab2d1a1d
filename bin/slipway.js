#!/usr/bin/env node
// Runs the bundled CLI through a V8 code cache kept next to it: compiling the 1 MB bundle is a
// third of Slipway's own start-up, and Node 20 has no compile cache of its own. The cache is
// written once (or again when V8 rejects it after a rebuild or a Node upgrade); where the
// installation is read-only, the CLI simply runs without it.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

// Layer compression and file I/O share libuv's pool; give it room on many-core hosts.
process.env.UV_THREADPOOL_SIZE ??= '8';
const file = fileURLToPath(new URL('../dist/slipway.cjs', import.meta.url));
const cacheFile = `${file}.cache`;
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  // first run, or never written here
}
const wrapped = `(function (exports, require, module, __filename, __dirname) {${readFileSync(file, 'utf8')}\n})`;
const script = new Script(wrapped, { filename: file, cachedData });
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
process.exitCode = await module.exports.main(process.argv);
if (cachedData === undefined || script.cachedDataRejected) {
  try {
    const tmp = `${cacheFile}.${process.pid}`;
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, cacheFile);
  } catch {
    // a read-only installation: run uncached
  }
}
