/**
 * What an app declares it needs, in its app.json under `requirements`. Checked against a
 * provider's Restrictions before any build (`slipway check APP_DIR`) and again inside every slug
 * and image, since the app.json ships in /app.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { SlipwayError } from '../errors.js';
import { Size } from './document.js';

export const RequirementsSchema = Type.Object({
  os: Type.Optional(Type.String({ description: 'e.g. linux' })),
  arch: Type.Optional(Type.String({ description: 'e.g. amd64, arm64, arm64/v8' })),
  ports: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { description: 'fixed ports the app listens on besides $PORT' })),
  disk: Type.Optional(Type.Object({ persistent: Type.Optional(Type.Boolean()), size: Type.Optional(Size) }, { additionalProperties: false })),
  memory: Type.Optional(Size),
  capabilities: Type.Optional(Type.Array(Type.String({ pattern: '^(CAP_)?[A-Z_]+$' }))),
  root: Type.Optional(Type.Boolean({ description: 'the app must run as uid 0' })),
  devices: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'host devices, e.g. /dev/fuse' })),
  hostMounts: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'host paths to mount, e.g. /var/run/docker.sock' })),
  privileged: Type.Optional(Type.Boolean()),
  hostNetwork: Type.Optional(Type.Boolean()),
}, { additionalProperties: false, $id: 'https://slipway.dev/schemas/app-requirements.schema.json', title: 'Slipway app.json requirements' });

export type Requirements = Static<typeof RequirementsSchema>;

/** The requirements in an app.json's text (none when it has none); errors name the field. */
export function parseRequirements(text: string, where: string): Requirements | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new SlipwayError(`${where}: not valid JSON (${(err as Error).message})`, { hint: 'fix app.json' });
  }
  const req = (doc as { requirements?: unknown } | null)?.requirements;
  if (req === undefined) return undefined;
  const e = Value.Errors(RequirementsSchema, req).First();
  if (e) throw new SlipwayError(`${where}: requirements${e.path.replace(/\//g, '.')}: ${e.message}`, { hint: 'see docs/restrictions.md, "App requirements"' });
  return req as Requirements;
}
