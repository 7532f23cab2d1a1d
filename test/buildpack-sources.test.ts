import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ok, run, slipway } from './helpers/cli.js';
import { buildpack, busyboxRootfs } from './helpers/buildpacks.js';
import { tempDir } from './helpers/tmp.js';

const RESOLVE = fileURLToPath(new URL('../buildpacks/nodejs/lib/resolve.cjs', import.meta.url));

describe('buildpack sources', () => {
  let home: string;
  let bp: string;
  beforeAll(async () => {
    home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    bp = await buildpack({ detect: 'echo Packed', compile: 'cat "$(dirname "$0")/../VERSION" > "$1/bp-version"', release: 'echo "--- {}"' });
  });

  async function buildWith(spec: string, extra: Record<string, string> = {}): Promise<{ name: string; url: string; version?: string }[]> {
    const src = await tempDir();
    await writeFile(join(src, 'Procfile'), 'web: ./x\n');
    for (const [k, v] of Object.entries(extra)) await writeFile(join(src, k), v);
    const args = spec ? ['--buildpack', spec] : [];
    const r = await ok(slipway(home, ['--json', 'build', src, '--app', 'sources', '--runtime', 'process', ...args]));
    return (JSON.parse(r.stdout) as { slug: { metadata: { buildpacks: { name: string; url: string; version?: string }[] } } }).slug.metadata.buildpacks;
  }

  it('takes a .tgz file (one top directory, as GitHub archives have)', async () => {
    await writeFile(join(bp, 'VERSION'), '2.0.0\n');
    const dir = await tempDir();
    const tgz = join(dir, 'bp.tgz');
    execFileSync('tar', ['czf', tgz, '-C', join(bp, '..'), bp.split('/').pop()!]);
    expect(await buildWith(tgz)).toEqual([{ name: 'Packed', url: tgz, version: '2.0.0' }]);
    // The same tarball over HTTP (a server on loopback stands in for a buildpack registry).
    const bytes = await readFile(tgz);
    const server = createServer((req, res) => (req.url === '/bp.tgz' ? res.end(bytes) : res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/bp.tgz`;
      expect(await buildWith(url)).toEqual([{ name: 'Packed', url, version: '2.0.0' }]);
    } finally {
      server.close();
    }
  });

  it('takes a git URL with #ref, recording the commit', async () => {
    const repo = join(await tempDir(), 'bp.git');
    execFileSync('cp', ['-a', bp, repo]);
    const git = (...a: string[]) => execFileSync('git', ['-C', repo, ...a], { env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } }).toString().trim();
    git('init', '-q', '-b', 'main');
    git('add', '.');
    git('commit', '-q', '-m', 'v1');
    git('tag', 'v1');
    const v1 = git('rev-parse', 'HEAD');
    await writeFile(join(repo, 'VERSION'), '3.0.0\n');
    git('commit', '-q', '-am', 'v3');
    const used = await buildWith(`git+file://${repo}#v1`);
    expect(used).toEqual([{ name: 'Packed', url: `git+file://${repo}#v1`, version: v1 }]);
    const bad = await slipway(home, ['build', await tempDir(), '--app', 'sources', '--runtime', 'process', '--buildpack', `git+file://${repo}#nope`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/git failed/);
  });

  it('takes buildpacks from app.json', async () => {
    expect(await buildWith('', { 'app.json': JSON.stringify({ buildpacks: [{ url: bp }] }) })).toEqual([expect.objectContaining({ name: 'Packed', url: bp })]);
  });

  it('says what is wrong with a buildpack that is not one', async () => {
    const empty = await tempDir();
    const src = await tempDir();
    const r = await slipway(home, ['build', src, '--app', 'sources', '--runtime', 'process', '--buildpack', empty]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bin\/detect is missing/);
    const missing = await slipway(home, ['build', src, '--app', 'sources', '--runtime', 'process', '--buildpack', '/no/such/bp']);
    expect(missing.stderr).toMatch(/buildpack "\/no\/such\/bp" not found[\s\S]*built-ins: nodejs, java, procfile/);
  });
});

describe('the nodejs buildpack version resolver', () => {
  async function meta(versions: string[], time: Record<string, string> = {}): Promise<string> {
    const file = join(await tempDir(), 'meta.json');
    await writeFile(file, JSON.stringify({ versions: Object.fromEntries(versions.map((v) => [v, { engines: v.startsWith('10.') ? { node: '>=18' } : {} }])), time }));
    return file;
  }
  async function pkg(engines: object): Promise<string> {
    const file = join(await tempDir(), 'package.json');
    await writeFile(file, JSON.stringify({ engines }));
    return file;
  }
  const resolve = (...args: string[]) => run(process.execPath, [RESOLVE, ...args]);

  it('resolves semver ranges to the newest matching release', async () => {
    const m = await meta(['18.20.1', '20.1.0', '20.11.1', '20.12.0-rc.1', '21.0.0', '22.3.0']);
    const cases: [string, string][] = [
      ['20.x', '20.11.1'],
      ['^20.1', '20.11.1'],
      ['~20.1.0', '20.1.0'],
      ['>=20 <22', '21.0.0'],
      ['18 || 22', '22.3.0'],
      ['18.0.0 - 20.5', '20.1.0'],
      ['*', '22.3.0'],
    ];
    for (const [range, want] of cases) {
      const r = await resolve('node', m, await pkg({ node: range }));
      expect(`${range} -> ${r.stdout.trim()}`).toBe(`${range} -> ${want}`);
    }
  });

  it('lists what exists when nothing satisfies, and defaults to the current LTS', async () => {
    const m = await meta(['20.0.0', '20.5.0', '22.0.0', '22.1.0', '24.0.0'], { '20.0.0': '2023-04-18T00:00:00Z', '22.0.0': '2024-04-24T00:00:00Z', '24.0.0': new Date().toISOString() });
    const bad = await resolve('node', m, await pkg({ node: '>=30' }));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no Node.js version satisfies engines.node ">=30"; available majors: 20, 22, 24/);
    const lts = await resolve('node', m, await pkg({}));
    expect(lts.stdout.trim()).toBe('22.1.0');
    const npm = await resolve('pkg', await meta(['9.9.0', '10.1.0', '11.0.0']), 'v16.0.0', '');
    expect(npm.stdout.trim()).toBe('11.0.0');
  });
});

describe('the nodejs buildpack package manager choice', () => {
  const MANAGER = fileURLToPath(new URL('../buildpacks/nodejs/lib/manager.cjs', import.meta.url));
  async function choose(files: Record<string, string>): Promise<{ code: number; out: string[]; err: string }> {
    const dir = await tempDir();
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    const r = await run(process.execPath, [MANAGER, dir]);
    return { code: r.code, out: r.stdout.trim().split('\t'), err: r.stderr };
  }
  const pkgJson = (o: object = {}): string => JSON.stringify({ name: 'a', ...o });

  it('honours packageManager, then the lockfile, then engines, as Heroku does', async () => {
    expect((await choose({ 'package.json': pkgJson() })).out).toEqual(['npm', 'shipped', 'no lockfile', '-']);
    expect((await choose({ 'package.json': pkgJson(), 'package-lock.json': '{}' })).out).toEqual(['npm', 'shipped', 'package-lock.json', '-']);
    expect((await choose({ 'package.json': pkgJson({ engines: { npm: '^10.5' } }), 'package-lock.json': '{}' })).out).toEqual(['npm', '^10.5', 'package-lock.json', '-']);
    expect((await choose({ 'package.json': pkgJson(), 'yarn.lock': '# yarn lockfile v1\n' })).out).toEqual(['yarn', '1.x', 'yarn.lock', '-']);
    expect((await choose({ 'package.json': pkgJson(), 'yarn.lock': '__metadata:\n  version: 8\n' })).out).toEqual(['yarn', '>=2', 'yarn.lock', '-']);
    expect((await choose({ 'package.json': pkgJson({ engines: { pnpm: '9.x' } }), 'pnpm-lock.yaml': "lockfileVersion: '9.0'\n" })).out).toEqual(['pnpm', '9.x', 'pnpm-lock.yaml', '-']);
    expect((await choose({ 'package.json': pkgJson({ packageManager: 'pnpm@9.15.0+sha512.abc123' }), 'package-lock.json': '{}' })).out).toEqual(['pnpm', '9.15.0', 'packageManager pnpm@9.15.0', 'sha512.abc123']);
    // A berry release checked in (.yarnrc.yml's yarnPath) is the one that runs.
    const own = await choose({ 'package.json': pkgJson({ packageManager: 'yarn@4.5.3' }), '.yarnrc.yml': 'yarnPath: yarn-4.5.3.cjs\n', 'yarn-4.5.3.cjs': '' });
    expect(own.out.slice(0, 2)).toEqual(['yarn', 'path:yarn-4.5.3.cjs']);
  });

  it('refuses two managers\' lockfiles and a packageManager it cannot read, saying what to do', async () => {
    const two = await choose({ 'package.json': pkgJson(), 'package-lock.json': '{}', 'yarn.lock': '' });
    expect(two.code).toBe(1);
    expect(two.err).toMatch(/several lockfiles \(package-lock\.json, yarn\.lock\): keep only the one/);
    const bad = await choose({ 'package.json': pkgJson({ packageManager: 'bun@1' }) });
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/packageManager "bun@1" is not npm@, yarn@ or pnpm@ with an exact version/);
  });
});
