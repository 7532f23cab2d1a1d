// After the install: every native addon under node_modules (a package with binding.gyp) must
// have been compiled, and every .node file must load into this Node.js. Package managers that
// skip install scripts (npm 12, pnpm 10 without onlyBuiltDependencies, ignore-scripts) otherwise
// "succeed" and the app crashes at boot. Packages some package.json names in optionalDependencies
// are only warned about: a failed optional build is what the package manager allows.
//   node native.cjs APP_DIR  (exit 1 with the reasons when a required addon is missing or broken)
'use strict';
const fs = require('fs');
const path = require('path');

const app = process.argv[2];
const optional = new Set(Object.keys(readJson(path.join(app, 'package.json')).optionalDependencies || {}));
const addons = [];
const seen = new Set();

function readJson(f) {
  try {
    return JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch {
    return {};
  }
}
function list(d) {
  try {
    return fs.readdirSync(d, { withFileTypes: true });
  } catch {
    return [];
  }
}
// Directories and symlinks to them (file: dependencies, pnpm's layout), each real one once.
function isDir(p, e) {
  if (e.isDirectory()) return true;
  try {
    return e.isSymbolicLink() && fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
function walkModules(dir) {
  for (const e of list(dir)) {
    const p = path.join(dir, e.name);
    if (!isDir(p, e)) continue;
    if (e.name.startsWith('@') || e.name === '.pnpm') walkModules(p);
    else if (e.name === 'node_modules') walkModules(p);
    else visitPackage(p);
  }
}
function visitPackage(p) {
  const real = fs.realpathSync(p);
  if (seen.has(real)) return;
  seen.add(real);
  const pkg = readJson(path.join(p, 'package.json'));
  for (const n of Object.keys(pkg.optionalDependencies || {})) optional.add(n);
  if (pkg.name && fs.existsSync(path.join(p, 'binding.gyp'))) addons.push({ dir: p, name: pkg.name, version: pkg.version, files: nodeFiles(p, 0) });
  walkModules(path.join(p, 'node_modules'));
}
function nodeFiles(d, depth) {
  if (depth > 5) return [];
  return list(d).flatMap((e) => {
    const p = path.join(d, e.name);
    // node-gyp's intermediate copies (obj.target) are not what the package loads.
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'obj.target' ? [] : nodeFiles(p, depth + 1);
    return e.isFile() && e.name.endsWith('.node') ? [p] : [];
  });
}

walkModules(path.join(app, 'node_modules'));
let failed = 0;
for (const a of addons) {
  const where = path.relative(app, a.dir);
  const problems = [];
  let loaded = 0;
  if (a.files.length === 0) problems.push('has no compiled .node file: its install script did not run (install scripts blocked: npm 12, pnpm\'s onlyBuiltDependencies, ignore-scripts) or did not build it');
  for (const f of a.files) {
    // Prebuilt binaries for other platforms (prebuilds/<os>-<arch>/) are not this one's business.
    if (/prebuilds\//.test(path.relative(a.dir, f)) && !path.relative(a.dir, f).includes(`${process.platform}-${process.arch}`)) continue;
    try {
      process.dlopen({ exports: {} }, f);
      loaded++;
    } catch (err) {
      // A shared library that is not a Node.js addon (e.g. an SQLite extension a package builds).
      if (/did not self-register/.test(err.message)) continue;
      problems.push(`${path.relative(app, f)} does not load: ${String(err.message).split('\n')[0]}`);
    }
  }
  for (const p of problems) {
    const soft = optional.has(a.name);
    if (!soft) failed++;
    process.stdout.write(`${soft ? 'warning' : 'error'}: native module ${a.name}@${a.version} (${where}) ${p}\n`);
  }
  if (problems.length === 0) process.stdout.write(`ok: native module ${a.name}@${a.version} (${loaded} addon${loaded === 1 ? '' : 's'} load${loaded === 1 ? 's' : ''})\n`);
}
process.exit(failed ? 1 : 0);
