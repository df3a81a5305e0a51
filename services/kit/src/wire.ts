import { errors, z } from '@micro/sdk';

/**
 * M3O's wire conventions (../../../shared/M3O-API.md, "Wire conventions"), once for every
 * value-add service:
 * - `i64` fields are JSON strings in responses and a number or a string in requests;
 * - a snake_case request field may also be sent in its lowerCamelCase form;
 * - every response field is present even when empty (the schemas here have defaults).
 */

/** The largest i64 we take exactly: JavaScript numbers are exact to 2^53 - 1. */
export const MAX_I64 = Number.MAX_SAFE_INTEGER;

/**
 * A request's `i64`: a JSON number or a string of digits (optional sign), an integer
 * within ±(2^53 - 1); anything else is a 400 naming the field.
 */
export function i64() {
  return z.union([z.number(), z.string().max(32)]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^\s*-?\d+\s*$/.test(v) ? Number(v.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n)) {
      ctx.addIssue({ code: 'custom', message: `must be a whole number between -${MAX_I64} and ${MAX_I64} (a JSON number or a string of digits)` });
      return z.NEVER;
    }
    return n;
  });
}

/** A response's `i64`: a JSON string of digits. */
export const i64Out = z.string().describe('i64, as a string of digits');

/** An i64 as M3O sends it. */
export function str64(n: number | bigint): string {
  return String(n);
}

/** `session_id` → `sessionId` */
export function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * A request object of M3O's shape: `shape`'s fields, where a snake_case field may also be
 * sent in its lowerCamelCase form (the snake_case one wins when both are). Unknown fields
 * are ignored, as M3O's JSON decoding did.
 */
export function m3oRequest<S extends z.ZodRawShape>(shape: S) {
  const aliases = new Map<string, string>();
  for (const name of Object.keys(shape)) if (name.includes('_')) aliases.set(lowerCamel(name), name);
  const object = z.object(shape);
  if (aliases.size === 0) return object;
  return z.preprocess((value) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const [camel, snake] of aliases) {
      if (camel in copy) {
        if (!(snake in copy)) copy[snake] = copy[camel];
        delete copy[camel];
      }
    }
    return copy;
  }, object) as unknown as typeof object;
}

/** When something happened, as M3O's string timestamps: RFC 3339 in UTC. */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString();
}

/** When something happened, as M3O's i64 timestamps: whole seconds since 1970, as a string. */
export function unixSeconds(ms: number): string {
  return String(Math.floor(ms / 1000));
}

/** A 400 of service `service` saying which field is missing, as M3O answered (`Missing <field>`). */
export function missing(service: string, field: string) {
  return errors.BadRequest(service, `Missing ${field}`);
}
