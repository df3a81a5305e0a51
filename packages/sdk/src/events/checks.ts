/*
 * Input checks shared by every events implementation, so that memory, SQLite and the
 * remote service accept and refuse exactly the same input, with the same messages. Each
 * error is a 400 (413 for sizes) that names the field; hostile values are never echoed
 * whole.
 */

import { randomUUID } from 'node:crypto';
import { BadRequest, PayloadTooLarge, type MicroError } from '../errors/errors.js';
import { topicProblem } from '../broker/broker.js';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';
import { DEFAULTS, EVENTS_ERROR_ID, LIMITS, deadLetterTopic, type RetentionPolicy } from './events.js';

const CONTROL = /\p{Cc}/u;
const GROUP = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function bad(detail: string): MicroError {
  return BadRequest(EVENTS_ERROR_ID, detail);
}

/** A value for an error message: short, one line. */
export function shown(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const clean = text.replace(/[\p{Cc}]/gu, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** A concrete topic: dot-separated tokens, no wildcards, at most 256 characters. */
export function checkTopic(value: unknown, field = 'topic'): string {
  if (value === undefined || value === null) throw bad(`${field} is required`);
  const problem = topicProblem(value, { wildcards: false });
  if (problem) throw bad(`${field}: ${problem.replace(/^topic /, '')}${typeof value === 'string' && value.length > 0 ? ` ("${shown(value)}")` : ''}`);
  return value as string;
}

export function checkGroup(value: unknown): string {
  if (value === undefined || value === null || value === '') throw bad('group is required: consumers join a named group');
  if (typeof value !== 'string') throw bad('group must be a string');
  if (value.length > LIMITS.group) throw bad(`group must be at most ${LIMITS.group} characters (got ${value.length})`);
  if (!GROUP.test(value)) throw bad(`group "${shown(value)}" may hold only letters, digits, "_", "." and "-", starting with a letter, digit or "_"`);
  return value;
}

export function checkNamespace(value: unknown): string {
  if (value === undefined || value === null) return DEFAULT_NAMESPACE;
  if (typeof value !== 'string' || value.length === 0) throw bad('namespace must be a non-empty string');
  if (value.length > LIMITS.namespace) throw bad(`namespace must be at most ${LIMITS.namespace} characters (got ${value.length})`);
  if (CONTROL.test(value)) throw bad('namespace must not contain control characters');
  return value;
}

export function checkId(value: unknown): string {
  if (value === undefined || value === null) return randomUUID();
  if (typeof value !== 'string' || value.length === 0) throw bad('id must be a non-empty string');
  if (value.length > LIMITS.id) throw bad(`id must be at most ${LIMITS.id} characters (got ${value.length})`);
  if (CONTROL.test(value)) throw bad('id must not contain control characters');
  return value;
}

const nestedTooDeep = () => bad(`payload nests deeper than ${LIMITS.payloadDepth} levels of arrays and objects`);

/**
 * The payload as the JSON text that is stored: any JSON value, at most 1 MiB, nested at
 * most 256 deep (JSON.stringify recurses: a deeper event could be stored but not sent).
 */
export function encodePayload(payload: unknown): string {
  if (payload === undefined) throw bad('payload is required (any JSON value; null for none)');
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (err) {
    if (err instanceof RangeError) throw nestedTooDeep();
    throw bad(`payload must be JSON: ${(err as Error).message}`);
  }
  if (json === undefined) throw bad(`payload must be JSON, not a ${typeof payload}`);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > LIMITS.payloadBytes) throw PayloadTooLarge(EVENTS_ERROR_ID, `payload is ${bytes} bytes as JSON, more than the limit of ${LIMITS.payloadBytes}`);
  if (jsonDepth(json) > LIMITS.payloadDepth) throw nestedTooDeep();
  return json;
}

/** How deep arrays and objects nest in a JSON text (one pass, strings skipped). */
export function jsonDepth(json: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/**
 * Metadata as stored: string keys and values within bounds, as JSON with sorted keys (so
 * that equal metadata is equal text), or undefined for none.
 */
export function encodeMetadata(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) throw bad('metadata must be an object of string values');
  const keys = Object.keys(value);
  if (keys.length === 0) return undefined;
  if (keys.length > LIMITS.metadataEntries) throw bad(`metadata may have at most ${LIMITS.metadataEntries} entries (got ${keys.length})`);
  keys.sort();
  const entries: [string, string][] = [];
  for (const key of keys) {
    if (key.length === 0 || key.length > LIMITS.metadataKey) throw bad(`metadata keys must have 1 to ${LIMITS.metadataKey} characters`);
    if (CONTROL.test(key)) throw bad('metadata keys must not contain control characters');
    const v = value[key];
    if (typeof v !== 'string') throw bad(`metadata.${shown(key)} must be a string`);
    if (v.length > LIMITS.metadataValue) throw bad(`metadata.${shown(key)} must be at most ${LIMITS.metadataValue} characters (got ${v.length})`);
    entries.push([key, v]);
  }
  return JSON.stringify(Object.fromEntries(entries));
}

/** A whole number in [min, max], or the default when absent. */
export function checkInt(value: unknown, field: string, min: number, max: number, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw bad(`${field} must be a whole number from ${min} to ${max}${typeof value === 'number' || typeof value === 'string' ? ` (got ${shown(value)})` : ''}`);
  }
  return value;
}

/** A time as epoch ms, from a number or a Date. */
export function checkTime(value: unknown, field: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > 8.64e15) throw bad(`${field} must be a time: epoch milliseconds or a Date`);
  return Math.floor(ms);
}

export type Start = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'time'; time: number } | { kind: 'offset'; offset: number };

export function checkStartOffset(value: unknown): Start {
  if (value === undefined || value === null || value === 'latest') return { kind: 'latest' };
  if (value === 'earliest') return { kind: 'earliest' };
  if (isPlainObject(value)) {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    if (keys.length === 1 && keys[0] === 'time') return { kind: 'time', time: checkTime(value.time, 'offset.time') };
    if (keys.length === 1 && keys[0] === 'offset') return { kind: 'offset', offset: checkInt(value.offset, 'offset.offset', 1, Number.MAX_SAFE_INTEGER, 1) };
  }
  throw bad(`offset must be 'earliest', 'latest', {time} or {offset}${typeof value === 'string' ? ` (got "${shown(value)}")` : ''}`);
}

export function checkRetention(value: unknown): RetentionPolicy {
  if (!isPlainObject(value)) throw bad('retention must be an object with maxAge, maxEvents and/or maxBytes');
  for (const key of Object.keys(value)) {
    if (key !== 'maxAge' && key !== 'maxEvents' && key !== 'maxBytes') throw bad(`retention has no field ${shown(key)}: use maxAge, maxEvents or maxBytes`);
  }
  const policy: RetentionPolicy = {};
  if (value.maxAge !== undefined) policy.maxAge = checkInt(value.maxAge, 'retention.maxAge', 0, LIMITS.maxAge, 0);
  if (value.maxEvents !== undefined) policy.maxEvents = checkInt(value.maxEvents, 'retention.maxEvents', 0, LIMITS.maxEvents, 0);
  if (value.maxBytes !== undefined) policy.maxBytes = checkInt(value.maxBytes, 'retention.maxBytes', 0, LIMITS.maxBytes, 0);
  return policy;
}

export function checkReason(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw bad('reason must be a string');
  // kept, not refused: a long stack trace is still useful in a dead letter
  return value.length > LIMITS.reason ? `${value.slice(0, LIMITS.reason - 3)}...` : value;
}

/** What a consumer asked for, checked, with the defaults filled in. */
export interface ConsumeSettings {
  namespace: string;
  topic: string;
  group: string;
  start: Start;
  ackWait: number;
  maxRetries: number;
  maxInFlight: number;
  deadLetter: string;
}

export function checkConsume(topic: unknown, options: unknown): ConsumeSettings {
  if (!isPlainObject(options)) throw bad('consume needs options with a group');
  const name = checkTopic(topic);
  const named = options.deadLetter !== undefined && options.deadLetter !== null;
  const deadLetter = checkTopic(named ? options.deadLetter : deadLetterTopic(name), named ? 'deadLetter' : 'the dead-letter topic (default <topic>.dead; name a shorter one with deadLetter)');
  if (deadLetter === name) throw bad(`deadLetter must be another topic than ${name}`);
  return {
    namespace: checkNamespace(options.namespace),
    topic: name,
    group: checkGroup(options.group),
    start: checkStartOffset(options.offset),
    ackWait: checkInt(options.ackWait, 'ackWait', LIMITS.ackWaitMin, LIMITS.ackWaitMax, DEFAULTS.ackWait),
    maxRetries: checkInt(options.maxRetries, 'maxRetries', 0, LIMITS.maxRetries, DEFAULTS.maxRetries),
    maxInFlight: checkInt(options.maxInFlight, 'maxInFlight', 1, LIMITS.maxInFlight, DEFAULTS.maxInFlight),
    deadLetter,
  };
}

/**
 * The age past which a topic's events go: its own maxAge (0 = for ever) capped by its
 * namespace's retention (where a quota sets one; 0 there keeps nothing); undefined: none.
 */
export function cappedAge(maxAge: number, cap: number | undefined): number | undefined {
  if (cap === undefined) return maxAge > 0 ? maxAge : undefined;
  return maxAge > 0 ? Math.min(maxAge, cap) : cap;
}
