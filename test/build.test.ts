import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, ok, run, slipway } from './helpers/cli.js';
import { buildpack, busyboxRootfs, readText, unpackSlug } from './helpers/buildpacks.js';
import { tempDir } from './helpers/tmp.js';

interface BuildJson {
  release: { version: number; slug: string };
  slug: { digest: string; metadata: { processTypes: Record<string, string>; buildpacks: { name: string }[] } };
  log: string;
}

describe('the classic buildpack contract', () => {
  let home: string;
  let alpha: string;
  let beta: string;
  let failing: string;
  let never: string;

  beforeAll(async () => {
    home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    alpha = await buildpack({
      detect: '[ -f "$1/a.txt" ] && echo Alpha',
      compile: [
        'ls "$3" > "$1/env-listing"',
        'cat "$3/SECRET" > "$1/secret-from-envdir" 2>/dev/null || true',
        'echo "${SECRET:-unset}" > "$1/secret-in-env"',
        'echo "$STACK" > "$1/stack.txt"',
        'echo "$SOURCE_VERSION" > "$1/source-version.txt"',
        'echo "cached $(cat "$2/runs" 2>/dev/null || echo 0)" > "$1/cache-before"',
        'echo 1 > "$2/runs"',
        'mkdir -p "$1/.profile.d" && echo "export FROM_PROFILE=1" > "$1/.profile.d/alpha.sh"',
        'echo "export FROM_A=hello" > "$(dirname "$0")/../export"',
        'echo "-----> Alpha compiled"',
      ].join('\n'),
      release: 'printf -- "---\\ndefault_process_types:\\n  web: alpha-web\\n  worker: alpha-worker\\nconfig_vars:\\n  A_DEFAULT: \\"x y\\"\\naddons: []\\n"',
    });
    beta = await buildpack({
      detect: 'echo Beta',
      compile: 'echo "${FROM_A:-missing}" > "$1/from-a"',
      release: 'printf -- "---\\ndefault_process_types:\\n  web: beta-web\\n"',
    });
    failing = await buildpack({ detect: 'echo Failing', compile: 'echo compiling; echo boom >&2; exit 3' });
    never = await buildpack({ detect: 'exit 1', compile: 'true' });
  });

  async function app(files: Record<string, string>): Promise<string> {
    const dir = await tempDir('slipway-app-');
    for (const [name, body] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), body);
    }
    return dir;
  }

  for (const runtime of ['container', 'process'] as const) {
    it(`runs detect, compile and release in order, chaining exports (${runtime})`, async () => {
      const src = await app({ 'a.txt': 'a', Procfile: 'web: from-procfile\n', 'logs/debug.log': 'x', 'keep.txt': 'k', '.slugignore': '*.log\n/keep-not\n' });
      const name = `contract-${runtime}`;
      await ok(slipway(home, ['config', 'set', name, 'SECRET=s3cr3t value'], {})).catch(async () => {
        await ok(slipway(home, ['apps', 'create', name]));
        await ok(slipway(home, ['config', 'set', name, 'SECRET=s3cr3t value']));
      });
      const r = await ok(slipway(home, ['--json', 'build', src, '--app', name, '--runtime', runtime, '--buildpack', alpha, '--buildpack', beta]));
      const b = JSON.parse(r.stdout) as BuildJson;
      expect(b.slug.metadata.buildpacks.map((x) => x.name)).toEqual(['Alpha', 'Beta']);
      // Procfile wins over default_process_types; later buildpacks' defaults over earlier ones.
      expect(b.slug.metadata.processTypes).toEqual({ web: 'from-procfile', worker: 'alpha-worker' });
      const root = await unpackSlug(home, b.slug.digest);
      expect(await readText(join(root, 'app/env-listing'))).toBe('SECRET');
      expect(await readText(join(root, 'app/secret-from-envdir'))).toBe('s3cr3t value');
      expect(await readText(join(root, 'app/secret-in-env'))).toBe('unset');
      expect(await readText(join(root, 'app/stack.txt'))).toBe('tiny');
      expect(await readText(join(root, 'app/from-a'))).toBe('hello');
      expect(await readText(join(root, 'app/.profile.d/alpha.sh'))).toBe('export FROM_PROFILE=1');
      const cfg = await readdir(join(root, 'app/.profile.d'));
      const configVars = cfg.find((f) => f.includes('config_vars'))!;
      expect(await readText(join(root, 'app/.profile.d', configVars))).toBe(`export A_DEFAULT=\${A_DEFAULT:-'x y'}`);
      expect(existsSync(join(root, 'app/logs/debug.log'))).toBe(false);
      expect(existsSync(join(root, 'app/keep.txt'))).toBe(true);
      // The cache persists between builds of the same app.
      expect(await readText(join(root, 'app/cache-before'))).toBe('cached 0');
      const again = JSON.parse((await ok(slipway(home, ['--json', 'build', src, '--app', name, '--runtime', runtime, '--buildpack', alpha, '--buildpack', beta]))).stdout) as BuildJson;
      expect(await readText(join(await unpackSlug(home, again.slug.digest), 'app/cache-before'))).toBe('cached 1');
      // Build output streams with Heroku's step headers.
      const text = await ok(slipway(home, ['build', src, '--app', name, '--runtime', runtime, '--buildpack', alpha, '--buildpack', beta]));
      expect(text.stdout).toMatch(/-----> Alpha app detected\n-----> Alpha compiled\n-----> Beta app detected/);
      expect(text.stdout).toMatch(/-----> Released v\d+/);
      expect(text.stdout).not.toContain('s3cr3t');
    });
  }

  it('takes buildpacks from .buildpacks, in order', async () => {
    const src = await app({ 'a.txt': 'a', '.buildpacks': `${beta}\n${alpha}\n` });
    const b = JSON.parse((await ok(slipway(home, ['--json', 'build', src, '--app', 'listed', '--runtime', 'process']))).stdout) as BuildJson;
    expect(b.slug.metadata.buildpacks.map((x) => x.name)).toEqual(['Beta', 'Alpha']);
    expect(b.slug.metadata.processTypes).toEqual({ web: 'alpha-web', worker: 'alpha-worker' });
  });

  it('says which buildpacks were tried when none applies, or which one does not', async () => {
    const src = await app({ 'README.md': 'nothing to build' });
    const none = await slipway(home, ['build', src, '--app', 'nothing', '--runtime', 'process']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no buildpack applies to this app \(tried nodejs, java, procfile\)/);
    const named = await slipway(home, ['build', src, '--app', 'nothing', '--runtime', 'process', '--buildpack', never]);
    expect(named.code).toBe(1);
    expect(named.stderr).toMatch(/bin\/detect exited 1: it does not apply/);
  });

  it('a failing compile makes no release and keeps its log', async () => {
    const src = await app({ Procfile: 'web: x\n' });
    await ok(slipway(home, ['build', src, '--app', 'failing', '--runtime', 'process']));
    const before = JSON.parse((await ok(slipway(home, ['--json', 'releases', 'failing']))).stdout) as unknown[];
    const r = await slipway(home, ['build', src, '--app', 'failing', '--runtime', 'process', '--buildpack', failing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/build failed: Failing .* bin\/compile exited 3[\s\S]*no release was made; the build log is kept at (\S+)/);
    const log = /kept at (\S+)/.exec(r.stderr)![1]!;
    expect(await readFile(log, 'utf8')).toMatch(/compiling\nboom/);
    expect(JSON.parse((await ok(slipway(home, ['--json', 'releases', 'failing']))).stdout)).toEqual(before);
  });

  it('refuses a malformed Procfile, naming the line', async () => {
    const src = await app({ Procfile: 'web: ok\nthis is not a process\n' });
    const r = await slipway(home, ['build', src, '--app', 'badproc', '--runtime', 'process']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Procfile:2: "this is not a process" is not "type: command"/);
  });

  it('rebuilds an unchanged app to the same slug digest', async () => {
    const src = await app({ Procfile: 'web: ./run\n', run: 'echo hi' });
    const a = JSON.parse((await ok(slipway(home, ['--json', 'build', src, '--app', 'same', '--runtime', 'process']))).stdout) as BuildJson;
    const b = JSON.parse((await ok(slipway(home, ['--json', 'build', src, '--app', 'same', '--runtime', 'process']))).stdout) as BuildJson;
    expect(b.slug.digest).toBe(a.slug.digest);
    expect(b.release.version).toBe(a.release.version + 1);
  });

  it('config and rollback make releases without rebuilding', async () => {
    const src = await app({ Procfile: 'web: ./run\n' });
    await ok(slipway(home, ['build', src, '--app', 'conf', '--runtime', 'process']));
    await ok(slipway(home, ['config', 'set', 'conf', 'A=1', 'B=x=y']));
    await ok(slipway(home, ['config', 'unset', 'conf', 'A']));
    expect(JSON.parse((await ok(slipway(home, ['--json', 'config', 'conf', '--reveal']))).stdout)).toEqual({ B: 'x=y' });
    expect(JSON.parse((await ok(slipway(home, ['--json', 'config', 'conf']))).stdout)).toEqual({ B: '••••••' });
    await ok(slipway(home, ['rollback', 'conf', 'v2']));
    const rel = JSON.parse((await ok(slipway(home, ['--json', 'releases', 'conf']))).stdout) as { version: number; description: string; slug: string; configKeys: string[] }[];
    expect(rel.map((r) => `v${r.version} ${r.description} [${r.configKeys.join(',')}]`)).toEqual([
      'v4 Rollback to v2 [A,B]',
      'v3 Unset A config vars [B]',
      'v2 Set A, B config vars [A,B]',
      'v1 Deploy ' + rel[3]!.slug.slice(7, 14) + ' []',
    ]);
    expect(new Set(rel.map((r) => r.slug)).size).toBe(1);
    expect((await slipway(home, ['config', 'set', 'conf', '1BAD=x'])).code).toBe(2);
    expect((await slipway(home, ['rollback', 'conf', 'v99'])).stderr).toMatch(/conf has no release v99/);
  });

  it('killing a build leaves no release and no container behind', async () => {
    const slow = await buildpack({ detect: 'echo Slow', compile: 'echo compiling; sleep 60; echo done' });
    const src = await app({ Procfile: 'web: x\n' });
    const child = spawn(process.execPath, [BIN, 'build', src, '--app', 'killed', '--runtime', 'container', '--buildpack', slow], { env: { ...process.env, SLIPWAY_HOME: home } });
    let out = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('compiling')) resolve();
      });
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    // The step's watcher sees its stdin close and ends the container.
    let containers = '';
    for (let i = 0; i < 50; i++) {
      containers = (await run('runc', ['--root', join(home, 'run', 'runc'), 'list', '-q'])).stdout.trim();
      if (containers === '') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(containers).toBe('');
    // A first build that did not finish leaves no app either.
    expect((JSON.parse((await ok(slipway(home, ['--json', 'apps']))).stdout) as { name: string }[]).map((a) => a.name)).not.toContain('killed');
    // The next build sweeps the dead build's work directory.
    await ok(slipway(home, ['build', src, '--app', 'killed', '--runtime', 'process']));
    const left = (await readdir(join(home, 'builds', 'killed'))).filter((n) => n.startsWith('work-'));
    expect(left).toEqual([]);
  });
});
