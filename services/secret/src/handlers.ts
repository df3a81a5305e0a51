import { errors, type ConfigValue, type Context, type Engines } from '@micro/sdk';
import { publicService, rfc3339 } from '@micro/services-kit';
import { secret } from './definition.js';

/*
 * Secrets are config secrets of the caller's namespace: the config engine seals each one
 * with AES-256-GCM under the server's config key (MICRO_CONFIG_SECRET_KEY, shared by the
 * nodes), binding the namespace and the path into the ciphertext, so a sealed value
 * copied to another tenant's document does not open. They live at
 * `micro_secret.<path>.<key>` of the tenant's config document (shown masked to the
 * tenant's own config readers, deleted with the namespace). A value is never logged: it
 * reaches no message, and errors name the key and path only.
 */

const ROOT = 'micro_secret';
/** a config path is at most 256 characters */
const PATH_MAX = 256;

interface Sealed {
  value: string;
  created: number;
  updated: number;
}

/**
 * A key or path as one segment of a config path: `.` and `%` escaped, and `_` in front,
 * so that no name is empty or one config reserves (`__proto__`, `$secret`).
 */
export function segment(name: string): string {
  return `_${name.replace(/%/g, '%25').replace(/\./g, '%2E')}`;
}

export function unsegment(seg: string): string {
  return seg.slice(1).replace(/%2E/g, '.').replace(/%25/g, '%');
}

function configPath(key: string, path: string): string {
  const full = `${ROOT}.${segment(path)}.${segment(key)}`;
  if (full.length > PATH_MAX) throw errors.BadRequest('secret', `invalid request: key: key and path are too long together (at most ${PATH_MAX - ROOT.length - 4} characters, counting "." and "%" as 3)`);
  return full;
}

function notFound(key: string, path: string) {
  return errors.NotFound('secret', `no secret ${JSON.stringify(key)}${path ? ` in path ${JSON.stringify(path)}` : ''}`);
}

function isSealed(v: ConfigValue | undefined): v is ConfigValue & Sealed {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof v.value === 'string' && typeof v.created === 'number';
}

export const service = publicService(secret, (engines: Engines) => {
  const read = async (ctx: Context, key: string, path: string) => {
    const v = await engines.config.get(configPath(key, path), { namespace: ctx.tenant, secrets: true });
    return isSealed(v) ? v : undefined;
  };

  return {
    async Set({ key, path = '', value }, ctx: Context) {
      const now = Date.now();
      const before = await read(ctx, key, path);
      const sealed: Sealed = { value, created: before?.created ?? now, updated: now };
      await engines.config.set(configPath(key, path), sealed as unknown as ConfigValue, { namespace: ctx.tenant, secret: true });
      return {};
    },

    async Get({ key, path = '' }, ctx: Context) {
      const found = await read(ctx, key, path);
      if (!found) throw notFound(key, path);
      return { key, path, value: found.value, created: rfc3339(found.created), updated: rfc3339(found.updated) };
    },

    async Delete({ key, path = '' }, ctx: Context) {
      if (!(await engines.config.delete(configPath(key, path), { namespace: ctx.tenant }))) throw notFound(key, path);
      return {};
    },

    async List(_req: unknown, ctx: Context) {
      // masked: the names are all List needs, the values stay sealed
      const tree = await engines.config.get(ROOT, { namespace: ctx.tenant });
      const keys: string[] = [];
      if (tree && typeof tree === 'object' && !Array.isArray(tree)) {
        for (const [p, inPath] of Object.entries(tree)) {
          if (!inPath || typeof inPath !== 'object' || Array.isArray(inPath)) continue;
          const path = unsegment(p);
          for (const k of Object.keys(inPath)) keys.push(path ? `${path}/${unsegment(k)}` : unsegment(k));
        }
      }
      return { keys: keys.sort() };
    },
  };
});
