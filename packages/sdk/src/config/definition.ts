import { z } from 'zod';
import { defineService, endpoint, serverStream } from '../service/definition.js';
import { CONFIG_LIMITS, type ConfigValue } from './config.js';

/**
 * The config service as `micro server` serves it (RemoteConfig is its client). The
 * schemas bound what they can; the config behind the service checks the rest (path
 * rules, value size and depth) the same way for every engine, naming what is wrong.
 */

// The schema caps what reaches the config; the config's own check (256 characters, 32
// segments, no empty or reserved segment) refuses with a message that names the path.
const Path = z
  .string()
  .max(CONFIG_LIMITS.pathChars * 4)
  .describe(`a dotted path like "db.host" ("" or absent: the whole document), at most ${CONFIG_LIMITS.pathChars} characters`);
const Namespace = z.string().min(1).max(CONFIG_LIMITS.namespaceChars).optional().describe("the namespace (default: the caller's; others need an admin of micro)");
const Value = z
  .custom<ConfigValue>((v) => v !== undefined, { message: 'required: a JSON value' })
  .describe('a JSON value: objects merge into what is at the path, anything else replaces it');

export const configService = defineService({
  name: 'config',
  version: '1.0.0',
  description: 'Configuration: one JSON document per namespace, read and written at dotted paths, with encrypted secrets',
  endpoints: {
    Get: endpoint({
      description: 'The value at a path; secrets masked unless asked for',
      request: z.object({
        path: Path.optional(),
        namespace: Namespace,
        secrets: z.boolean().optional().describe('show secrets in clear (admins of micro and accounts with scope config:secrets)'),
      }),
      response: z.object({ found: z.boolean().describe('whether anything is at the path'), value: z.unknown().optional() }),
      idempotent: true,
      readonly: true,
    }),
    Set: endpoint({
      description: 'Merges a value in at a path (durable when it returns)',
      request: z.object({ path: Path, value: Value, secret: z.boolean().optional().describe('store the value encrypted'), namespace: Namespace }),
      response: z.object({}),
      // setting the same value again leaves the same document
      idempotent: true,
    }),
    Delete: endpoint({
      description: 'Removes what is at a path',
      request: z.object({ path: Path, namespace: Namespace }),
      response: z.object({ deleted: z.boolean().describe('false when nothing was there') }),
      idempotent: true,
    }),
    Watch: serverStream({
      description: 'The value at a path now, then each change of it (secrets masked)',
      request: z.object({ path: Path.optional(), namespace: Namespace }),
      response: z.object({
        namespace: z.string(),
        path: z.string(),
        value: z.unknown().optional(),
        op: z.enum(['current', 'set', 'delete']),
        changed: z.string(),
        version: z.number().int(),
      }),
      readonly: true,
    }),
  },
});
