/**
 * One log stream per app, Heroku's shape: `TIMESTAMP source[dyno]: line`. Lines longer than
 * 10,000 bytes are split. Kept on disk in a bounded ring (two files of `maxBytes / 2`; the older is
 * dropped when the newer fills), so `slipway logs` works after the fact and from other processes.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const MAX_LINE = 10_000;
export const DEFAULT_LOG_BYTES = 2 * 1024 * 1024;

export interface LogLine {
  time: string;
  /** `app` for the app's own output, `slipway` for the platform's. */
  source: 'app' | 'slipway';
  /** web.1, run.1234, router... */
  dyno: string;
  line: string;
}

export function formatLine(l: LogLine): string {
  return `${l.time} ${l.source}[${l.dyno}]: ${l.line}`;
}

const LINE = /^(\S+) (app|slipway)\[([^\]]+)\]: (.*)$/;
export function parseLine(text: string): LogLine | undefined {
  const m = LINE.exec(text);
  return m ? { time: m[1]!, source: m[2] as LogLine['source'], dyno: m[3]!, line: m[4]! } : undefined;
}

/** Splits text into lines of at most MAX_LINE bytes (on UTF-8 character boundaries). */
export function splitLong(line: string): string[] {
  const bytes = Buffer.from(line);
  if (bytes.length <= MAX_LINE) return [line];
  const out: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + MAX_LINE, bytes.length);
    while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
    out.push(bytes.subarray(start, end).toString());
    start = end;
  }
  return out;
}

export function logFiles(home: string, app: string): { current: string; previous: string } {
  const dir = join(home, 'logs');
  return { current: join(dir, `${app}.log`), previous: join(dir, `${app}.log.1`) };
}

export class AppLog {
  private fd: number;
  private size: number;
  private readonly listeners = new Set<(l: LogLine) => void>();
  private readonly files: { current: string; previous: string };
  private pending: string[] = [];
  private scheduled = false;

  constructor(home: string, app: string, private readonly maxBytes = DEFAULT_LOG_BYTES) {
    this.files = logFiles(home, app);
    mkdirSync(join(home, 'logs'), { recursive: true });
    this.fd = openSync(this.files.current, 'a');
    this.size = statSync(this.files.current).size;
  }

  write(source: LogLine['source'], dyno: string, text: string): void {
    for (const raw of text.split('\n')) {
      for (const line of splitLong(raw.replace(/\r$/, ''))) {
        const l: LogLine = { time: new Date().toISOString(), source, dyno, line };
        this.pending.push(`${formatLine(l)}\n`);
        for (const fn of this.listeners) fn(l);
      }
    }
    // The router logs every request: its lines go out once per turn of the event loop; the
    // platform's and the app's are written at once, so a reader never misses a state change.
    if (source !== 'slipway' || dyno !== 'router') this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0 || this.fd < 0) return;
    let batch: string[] = [];
    let batchBytes = 0;
    const out = (): void => {
      if (batch.length) writeSync(this.fd, batch.join(''));
      this.size += batchBytes;
      batch = [];
      batchBytes = 0;
    };
    for (const line of this.pending) {
      const n = Buffer.byteLength(line);
      if (this.size + batchBytes + n > this.maxBytes / 2) {
        out();
        this.rotate();
      }
      batch.push(line);
      batchBytes += n;
    }
    out();
    this.pending = [];
  }

  /** A writer that turns a byte stream into lines from one dyno (partial lines wait for their end). */
  lineWriter(source: LogLine['source'], dyno: string): { push: (chunk: Buffer) => void; end: () => void } {
    let pending = '';
    return {
      push: (chunk) => {
        pending += chunk.toString();
        const i = pending.lastIndexOf('\n');
        if (i === -1) {
          if (Buffer.byteLength(pending) > MAX_LINE) {
            this.write(source, dyno, pending);
            pending = '';
          }
          return;
        }
        this.write(source, dyno, pending.slice(0, i));
        pending = pending.slice(i + 1);
      },
      end: () => {
        if (pending) this.write(source, dyno, pending);
        pending = '';
      },
    };
  }

  subscribe(fn: (l: LogLine) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private rotate(): void {
    closeSync(this.fd);
    renameSync(this.files.current, this.files.previous);
    this.fd = openSync(this.files.current, 'a');
    this.size = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
    this.fd = -1;
  }
}

/** The lines on disk, oldest first. */
export function readLog(home: string, app: string): LogLine[] {
  const { current, previous } = logFiles(home, app);
  const text = [previous, current].filter((f) => existsSync(f)).map((f) => readFileSync(f, 'utf8')).join('');
  return text.split('\n').map(parseLine).filter((l): l is LogLine => l !== undefined);
}

/** `web.1` keeps that dyno's lines, `web` every web dyno's, `router` the router's; none keeps all. */
export function dynoFilter(dyno: string | undefined): (l: LogLine) => boolean {
  return (l) => !dyno || l.dyno === dyno || l.dyno.split('.')[0] === dyno;
}

/** Calls `fn` with each line written to the app's log from now on, from any process (polled, across rotations). */
export async function followLog(home: string, app: string, fn: (l: LogLine) => void, pollMs = 200): Promise<never> {
  const { current } = logFiles(home, app);
  let offset = existsSync(current) ? statSync(current).size : 0;
  let partial = '';
  for (;;) {
    await new Promise((r) => setTimeout(r, pollMs));
    if (!existsSync(current)) continue;
    const size = statSync(current).size;
    if (size < offset) offset = 0; // rotated
    if (size === offset) continue;
    const fd = openSync(current, 'r');
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    closeSync(fd);
    offset = size;
    const lines = (partial + buf.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const t of lines) {
      const l = parseLine(t);
      if (l) fn(l);
    }
  }
}
