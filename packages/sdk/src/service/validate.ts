import type { z } from 'zod';
import { BadRequest, InternalServerError } from '../errors/errors.js';

/** `name: Invalid input: expected string, received number` — one line per issue, field first. */
const MAX_ISSUES = 5;

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const shown = issues.slice(0, MAX_ISSUES).map((issue) => {
    const path = issue.path.map((p) => String(p)).join('.');
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  if (issues.length > MAX_ISSUES) shown.push(`and ${issues.length - MAX_ISSUES} more`);
  return shown.join('; ');
}

/** Parses a request; a failure is a 400 naming the fields that are wrong. */
export function parseRequest(schema: z.ZodType, value: unknown, id: string): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw BadRequest(id, `invalid request: ${formatIssues(result.error.issues)}`);
}

/** Parses a response (when response validation is on); a failure is the service's fault: 500. */
export function parseResponse(schema: z.ZodType, value: unknown, id: string): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw InternalServerError(id, `invalid response: ${formatIssues(result.error.issues)}`);
}

/**
 * zod v4 schemas carry `_zod`; checking it (rather than instanceof) also accepts schemas
 * from another copy of zod, e.g. a service's own dependency.
 */
export function isSchema(value: unknown): value is z.ZodType {
  return typeof value === 'object' && value !== null && '_zod' in value && typeof (value as { safeParse?: unknown }).safeParse === 'function';
}
