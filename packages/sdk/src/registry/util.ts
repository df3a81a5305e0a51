/*
 * Helpers shared by the registry implementations: input validation (every registry
 * accepts and rejects exactly the same records), copies, and the signatures used to tell
 * a real change from a heart-beat.
 */

import { BadRequest } from '../errors/errors.js';
import { priceProblem } from '../service/price.js';
import { DEFAULT_NAMESPACE } from './registry.js';
import type { EndpointRecord, NodeRecord, ServiceRecord, StreamKind } from './registry.js';

/** The id registry errors carry. */
export const REGISTRY_ERROR_ID = 'micro.registry';

/** Bounds on every input: a registry must never grow without limit because of one call. */
export const LIMITS = Object.freeze({
  /** service name, version, node id, namespace, endpoint name, metadata key */
  name: 255,
  address: 2048,
  description: 4096,
  metadataEntries: 256,
  metadataValue: 4096,
  endpoints: 4096,
  nodesPerCall: 1024,
  /** the whole record as JSON, endpoint schemas included */
  recordChars: 4 * 1024 * 1024,
  /** a year: anything longer is a mistake for a heart-beat TTL */
  ttlSeconds: 365 * 24 * 3600,
});

const KINDS: ReadonlySet<string> = new Set<StreamKind>(['unary', 'server', 'client', 'bidi']);
// Control characters (NUL included) would corrupt file names, log lines and wire headers.
const CONTROL = /\p{Cc}/u;

function bad(detail: string): Error {
  return BadRequest(REGISTRY_ERROR_ID, detail);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A non-empty string of at most `max` characters without control characters. */
export function checkName(value: unknown, field: string, max: number = LIMITS.name): string {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty string`);
  if (value.length > max) throw bad(`${field} must be at most ${max} characters (got ${value.length})`);
  if (CONTROL.test(value)) throw bad(`${field} must not contain control characters`);
  return value;
}

export function checkNamespace(value: unknown): string {
  return value === undefined ? DEFAULT_NAMESPACE : checkName(value, 'namespace');
}

/** TTL in seconds (fractions allowed); 0 means the nodes never expire. */
export function checkTtl(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > LIMITS.ttlSeconds) {
    throw bad(`ttl must be a number of seconds between 0 and ${LIMITS.ttlSeconds}`);
  }
  return value;
}

function checkOptionalText(value: unknown, field: string, max: number): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  if (value.length > max) throw bad(`${field} must be at most ${max} characters (got ${value.length})`);
  return value;
}

function checkMetadata(value: unknown, field: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw bad(`${field} must be an object of strings`);
  const keys = Object.keys(value);
  if (keys.length > LIMITS.metadataEntries) throw bad(`${field} must have at most ${LIMITS.metadataEntries} entries`);
  const out: Record<string, string> = {};
  for (const key of keys) {
    checkName(key, `${field} key`);
    const v = value[key];
    if (typeof v !== 'string') throw bad(`${field}.${key} must be a string`);
    if (v.length > LIMITS.metadataValue) throw bad(`${field}.${key} must be at most ${LIMITS.metadataValue} characters`);
    out[key] = v;
  }
  return out;
}

function checkNode(value: unknown, field: string, needAddress: boolean): NodeRecord {
  if (!isPlainObject(value)) throw bad(`${field} must be an object`);
  const id = checkName(value.id, `${field}.id`);
  if (!needAddress && value.address === undefined) return { id, address: '' };
  const address = checkName(value.address, `${field}.address`, LIMITS.address);
  const metadata = checkMetadata(value.metadata, `${field}.metadata`);
  return metadata ? { id, address, metadata } : { id, address };
}

function checkSchema(value: unknown, field: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw bad(`${field} must be a JSON Schema object`);
  try {
    // A copy through JSON: the registry keeps no reference to caller objects, and
    // anything that cannot cross a process boundary (cycles, BigInt) is refused here.
    return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
  } catch {
    throw bad(`${field} must be JSON-serialisable`);
  }
}

function checkEndpoint(value: unknown, field: string): EndpointRecord {
  if (!isPlainObject(value)) throw bad(`${field} must be an object`);
  const name = checkName(value.name, `${field}.name`);
  if (typeof value.kind !== 'string' || !KINDS.has(value.kind)) {
    throw bad(`${field}.kind must be one of ${[...KINDS].join(', ')}`);
  }
  const out: EndpointRecord = {
    name,
    kind: value.kind as StreamKind,
    request: checkSchema(value.request, `${field}.request`),
    response: checkSchema(value.response, `${field}.response`),
  };
  const description = checkOptionalText(value.description, `${field}.description`, LIMITS.description);
  if (description !== undefined) out.description = description;
  if (value.idempotent !== undefined) {
    if (typeof value.idempotent !== 'boolean') throw bad(`${field}.idempotent must be a boolean`);
    out.idempotent = value.idempotent;
  }
  if (value.readonly !== undefined) {
    if (typeof value.readonly !== 'boolean') throw bad(`${field}.readonly must be a boolean`);
    out.readonly = value.readonly;
  }
  for (const kind of ['price', 'freeQuota'] as const) {
    if (value[kind] === undefined) continue;
    const problem = priceProblem(kind, value[kind], `${field}.${kind}`);
    if (problem) throw bad(problem);
    out[kind] = value[kind] as number;
  }
  const metadata = checkMetadata(value.metadata, `${field}.metadata`);
  if (metadata) out.metadata = metadata;
  return out;
}

function checkNodes(value: unknown, needAddress: boolean): NodeRecord[] {
  if (!Array.isArray(value) || value.length === 0) throw bad('service.nodes must be a non-empty array');
  if (value.length > LIMITS.nodesPerCall) throw bad(`service.nodes must have at most ${LIMITS.nodesPerCall} entries`);
  const seen = new Set<string>();
  return value.map((n, i) => {
    const node = checkNode(n, `service.nodes[${i}]`, needAddress);
    if (seen.has(node.id)) throw bad(`service.nodes[${i}].id ${JSON.stringify(node.id)} is listed twice`);
    seen.add(node.id);
    return node;
  });
}

/**
 * Validates a record given to `register` and returns a normalised deep copy holding only
 * the known fields. Throws BadRequest naming the offending field.
 */
export function checkRegistration(value: unknown): ServiceRecord {
  if (!isPlainObject(value)) throw bad('service must be an object');
  const name = checkName(value.name, 'service.name');
  const version = checkName(value.version, 'service.version');
  const description = checkOptionalText(value.description, 'service.description', LIMITS.description);
  const metadata = checkMetadata(value.metadata, 'service.metadata');
  const rawEndpoints = value.endpoints ?? [];
  if (!Array.isArray(rawEndpoints)) throw bad('service.endpoints must be an array');
  if (rawEndpoints.length > LIMITS.endpoints) throw bad(`service.endpoints must have at most ${LIMITS.endpoints} entries`);
  const endpoints = rawEndpoints.map((e, i) => checkEndpoint(e, `service.endpoints[${i}]`));
  const nodes = checkNodes(value.nodes, true);
  const record: ServiceRecord = { name, version, endpoints, nodes };
  if (description !== undefined) record.description = description;
  if (metadata) record.metadata = metadata;
  const size = JSON.stringify(record).length;
  if (size > LIMITS.recordChars) throw bad(`service record must be at most ${LIMITS.recordChars} characters as JSON (got ${size})`);
  return record;
}

/** What `deregister` needs: the version and the ids of the nodes that go. */
export function checkDeregistration(value: unknown): { name: string; version: string; nodeIds: string[] } {
  if (!isPlainObject(value)) throw bad('service must be an object');
  const name = checkName(value.name, 'service.name');
  const version = checkName(value.version, 'service.version');
  const nodeIds = checkNodes(value.nodes, false).map((n) => n.id);
  return { name, version, nodeIds };
}

/** The part of a version that is not its nodes, as a comparable string. */
export function definitionSignature(record: ServiceRecord): string {
  return JSON.stringify([record.description ?? null, record.metadata ?? null, record.endpoints]);
}

/** A node as a comparable string: a heart-beat of an unchanged node has the same one. */
export function nodeSignature(node: NodeRecord): string {
  return JSON.stringify([node.id, node.address, node.metadata ?? null]);
}

export function cloneRecord(record: ServiceRecord): ServiceRecord {
  return structuredClone(record);
}
