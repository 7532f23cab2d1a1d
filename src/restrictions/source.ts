/**
 * Where a Restrictions document comes from: a file, a preset shipped in presets/, or the host
 * default kept in the store ($SLIPWAY_HOME/restrictions.yaml, set by `slipway restrictions set`).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SlipwayError } from '../errors.js';
import { writeFileAtomic } from '../store/atomic.js';
import { parseRestrictions, readRestrictionsFile, type Restrictions } from './document.js';

/** presets/ at the package root: found upwards from this module (bundled or not). */
function presetsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'presets', 'heroku-like.yaml'))) return join(dir, 'presets');
    dir = dirname(dir);
  }
  throw new SlipwayError('the presets directory is missing from this installation', { hint: 'reinstall slipway' });
}

export function presetNames(): string[] {
  return readdirSync(presetsDir()).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
}

/** The file a spec names: the path itself, or a shipped preset. */
function restrictionsPath(spec: string): string {
  if (existsSync(spec)) return spec;
  if (/^[a-z][a-z0-9-]*$/.test(spec) && presetNames().includes(spec)) return join(presetsDir(), `${spec}.yaml`);
  throw new SlipwayError(`restrictions "${spec}" is neither a file nor a preset`, { hint: `presets: ${presetNames().join(', ')}` });
}

/** A file path, or a preset name. */
export function loadRestrictions(spec: string): Restrictions {
  return readRestrictionsFile(restrictionsPath(spec));
}

const hostFile = (home: string): string => join(home, 'restrictions.yaml');

/** The host's default document, if one is set. */
export function hostRestrictions(home: string): Restrictions | undefined {
  const f = hostFile(home);
  return existsSync(f) ? readRestrictionsFile(f) : undefined;
}

/** Validates, then stores the text as the host default (atomically: a bad file never replaces a good one). */
export async function setHostRestrictions(home: string, spec: string): Promise<Restrictions> {
  const path = restrictionsPath(spec);
  const text = readFileSync(path, 'utf8');
  const doc = parseRestrictions(text, path);
  await writeFileAtomic(hostFile(home), text);
  return doc;
}

export function hostRestrictionsText(home: string): string | undefined {
  const f = hostFile(home);
  return existsSync(f) ? readFileSync(f, 'utf8') : undefined;
}

export { hostFile as hostRestrictionsPath };

/** The document to judge against: the flag (file or preset), else the host default. */
export function restrictionsFor(home: string, spec: string | undefined): Restrictions | undefined {
  return spec !== undefined ? loadRestrictions(spec) : hostRestrictions(home);
}
