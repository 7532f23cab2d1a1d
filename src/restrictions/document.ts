/**
 * The Restrictions document (`apiVersion: slipway/v1`, `kind: Restrictions`): what a provider
 * accepts. The TypeBox schema below is both the runtime validator and, through `Static`, the
 * TypeScript type, and `npm run schemas` writes it to schemas/ (a test fails if they differ), so
 * the published JSON Schema, the parser and the code cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { Type, type Static, type TOptional, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { SlipwayError } from '../errors.js';

const Severity = Type.Union([Type.Literal('deny'), Type.Literal('warn')], { description: 'deny refuses; warn reports and lets it through' });
/** Bytes as a number, or a string with a unit: 500MB, 1.5GiB, 64k. */
export const Size = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?\\s*([kKmMgGtT]i?[bB]?|[bB])?$' })], { description: 'bytes, or a number with a unit (500MB, 1GiB)' });
const Paths = Type.Array(Type.String({ minLength: 1 }), { description: 'paths relative to the root (a leading / is ignored); a trailing /** covers a whole tree' });
const Range = Type.Object({ min: Type.Integer({ minimum: 0 }), max: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });

function rule<P extends Record<string, TSchema>>(description: string, params: P) {
  return Type.Object({ severity: Severity, ...params }, { additionalProperties: false, description });
}

const Scope = Type.Union([Type.Literal('all'), Type.Literal('app')], { description: 'app: judge only the layers above the stack (the provider vouches for its stack); default all' });

/** File rules can be scoped to the app's layers. */
function fileRule<P extends Record<string, TSchema>>(description: string, params: P) {
  return rule(description, { ...params, scope: Type.Optional(Scope) });
}

export const RuleSchemas = {
  'files.setuid': fileRule('setuid files', {
    rootOwnedOnly: Type.Optional(Type.Boolean({ description: 'only files owned by uid 0 are findings' })),
    includeDirectories: Type.Optional(Type.Boolean({ description: 'directories with the bit count too (default false)' })),
    allow: Type.Optional(Paths),
  }),
  'files.setgid': fileRule('setgid files', {
    rootOwnedOnly: Type.Optional(Type.Boolean({ description: 'only files of gid 0 are findings' })),
    includeDirectories: Type.Optional(Type.Boolean({ description: 'directories with the bit (shared group dirs) count too (default false)' })),
    allow: Type.Optional(Paths),
  }),
  'files.capabilities': fileRule('files carrying a security.capability xattr', { allow: Type.Optional(Paths) }),
  'files.devices': fileRule('device nodes and FIFOs', { allow: Type.Optional(Paths) }),
  'files.world-writable': fileRule('world-writable files and directories', {
    allow: Type.Optional(Paths),
    allowSticky: Type.Optional(Type.Boolean({ description: 'sticky world-writable directories (like /tmp) are fine (default true)' })),
  }),
  'files.owners': fileRule('files owned by uids or gids outside a range', { uid: Type.Optional(Range), gid: Type.Optional(Range) }),
  'size.image': rule('total image size', { maxCompressed: Type.Optional(Size), maxUncompressed: Type.Optional(Size) }),
  'size.layer': rule('size of each layer', { maxCompressed: Type.Optional(Size), maxUncompressed: Type.Optional(Size) }),
  'size.layers': rule('number of layers', { max: Type.Integer({ minimum: 1 }) }),
  'size.slug': rule('compressed size of the slug (the app layers above the stack)', { max: Size }),
  'base.allowed': rule('the image must sit on one of these stacks, matched by layer digests', {
    stacks: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'stack names or stack image digests known to this host' })),
    layers: Type.Optional(Type.Array(Type.Array(Type.String({ pattern: '^sha(256|512):[a-f0-9]+$' }), { minItems: 1 }), { description: 'layer digest (or diff_id) lists a base image starts with' })),
  }),
  'base.annotations': rule('required base annotations on the manifest', {
    require: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'default: org.opencontainers.image.base.name and .base.digest' })),
  }),
  'platform.allowed': rule('allowed platforms', { platforms: Type.Array(Type.String({ pattern: '^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$' }), { minItems: 1, description: 'os/arch[/variant], e.g. linux/amd64' }) }),
  'process.non-root': rule('the process user must not be root (names resolved in the image\'s /etc/passwd)', {}),
  'process.command': rule('an entrypoint or command (or process types) must be present', {}),
  'process.env': rule('environment variable keys', {
    forbidden: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'keys or KEY_* patterns that must not be set' })),
    required: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  }),
  'process.memory': rule('memory an app may ask for (app.json requirements.memory)', { max: Size }),
  'network.ports': rule('ports', {
    max: Type.Optional(Type.Integer({ minimum: 0 })),
    allowed: Type.Optional(Type.Array(Type.Union([Type.Integer({ minimum: 1, maximum: 65535 }), Type.String({ pattern: '^[0-9]+-[0-9]+$' })]))),
    requirePort: Type.Optional(Type.Boolean({ description: 'web processes must listen on $PORT' })),
  }),
  'disk.volumes': rule('no VOLUMEs and no persistent disk: ephemeral disk only', {}),
  'privileges.capabilities': rule('capabilities an app may request', { allow: Type.Optional(Type.Array(Type.String({ pattern: '^(CAP_)?[A-Z_]+$' }))) }),
  'privileges.devices': rule('host devices an app may request', { allow: Type.Optional(Paths) }),
  'privileges.host-mounts': rule('host paths an app may mount', { allow: Type.Optional(Paths) }),
  'privileges.privileged': rule('privileged mode', {}),
  'privileges.host-network': rule('the host\'s network namespace (and, in pods, its PID and IPC namespaces)', {}),
  'pod.host-ports': rule('pods: containers binding host ports (Pod Security Standards baseline)', {
    allow: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { description: 'host ports a container may bind' })),
  }),
  'pod.privilege-escalation': rule('pods: every container sets allowPrivilegeEscalation: false (restricted)', {}),
  'pod.capabilities-drop': rule('pods: every container drops ALL capabilities (restricted)', {}),
  'pod.seccomp': rule('pods: seccomp profile RuntimeDefault or Localhost for every container (restricted)', {}),
  'pod.proc-mount': rule('pods: procMount Default only (baseline)', {}),
  'pod.sysctls': rule('pods: only the safe sysctls (baseline)', {
    allow: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'sysctls allowed beyond the Pod Security Standards safe set' })),
  }),
  'pod.apparmor': rule('pods: AppArmor profile runtime/default or localhost/* only (baseline)', {}),
};

export type RuleId = keyof typeof RuleSchemas;
export const RULE_IDS = Object.keys(RuleSchemas) as RuleId[];
export type RuleParams<R extends RuleId> = Static<(typeof RuleSchemas)[R]>;

const Waiver = Type.Object({
  rule: Type.String({ minLength: 1 }),
  path: Type.Optional(Type.String({ minLength: 1, description: 'a path (or tree with /**) the waiver covers' })),
  digest: Type.Optional(Type.String({ pattern: '^sha(256|512):[a-f0-9]+$', description: 'a layer or image digest the waiver covers' })),
  reason: Type.String({ minLength: 1 }),
  expires: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$', description: 'YYYY-MM-DD; after that day the waiver no longer applies' }),
}, { additionalProperties: false });

export const RestrictionsSchema = Type.Object({
  apiVersion: Type.Literal('slipway/v1'),
  kind: Type.Literal('Restrictions'),
  metadata: Type.Object({ name: Type.String({ minLength: 1 }), description: Type.Optional(Type.String()) }, { additionalProperties: false }),
  rules: Type.Object(Object.fromEntries(RULE_IDS.map((id) => [id, Type.Optional(RuleSchemas[id])])) as { [K in RuleId]: TOptional<(typeof RuleSchemas)[K]> }, { additionalProperties: false }),
  waivers: Type.Optional(Type.Array(Waiver)),
}, { additionalProperties: false, $id: 'https://slipway.dev/schemas/restrictions.schema.json', title: 'Slipway Restrictions' });

export type Restrictions = Static<typeof RestrictionsSchema>;
export type Waiver = Static<typeof Waiver>;

/** Bytes from a Size: 500MB = 500·10⁶, 1GiB = 2³⁰. */
export function bytesOf(size: number | string): number {
  if (typeof size === 'number') return size;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(i?)[bB]?$/.exec(size)!;
  const power = ' kmgt'.indexOf(m[2]!.toLowerCase() || ' ');
  return Math.round(Number(m[1]) * (m[3] ? 1024 : 1000) ** power);
}

/** A line and column for a path in the source text, for errors a person can find. */
function locate(doc: ReturnType<typeof parseDocument>, lines: LineCounter, path: string[]): string {
  let node: unknown = doc.contents;
  let last = node;
  for (const key of path) {
    if (isMap(node)) node = node.get(key, true);
    else if (isSeq(node)) node = node.get(Number(key), true);
    else break;
    if (node) last = node;
    else break;
  }
  const range = (last as YamlNode | undefined)?.range;
  if (!range) return '';
  const { line, col } = lines.linePos(range[0]);
  return `line ${line}, column ${col}: `;
}

/** Parses and validates a document (YAML or JSON); errors name the file, line and path. */
export function parseRestrictions(text: string, where: string): Restrictions {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const { line, col } = lines.linePos(e.pos[0]);
    throw new SlipwayError(`${where}: line ${line}, column ${col}: ${e.message.split('\n')[0]}`, { hint: 'the file must be YAML or JSON' });
  }
  const value: unknown = doc.toJS();
  const errors = [...Value.Errors(RestrictionsSchema, value)];
  if (errors.length === 0) return value as Restrictions;
  // The most specific error first: the deepest path says most about what to fix.
  errors.sort((a, b) => b.path.split('/').length - a.path.split('/').length);
  const e = errors[0]!;
  const path = e.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const at = locate(doc, lines, path);
  const field = path.join('.') || '(top level)';
  const top = (value ?? {}) as Record<string, unknown>;
  let message = `${e.message} at ${field}`;
  if (path[0] === 'apiVersion') message = `apiVersion must be slipway/v1 (got ${JSON.stringify(top.apiVersion)})`;
  else if (path[0] === 'kind') message = `kind must be Restrictions (got ${JSON.stringify(top.kind)})`;
  else if (path.at(-1) === 'severity') message = `severity must be "deny" or "warn" (got ${JSON.stringify(path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], value))}) at ${field}`;
  else if (path[0] === 'rules' && path.length === 2 && !(RULE_IDS as string[]).includes(path[1]!)) message = `unknown rule "${path[1]}"`;
  const hint = path[0] === 'rules' && path.length === 2 ? `rule ids are: ${RULE_IDS.join(', ')}` : 'see docs/restrictions.md and schemas/restrictions.schema.json';
  throw new SlipwayError(`${where}: ${at}${message}`, { hint });
}

export function readRestrictionsFile(path: string): Restrictions {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SlipwayError(`cannot read restrictions ${path}: ${(err as Error).message}`, { hint: 'give a file path or a preset name (heroku-like, kubernetes-restricted, permissive)' });
  }
  return parseRestrictions(text, path);
}
