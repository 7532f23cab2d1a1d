import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SlipwayError } from '../../errors.js';

const run = promisify(execFile);

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth2 refresh token from `docker login` (identitytoken); used instead of the password. */
  identityToken?: string;
}

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (or Basic). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme, params };
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

function configPath(): string {
  const dir = process.env.DOCKER_CONFIG ?? join(homedir(), '.docker');
  return join(dir, 'config.json');
}

/** Keys a registry may be filed under in config.json. */
function hostKeys(registry: string): string[] {
  if (registry === 'docker.io') return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
}

/** Credentials for a registry from ~/.docker/config.json (inline auths or a credential helper). */
export async function dockerConfigCredentials(registry: string): Promise<Credentials | undefined> {
  const path = configPath();
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let cfg: DockerConfig;
  try {
    cfg = JSON.parse(text) as DockerConfig;
  } catch (err) {
    throw new SlipwayError(`${path}: invalid JSON (${(err as Error).message})`, { hint: 'fix or remove the file' });
  }
  const keys = hostKeys(registry);
  const helper = keys.map((k) => cfg.credHelpers?.[k]).find(Boolean) ?? cfg.credsStore;
  for (const key of keys) {
    const entry = cfg.auths?.[key];
    if (!entry) continue;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon === -1) throw new SlipwayError(`${path}: auths["${key}"].auth is not base64 of user:password`);
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), ...(entry.identitytoken ? { identityToken: entry.identitytoken } : {}) };
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    if (entry.identitytoken) return { username: '<token>', password: '', identityToken: entry.identitytoken };
  }
  if (helper) {
    for (const key of [registry, ...keys]) {
      try {
        const child = run(`docker-credential-${helper}`, ['get'], { timeout: 10_000 });
        child.child.stdin?.end(key);
        const { stdout } = await child;
        const out = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (out.Username !== undefined && out.Secret !== undefined) return { username: out.Username, password: out.Secret };
      } catch {
        // helper has nothing for this key (or is not installed): try the next key
      }
    }
  }
  return undefined;
}

/** `user:password` as given to --creds. */
export function parseCredsFlag(s: string): Credentials {
  const colon = s.indexOf(':');
  if (colon <= 0) throw new SlipwayError(`--creds "${s.replace(/:.*/, ':…')}" is not USER:PASSWORD`, { exitCode: 2 });
  return { username: s.slice(0, colon), password: s.slice(colon + 1) };
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
