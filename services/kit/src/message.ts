import { errors, z } from '@micro/sdk';

/*
 * Names and JSON messages as the messaging services (event, mq) take them, checked once:
 * a bad one is a 400 (413 for size) that names the field.
 */

/** A zod error option: "required" when the field is absent, `what` otherwise. */
export function needs(what: string) {
  return { error: (issue: { input?: unknown }) => (issue.input === undefined ? 'required' : what) };
}

/** Dot-separated words of letters, digits, `_` and `-`: what every events engine and broker takes as a topic. */
export const TOPIC_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** A topic name of at most `max` characters (room is left for the service's prefix within the engines' 256). */
export function topicName(max = 200) {
  return z
    .string(needs('must be a string'))
    .min(1, 'required')
    .max(max, `must be at most ${max} characters`)
    .regex(TOPIC_NAME, 'must be dot-separated words of letters, digits, "_" and "-" (e.g. "orders.created")');
}

/** Any JSON object (a request's required `message`, or a response's). */
export function jsonObject() {
  return z.record(z.string(), z.unknown(), needs('must be a JSON object'));
}

/** How deep arrays and objects nest in `value`, counted up to just past `limit` (iterative: a hostile value cannot overflow the stack). */
export function depthOf(value: unknown, limit: number): number {
  let max = 0;
  const todo: [unknown, number][] = [[value, 1]];
  while (todo.length > 0) {
    const [v, d] = todo.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    max = Math.max(max, d);
    if (max > limit) return max;
    for (const child of Object.values(v)) todo.push([child, d + 1]);
  }
  return max;
}

export interface MessageBounds {
  /** bytes as JSON; default 256 KiB */
  maxBytes?: number;
  /** levels of nested objects and arrays; default 64 */
  maxDepth?: number;
}

/** A 400 (too deep) or 413 (too large) of `service` naming `field` when the JSON value is out of bounds. */
export function checkJson(service: string, field: string, value: unknown, bounds: MessageBounds = {}): void {
  const maxDepth = bounds.maxDepth ?? 64;
  const maxBytes = bounds.maxBytes ?? 256 * 1024;
  if (depthOf(value, maxDepth) > maxDepth) throw errors.BadRequest(service, `invalid request: ${field}: nests deeper than ${maxDepth} levels`);
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  if (bytes > maxBytes) throw errors.PayloadTooLarge(service, `invalid request: ${field}: is ${bytes} bytes as JSON, more than ${maxBytes}`);
}
