import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parseRestrictions, RULE_IDS } from '../src/restrictions/document.js';
import { PUBLISHED_SCHEMAS, schemaText } from '../src/restrictions/schemas.js';
import { loadRestrictions, presetNames } from '../src/restrictions/source.js';

const root = process.cwd();
const head = 'apiVersion: slipway/v1\nkind: Restrictions\nmetadata:\n  name: t\n';

describe('the Restrictions document', () => {
  it('the committed JSON Schemas are what the TypeScript definitions generate (npm run schemas)', () => {
    for (const [name, schema] of Object.entries(PUBLISHED_SCHEMAS)) {
      expect(readFileSync(join(root, 'schemas', name), 'utf8'), `schemas/${name} is stale: run npm run schemas`).toBe(schemaText(schema));
    }
  });

  it('every preset parses, and validates against the published schema with an independent validator', () => {
    expect(presetNames()).toEqual(['heroku-like', 'kubernetes-restricted', 'permissive']);
    const validate = new Ajv({ strict: false }).compile(JSON.parse(readFileSync(join(root, 'schemas/restrictions.schema.json'), 'utf8')) as object);
    for (const name of presetNames()) {
      const doc = loadRestrictions(name);
      expect(doc.metadata.name).toBe(name);
      expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    }
    expect(validate({ apiVersion: 'slipway/v1', kind: 'Restrictions', metadata: { name: 'x' }, rules: { 'files.nope': { severity: 'deny' } } })).toBe(false);
  });

  it('docs/restrictions.md has a section per rule id', () => {
    const md = readFileSync(join(root, 'docs/restrictions.md'), 'utf8');
    for (const id of RULE_IDS) expect(md, id).toContain(`### \`${id}\``);
  });

  it('refuses an unknown rule, naming the line and the known ids', () => {
    expect(() => parseRestrictions(`${head}rules:\n  files.setuid: {severity: deny}\n  files.suid: {severity: deny}\n`, 'p.yaml')).toThrow(/^p.yaml: line 7, column \d+: unknown rule "files.suid"$/);
    try {
      parseRestrictions(`${head}rules:\n  files.suid: {severity: deny}\n`, 'p.yaml');
    } catch (e) {
      expect((e as { hint: string }).hint).toMatch(/rule ids are: files.setuid, /);
    }
  });

  it('refuses a wrong type, naming the line and the path', () => {
    expect(() => parseRestrictions(`${head}rules:\n  size.layers:\n    severity: deny\n    max: lots\n`, 'p.yaml')).toThrow(/^p.yaml: line 8, column 10: Expected integer at rules.size.layers.max$/);
    expect(() => parseRestrictions(`${head}rules:\n  files.setuid:\n    severity: block\n`, 'p.yaml')).toThrow(/line 7, column 15: severity must be "deny" or "warn" \(got "block"\)/);
    expect(() => parseRestrictions(`${head}rules:\n  files.setuid: {severity: deny, rootonly: true}\n`, 'p.yaml')).toThrow(/line 6, .*rules.files.setuid.rootonly/);
  });

  it('refuses a wrong apiVersion or kind, and text that is not YAML', () => {
    expect(() => parseRestrictions('apiVersion: slipway/v2\nkind: Restrictions\nmetadata: {name: t}\nrules: {}\n', 'p.yaml')).toThrow(/line 1, column 13: apiVersion must be slipway\/v1 \(got "slipway\/v2"\)/);
    expect(() => parseRestrictions('apiVersion: slipway/v1\nkind: Policy\nmetadata: {name: t}\nrules: {}\n', 'p.yaml')).toThrow(/line 2, column 7: kind must be Restrictions/);
    expect(() => parseRestrictions('rules: [\n', 'p.yaml')).toThrow(/^p.yaml: line \d+, column \d+: /);
  });

  it('takes JSON too', () => {
    const doc = parseRestrictions(JSON.stringify({ apiVersion: 'slipway/v1', kind: 'Restrictions', metadata: { name: 'j' }, rules: { 'size.slug': { severity: 'warn', max: '500MB' } } }), 'p.json');
    expect(doc.rules['size.slug']).toEqual({ severity: 'warn', max: '500MB' });
  });

  it('ships no preset that is not documented', () => {
    const md = readFileSync(join(root, 'docs/restrictions.md'), 'utf8');
    for (const f of readdirSync(join(root, 'presets'))) expect(md).toContain(f.replace('.yaml', ''));
  });
});
