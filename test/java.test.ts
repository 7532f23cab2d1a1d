import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { ok, slipway, type RunResult } from './helpers/cli.js';
import { unpackSlug } from './helpers/buildpacks.js';
import { httpGet } from './helpers/apps.js';
import { startInternet } from './helpers/internet.js';
import { freePort } from './helpers/registry.js';
import { tempDir } from './helpers/tmp.js';

const repo = (p: string): string => fileURLToPath(new URL(`../${p}`, import.meta.url));
const PACKAGES = repo('examples/java-war/stack-packages.txt');

interface ReleaseRow {
  version: number;
  slug?: string;
}

const said = (r: RunResult): string => r.stdout + r.stderr;

/** The app's releases that carry a slug (config-only releases have none; a failed first build leaves no app). */
async function builtReleases(home: string, app: string): Promise<ReleaseRow[]> {
  const r = await slipway(home, ['--json', 'releases', app]);
  const out = JSON.parse(r.stdout) as ReleaseRow[] | { error: string };
  if (!Array.isArray(out) && out.error === `no app "${app}"`) return [];
  return (JSON.parse((await ok(Promise.resolve(r))).stdout) as ReleaseRow[]).filter((rel) => rel.slug !== undefined);
}

/** Runs the app at web=2 behind the router and returns what web.1 and web.2 answered. */
async function answersAtWeb2(home: string, app: string): Promise<string[]> {
  const up = JSON.parse((await ok(slipway(home, ['--json', 'up', app, '--detach', '--scale', 'web=2', '--runtime', 'container']))).stdout) as { port: number };
  try {
    const byDyno = new Map<string, string>();
    for (let i = 0; i < 40 && byDyno.size < 2; i++) {
      const r = await httpGet(up.port);
      expect(r.status, r.body).toBe(200);
      byDyno.set(/web\.\d/.exec(r.body)?.[0] ?? r.body, r.body.trim());
    }
    return [...byDyno.entries()].sort().map(([, body]) => body);
  } finally {
    await ok(slipway(home, ['stop', app]));
  }
}

describe('the java buildpack on a Debian stack with Java and Maven', () => {
  let home: string;
  /** A Maven repository URL on loopback where nothing listens: as unreachable as Maven Central is here. */
  let unreachable: string;
  let builtWar: string;

  beforeAll(async () => {
    home = await tempDir();
    unreachable = `http://127.0.0.1:${await freePort()}/maven2`;
    const reuse = process.env.SLIPWAY_TEST_JAVA_ROOTFS;
    if (reuse) await ok(slipway(home, ['-q', 'stack', 'import', 'java', `dir:${reuse}`]));
    else await ok(slipway(home, ['-q', 'stack', 'bootstrap', 'java', '--include-from', PACKAGES]));
  }, 600_000);

  /** Creates an app whose builds must resolve Maven artifacts without the network. */
  async function offlineApp(app: string): Promise<void> {
    await ok(slipway(home, ['apps', 'create', app]));
    await ok(slipway(home, ['config', 'set', app, `MAVEN_REPOSITORY_URL=${unreachable}`]));
  }

  it('builds examples/java-war offline with Maven, serves the WAR on Jetty at web=2, and reuses the Maven cache', async () => {
    await offlineApp('jwar');
    const t0 = Date.now();
    const first = said(await ok(slipway(home, ['build', repo('examples/java-war'), '--app', 'jwar', '--stack', 'java', '--runtime', 'container'])));
    const coldSeconds = (Date.now() - t0) / 1000;
    expect(first).toContain('-----> Java (Maven) app detected');
    expect(first).toContain(`Maven repository ${unreachable} is unreachable: resolving offline from Debian's packaged repository`);
    expect(first).toContain('BUILD SUCCESS');
    expect(first).not.toContain('reusing the Maven cache');
    expect(first).toMatch(/Jetty 9\.4\.\S+ \(Debian's libjetty9-java\) serves target\/java-war\.war on \$PORT/);
    expect(first).toContain('Default types for buildpack -> web');

    const [rel] = (await builtReleases(home, 'jwar')).slice(-1);
    const slug = join(await unpackSlug(home, rel!.slug!), 'app');
    for (const f of ['.jdk/bin/java', '.jdk/lib/modules', '.jetty/slipway-jetty-runner.jar', '.jetty/lib/servlet-api.jar', 'target/java-war.war', '.profile.d/java.sh']) {
      expect(existsSync(join(slug, f)), f).toBe(true);
    }
    // The Maven repository lives in the build cache, not in the slug; the JRE's links into /etc became files.
    expect(existsSync(join(slug, '.m2'))).toBe(false);
    expect(existsSync(join(slug, '.jdk/lib/ct.sym'))).toBe(false);
    expect((await readFile(join(slug, '.jdk/conf/security/java.security'), 'utf8')).length).toBeGreaterThan(1000);
    builtWar = join(await tempDir(), 'hello.war');
    await copyFile(join(slug, 'target/java-war.war'), builtWar);

    const t1 = Date.now();
    const second = said(await ok(slipway(home, ['build', repo('examples/java-war'), '--app', 'jwar', '--stack', 'java', '--runtime', 'container'])));
    const warmSeconds = (Date.now() - t1) / 1000;
    expect(second).toMatch(/reusing the Maven cache: [1-9]\d* artifacts from earlier builds/);
    expect(second).toContain('BUILD SUCCESS');
    process.stderr.write(`java-war build: cold ${coldSeconds.toFixed(1)} s, with the Maven cache ${warmSeconds.toFixed(1)} s\n`);

    const answers = await answersAtWeb2(home, 'jwar');
    expect(answers).toHaveLength(2);
    expect(answers[0]).toMatch(/^Hello from Slipway: web\.1 of v\d+, Java 17\.\S+ on jetty\/9\.4\.\S+$/);
    expect(answers[1]).toMatch(/^Hello from Slipway: web\.2 of v\d+, Java 17\.\S+ on jetty\/9\.4\.\S+$/);

    // JAVA_OPTS follow the dyno's memory limit when the host can set one.
    const opts = (await ok(slipway(home, ['run', 'jwar', '--', 'echo "$MEMORY_AVAILABLE|$JAVA_OPTS|$(command -v java)"']))).stdout.trim();
    const [memory, javaOpts, java] = opts.split('|') as [string, string, string];
    expect(java).toBe('/app/.jdk/bin/java');
    expect(javaOpts).toContain('-Dfile.encoding=UTF-8');
    if (memory !== '') expect(javaOpts).toContain(`-Xmx${Math.floor((Number(memory) * 60) / 100)}m`);
  }, 300_000);

  it('builds examples/java-jar into an executable jar that runs with java -jar at web=2', async () => {
    await offlineApp('jjar');
    const out = said(await ok(slipway(home, ['build', repo('examples/java-jar'), '--app', 'jjar', '--stack', 'java', '--runtime', 'container'])));
    expect(out).toContain('-----> Executable JAR target/java-jar.jar (Main-Class com.example.Main)');
    const answers = await answersAtWeb2(home, 'jjar');
    expect(answers[0]).toMatch(/^Hello from Slipway: web\.1 of v\d+, Java 17\.\S+, embedded HTTP server$/);
    expect(answers[1]).toMatch(/^Hello from Slipway: web\.2 of v\d+, Java 17\.\S+, embedded HTTP server$/);
  }, 300_000);

  it('takes a prebuilt executable JAR next to a Procfile, with the stack\'s JRE', async () => {
    const [rel] = (await builtReleases(home, 'jjar')).slice(-1);
    const src = await tempDir('slipway-prejar-');
    await copyFile(join(await unpackSlug(home, rel!.slug!), 'app/target/java-jar.jar'), join(src, 'app.jar'));
    await writeFile(join(src, 'Procfile'), 'web: java $JAVA_OPTS -jar app.jar\n');
    await ok(slipway(home, ['apps', 'create', 'prejar']));
    const out = said(await ok(slipway(home, ['build', src, '--app', 'prejar', '--stack', 'java', '--runtime', 'container'])));
    expect(out).toContain('-----> Java app detected');
    expect(out).not.toContain('mvn');
    const [built] = (await builtReleases(home, 'prejar')).slice(-1);
    expect(existsSync(join(await unpackSlug(home, built!.slug!), 'app/.jdk/bin/java'))).toBe(true);
    const answers = await answersAtWeb2(home, 'prejar');
    expect(answers[0]).toMatch(/^Hello from Slipway: web\.1 of v\d+, Java 17\.\S+, embedded HTTP server$/);
  }, 300_000);

  it('resolves from the repository MAVEN_REPOSITORY_URL names, or the one an app\'s settings.xml names, when it answers', async () => {
    // A real HTTP Maven repository out on "the internet" (builds cannot reach the host's own
    // listeners): the Java stack's /usr/share/maven-repo, served as files; it prints what it serves.
    const stacks = join(home, 'stacks');
    const stack = (await readdir(stacks)).map((d) => join(stacks, d, 'rootfs/usr/share/maven-repo')).find((d) => existsSync(d))!;
    const server = await startInternet(`
      const { createReadStream, statSync } = require('node:fs');
      const { join, normalize } = require('node:path');
      const root = process.env.REPO;
      require('node:http').createServer((req, res) => {
        const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^\\/maven2\\//, '');
        const file = join(root, path);
        let st;
        try { st = statSync(file); } catch { st = undefined; }
        if (!file.startsWith(root + '/') || !st?.isFile()) return void res.writeHead(404).end();
        console.log(path);
        res.writeHead(200, { 'content-length': st.size });
        if (req.method === 'HEAD') return void res.end();
        createReadStream(file).pipe(res);
      }).listen(Number(process.env.PORT), process.env.ADDR, () => console.log('ready'));
    `, { REPO: stack });
    const fetched = server.lines;
    const url = `http://${server.address}:${server.port}/maven2`;
    try {
      await ok(slipway(home, ['apps', 'create', 'jrepo']));
      await ok(slipway(home, ['config', 'set', 'jrepo', `MAVEN_REPOSITORY_URL=${url}`]));
      const viaVar = said(await ok(slipway(home, ['build', repo('examples/java-war'), '--app', 'jrepo', '--stack', 'java', '--runtime', 'container'])));
      expect(viaVar).toContain(`-----> Maven repository ${url}\n`);
      expect(viaVar).toContain('BUILD SUCCESS');
      expect(fetched.filter((f) => f.endsWith('.jar')).length).toBeGreaterThan(10);
      expect(fetched.some((f) => f.endsWith('.pom'))).toBe(true);

      const src = await tempDir('slipway-settings-');
      execFileSync('cp', ['-r', `${repo('examples/java-war')}/.`, src]);
      await writeFile(join(src, 'settings.xml'), `<settings><mirrors><mirror><id>app</id><mirrorOf>*</mirrorOf><url>${url}</url></mirror></mirrors></settings>\n`);
      const before = fetched.length;
      await ok(slipway(home, ['apps', 'create', 'jsettings']));
      const viaFile = said(await ok(slipway(home, ['build', src, '--app', 'jsettings', '--stack', 'java', '--runtime', 'container'])));
      expect(viaFile).toContain('-----> Maven settings from settings.xml');
      expect(viaFile).toContain('BUILD SUCCESS');
      expect(fetched.length - before).toBeGreaterThan(10);
    } finally {
      server.close();
    }
  }, 300_000);

  it('takes a prebuilt WAR next to a Procfile, with the JRE from JDK_URL (a tar in the app, kept out of the slug)', async () => {
    expect(builtWar).toBeDefined();
    const src = await tempDir('slipway-prebuilt-');
    await copyFile(builtWar, join(src, 'hello.war'));
    await writeFile(join(src, 'Procfile'), 'web: java $JAVA_OPTS -jar .jetty/slipway-jetty-runner.jar hello.war\n');
    // A JRE to install: the one the first build put in its slug.
    const [rel] = (await builtReleases(home, 'jwar')).slice(-1);
    execFileSync('tar', ['-C', join(await unpackSlug(home, rel!.slug!), 'app'), '-cf', join(src, 'jdk.tar'), '.jdk']);
    await ok(slipway(home, ['apps', 'create', 'prewar']));
    await ok(slipway(home, ['config', 'set', 'prewar', 'JDK_URL=jdk.tar']));
    const out = said(await ok(slipway(home, ['build', src, '--app', 'prewar', '--stack', 'java', '--runtime', 'container'])));
    expect(out).toContain('-----> Java app detected');
    expect(out).toContain('from JDK_URL (jdk.tar)');
    expect(out).not.toContain('mvn');
    const [built] = (await builtReleases(home, 'prewar')).slice(-1);
    const slug = join(await unpackSlug(home, built!.slug!), 'app');
    expect(existsSync(join(slug, '.jdk/bin/java'))).toBe(true);
    expect(existsSync(join(slug, 'jdk.tar'))).toBe(false);
    const answers = await answersAtWeb2(home, 'prewar');
    expect(answers[0]).toMatch(/^Hello from Slipway: web\.1 of v\d+, Java 17/);
  }, 300_000);

  it('fails a build whose pom cannot resolve a dependency offline with Maven\'s message and a hint, warns about H2 AUTO_SERVER, and leaves no release', async () => {
    const src = await tempDir('slipway-badpom-');
    const pom = (await readFile(repo('examples/java-jar/pom.xml'), 'utf8')).replace(
      '<build>',
      '<dependencies><dependency><groupId>com.example.missing</groupId><artifactId>not-in-debian</artifactId><version>1.0</version></dependency></dependencies>\n  <build>',
    );
    await writeFile(join(src, 'pom.xml'), pom);
    await mkdir(join(src, 'src/main/resources'), { recursive: true });
    await writeFile(join(src, 'src/main/resources/application.properties'), 'app.name=demo\nspring.datasource.url=jdbc:h2:./data/demo;AUTO_SERVER=TRUE\n');
    await offlineApp('badpom');
    const r = await slipway(home, ['build', src, '--app', 'badpom', '--stack', 'java', '--runtime', 'container']);
    expect(r.code).toBe(1);
    const out = said(r);
    expect(out).toContain(' !     Warning: ./src/main/resources/application.properties:2 names a database served on a TCP port of its own');
    expect(out).toMatch(/\[ERROR\] Failed to execute goal on project java-jar: Could not resolve dependencies for project com\.example:java-jar:jar:1\.0: .*com\.example\.missing:not-in-debian:jar:1\.0/);
    expect(out).toContain("Maven could not resolve a dependency or plugin offline (its [ERROR] lines are above)");
    expect(out).toContain("Debian's repository (/usr/share/maven-repo) holds only what libXXX-java packages install");
    expect(out).toContain('error: build failed: Java (Maven) (java) bin/compile exited 1');
    expect(await builtReleases(home, 'badpom')).toEqual([]);
  }, 300_000);
});

describe('the java buildpack on a stack without Java', () => {
  it('fails naming the missing packages and the command that bootstraps a Java stack', async () => {
    const home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'bookworm', `dir:${inject('debootstrapRootfs')}`]));
    const r = await slipway(home, ['build', repo('examples/java-war'), '--app', 'nojava', '--runtime', 'container']);
    expect(r.code).toBe(1);
    const out = said(r);
    const packages = (await readFile(PACKAGES, 'utf8')).trim().split('\n');
    expect(out).toContain('this stack (bookworm) lacks what Java builds need: default-jdk-headless maven libmaven-compiler-plugin-java');
    expect(out).toContain(`slipway stack bootstrap java --include ${packages.join(',')}`);
    expect(await builtReleases(home, 'nojava')).toEqual([]);
  });

  it('keeps one package list: the example\'s file, the buildpack\'s and docs/java.md agree', async () => {
    const list = await readFile(PACKAGES, 'utf8');
    expect(await readFile(repo('buildpacks/java/lib/stack-packages.txt'), 'utf8')).toBe(list);
    const docs = await readFile(repo('docs/java.md'), 'utf8');
    for (const p of list.trim().split('\n')) expect(docs).toContain(p);
    expect(docs).toContain('slipway stack bootstrap java --include-from examples/java-war/stack-packages.txt');
  });
});
