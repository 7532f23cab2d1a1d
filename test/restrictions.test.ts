import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, inject, it } from 'vitest';
import { RULE_IDS, parseRestrictions, type Restrictions, type RuleId } from '../src/restrictions/document.js';
import { evaluate, type Finding, type Report } from '../src/restrictions/evaluate.js';
import { FactsCache } from '../src/restrictions/layer-facts.js';
import { RULES, type AllowedBase, type Subject } from '../src/restrictions/rules.js';
import { appDirSubject, imageSubject } from '../src/restrictions/subject.js';
import { OciLayoutSource } from '../src/transport/oci-layout.js';
import { OciLayout } from '../src/store/layout.js';
import { digestOf } from '../src/oci/digest.js';
import { busyboxRootfs } from './helpers/buildpacks.js';
import { ok, run, slipway } from './helpers/cli.js';
import { startRegistry } from './helpers/registry.js';
import { fileEntry, header, tarOf, writeImage, type ImageOptions } from './helpers/images.js';
import { tempDir } from './helpers/tmp.js';

const doc = (rules: Record<string, unknown>, extra: Record<string, unknown> = {}): Restrictions =>
  parseRestrictions(JSON.stringify({ apiVersion: 'slipway/v1', kind: 'Restrictions', metadata: { name: 'test' }, rules, ...extra }), 'test');

async function image(layers: Buffer[], opts: ImageOptions = {}, cache?: FactsCache): Promise<Subject> {
  const dir = await tempDir();
  await writeImage(dir, 'x', layers, opts);
  const src = await OciLayoutSource.open('crafted', dir, 'x');
  try {
    return await imageSubject(src, cache ? { cache } : {});
  } finally {
    await src.close();
  }
}

const judge = (d: Restrictions, s: Subject, allowedBases: AllowedBase[] = []): Report => evaluate(d, s, { allowedBases });
const of = (r: Report, rule: RuleId): Finding[] => r.findings.filter((f) => f.rule === rule);

const base = (): Promise<Buffer> => tarOf([
  { header: header('etc', 'dir') },
  fileEntry('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n'),
  { header: header('tmp', 'dir', { mode: 0o1777 }) },
  { header: header('usr/bin', 'dir') },
  fileEntry('usr/bin/sh', 'binary', { mode: 0o755 }),
]);
const appJson = (requirements: object): Promise<Buffer> => tarOf([{ header: header('app', 'dir') }, fileEntry('app/app.json', JSON.stringify({ name: 'x', requirements }))]);

/**
 * One case per rule id: a target that breaks exactly that rule. If a rule's check were removed,
 * its case would find nothing and fail.
 */
/** Rules that judge images and apps (pod.* rules judge pod specs only: test/admission.test.ts). */
const IMAGE_RULES = RULE_IDS.filter((id) => RULES[id].files !== undefined || RULES[id].check !== undefined);
const CASES: Partial<Record<RuleId, { rule: Record<string, unknown>; subject: () => Promise<Subject>; allowedBases?: AllowedBase[]; expect: RegExp }>> = {
  'files.setuid': { rule: {}, subject: async () => image([await base(), await tarOf([fileEntry('usr/bin/evil', 'x', { mode: 0o4755 })])]), expect: /setuid file owned by root/ },
  'files.setgid': { rule: {}, subject: async () => image([await base(), await tarOf([fileEntry('usr/bin/g', 'x', { mode: 0o2755, gid: 42 })])]), expect: /setgid file of gid 42/ },
  'files.capabilities': {
    rule: {},
    subject: async () => image([await base(), await tarOf([fileEntry('usr/bin/ping', 'x', { mode: 0o755, xattrs: { 'security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex') } })])]),
    expect: /file capabilities/,
  },
  'files.devices': { rule: {}, subject: async () => image([await base(), await tarOf([{ header: header('dev', 'dir') }, { header: header('dev/sda', 'block', { devMajor: 8, devMinor: 0, mode: 0o660 }) }])]), expect: /block device/ },
  'files.world-writable': { rule: {}, subject: async () => image([await base(), await tarOf([fileEntry('etc/open', 'x', { mode: 0o666 })])]), expect: /world-writable file/ },
  'files.owners': { rule: { uid: { min: 0, max: 65535 } }, subject: async () => image([await base(), await tarOf([fileEntry('etc/far', 'x', { uid: 100000 })])]), expect: /uid 100000, outside 0-65535/ },
  'size.image': { rule: { maxUncompressed: '1kB' }, subject: async () => image([await tarOf([fileEntry('big', Buffer.alloc(4096))])]), expect: /uncompressed, over 1.0 kB/ },
  'size.layer': { rule: { maxCompressed: 100 }, subject: async () => image([await tarOf([fileEntry('rand', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)))])]), expect: /layer is .* compressed, over 100 B/ },
  'size.layers': { rule: { max: 1 }, subject: async () => image([await base(), await tarOf([fileEntry('a', 'a')])]), expect: /2 layers, more than 1/ },
  'size.slug': {
    rule: { max: 10 },
    subject: async () => image([await base(), await tarOf([fileEntry('app/x', 'slug')])], { annotations: { 'io.slipway.base.layers': '1' } }),
    expect: /slug is .* compressed, over 10 B/,
  },
  'base.allowed': {
    rule: { layers: [['sha256:0000000000000000000000000000000000000000000000000000000000000000']] },
    subject: async () => image([await base()]),
    expect: /bottom layers match no allowed stack/,
  },
  'base.annotations': { rule: {}, subject: async () => image([await base()]), expect: /org.opencontainers.image.base.name is missing/ },
  'platform.allowed': { rule: { platforms: ['linux/amd64'] }, subject: async () => image([await base()], { arch: 'arm', variant: 'v7' }), expect: /platform linux\/arm\/v7 is not allowed/ },
  'process.non-root': { rule: {}, subject: async () => image([await base()], { config: { User: 'root' } }), expect: /USER root is uid 0/ },
  'process.command': { rule: {}, subject: async () => image([await base()], { config: { Cmd: null } }), expect: /neither Entrypoint nor Cmd/ },
  'process.env': { rule: { forbidden: ['LD_*'] }, subject: async () => image([await base()], { config: { Env: ['LD_PRELOAD=/x.so'] } }), expect: /LD_PRELOAD, which matches forbidden LD_\*/ },
  'process.memory': { rule: { max: '512MiB' }, subject: async () => image([await base(), await appJson({ memory: '2GiB' })]), expect: /asks for 2.15 GB of memory/ },
  'network.ports': { rule: { max: 1 }, subject: async () => image([await base()], { config: { ExposedPorts: { '80/tcp': {}, '22/tcp': {} } } }), expect: /2 ports \(80, 22\), more than 1/ },
  'disk.volumes': { rule: {}, subject: async () => image([await base()], { config: { Volumes: { '/data': {} } } }), expect: /VOLUME \/data/ },
  'privileges.capabilities': { rule: { allow: ['NET_BIND_SERVICE'] }, subject: async () => image([await base(), await appJson({ capabilities: ['SYS_ADMIN'] })]), expect: /requests CAP_SYS_ADMIN, not allowed/ },
  'privileges.devices': { rule: {}, subject: async () => image([await base(), await appJson({ devices: ['/dev/fuse'] })]), expect: /host device \/dev\/fuse/ },
  'privileges.host-mounts': { rule: {}, subject: async () => image([await base(), await appJson({ hostMounts: ['/var/run/docker.sock'] })]), expect: /container engine socket/ },
  'privileges.privileged': { rule: {}, subject: async () => image([await base(), await appJson({ privileged: true })]), expect: /privileged mode/ },
  'privileges.host-network': { rule: {}, subject: async () => image([await base(), await appJson({ hostNetwork: true })]), expect: /host network/ },
};

describe('every rule, on a crafted image that breaks it', () => {
  it('has a case for every rule id that judges images', () => {
    expect(Object.keys(CASES).sort()).toEqual([...IMAGE_RULES].sort());
  });
  for (const id of IMAGE_RULES) {
    it(id, async () => {
      const c = CASES[id]!;
      const subject = await c.subject();
      const r = judge(doc({ [id]: { severity: 'deny', ...c.rule } }), subject, c.allowedBases);
      expect(r.verdict).toBe('deny');
      expect(of(r, id).map((f) => f.message).join('\n')).toMatch(c.expect);
      // The same target under an empty document is clean: the finding is the rule's doing.
      expect(judge(doc({}), subject).findings).toEqual([]);
    });
  }
});

describe('rule parameters beyond the one case per rule', () => {
  it('files.devices counts FIFOs; network.ports checks allowed ports and $PORT; files.setuid honours rootOwnedOnly and allow', async () => {
    const fifo = await image([await base(), await tarOf([{ header: header('run', 'dir') }, { header: header('run/pipe', 'fifo') }])]);
    expect(of(judge(doc({ 'files.devices': { severity: 'deny' } }), fifo), 'files.devices').map((f) => [f.path, f.message])).toEqual([['run/pipe', 'FIFO in the image']]);
    const ports = await image([await base()], { config: { ExposedPorts: { '80/tcp': {}, '8080/tcp': {} }, Env: ['PATH=/bin'] } });
    const r = judge(doc({ 'network.ports': { severity: 'deny', allowed: ['1024-65535'], requirePort: true } }), ports);
    expect(of(r, 'network.ports').map((f) => f.message)).toEqual(['port 80 is not allowed (allowed: 1024-65535)', 'no PORT in the environment: web processes must listen on $PORT']);
    const suid = await image([await base(), await tarOf([fileEntry('usr/bin/mine', 'x', { mode: 0o4755, uid: 1000 }), fileEntry('usr/bin/ok', 'x', { mode: 0o4755 })])]);
    expect(judge(doc({ 'files.setuid': { severity: 'deny', rootOwnedOnly: true, allow: ['/usr/bin/ok'] } }), suid).verdict).toBe('allow');
    expect(of(judge(doc({ 'files.setuid': { severity: 'deny' } }), suid), 'files.setuid').map((f) => f.path)).toEqual(['usr/bin/mine', 'usr/bin/ok']);
  });

  it('slipway check takes an app directory and a docker-archive: image', async () => {
    const home = await tempDir();
    const app = await tempDir();
    await writeFile(join(app, 'Procfile'), 'web: ./run\n');
    await writeFile(join(app, 'app.json'), JSON.stringify({ requirements: { privileged: true } }));
    const dirCheck = await slipway(home, ['check', app, '-r', 'heroku-like', '--format', 'json']);
    expect(dirCheck.code).toBe(1);
    expect(JSON.parse(dirCheck.stdout)).toMatchObject({ verdict: 'deny', kind: 'app-dir', findings: [{ rule: 'privileges.privileged', path: 'app/app.json' }] });
    const dir = await tempDir();
    await writeImage(dir, 'bad', [await base(), await tarOf([fileEntry('usr/bin/evil', 'x', { mode: 0o4755 })])], { config: { User: 'app' } });
    const archive = join(await tempDir(), 'bad.tar');
    await ok(slipway(home, ['-q', 'image', 'copy', `oci:${dir}:bad`, `docker-archive:${archive}:bad:1`]));
    const arch = await slipway(home, ['check', `docker-archive:${archive}`, '-r', 'kubernetes-restricted', '--format', 'json']);
    expect(arch.code).toBe(1);
    expect((JSON.parse(arch.stdout) as { findings: Finding[] }).findings.map((f) => [f.rule, f.path, f.layer])).toEqual([['files.setuid', 'usr/bin/evil', 1]]);
  });
});

describe('the merged filesystem', () => {
  it('a setuid file deleted by a later layer is not a finding, but is reported as hidden-in-lower-layer', async () => {
    const s = await image([
      await base(),
      await tarOf([fileEntry('usr/bin/su', 'x', { mode: 0o4755 })]),
      await tarOf([{ header: header('usr/bin', 'dir') }, fileEntry('usr/bin/.wh.su', '')]),
    ]);
    const r = judge(doc({ 'files.setuid': { severity: 'deny' } }), s);
    expect(r.verdict).toBe('allow');
    expect(r.findings).toHaveLength(1);
    expect(r.findings[0]).toMatchObject({ rule: 'files.setuid', severity: 'info', path: 'usr/bin/su', layer: 1, digest: s.layers[1]!.digest });
    expect(r.findings[0]!.message).toMatch(/^hidden-in-lower-layer: .*removed by layer 2/);
  });

  it('an opaque directory hides what lower layers had under it; a replaced file takes the new mode', async () => {
    const s = await image([
      await tarOf([{ header: header('opt', 'dir') }, fileEntry('opt/a', 'x', { mode: 0o4755 }), fileEntry('bin-x', 'x', { mode: 0o4755 })]),
      await tarOf([{ header: header('opt', 'dir') }, fileEntry('opt/.wh..wh..opq', ''), fileEntry('opt/b', 'y'), fileEntry('bin-x', 'fixed', { mode: 0o755 })]),
    ]);
    const r = judge(doc({ 'files.setuid': { severity: 'deny' } }), s);
    expect(r.verdict).toBe('allow');
    expect(r.findings.map((f) => [f.path, f.severity])).toEqual([['bin-x', 'info'], ['opt/a', 'info']]);
  });

  it('resolves a named USER through the image\'s own /etc/passwd, and refuses a name it cannot resolve', async () => {
    const d = doc({ 'process.non-root': { severity: 'deny' } });
    expect(judge(d, await image([await base()], { config: { User: 'app' } })).verdict).toBe('allow');
    const missing = judge(d, await image([await base()], { config: { User: 'nobody' } }));
    expect(missing.findings[0]!.message).toMatch(/"nobody" is not in the image's \/etc\/passwd/);
    expect(judge(d, await image([await base()], { config: {} })).findings[0]!.message).toMatch(/no USER/);
    expect(judge(d, await image([await base()], { config: { User: '1000:1000' } })).verdict).toBe('allow');
  });

  it('re-judging an image whose lower layers were seen reads only the new layer', async () => {
    const home = await tempDir();
    const cache = new FactsCache(home);
    const lower = await base();
    await image([lower, await tarOf([fileEntry('a', '1')])], {}, cache);
    expect([cache.hits, cache.misses]).toEqual([0, 2]);
    await image([lower, await tarOf([fileEntry('a', '2')])], {}, cache);
    expect([cache.hits, cache.misses]).toEqual([1, 3]);
  });
});

const suidLayer = (): Promise<Buffer> => tarOf([fileEntry('usr/bin/evil', 'x', { mode: 0o4755 })]);

describe('which layers are the stack\'s: decided by digest, never by the image', () => {
  const suid = suidLayer;
  const app = (): Promise<Buffer> => tarOf([fileEntry('app/x', 'slug')]);
  const stackOf = (s: Subject): AllowedBase => ({ label: 'stack@v1', layers: [s.layers[0]!.digest], diffIds: [s.layers[0]!.diffId!] });
  const appScoped = doc({ 'files.setuid': { severity: 'deny', scope: 'app' } });

  it('an io.slipway.base.layers annotation written over an evil layer does not hide it from scope: app', async () => {
    const lying = await image([await base(), await suid(), await app()], { annotations: { 'io.slipway.base.layers': '2' } });
    const r = judge(appScoped, lying, [stackOf(lying)]);
    expect(r.verdict).toBe('deny');
    expect(of(r, 'files.setuid').map((f) => [f.path, f.layer])).toEqual([['usr/bin/evil', 1]]);
    // With no stack vouched for, every layer is the app's, whatever the image says.
    const alone = await image([await suid(), await app()], { annotations: { 'io.slipway.base.layers': '1' } });
    expect(of(judge(appScoped, alone), 'files.setuid').map((f) => [f.path, f.layer])).toEqual([['usr/bin/evil', 0]]);
  });

  it('the vouched stack\'s own layers are skipped by scope: app, with or without the annotation', async () => {
    const onStack = await image([await suid(), await app()]);
    const stack = stackOf(onStack);
    expect(judge(appScoped, onStack, [stack]).verdict).toBe('allow');
    expect(judge(appScoped, onStack).verdict).toBe('deny');
    // size.slug counts the layers above the stack: here only the app layer.
    const size = onStack.layers[1]!.size;
    expect(judge(doc({ 'size.slug': { severity: 'deny', max: size } }), onStack, [stack]).verdict).toBe('allow');
    expect(judge(doc({ 'size.slug': { severity: 'deny', max: size } }), onStack).verdict).toBe('deny');
  });

  it('base.allowed refuses an image that claims more base layers than its allowed stack has', async () => {
    const lying = await image([await base(), await suid(), await app()], { annotations: { 'io.slipway.base.layers': '2' } });
    const r = judge(doc({ 'base.allowed': { severity: 'deny', layers: [[lying.layers[0]!.digest]] } }), lying, [stackOf(lying)]);
    expect(r.verdict).toBe('deny');
    expect(of(r, 'base.allowed')[0]).toMatchObject({ layer: 1, digest: lying.layers[1]!.digest, message: expect.stringMatching(/claims "2" base layers, but its allowed stack stack@v1 has 1/) });
    const honest = await image([await base(), await suid(), await app()], { annotations: { 'io.slipway.base.layers': '1' } });
    expect(judge(doc({ 'base.allowed': { severity: 'deny' } }), honest, [stackOf(honest)]).verdict).toBe('allow');
  });
});

describe('waivers', () => {
  it('are scoped to a rule and a path or digest, need a reason, and stop at their expiry', async () => {
    const s = await image([await base(), await tarOf([fileEntry('usr/bin/ping', 'x', { mode: 0o4755 }), fileEntry('usr/bin/other', 'x', { mode: 0o4755 })])]);
    const waived = doc({ 'files.setuid': { severity: 'deny' } }, { waivers: [{ rule: 'files.setuid', path: '/usr/bin/ping', reason: 'legacy ping', expires: '2999-01-01' }] });
    const r = judge(waived, s);
    expect(of(r, 'files.setuid').map((f) => [f.path, f.severity])).toEqual([['usr/bin/other', 'deny'], ['usr/bin/ping', 'info']]);
    expect(r.findings.find((f) => f.path === 'usr/bin/ping')!.message).toMatch(/waived until 2999-01-01: legacy ping/);
    const expired = doc({ 'files.setuid': { severity: 'deny' } }, { waivers: [{ rule: 'files.setuid', path: 'usr/bin/ping', reason: 'r', expires: '2000-01-01' }] });
    expect(judge(expired, s).findings.filter((f) => f.severity === 'deny')).toHaveLength(2);
    const byDigest = doc({ 'files.setuid': { severity: 'deny' } }, { waivers: [{ rule: 'files.setuid', digest: s.layers[1]!.digest, reason: 'vendor layer', expires: '2999-01-01' }] });
    expect(judge(byDigest, s).verdict).toBe('allow');
    expect(() => doc({}, { waivers: [{ rule: 'files.setuid', path: 'x', expires: '2999-01-01' }] })).toThrow(/reason/);
  });
});

describe('real images', () => {
  it('finds on the debootstrap stack exactly the setuid/setgid set find -perm /6000 finds', async () => {
    const rootfs = inject('debootstrapRootfs');
    const home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'deb', `dir:${rootfs}`]));
    const digest = JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect', 'deb']))).stdout).digest as string;
    const ref = `stacks/deb:${digest.slice(7)}`;
    const findPaths = (args: string[]): string[] => spawnSync('find', ['.', ...args, '-perm', '/6000'], { cwd: rootfs, encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((p) => p.slice(2)).sort();
    const checkPaths = async (extra: object): Promise<string[]> => {
      const file = join(home, `r${Math.random()}.yaml`);
      await writeFile(file, JSON.stringify({ apiVersion: 'slipway/v1', kind: 'Restrictions', metadata: { name: 'suid' }, rules: { 'files.setuid': { severity: 'deny', ...extra }, 'files.setgid': { severity: 'deny', ...extra } } }));
      const r = await slipway(home, ['check', ref, '-r', file, '--format', 'json']);
      expect(r.code).toBe(1);
      return [...new Set((JSON.parse(r.stdout) as { findings: Finding[] }).findings.map((f) => f.path!))].sort();
    };
    const all = findPaths([]);
    expect(all).toEqual(expect.arrayContaining(['usr/bin/su', 'usr/bin/passwd', 'usr/bin/mount']));
    expect(await checkPaths({ includeDirectories: true })).toEqual(all);
    expect(await checkPaths({})).toEqual(findPaths(['!', '-type', 'd']));
  });

  it('judges busybox-static and an image umoci built: the umoci layer\'s setuid file is found in its layer', async () => {
    const home = await tempDir();
    const tree = await busyboxRootfs();
    const layout = join(await tempDir(), 'oci');
    await ok(run('umoci', ['init', '--layout', layout]));
    await ok(run('umoci', ['new', '--image', `${layout}:bb`]));
    const bundle = join(await tempDir(), 'bundle');
    await ok(run('umoci', ['unpack', '--rootless', '--image', `${layout}:bb`, bundle]));
    await ok(run('cp', ['-a', `${tree}/.`, join(bundle, 'rootfs')]));
    await ok(run('umoci', ['repack', '--image', `${layout}:bb`, bundle]));
    const clean = await slipway(home, ['check', `oci:${layout}:bb`, '-r', 'heroku-like', '--format', 'json']);
    const report = JSON.parse(clean.stdout) as { verdict: string; findings: Finding[] };
    expect(report.findings.filter((f) => f.rule.startsWith('files.'))).toEqual([]);
    expect(report.findings.map((f) => f.rule)).toContain('process.non-root');

    // A second layer, from a fresh unpack of the first.
    const bundle2 = join(await tempDir(), 'bundle');
    await ok(run('umoci', ['unpack', '--rootless', '--image', `${layout}:bb`, bundle2]));
    await mkdir(join(bundle2, 'rootfs', 'usr', 'local', 'bin'), { recursive: true });
    await writeFile(join(bundle2, 'rootfs', 'usr', 'local', 'bin', 'sudo-ish'), '#!/bin/sh\n');
    await chmod(join(bundle2, 'rootfs', 'usr', 'local', 'bin', 'sudo-ish'), 0o4755);
    await ok(run('umoci', ['repack', '--image', `${layout}:bb`, bundle2]));
    const r = await slipway(home, ['check', `oci:${layout}:bb`, '-r', 'kubernetes-restricted', '--format', 'json']);
    expect(r.code).toBe(1);
    const found = (JSON.parse(r.stdout) as { findings: Finding[] }).findings.filter((f) => f.rule === 'files.setuid');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ path: 'usr/local/bin/sudo-ish', severity: 'deny', layer: 1 });
  });
});

describe('app directories, before any build', () => {
  it('tells from app.json whether the app can run on a provider, and why not', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'Procfile'), 'web: node server.js\n');
    await writeFile(join(dir, 'app.json'), JSON.stringify({ name: 'x', requirements: { hostMounts: ['/var/run/docker.sock'], capabilities: ['NET_ADMIN'], root: true, disk: { persistent: true }, ports: [22] } }));
    const r = judge(doc({
      'privileges.host-mounts': { severity: 'deny' }, 'privileges.capabilities': { severity: 'deny' }, 'process.non-root': { severity: 'deny' },
      'disk.volumes': { severity: 'deny' }, 'network.ports': { severity: 'warn', max: 1 },
    }), appDirSubject(dir));
    expect(r.findings.map((f) => `${f.severity} ${f.rule}`)).toEqual([
      'deny process.non-root', 'deny disk.volumes', 'deny privileges.capabilities', 'deny privileges.host-mounts', 'warn network.ports',
    ]);
    await writeFile(join(dir, 'app.json'), JSON.stringify({ requirements: { memory: 'lots' } }));
    expect(() => appDirSubject(dir)).toThrow(/app.json: requirements.memory/);
  });
});

describe('slipway check, the command', () => {
  it('prints json a script can rely on, sarif, and text grouped by rule; exit 0 / 1 / 2', async () => {
    const home = await tempDir();
    const dir = await tempDir();
    await writeImage(dir, 'bad', [await base(), await tarOf([fileEntry('usr/bin/evil', 'x', { mode: 0o4755 })])], { config: { User: 'app' } });
    await writeImage(dir, 'good', [await base()], { config: { User: 'app' } });
    const k8s = ['-r', 'kubernetes-restricted'];
    const bad = await slipway(home, ['check', `oci:${dir}:bad`, ...k8s, '--format', 'json']);
    expect(bad.code).toBe(1);
    const j = JSON.parse(bad.stdout) as { verdict: string; findings: Finding[] };
    expect(j.verdict).toBe('deny');
    expect(j.findings[0]).toEqual({ rule: 'files.setuid', severity: 'deny', path: 'usr/bin/evil', layer: 1, digest: expect.stringMatching(/^sha256:/), message: expect.any(String) });
    const good = await slipway(home, ['check', `oci:${dir}:good`, ...k8s]);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/ALLOW/);
    const text = await slipway(home, ['check', `oci:${dir}:bad`, ...k8s]);
    expect(text.stdout).toMatch(/deny {2}files.setuid: 1 finding\n {2}\/usr\/bin\/evil, layer 1: setuid file owned by root \(mode 4755\)\n {2}fix: /);
    expect(text.stdout).toMatch(/1 denied, 0 warnings/);
    const err = await slipway(home, ['check', `oci:${dir}:missing`, ...k8s]);
    expect(err.code).toBe(2);
    const noDoc = await slipway(home, ['check', `oci:${dir}:good`]);
    expect([noDoc.code, noDoc.stderr]).toEqual([2, expect.stringMatching(/no restrictions to check against/)]);
  });

  it('judges an image in a registry, streaming only its layers', async () => {
    const reg = await startRegistry();
    try {
      const home = await tempDir();
      const dir = await tempDir();
      await writeImage(dir, 'bad', [await base(), await tarOf([fileEntry('usr/bin/evil', 'x', { mode: 0o4755 })])], { config: { User: 'app' } });
      await ok(slipway(home, ['-q', 'image', 'copy', `oci:${dir}:bad`, `docker://${reg.host}/team/bad:1`]));
      const r = await slipway(home, ['check', `docker://${reg.host}/team/bad:1`, '-r', 'kubernetes-restricted', '--format', 'json']);
      expect(r.code).toBe(1);
      expect((JSON.parse(r.stdout) as { findings: Finding[] }).findings.map((f) => [f.rule, f.path, f.layer])).toEqual([['files.setuid', 'usr/bin/evil', 1]]);
    } finally {
      await reg.stop();
    }
  });

  it('writes SARIF 2.1.0 that validates against the SARIF schema', async () => {
    const home = await tempDir();
    const dir = await tempDir();
    await writeImage(dir, 'bad', [await base(), await tarOf([fileEntry('usr/bin/evil', 'x', { mode: 0o4755 })])]);
    const r = await slipway(home, ['check', `oci:${dir}:bad`, '-r', 'kubernetes-restricted', '--format', 'sarif']);
    expect(r.code).toBe(1);
    // ajv-draft-04 is CommonJS: its class is the module's default export's default.
    const mod = (await import('ajv-draft-04')) as unknown as { default: { default: new (o: object) => { compile: (s: object) => ((d: unknown) => boolean) & { errors?: unknown } } } };
    const Ajv = mod.default.default;
    const schema = JSON.parse(readFileSync(join(process.cwd(), 'node_modules/@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json'), 'utf8')) as object;
    const validate = new Ajv({ strict: false, allErrors: true, unicodeRegExp: false }).compile(schema);
    const sarif = JSON.parse(r.stdout) as { runs: { results: { ruleId: string; level: string }[] }[] };
    expect(validate(sarif), JSON.stringify(validate.errors)).toBe(true);
    expect(sarif.runs[0]!.results.map((x) => [x.ruleId, x.level])).toContainEqual(['files.setuid', 'error']);
  });
});

describe('enforcement at build and export, and base.allowed on this host\'s stacks', () => {
  it('build refuses a slug the host restrictions deny and leaves no release; export refuses a denied release', async () => {
    const home = await tempDir();
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${await busyboxRootfs()}`]));
    const src = await tempDir();
    await writeFile(join(src, 'Procfile'), 'web: httpd -f -p $PORT\n');
    await writeFile(join(src, 'app.json'), JSON.stringify({ name: 'x', requirements: { privileged: true } }));
    await ok(slipway(home, ['restrictions', 'set', 'heroku-like']));
    expect((await ok(slipway(home, ['restrictions', 'show']))).stdout).toMatch(/name: heroku-like/);
    const refused = await slipway(home, ['build', src, '--app', 'web', '--runtime', 'process']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/build of web refused by restrictions heroku-like:[\s\S]*privileges.privileged: 1 finding[\s\S]*app.json requests privileged mode/);
    // A refused first build leaves no release, and so no app either.
    const none = await slipway(home, ['--json', 'releases', 'web']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no app "web"/);

    await writeFile(join(src, 'app.json'), JSON.stringify({ name: 'x' }));
    await ok(slipway(home, ['-q', 'build', src, '--app', 'web', '--runtime', 'process']));
    // A setuid file made by a buildpack is in the slug: a stricter document refuses it.
    const suid = await tempDir();
    await writeFile(join(suid, 'Procfile'), 'web: ./run\n');
    await writeFile(join(suid, 'run'), '#!/bin/sh\n');
    await chmod(join(suid, 'run'), 0o4755);
    const k8s = await slipway(home, ['build', suid, '--app', 'suid', '--runtime', 'process', '-r', 'kubernetes-restricted']);
    expect([k8s.code, k8s.stderr]).toEqual([1, expect.stringMatching(/\/app\/run, layer 0: setuid file owned by uid 1000/)]);

    const env = join(home, 'env.yaml');
    await writeFile(env, 'apiVersion: slipway/v1\nkind: Restrictions\nmetadata: {name: no-preload}\nrules:\n  process.env: {severity: deny, forbidden: [LD_*]}\n');
    await ok(slipway(home, ['restrictions', 'set', env]));
    await ok(slipway(home, ['-q', 'config', 'set', 'web', 'LD_PRELOAD=/tmp/x.so']));
    const out = join(await tempDir(), 'img');
    const exp = await slipway(home, ['export', 'web', `oci:${out}:web`]);
    expect([exp.code, exp.stderr]).toEqual([1, expect.stringMatching(/export of web v2 refused[\s\S]*environment sets LD_PRELOAD/)]);
    await ok(slipway(home, ['-q', 'config', 'unset', 'web', 'LD_PRELOAD']));
    await ok(slipway(home, ['-q', 'export', 'web', `oci:${out}:web`]));
  });

  it('slipway check skips the layers of this host\'s own stacks under scope: app, and nothing an image claims about itself', async () => {
    const home = await tempDir();
    const root = await busyboxRootfs();
    await writeFile(join(root, 'bin/vouched'), 'x');
    await chmod(join(root, 'bin/vouched'), 0o4755);
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${root}`]));
    const stackDigest = (JSON.parse((await ok(slipway(home, ['--json', 'stack', 'inspect', 'tiny']))).stdout) as { digest: string }).digest;
    const dir = await tempDir();
    await ok(slipway(home, ['-q', 'image', 'copy', `stacks/tiny:${stackDigest.slice(7)}`, `oci:${dir}:tiny`]));
    // The stack's layers, then an evil layer, claiming all of it as base.
    const layout = await OciLayout.open(dir, { create: false });
    const top = await layout.readManifest(await layout.resolve('tiny'));
    if (top.kind !== 'manifest') throw new Error('stack is not a manifest');
    const evilTar = await suidLayer();
    const evil = await layout.writeBlob(Readable.from([evilTar]), { digest: digestOf(evilTar), size: evilTar.length });
    const cfg = JSON.parse((await layout.readSmallBlob(top.manifest.config)).toString()) as { rootfs: { diff_ids: string[] } };
    cfg.rootfs.diff_ids.push(digestOf(evilTar));
    const cfgBytes = Buffer.from(JSON.stringify(cfg));
    await layout.writeBlob(Readable.from([cfgBytes]), { digest: digestOf(cfgBytes), size: cfgBytes.length });
    const evilDesc = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: evil.digest, size: evilTar.length };
    const m = Buffer.from(JSON.stringify({ ...top.manifest, config: { ...top.manifest.config, digest: digestOf(cfgBytes), size: cfgBytes.length }, layers: [...top.manifest.layers, evilDesc], annotations: { 'io.slipway.base.layers': String(top.manifest.layers.length + 1) } }));
    await layout.writeBlob(Readable.from([m]), { digest: digestOf(m), size: m.length });
    await layout.tag({ mediaType: top.mediaType, digest: digestOf(m), size: m.length }, 'evil');

    const policy = join(home, 'p.yaml');
    await writeFile(policy, 'apiVersion: slipway/v1\nkind: Restrictions\nmetadata: {name: app-suid}\nrules:\n  files.setuid: {severity: deny, scope: app}\n');
    expect((await slipway(home, ['check', `oci:${dir}:tiny`, '-r', policy])).code).toBe(0);
    const lying = await slipway(home, ['check', `oci:${dir}:evil`, '-r', policy, '--format', 'json']);
    expect(lying.code).toBe(1);
    expect((JSON.parse(lying.stdout) as Report).findings.map((f) => [f.path, f.layer])).toEqual([['usr/bin/evil', top.manifest.layers.length]]);
    // A host that does not have the stack vouches for none of it.
    const stranger = await slipway(await tempDir(), ['check', `oci:${dir}:tiny`, '-r', policy, '--format', 'json']);
    expect([stranger.code, (JSON.parse(stranger.stdout) as Report).findings.map((f) => f.path)]).toEqual([1, ['bin/vouched']]);
  });

  it('base.allowed matches by the stack\'s layer digests and follows a rebase onto a new version', async () => {
    const home = await tempDir();
    const v1 = await busyboxRootfs();
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${v1}`]));
    const other = await busyboxRootfs();
    await writeFile(join(other, 'etc/other'), 'x\n');
    await ok(slipway(home, ['-q', 'stack', 'import', 'other', `dir:${other}`]));
    const src = await tempDir();
    await writeFile(join(src, 'Procfile'), 'web: httpd -f -p $PORT\n');
    await ok(slipway(home, ['-q', 'build', src, '--app', 'app-a', '--stack', 'tiny', '--runtime', 'process']));
    await ok(slipway(home, ['-q', 'build', src, '--app', 'app-b', '--stack', 'other', '--runtime', 'process']));
    const policy = join(home, 'p.yaml');
    await writeFile(policy, 'apiVersion: slipway/v1\nkind: Restrictions\nmetadata: {name: tiny-only}\nrules:\n  base.allowed: {severity: deny, stacks: [tiny]}\n');
    expect((await slipway(home, ['check', 'app-a', '-r', policy])).code).toBe(0);
    const b = await slipway(home, ['check', 'app-b', '-r', policy, '--format', 'json']);
    expect(b.code).toBe(1);
    expect(JSON.parse(b.stdout).findings[0].message).toMatch(/match no allowed stack \(allowed: tiny@v1\)/);
    // An exported image under any name is still judged by its layers.
    const dir = await tempDir();
    await ok(slipway(home, ['-q', 'export', 'app-a', `oci:${dir}:myregistry.io.evil.com`]));
    expect((await slipway(home, ['check', `oci:${dir}:myregistry.io.evil.com`, '-r', policy])).code).toBe(0);
    // A patched tiny: the fleet rebase moves a onto v2, still allowed.
    await writeFile(join(v1, 'etc/patched'), 'yes\n');
    await ok(slipway(home, ['-q', 'stack', 'import', 'tiny', `dir:${v1}`]));
    await ok(slipway(home, ['-q', 'rebase', '--all', '--stack', 'tiny']));
    const after = await slipway(home, ['check', 'app-a', '-r', policy, '--format', 'json']);
    expect([after.code, JSON.parse(after.stdout).verdict]).toEqual([0, 'allow']);
    expect((await slipway(home, ['check', 'slug:app-b', '-r', policy])).code).toBe(1);
  });
});
