import { SlipwayError } from '../errors.js';

export type ProcessTypes = Record<string, string>;

const LINE = /^([A-Za-z0-9_-]+):\s*(.+?)\s*$/;

/**
 * Parses a Procfile with Heroku's grammar: `type: command` per line, blank lines and
 * `#` comments ignored. A malformed line or a type given twice is an error naming the line.
 */
export function parseProcfile(text: string, where = 'Procfile'): ProcessTypes {
  const out: ProcessTypes = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = LINE.exec(line);
    if (!m) {
      throw new SlipwayError(`${where}:${i + 1}: "${raw}" is not "type: command"`, {
        hint: 'process types are letters, digits, _ and -, followed by a colon and the command',
      });
    }
    if (m[1]! in out) throw new SlipwayError(`${where}:${i + 1}: process type "${m[1]}" is defined twice`);
    out[m[1]!] = m[2]!;
  });
  return out;
}
