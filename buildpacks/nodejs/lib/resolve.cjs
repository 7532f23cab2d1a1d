// Resolves a version for the nodejs buildpack, run with any node at hand:
//   node resolve.cjs node META.json PACKAGE_JSON                -> the node version engines.node asks for
//   node resolve.cjs pkg  META.json NODE_VERSION RANGE [BEFORE] -> the newest release in RANGE that
//                                                                 supports that node (published before BEFORE)
//   node resolve.cjs satisfies VERSION RANGE                    -> exit 0 when VERSION is in RANGE
// META.json is the npm registry's metadata of node-linux-<arch>, npm, yarn, pnpm...
'use strict';
const fs = require('fs');

function parse(v) {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?/.exec(String(v).trim());
  return m ? { major: +m[1], minor: +m[2], patch: +m[3], pre: m[4] || '' } : null;
}
function cmp(a, b) {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch || (a.pre === b.pre ? 0 : a.pre === '' ? 1 : b.pre === '' ? -1 : a.pre < b.pre ? -1 : 1);
}
// One partial version ("1", "1.2", "1.x", "*") → its lower bound and how much of it is fixed.
function partial(s) {
  const parts = s.replace(/^v/, '').split('.');
  const nums = [];
  for (const p of parts) {
    if (p === '' || p === 'x' || p === 'X' || p === '*') break;
    if (!/^\d+$/.test(p.replace(/-.*$/, ''))) throw new Error(`bad version "${s}"`);
    nums.push(parseInt(p, 10));
  }
  return { major: nums[0] || 0, minor: nums[1] || 0, patch: nums[2] || 0, pre: '', fixed: nums.length };
}
function bump(v, fixed) {
  if (fixed <= 1) return { major: v.major + 1, minor: 0, patch: 0, pre: '' };
  if (fixed === 2) return { major: v.major, minor: v.minor + 1, patch: 0, pre: '' };
  return { major: v.major, minor: v.minor, patch: v.patch + 1, pre: '' };
}
// A comparator set ("^1.2 <1.5", "1 - 2", "~3") → a predicate.
function comparatorSet(text) {
  const t = text.trim();
  const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(t);
  if (hyphen) {
    const lo = partial(hyphen[1]);
    const hi = partial(hyphen[2]);
    return (v) => cmp(v, lo) >= 0 && (hi.fixed === 3 ? cmp(v, hi) <= 0 : cmp(v, bump(hi, hi.fixed)) < 0);
  }
  const tests = t.split(/\s+/).filter(Boolean).map((c) => {
    const m = /^(\^|~|>=|<=|>|<|=)?\s*(.*)$/.exec(c);
    const op = m[1] || '';
    const p = partial(m[2]);
    if (p.fixed === 0) return op === '<' ? () => false : () => true;
    if (op === '^') {
      const hi = p.major > 0 || p.fixed === 1 ? bump(p, 1) : p.minor > 0 || p.fixed === 2 ? bump(p, 2) : bump(p, 3);
      return (v) => cmp(v, p) >= 0 && cmp(v, hi) < 0;
    }
    if (op === '~') return (v) => cmp(v, p) >= 0 && cmp(v, bump(p, p.fixed === 1 ? 1 : 2)) < 0;
    if (op === '>=') return (v) => cmp(v, p) >= 0;
    if (op === '>') return (v) => (p.fixed === 3 ? cmp(v, p) > 0 : cmp(v, bump(p, p.fixed)) >= 0);
    if (op === '<=') return (v) => (p.fixed === 3 ? cmp(v, p) <= 0 : cmp(v, bump(p, p.fixed)) < 0);
    if (op === '<') return (v) => cmp(v, p) < 0;
    return (v) => (p.fixed === 3 ? cmp(v, p) === 0 : cmp(v, p) >= 0 && cmp(v, bump(p, p.fixed)) < 0);
  });
  return (v) => tests.every((f) => f(v));
}
function satisfies(range) {
  const sets = String(range).split('||').map(comparatorSet);
  return (v) => v.pre === '' && sets.some((f) => f(v));
}
function newest(versions, ok) {
  return versions.map((s) => ({ s, v: parse(s) })).filter((x) => x.v && ok(x.v)).sort((a, b) => cmp(b.v, a.v))[0];
}

const [kind, metaFile, arg, range] = process.argv.slice(2);
// node resolve.cjs satisfies VERSION RANGE -> exit 0 when VERSION is in RANGE
if (kind === 'satisfies') {
  const v = parse(metaFile);
  process.exit(v && satisfies(arg)(v) ? 0 : 1);
}
const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
const versions = Object.keys(meta.versions || {});
try {
  if (kind === 'node') {
    const pkg = JSON.parse(fs.readFileSync(arg, 'utf8'));
    let wanted = pkg.engines && pkg.engines.node;
    if (!wanted) {
      // The current LTS: the newest even major whose first release is at least six months old.
      const cutoff = Date.now() - 183 * 24 * 3600 * 1000;
      const times = meta.time || {};
      const lts = versions.map(parse).filter((v) => v && v.pre === '' && v.major % 2 === 0 && v.minor === 0 && v.patch === 0 && (!times[`${v.major}.0.0`] || Date.parse(times[`${v.major}.0.0`]) < cutoff)).sort((a, b) => b.major - a.major)[0];
      wanted = lts ? `${lts.major}.x` : '*';
      process.stderr.write(`engines.node not set: using the current LTS (${wanted})\n`);
    }
    const hit = newest(versions, satisfies(wanted));
    if (!hit) {
      const majors = [...new Set(versions.map(parse).filter((v) => v && v.pre === '' && v.major >= 10).map((v) => v.major))].sort((a, b) => a - b);
      throw new Error(`no Node.js version satisfies engines.node "${wanted}"; available majors: ${majors.join(', ')}`);
    }
    process.stdout.write(`${hit.s}\n`);
  } else if (kind === 'pkg') {
    const node = parse(arg);
    const ok = satisfies(range || '*');
    const before = process.argv[6] ? Date.parse(process.argv[6]) : NaN;
    const times = meta.time || {};
    const hit = newest(versions, (v) => {
      if (!ok(v)) return false;
      const at = Date.parse(times[`${v.major}.${v.minor}.${v.patch}`]);
      if (!Number.isNaN(before) && !Number.isNaN(at) && at > before) return false;
      const engines = (meta.versions[`${v.major}.${v.minor}.${v.patch}`] || {}).engines || {};
      return !engines.node || satisfies(engines.node)(node);
    });
    if (!hit) throw new Error(`no ${meta.name || 'package'} version satisfies "${range || '*'}" on Node.js ${arg}`);
    process.stdout.write(`${hit.s}\n`);
  } else {
    throw new Error(`unknown kind ${kind}`);
  }
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
