/** The JSON Schemas Slipway publishes in schemas/, from the TypeBox definitions the code uses. */
import { RestrictionsSchema } from './document.js';
import { RequirementsSchema } from './requirements.js';

const DRAFT = 'http://json-schema.org/draft-07/schema#';

export const PUBLISHED_SCHEMAS: Record<string, object> = {
  'restrictions.schema.json': { $schema: DRAFT, ...RestrictionsSchema },
  'app-requirements.schema.json': { $schema: DRAFT, ...RequirementsSchema },
};

export function schemaText(schema: object): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
