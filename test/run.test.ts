/**
 * `slipway run` as `heroku run` is (a shell on a terminal, stdin, quoting, the formation's env, a
 * named user) and stops as Heroku's are (SIGTERM to every process, the full stop timeout, R12),
 * on the real Debian stack, with crun, runc and the process runtime.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { commandLine } from '../src/runtime/one-off.js';
import { BIN, ok, slipway, type RunResult } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const PROCFILE = [
  // drains for 3 s on SIGTERM, then exits 0
  `drain: trap 'echo draining; sleep 3; echo drained; exit 0' TERM; echo ready; while :; do sleep 1; done`,
  // does not exec: the parent shell dies of SIGTERM, its child drains for 2 s
  `family: sh -c 'trap "echo child draining; sleep 2; echo child drained; exit 0" TERM; while :; do sleep 1; done' & echo parent; wait`,
  // ignores SIGTERM
  `stubborn: trap '' TERM; echo ready; sleep 1000`,
].join('\n');

let h: string;
let up = false;
beforeAll(async () => {
  h = await tempDir();
  await ok(slipway(h, ['-q', 'stack', 'import', 'bookworm', `dir:${inject('debootstrapRootfs')}`]));
  const src = await tempDir('slipway-app-');
  await writeFile(join(src, 'Procfile'), `${PROCFILE}\n`);
  await ok(slipway(h, ['-q', 'build', src, '--app', 'sh', '--runtime', 'process']));
}, 300_000);
afterAll(async () => {
  if (up) await slipway(h, ['stop', 'sh']);
});

/** The OCI runtime Slipway picks for this home: crun where it works (its own choice), or runc. */
async function useOciRuntime(name: 'crun' | 'runc'): Promise<void> {
  const memos = ['picked.json', 'picked-slipway-cgroups.json'].map((f) => join(h, 'run', f));
  for (const m of memos) await rm(m, { force: true });
  if (name === 'crun') return;
  await mkdir(join(h, 'run'), { recursive: true });
  const memo = { runtime: { name: 'runc', root: join(h, 'run', 'runc'), cgroups: 'runtime' }, why: [], at: Date.now() };
  for (const m of memos) await writeFile(m, JSON.stringify(memo));
}

function pickedOciRuntime(): string | undefined {
  const memo = ['picked.json', 'picked-slipway-cgroups.json'].map((f) => join(h, 'run', f)).find((f) => existsSync(f));
  return memo && (JSON.parse(readFileSync(memo, 'utf8')) as { runtime: { name: string } }).runtime.name;
}

/** The slipway CLI on a pseudo-terminal (util-linux `script`), 91x31, driven like a user would. */
class Terminal {
  out = '';
  readonly done: Promise<number>;
  private readonly child;
  constructor(args: string[], resizeFlag: string) {
    const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    // Once resizeFlag exists, the terminal becomes 120x40 (the kernel sends SIGWINCH to its foreground group).
    // The caller's terminal settings must be back as they were afterwards (raw mode undone): SAME=yes.
    const cmd = `stty cols 91 rows 31; before=$(stty -g); (while [ ! -e ${resizeFlag} ]; do sleep 0.1; done; stty cols 120 rows 40 </dev/tty) & "${process.execPath}" ${BIN} ${quoted}; rc=$?; [ "$(stty -g)" = "$before" ] && same=yes || same=no; echo "RC=$rc SAME=$same"`;
    this.child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, SLIPWAY_HOME: h, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.on('data', (c: Buffer) => (this.out += c.toString()));
    this.child.stderr.on('data', (c: Buffer) => (this.out += c.toString()));
    this.done = new Promise((r) => this.child.on('close', (code) => r(code ?? -1)));
  }

  type(text: string): void {
    this.child.stdin.write(text);
  }

  /** Waits until the output from `from` on matches. */
  async see(re: RegExp, from = 0, ms = 30_000): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.out.slice(from));
      if (m) return m;
      if (Date.now() > end) throw new Error(`no ${re} in:\n${this.out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

function runWithStdin(args: string[], stdin: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, SLIPWAY_HOME: h }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const logLines = async (): Promise<{ at: number; who: string; text: string }[]> =>
  (await ok(slipway(h, ['--json', 'logs', 'sh', '-n', '100000']))).stdout.split('\n').filter(Boolean).map((l) => {
    const j = JSON.parse(l) as { time: string; source: string; dyno: string; line: string };
    return { at: Date.parse(j.time), who: `${j.source}[${j.dyno}]`, text: j.line };
  });

describe('the command line of run\'s arguments', () => {
  it('takes one argument as it is, and quotes each of several that needs it', () => {
    expect(commandLine(['echo $HOME; exit 3'])).toBe('echo $HOME; exit 3');
    expect(commandLine(['sh', '-c', 'exit 7'])).toBe("sh -c 'exit 7'");
    expect(commandLine(['node', '-e', 'console.log(1)'])).toBe("node -e 'console.log(1)'");
    expect(commandLine(['printf', '%s\\n', "it's", '', 'a=b,c/d:e@f'])).toBe(`printf '%s\\n' 'it'\\''s' '' a=b,c/d:e@f`);
  });
});

const RUNTIMES = [
  { label: 'container (crun)', runtime: 'container', oci: 'crun' },
  { label: 'container (runc)', runtime: 'container', oci: 'runc' },
  { label: 'process', runtime: 'process', oci: undefined },
] as const;

describe.each(RUNTIMES)('slipway run, $label', ({ runtime, oci }) => {
  beforeAll(async () => {
    if (oci) await useOciRuntime(oci);
  });

  it('run bash is a shell on a terminal: prompt, window size and resize, Ctrl-C, Ctrl-D, exit status', async () => {
    const flag = join(await tempDir(), 'resize');
    const t = new Terminal(['run', 'sh', '--runtime', runtime, 'bash'], flag);
    try {
      // Typed only once the prompt is there: the container's user has a name in it.
      await t.see(runtime === 'container' ? /u1000@run-\d+:~\$ $/ : /[$#] $/);
      if (oci) expect(pickedOciRuntime()).toBe(oci);
      let mark = t.out.length;
      t.type('echo "size=$(stty size) user=$(id -un) home=$HOME term=$TERM $((6*7))"\r');
      const m = await t.see(/size=(\d+ \d+) user=(\S+) home=(\S+) term=(\S*) 42/, mark);
      expect([m[1], m[4]]).toEqual(['31 91', 'xterm']);
      if (runtime === 'container') expect([m[2], m[3]]).toEqual(['u1000', '/app']);

      // Ctrl-C interrupts the foreground command; the shell lives on.
      mark = t.out.length;
      t.type('sleep 100; echo "after=$((2+2))"\r');
      await new Promise((r) => setTimeout(r, 700));
      const interrupted = Date.now();
      t.type('\x03');
      t.type('echo "alive=$((1+1))"\r');
      await t.see(/alive=2/, mark, 10_000);
      expect(Date.now() - interrupted).toBeLessThan(5000);
      expect(t.out.slice(mark)).not.toMatch(/after=4/);

      // Ctrl-D ends a command's input.
      mark = t.out.length;
      t.type('cat >/dev/null; echo "cat-ended=$((2+3))"\r');
      await new Promise((r) => setTimeout(r, 300));
      t.type('abc\r\x04');
      await t.see(/cat-ended=5/, mark, 10_000);

      // The dyno's terminal follows the caller's window size.
      await writeFile(flag, '');
      await new Promise((r) => setTimeout(r, 700));
      mark = t.out.length;
      t.type('echo "size=$(stty size)"\r');
      expect((await t.see(/size=(\d+ \d+)/, mark))[1]).toBe('40 120');

      t.type('exit 3\r');
      await t.see(/RC=\d+ SAME=\w+/);
      expect(t.out).toMatch(/RC=3 SAME=yes/);
      expect(await t.done).toBe(0);
    } finally {
      t.kill();
    }
  });

  it('--no-tty: piped stdin reaches the command, and its exit status comes back', async () => {
    const r = await runWithStdin(['run', 'sh', '--runtime', runtime, '--no-tty', 'bash'], 'echo hi; test -t 0 || echo "no terminal"; exit 4\n');
    expect(r.stdout).toBe('hi\nno terminal\n');
    expect(r.code).toBe(4);
  });

  it('one argument is a shell command line; several are a command and its arguments, each quoted', async () => {
    expect((await slipway(h, ['run', 'sh', '--runtime', runtime, '--', 'sh', '-c', 'exit 7'])).code).toBe(7);
    const words = await ok(slipway(h, ['run', 'sh', '--runtime', runtime, '--', 'printf', '%s\\n', 'a b', "it's", '$HOME']));
    expect(words.stdout).toBe("a b\nit's\n$HOME\n");
    const line = await slipway(h, ['run', 'sh', '--runtime', runtime, '--', 'echo "$DYNO $SLIPWAY_RELEASE $HOME"; exit 3']);
    expect(line.code).toBe(3);
    expect(line.stdout).toMatch(runtime === 'container' ? /^run\.\d+ v1 \/app\n$/ : /^run\.\d+ v1 \/\S+\/app\n$/);
  });
});

describe.each(RUNTIMES)('stopping dynos, $label', ({ runtime, oci }) => {
  beforeAll(async () => {
    if (oci) await useOciRuntime(oci);
  });

  it('every process gets SIGTERM and the full stop timeout; R12 and SIGKILL only for what ignores it', async () => {
    up = true;
    await ok(slipway(h, ['up', 'sh', '--detach', '--scale', 'drain=1,family=1,stubborn=1', '--runtime', runtime, '--stop-timeout', '5']));
    const since = Date.now();
    for (let i = 0; i < 100; i++) {
      const text = (await logLines()).filter((l) => l.at >= since - 60_000).map((l) => l.text);
      if (text.includes('parent') && text.filter((x) => x === 'ready').length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const started = Date.now();
    await ok(slipway(h, ['stop', 'sh']));
    up = false;
    expect(Date.now() - started).toBeGreaterThanOrEqual(5000);
    const lines = (await logLines()).filter((l) => l.at >= started - 100);
    const of = (dyno: string): { at: number; text: string }[] => lines.filter((l) => l.who.endsWith(`[${dyno}]`));
    const at = (dyno: string, re: RegExp): number => {
      const l = of(dyno).find((x) => re.test(x.text));
      if (!l) throw new Error(`no ${re} for ${dyno} in:\n${of(dyno).map((x) => x.text).join('\n')}`);
      return l.at;
    };

    // Its SIGTERM handler ran to the end: exit 0 after 3 s, no R12.
    expect(at('drain.1', /^Process exited with status 0$/) - at('drain.1', /with SIGTERM$/)).toBeGreaterThanOrEqual(2900);
    expect(of('drain.1').map((l) => l.text)).toEqual(expect.arrayContaining(['draining', 'drained']));
    expect(of('drain.1').some((l) => /R12/.test(l.text))).toBe(false);

    // A command that does not exec: its child got SIGTERM too and finished draining.
    expect(of('family.1').map((l) => l.text)).toEqual(expect.arrayContaining(['child draining', 'child drained']));
    expect(at('family.1', /^Process exited/) - at('family.1', /with SIGTERM$/)).toBeGreaterThanOrEqual(1900);
    expect(of('family.1').some((l) => /R12/.test(l.text))).toBe(false);

    // Ignores SIGTERM: killed after the full timeout, with R12.
    expect(at('stubborn.1', /^Error R12 \(Exit timeout\) -> At least one process failed to exit within 5 seconds of SIGTERM$/) - at('stubborn.1', /with SIGTERM$/)).toBeGreaterThanOrEqual(4900);
    expect(of('stubborn.1').map((l) => l.text)).toContain('Process exited with status 137');
  });
});
