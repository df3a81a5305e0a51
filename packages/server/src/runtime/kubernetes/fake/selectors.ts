import { badRequest } from './status.js';
import type { KObj, LabelSelector } from './types.js';
import { isObject } from './types.js';

/**
 * Label selectors (`app=web,tier!=db,env in (a,b),!legacy`) and field selectors
 * (`metadata.name=x`), parsed once per request and matched against every object.
 */

export type Labels = Record<string, string>;
export type Matcher = (labels: Labels) => boolean;

interface Requirement {
  key: string;
  op: 'in' | 'notin' | 'exists' | '!' | '=' | '!=' | 'gt' | 'lt';
  values: string[];
}

/** splits at commas outside parentheses */
function splitTop(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts.map((p) => p.trim());
}

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function requirement(text: string): Requirement {
  const bad = (why: string) => badRequest(`unable to parse requirement: ${JSON.stringify(text)}: ${why}`);
  let m = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(text);
  if (m) {
    const values = (m[3] ?? '').split(',').map((v) => v.trim());
    return check({ key: m[1] ?? '', op: m[2] as 'in' | 'notin', values }, bad);
  }
  m = /^([^=!<>\s]+)\s*(==|=|!=|<|>)\s*(\S*)$/.exec(text);
  if (m) {
    const op = m[2] === '==' || m[2] === '=' ? '=' : m[2] === '!=' ? '!=' : m[2] === '>' ? 'gt' : 'lt';
    return check({ key: m[1] ?? '', op, values: [m[3] ?? ''] }, bad);
  }
  if (/^!\s*\S+$/.test(text)) return check({ key: text.slice(1).trim(), op: '!', values: [] }, bad);
  if (/^\S+$/.test(text)) return check({ key: text, op: 'exists', values: [] }, bad);
  throw bad('not a requirement');
}

function check(r: Requirement, bad: (why: string) => Error): Requirement {
  if (!KEY.test(r.key) || r.key.length > 317) throw bad(`invalid label key ${JSON.stringify(r.key)}`);
  for (const v of r.values) if (!VALUE.test(v) || v.length > 63) throw bad(`invalid label value ${JSON.stringify(v)}`);
  if ((r.op === 'gt' || r.op === 'lt') && !/^-?\d+$/.test(r.values[0] ?? '')) throw bad('for Gt and Lt the value must be an integer');
  return r;
}

function matches(r: Requirement, labels: Labels): boolean {
  const has = Object.hasOwn(labels, r.key);
  const v = labels[r.key];
  switch (r.op) {
    case 'exists':
      return has;
    case '!':
      return !has;
    case '=':
    case 'in':
      return has && r.values.includes(v as string);
    case '!=':
    case 'notin':
      return !has || !r.values.includes(v as string);
    case 'gt':
      return has && /^-?\d+$/.test(v as string) && Number(v) > Number(r.values[0]);
    case 'lt':
      return has && /^-?\d+$/.test(v as string) && Number(v) < Number(r.values[0]);
  }
}

/** parses a `labelSelector` query parameter (400 BadRequest when it is not one) */
export function parseLabelSelector(text: string | null | undefined): Matcher {
  if (!text || !text.trim()) return () => true;
  if (text.length > 4096) throw badRequest('labelSelector: too long');
  const reqs = splitTop(text).map(requirement);
  return (labels) => reqs.every((r) => matches(r, labels));
}

/** a `LabelSelector` object as workloads write it: `{}` selects everything, undefined nothing */
export function selectorMatcher(sel: LabelSelector | undefined | null): Matcher {
  if (!sel) return () => false;
  const reqs: Requirement[] = Object.entries(sel.matchLabels ?? {}).map(([key, v]) => ({ key, op: '=', values: [v] }));
  for (const e of sel.matchExpressions ?? []) {
    const op = ({ In: 'in', NotIn: 'notin', Exists: 'exists', DoesNotExist: '!' } as const)[e.operator as 'In'];
    reqs.push({ key: e.key, op: op ?? 'in', values: e.values ?? [] });
  }
  return (labels) => reqs.every((r) => matches(r, labels));
}

/** `matchLabels` and `matchExpressions` as the text form, for messages and `status.selector` */
export function selectorText(sel: LabelSelector | undefined): string {
  const parts = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator.toLowerCase()} (${(e.values ?? []).join(',')})`);
  }
  return parts.join(',');
}

export type FieldMatcher = (obj: KObj) => boolean;

function fieldValue(obj: KObj, path: string): string {
  if (path === 'source') return String((obj.source as { component?: string } | undefined)?.component ?? '');
  let cur: unknown = obj;
  for (const part of path.split('.')) cur = isObject(cur) ? cur[part] : undefined;
  return cur === undefined || cur === null ? '' : String(cur);
}

/** parses a `fieldSelector`: `metadata.name`, `metadata.namespace` and the resource's own fields */
export function parseFieldSelector(text: string | null | undefined, allowed: string[]): FieldMatcher {
  if (!text || !text.trim()) return () => true;
  if (text.length > 4096) throw badRequest('fieldSelector: too long');
  const reqs = text.split(',').map((part) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${text}'; can't understand '${part}'`);
    const field = m[1] as string;
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !allowed.includes(field)) throw badRequest(`field label not supported: ${field}`);
    return { field, negate: m[2] === '!=', value: m[3] as string };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.field) === r.value) !== r.negate);
}

/** whether a selector of a Deployment, ReplicaSet or Job selects a template's labels */
export function selects(sel: LabelSelector | undefined, labels: Labels | undefined): boolean {
  return selectorMatcher(sel)(labels ?? {});
}
