// Which package manager an app uses, as Heroku's Node.js buildpack decides:
//   node manager.cjs BUILD_DIR -> "NAME SPEC FROM HASH" on one line (tab-separated), where
//   NAME is npm, yarn or pnpm; SPEC a version range, "shipped" (the npm that ships with Node.js)
//   or "path:FILE" (a yarn release checked in, .yarnrc.yml's yarnPath); FROM says why; HASH is
//   packageManager's "+sha512.<hex>" (or "-").
// packageManager wins; else the lockfile (one only); engines.<name> gives the version range.
'use strict';
const fs = require('fs');
const path = require('path');

const dir = process.argv[2];
const has = (f) => fs.existsSync(path.join(dir, f));
function fail(msg) {
  process.stderr.write(`${msg}\n`);
  process.exit(1);
}

let pkg;
try {
  pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
} catch (err) {
  fail(`package.json: ${err.message}`);
}
const engines = pkg.engines || {};
const locks = [
  ['npm', 'package-lock.json'],
  ['npm', 'npm-shrinkwrap.json'],
  ['yarn', 'yarn.lock'],
  ['pnpm', 'pnpm-lock.yaml'],
].filter(([, f]) => has(f));

function yarnDefault() {
  const lock = has('yarn.lock') ? fs.readFileSync(path.join(dir, 'yarn.lock'), 'utf8') : '';
  const rc = has('.yarnrc.yml') ? fs.readFileSync(path.join(dir, '.yarnrc.yml'), 'utf8') : '';
  const yarnPath = /^yarnPath:\s*["']?([^"'\n]+?)["']?\s*$/m.exec(rc);
  if (yarnPath && has(yarnPath[1])) return `path:${yarnPath[1]}`;
  // Berry's lockfile starts with a __metadata block; classic's does not.
  return /^__metadata:/m.test(lock) || rc !== '' ? '>=2' : '1.x';
}

let out;
if (typeof pkg.packageManager === 'string' && pkg.packageManager !== '') {
  const m = /^(npm|yarn|pnpm)@(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(?:\+(sha1|sha224|sha256|sha384|sha512)\.([0-9a-f]+))?$/.exec(pkg.packageManager);
  if (!m) fail(`package.json: packageManager "${pkg.packageManager}" is not npm@, yarn@ or pnpm@ with an exact version (e.g. "pnpm@9.15.0")`);
  let spec = m[2];
  if (m[1] === 'yarn' && !spec.startsWith('1.')) {
    const own = yarnDefault();
    if (own.startsWith('path:')) spec = own;
  }
  out = [m[1], spec, `packageManager ${pkg.packageManager.replace(/\+.*/, '')}`, m[3] ? `${m[3]}.${m[4]}` : '-'];
} else {
  const names = [...new Set(locks.map(([n]) => n))];
  if (names.length > 1) fail(`several lockfiles (${locks.map(([, f]) => f).join(', ')}): keep only the one of the package manager this app uses, or set package.json's packageManager`);
  const name = names[0] || 'npm';
  const from = locks.length ? locks.map(([, f]) => f).join(', ') : 'no lockfile';
  let spec = engines[name];
  if (!spec) spec = name === 'npm' ? 'shipped' : name === 'yarn' ? yarnDefault() : '<12';
  out = [name, spec.replace(/\s+/g, ''), from, '-'];
}
process.stdout.write(`${out.join('\t')}\n`);
