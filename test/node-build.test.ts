import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ok, slipway, type RunResult } from './helpers/cli.js';
import { unpackSlug } from './helpers/buildpacks.js';
import { tempDir } from './helpers/tmp.js';
import { freePort } from './helpers/registry.js';
import { httpGet, load } from './helpers/apps.js';
import { verifySlugManifest } from '../src/slug/slug.js';
import { OciLayout } from '../src/store/layout.js';

const EXAMPLE = fileURLToPath(new URL('../examples/node-web', import.meta.url));

interface BuildJson {
  release: { version: number };
  slug: { digest: string; metadata: { processTypes: Record<string, string>; buildpacks: { name: string; version?: string }[] } };
}

/** Unpacks an image with umoci and runs it with runc; asserts its HTTP answer. Returns the bundle. */
async function expectAnswers(imageRef: string, answer: RegExp): Promise<string> {
  const bundle = join(await tempDir(), 'bundle');
  execFileSync('umoci', ['unpack', '--image', imageRef, bundle]);
  const port = await freePort();
  const cfgPath = join(bundle, 'config.json');
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as { process: { terminal: boolean; env: string[] }; linux: { namespaces: { type: string }[] } };
  cfg.process.terminal = false;
  cfg.process.env = cfg.process.env.map((e) => (e.startsWith('PORT=') ? `PORT=${port}` : e));
  // Share the host's loopback for the test instead of wiring a network namespace.
  cfg.linux.namespaces = cfg.linux.namespaces.filter((n) => n.type !== 'network');
  await writeFile(cfgPath, JSON.stringify(cfg));
  const id = `slipway-test-${process.pid}-${port}`;
  const container = spawn('runc', ['run', '--bundle', bundle, id], { stdio: 'ignore' });
  try {
    let body = '';
    for (let i = 0; i < 100 && body === ''; i++) {
      body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => '');
      if (body === '') await new Promise((r) => setTimeout(r, 100));
    }
    expect(body).toMatch(answer);
  } finally {
    spawnSync('runc', ['kill', id, 'KILL']);
    await new Promise((r) => container.once('close', r));
    spawnSync('runc', ['delete', '-f', id]);
  }
  return bundle;
}

describe('the nodejs buildpack on a real Debian stack', () => {
  it('builds the example in the build container, exports an image that answers HTTP, rebases it onto a patched stack, rebuilds to the same slug', async () => {
    const home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'bookworm', `dir:${inject('debootstrapRootfs')}`]));
    const first = await ok(slipway(home, ['--json', 'build', EXAMPLE, '--app', 'web', '--runtime', 'container']));
    const a = JSON.parse(first.stdout) as BuildJson;
    expect(a.slug.metadata.buildpacks).toEqual([{ name: 'Node.js', url: 'nodejs', version: '1.0.0' }]);
    expect(a.slug.metadata.processTypes).toEqual({ web: 'npm start' });

    // The slug carries its own node, and it runs over the stack (not the host's node).
    const slug = await unpackSlug(home, a.slug.digest);
    expect(existsSync(join(slug, 'app/.heroku/node/bin/node'))).toBe(true);
    expect(existsSync(join(slug, 'app/node_modules/ms/package.json'))).toBe(true);
    const root = join(await tempDir(), 'root');
    await ok(slipway(home, ['image', 'unpack', `oci:${join(home, 'images')}:stacks/bookworm:${(JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect', 'bookworm']))).stdout) as { digest: string }).digest.slice(7)}`, root]));
    expect(existsSync(join(root, 'usr/bin/node'))).toBe(false);
    await mkdir(join(root, 'app'), { recursive: true });
    await cp(join(slug, 'app'), join(root, 'app'), { recursive: true, verbatimSymlinks: true });
    const said = execFileSync('chroot', [root, '/app/.heroku/node/bin/node', '-e', "console.log(process.execPath, process.version, require('/app/node_modules/ms')(90000))"]).toString().trim();
    expect(said).toMatch(/^\/app\/\.heroku\/node\/bin\/node v22\.\d+\.\d+ 2m$/);
    const npm = execFileSync('chroot', [root, '/bin/sh', '-c', 'cd /app && PATH=/app/.heroku/node/bin:$PATH npm --version']).toString().trim();
    expect(npm).toMatch(/^\d+\.\d+\.\d+$/);

    // Exported as an OCI image (stack layers + slug layer), it runs unmodified: umoci unpack + runc.
    const layout = join(await tempDir(), 'export');
    await ok(slipway(home, ['export', 'web', `oci:${layout}:web`]));
    const info = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${layout}:web`]).toString()) as { config: { User: string; WorkingDir: string; Cmd: string[] } };
    expect(info.config).toMatchObject({ User: '1000:1000', WorkingDir: '/app', Cmd: ['/bin/sh', '-c', 'npm start'] });
    await expectAnswers(`${layout}:web`, /^Hello from Slipway: no dyno of no release, node v22\.\d+\.\d+ at \/app\/\.heroku\/node\/bin\/node/);

    // A patched stack version: the exported image, rebased onto it, still answers, now on the patch.
    const patched = join(await tempDir(), 'patched');
    execFileSync('cp', ['-a', inject('debootstrapRootfs'), patched]);
    await writeFile(join(patched, 'etc/slipway-patch'), 'patched\n');
    const v2 = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'import', 'bookworm', `dir:${patched}`]))).stdout) as { digest: string; version: number };
    expect(v2.version).toBe(2);
    const rebased = JSON.parse((await ok(slipway(home, ['--json', 'rebase', `oci:${layout}:web`, '--onto', `oci:${join(home, 'images')}:stacks/bookworm:${v2.digest.slice(7)}`, '--tag', 'rebased']))).stdout) as { blobs: { role: string; action: string }[] };
    expect(rebased.blobs.filter((b) => b.role === 'app').map((b) => b.action)).toEqual(['exists']);
    const rebasedBundle = await expectAnswers(`${layout}:rebased`, /^Hello from Slipway: no dyno of no release, node v22/);
    expect(await readFile(join(rebasedBundle, 'rootfs/etc/slipway-patch'), 'utf8')).toBe('patched\n');

    // Unchanged source on the same stack version: the cache is reused and the slug is the same blob.
    // Unchanged source on the same stack version: the cache is reused and the slug is the same blob.
    const second = await ok(slipway(home, ['--json', 'build', EXAMPLE, '--app', 'web', '--runtime', 'container', '--stack', 'bookworm@v1']));
    const b = JSON.parse(second.stdout) as BuildJson;
    expect(b.slug.digest).toBe(a.slug.digest);
    expect(b.release.version).toBe(a.release.version + 1);

    // NODEJS_TARBALL: a configured Node.js tarball instead of the registry (here, the cached 22.x
    // repacked into the app's build cache, where the build container sees it).
    const cache = join(home, 'builds', 'web', 'cache');
    const cached = (await readdir(join(cache, 'node'))).find((d) => /^v22\./.test(d))!;
    execFileSync('tar', ['czf', join(cache, 'configured-node.tgz'), '-C', join(cache, 'node'), cached]);
    await ok(slipway(home, ['config', 'set', 'web', 'NODEJS_TARBALL=/workspace/cache/configured-node.tgz']));
    const configured = await ok(slipway(home, ['build', EXAMPLE, '--app', 'web', '--runtime', 'container', '--stack', 'bookworm@v1']));
    expect(configured.stdout).toMatch(/node v22\.\d+\.\d+ from the slug/);
    expect(configured.stdout).not.toMatch(/engines.node resolves/);

    // Run at web=2 in containers behind the router: requests reach both dynos.
    const current = (JSON.parse((await ok(slipway(home, ['--json', 'releases', 'web']))).stdout) as { version: number }[])[0]!.version;
    const port = (JSON.parse((await ok(slipway(home, ['--json', 'up', 'web', '--detach', '--scale', 'web=2', '--runtime', 'container']))).stdout) as { port: number }).port;
    try {
      const answers = new Set<string>();
      for (let i = 0; i < 4; i++) answers.add((await httpGet(port)).body.split(',')[0]!);
      expect(answers).toEqual(new Set([`Hello from Slipway: web.1 of v${current}`, `Hello from Slipway: web.2 of v${current}`]));

      // A fleet rebase onto the patched stack while it serves: the formation rolls to the new release, dropping nothing.
      const traffic = load(port);
      await ok(slipway(home, ['-q', 'rebase', '--all', '--stack', 'bookworm']));
      const next = `of v${current + 1}`;
      const live = new RegExp(`slipway\\[supervisor\\]: v${current + 1} is live`);
      for (let i = 0; i < 600 && !live.test((await ok(slipway(home, ['logs', 'web', '--dyno', 'supervisor', '-n', '50']))).stdout); i++) await new Promise((r) => setTimeout(r, 100));
      const { sent, failed } = await traffic.stop();
      expect(failed).toEqual([]);
      expect(sent).toBeGreaterThan(10);
      expect((await httpGet(port)).body).toContain(next);
      expect((await ok(slipway(home, ['logs', 'web', '--dyno', 'supervisor', '-n', '50']))).stdout).toMatch(live);
    } finally {
      await ok(slipway(home, ['stop', 'web']));
    }
  }, 300_000);

  it('names the packages a stack lacks', async () => {
    const home = await tempDir();
    const bare = join(await tempDir(), 'rootfs');
    // A stack without curl: debootstrap's tree minus it is enough to show the message.
    execFileSync('cp', ['-a', inject('debootstrapRootfs'), bare]);
    execFileSync('rm', [join(bare, 'usr/bin/curl')]);
    await ok(slipway(home, ['-q', 'stack', 'import', 'nocurl', `dir:${bare}`]));
    const r = await slipway(home, ['build', EXAMPLE, '--app', 'web', '--runtime', 'container']);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/this stack lacks curl; bootstrap one with: slipway stack bootstrap NAME --include curl/);
  }, 120_000);
});

/** Writes an app: files by relative path. */
async function app(files: Record<string, string>): Promise<string> {
  const dir = await tempDir('slipway-app-');
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

const pkgJson = (o: object): string => JSON.stringify({ name: 'app', version: '1.0.0', private: true, scripts: { start: 'node index.js' }, ...o }, null, 2);
const MS_SERVER = "const ms = require('ms'); require('http').createServer((q, s) => s.end(`ms says ${ms(60000)} on ${process.version}\\n`)).listen(process.env.PORT);\n";
const MS_INTEGRITY = 'sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==';
/** A native addon that node-gyp compiles in a second (N-API, plain C). */
const ADDON = {
  'addon/package.json': JSON.stringify({ name: 'tiny-addon', version: '1.0.0', main: 'index.js' }),
  'addon/binding.gyp': JSON.stringify({ targets: [{ target_name: 'tiny', sources: ['tiny.c'] }] }),
  'addon/tiny.c': '#include <node_api.h>\nstatic napi_value init(napi_env env, napi_value exports) { return exports; }\nNAPI_MODULE(NODE_GYP_MODULE_NAME, init)\n',
  'addon/index.js': "module.exports = require('./build/Release/tiny.node');\n",
};

describe('native modules, package managers and the build image', () => {
  let home = '';
  let stack = { digest: '', build: { digest: '' } };
  const running: string[] = [];
  beforeAll(async () => {
    home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'bookworm', `dir:${inject('debootstrapRootfs')}`, '--build', `dir:${inject('buildRootfs')}`]));
    stack = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect', 'bookworm']))).stdout) as typeof stack;
  }, 300_000);
  afterAll(async () => {
    for (const a of running) await slipway(home, ['stop', a]);
  });

  const build = (dir: string, name: string): Promise<RunResult> => slipway(home, ['build', dir, '--app', name, '--runtime', 'container']);
  async function answer(name: string): Promise<string> {
    running.push(name);
    const { port } = JSON.parse((await ok(slipway(home, ['--json', 'up', name, '--detach', '--runtime', 'container']))).stdout) as { port: number };
    const body = (await httpGet(port)).body;
    await ok(slipway(home, ['stop', name]));
    return body;
  }
  /** An app's releases; none when a failed first build left no app at all. */
  async function releases(name: string): Promise<unknown[]> {
    const r = await slipway(home, ['--json', 'releases', name]);
    if (r.code !== 0 && /no app/.test(r.stderr)) return [];
    return JSON.parse((await ok(Promise.resolve(r))).stdout) as unknown[];
  }

  it('compiles better-sqlite3 from source with node-gyp on the build image, with the npm that ships with Node.js; it answers a query at boot on the run image, which has no compiler', async () => {
    const dir = await app({
      'package.json': pkgJson({ engines: { node: '22.x' }, dependencies: { 'better-sqlite3': '^12.0.0' } }),
      'index.js':
        "const db = new (require('better-sqlite3'))(':memory:');\nconst v = db.prepare(\"SELECT 'sqlite ' || sqlite_version() AS v\").get().v;\nrequire('http').createServer((q, s) => s.end(`${v}\\n`)).listen(process.env.PORT);\n",
    });
    const r = await ok(build(dir, 'sq'));
    expect(r.stdout).toMatch(/Compiling on the stack's build image/);
    expect(r.stdout).toMatch(/npm 10\.\d+\.\d+ \(ships with Node\.js v22\./);
    expect(r.stdout).toMatch(/ok: native module better-sqlite3@12\./);
    // The release (and its slug) records the run image, never the build variant it was compiled on.
    const [rel] = (await releases('sq')) as { slug: string; stack: { digest: string } }[];
    expect(stack.build.digest).not.toBe(stack.digest);
    expect(rel!.stack.digest).toBe(stack.digest);
    const meta = await verifySlugManifest(await OciLayout.open(join(home, 'images'), { create: false }), rel!.slug as never, 'slug');
    expect(meta.stack.digest).toBe(stack.digest);
    expect(await answer('sq')).toMatch(/^sqlite 3\.\d+/);
    const probe = await slipway(home, ['run', 'sq', '--runtime', 'container', '--', "command -v g++ || echo no-g++; command -v make || echo no-make; node -e \"new (require('better-sqlite3'))(':memory:'); console.log('loads')\""]);
    expect(probe.stdout).toBe('no-g++\nno-make\nloads\n');
  }, 600_000);

  it('fails the build, with the reason, when a native dependency does not compile or its install script is skipped', async () => {
    const broken = await app({ 'package.json': pkgJson({ dependencies: { 'tiny-addon': 'file:./addon' } }), 'index.js': '', ...ADDON, 'addon/tiny.c': '#error this addon does not compile\n' });
    const r = await build(broken, 'broken');
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/#error this addon does not compile/);
    expect(r.stdout + r.stderr).toMatch(/npm could not install the dependencies/);
    expect(await releases('broken')).toEqual([]);

    // Install scripts not run (as npm 12 and pnpm 10 do by default): the build says so.
    const skipped = await app({ 'package.json': pkgJson({ dependencies: { 'tiny-addon': 'file:./addon' } }), 'index.js': '', '.npmrc': 'ignore-scripts=true\n', ...ADDON });
    const s = await build(skipped, 'skipped');
    expect(s.code).toBe(1);
    expect(s.stdout + s.stderr).toMatch(/error: native module tiny-addon@1\.0\.0 \(node_modules\/tiny-addon\) has no compiled \.node file: its install script did not run/);
    expect(await releases('skipped')).toEqual([]);

    // npm 12 (asked for by engines.npm) blocks install scripts not approved: the same refusal.
    const npm12 = await app({ 'package.json': pkgJson({ engines: { npm: '12.x' }, dependencies: { 'tiny-addon': 'file:./addon' } }), 'index.js': '', ...ADDON });
    const n = await build(npm12, 'npm12');
    expect(n.code).toBe(1);
    expect(n.stdout).toMatch(/npm 12\.\d+\.\d+ \(engines\.npm or packageManager asks for 12\.x\)/);
    expect(n.stdout).toMatch(/error: native module tiny-addon@1\.0\.0 .* has no compiled \.node file/);
    expect(await releases('npm12')).toEqual([]);
  }, 600_000);

  it('builds and runs a yarn classic app (yarn.lock) on an end-of-life Node.js, warning about it', async () => {
    const dir = await app({
      'package.json': pkgJson({ engines: { node: '20.x' }, dependencies: { ms: '^2.1.3' } }),
      'yarn.lock': `# yarn lockfile v1\n\n\nms@^2.1.3:\n  version "2.1.3"\n  resolved "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz"\n  integrity ${MS_INTEGRITY}\n`,
      'index.js': MS_SERVER,
    });
    const r = await ok(build(dir, 'classic'));
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/Installing yarn \(yarn\.lock\)/);
    expect(out).toMatch(/yarn 1\.22\.\d+/);
    expect(out).toMatch(/Node\.js 20 reached end-of-life on 2026-04-30/);
    expect(await answer('classic')).toMatch(/^ms says 1m on v20\./);
  }, 300_000);

  it('builds and runs a yarn berry app (packageManager, nodeLinker node-modules)', async () => {
    const dir = await app({
      'package.json': pkgJson({ packageManager: 'yarn@4.5.3', dependencies: { ms: '^2.1.3' } }),
      '.yarnrc.yml': 'nodeLinker: node-modules\n',
      'index.js': MS_SERVER,
    });
    const r = await ok(build(dir, 'berry'));
    expect(r.stdout + r.stderr).toMatch(/Installing yarn \(packageManager yarn@4\.5\.3\)/);
    expect(r.stdout + r.stderr).not.toMatch(/end-of-life/);
    expect(await answer('berry')).toMatch(/^ms says 1m on v26\./);
  }, 300_000);

  it('builds and runs a pnpm app (pnpm-lock.yaml)', async () => {
    const dir = await app({
      'package.json': pkgJson({ dependencies: { ms: '^2.1.3' } }),
      'pnpm-lock.yaml': `lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .:\n    dependencies:\n      ms:\n        specifier: ^2.1.3\n        version: 2.1.3\n\npackages:\n\n  ms@2.1.3:\n    resolution: {integrity: ${MS_INTEGRITY}}\n\nsnapshots:\n\n  ms@2.1.3: {}\n`,
      'index.js': MS_SERVER,
    });
    const r = await ok(build(dir, 'pn'));
    expect(r.stdout + r.stderr).toMatch(/Installing pnpm \(pnpm-lock\.yaml\)/);
    expect(await answer('pn')).toMatch(/^ms says 1m on v26\./);
  }, 300_000);
});
