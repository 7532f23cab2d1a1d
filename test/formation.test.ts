/** One grammar for process types: every type a Procfile declares can be scaled, and nothing else. */
import { describe, expect, it } from 'vitest';
import { checkFormation, parseFormation } from '../src/release/formation.js';
import { parseProcfile } from '../src/slug/procfile.js';

describe('process types', () => {
  it('a Procfile\'s types are the types scale takes, names of Object.prototype included', () => {
    const types = parseProcfile('Worker: a\n_x: b\n1web: c\nconstructor: d\ntoString: e\n__proto__: f\n');
    expect(Object.keys(types)).toEqual(['Worker', '_x', '1web', 'constructor', 'toString', '__proto__']);
    expect(Object.entries(parseFormation(Object.keys(types).map((t) => `${t}=1`)))).toEqual(Object.keys(types).map((t) => [t, 1]));
    expect(() => parseProcfile('web: a\nweb: b\n')).toThrow(/Procfile:2: process type "web" is defined twice/);
    for (const bad of ['we b=1', 'web.1=1', 'web=x', 'web=1000', '=1']) expect(() => parseFormation([bad]), bad).toThrow(/is not TYPE=COUNT/);
  });

  it('the control socket\'s formation is held to the same grammar', () => {
    expect(checkFormation({ web: 2, Worker: 0 })).toEqual({ web: 2, Worker: 0 });
    for (const bad of [null, [], 'web=1', { web: '1' }, { web: 1.5 }, { web: -1 }, { 'a=1': 1 }, { 'a,b': 1 }]) expect(() => checkFormation(bad), JSON.stringify(bad)).toThrow(/TYPE/);
  });
});
