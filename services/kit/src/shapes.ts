import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * M3O's published response shapes (../M3O-API.md, a copy of what the platform keeps), read
 * at test time, so that a compatibility test checks every field name and type the way an
 * M3O client reads them:
 * - every field of the shape is present (`""`, `0`, `false`, `[]`, `{}` when empty), except
 *   message fields (`object`, a named type), which may be null or absent when unset;
 * - no field the shape does not name;
 * - `i64` is a JSON string of digits, `number` a JSON number, `bytes` a base64 string.
 */

export interface Field {
  name: string;
  type: string;
}

export interface EndpointShape {
  service: string;
  endpoint: string;
  stream: boolean;
  request: Field[];
  response: Field[];
}

const here = dirname(fileURLToPath(import.meta.url));

let parsed: { endpoints: Map<string, EndpointShape>; types: Map<string, Field[]> } | undefined;

/** Splits `a?:x, b?:map<string,string>` at the commas outside `<>` and `/* *\/`. */
function fields(list: string): Field[] {
  const out: Field[] = [];
  let depth = 0;
  let cur = '';
  const text = list.replace(/\/\*.*?\*\//g, (c) => (c.includes('bytes') ? '@bytes' : c.match(/\/\*(\w+)\*\//) ? `@${c.slice(2, -2)}` : ''));
  for (const ch of text) {
    if (ch === '<') depth++;
    if (ch === '>') depth--;
    if (ch === ',' && depth === 0) {
      if (cur.trim()) out.push(field(cur.trim()));
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(field(cur.trim()));
  return out;
}

function field(spec: string): Field {
  const colon = spec.indexOf(':');
  return { name: spec.slice(0, colon).replace(/\?$/, ''), type: spec.slice(colon + 1).trim() };
}

function load(): NonNullable<typeof parsed> {
  if (parsed) return parsed;
  const text = readFileSync(join(here, '..', 'M3O-API.md'), 'utf8');
  const endpoints = new Map<string, EndpointShape>();
  const types = new Map<string, Field[]>();
  let service = '';
  for (const line of text.split('\n')) {
    const heading = /^### (\w+) /.exec(line);
    if (heading) service = heading[1] as string;
    const ep = /^(\w+)\.(\w+) (\[STREAM\/ws\] )?\{(.*)\} -> \{(.*)\}$/.exec(line.trim());
    if (ep) {
      endpoints.set(`${ep[1]}.${ep[2]}`, { service: ep[1] as string, endpoint: ep[2] as string, stream: !!ep[3], request: fields(ep[4] as string), response: fields(ep[5] as string) });
      continue;
    }
    const type = /^type (\w+) = \{(.*)\}$/.exec(line.trim());
    // types are per service: the same name (Record, Message, Account) differs between services
    if (type && service) types.set(`${service}.${type[1]}`, fields(type[2] as string));
  }
  parsed = { endpoints, types };
  return parsed;
}

/** The shape of `service.Endpoint` in M3O-API.md (throws when there is none). */
export function shapeOf(service: string, endpoint: string): EndpointShape {
  const shape = load().endpoints.get(`${service}.${endpoint}`);
  if (!shape) throw new Error(`M3O-API.md has no endpoint ${service}.${endpoint}`);
  return shape;
}

/** Every endpoint M3O-API.md lists for a service. */
export function endpointsOf(service: string): EndpointShape[] {
  return [...load().endpoints.values()].filter((e) => e.service === service);
}

/** The problems of `body` as the response of `service.Endpoint` (empty: it has M3O's shape). */
export function shapeProblems(service: string, endpoint: string, body: unknown): string[] {
  const problems: string[] = [];
  checkObject(service, shapeOf(service, endpoint).response, body, `${service}.${endpoint}`, problems);
  return problems;
}

function checkObject(service: string, shape: Field[], value: unknown, path: string, problems: string[]): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`${path}: expected an object, got ${JSON.stringify(value)?.slice(0, 80)}`);
    return;
  }
  const obj = value as Record<string, unknown>;
  const known = new Set(shape.map((f) => f.name));
  for (const name of Object.keys(obj)) if (!known.has(name)) problems.push(`${path}.${name}: not a field of M3O's shape (${[...known].join(', ') || 'none'})`);
  for (const f of shape) checkValue(service, f.type, obj[f.name], `${path}.${f.name}`, problems);
}

function checkValue(service: string, type: string, value: unknown, path: string, problems: string[]): void {
  const named = /^object@(\w+)$/.exec(type)?.[1] ?? (/^[A-Z]\w*$/.test(type) ? type : undefined);
  if (type === 'object' || named) {
    // a message field: null or absent when unset
    if (value === undefined || value === null) return;
    if (!named) {
      if (typeof value !== 'object' || Array.isArray(value)) problems.push(`${path}: expected an object`);
      return;
    }
    const shape = load().types.get(`${service}.${named}`);
    if (!shape) problems.push(`${path}: M3O-API.md has no type ${named} in ${service}`);
    else checkObject(service, shape, value, path, problems);
    return;
  }
  if (value === undefined) {
    problems.push(`${path}: missing (M3O sends every field, empty ones too)`);
    return;
  }
  if (type.endsWith('[]')) {
    if (!Array.isArray(value)) problems.push(`${path}: expected an array, got ${JSON.stringify(value)?.slice(0, 80)}`);
    else value.forEach((v, i) => checkValue(service, type.slice(0, -2), v, `${path}[${i}]`, problems));
    return;
  }
  const map = /^map<string,\s*(\w+)>$/.exec(type);
  if (map) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) problems.push(`${path}: expected an object (a map)`);
    else for (const [k, v] of Object.entries(value)) checkValue(service, map[1] as string, v, `${path}.${k}`, problems);
    return;
  }
  const scalar: Record<string, (v: unknown) => boolean> = {
    string: (v) => typeof v === 'string',
    'string@bytes': (v) => typeof v === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(v),
    number: (v) => typeof v === 'number' && Number.isFinite(v),
    boolean: (v) => typeof v === 'boolean',
    i64: (v) => typeof v === 'string' && /^-?\d+$/.test(v),
  };
  const check = scalar[type];
  if (!check) problems.push(`${path}: unknown type ${type} in M3O-API.md`);
  else if (!check(value)) problems.push(`${path}: expected ${type === 'i64' ? 'an i64 (a string of digits)' : type}, got ${JSON.stringify(value)?.slice(0, 80)}`);
}
