import { SlipwayError } from '../errors.js';

export type ProcessTypes = Record<string, string>;

/**
 * A process type's name, as Heroku takes it: letters (either case), digits, _ and -. The one
 * grammar for Procfiles and formations (`scale web=2`), so every declared type can be scaled.
 */
export const PROCESS_TYPE = /^[A-Za-z0-9_-]+$/;
const LINE = new RegExp(`^(${PROCESS_TYPE.source.slice(1, -1)}):\\s*(.+?)\\s*$`);

/**
 * Parses a Procfile with Heroku's grammar: `type: command` per line, blank lines and
 * `#` comments ignored. A malformed line or a type given twice is an error naming the line.
 */
export function parseProcfile(text: string, where = 'Procfile'): ProcessTypes {
  // No prototype: `constructor:` or `toString:` are process types like any other.
  const out: ProcessTypes = Object.create(null) as ProcessTypes;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = LINE.exec(line);
    if (!m) {
      throw new SlipwayError(`${where}:${i + 1}: "${raw}" is not "type: command"`, {
        hint: 'process types are letters, digits, _ and -, followed by a colon and the command',
      });
    }
    if (Object.hasOwn(out, m[1]!)) throw new SlipwayError(`${where}:${i + 1}: process type "${m[1]}" is defined twice`);
    out[m[1]!] = m[2]!;
  });
  return out;
}
