#!/usr/bin/env node
// Layer compression and file I/O share libuv's pool; give it room on many-core hosts.
process.env.UV_THREADPOOL_SIZE ??= '8';
const { main } = await import('../dist/slipway.js');

process.exitCode = await main(process.argv);
