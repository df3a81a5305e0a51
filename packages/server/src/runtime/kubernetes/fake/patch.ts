import { badRequest, StatusError } from './status.js';
import { clone, deepEqual, isObject } from './types.js';

/**
 * The three patch types of the API: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
 * strategic merge patch, whose lists of containers, env, ports, volumes, conditions... merge
 * by their key instead of being replaced (the `patchMergeKey`s of the API's types).
 */

export const JSON_PATCH = 'application/json-patch+json';
export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_PATCH = 'application/strategic-merge-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';

type Json = unknown;

export function applyPatch(type: string, target: Json, patch: Json): Json {
  switch (type) {
    case JSON_PATCH:
      return jsonPatch(target, patch);
    case MERGE_PATCH:
      return mergePatch(target, patch);
    case STRATEGIC_PATCH:
      return strategicPatch(target, patch, '');
    default:
      throw new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${JSON_PATCH}, ${MERGE_PATCH}, ${STRATEGIC_PATCH}`);
  }
}

/** RFC 7386: objects merge, null removes, anything else replaces */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, Json> = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---- JSON patch ---------------------------------------------------------------------------

function pointer(path: unknown): string[] {
  if (typeof path !== 'string' || (path !== '' && !path.startsWith('/'))) throw badRequest(`json patch: invalid path ${JSON.stringify(path)}`);
  return path === '' ? [] : path.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, parts: string[], op: string): { parent: Json; key: string } {
  let cur = doc;
  for (const p of parts.slice(0, -1)) {
    cur = Array.isArray(cur) ? cur[Number(p)] : isObject(cur) ? cur[p] : undefined;
    if (cur === undefined) throw new StatusError(422, 'Invalid', `json patch ${op} operation does not apply: doc is missing path: /${parts.join('/')}`);
  }
  return { parent: cur, key: parts[parts.length - 1] ?? '' };
}

function arrayIndex(arr: Json[], key: string, adding: boolean, op: string): number {
  if (adding && key === '-') return arr.length;
  if (!/^\d+$/.test(key)) throw new StatusError(422, 'Invalid', `json patch ${op} operation does not apply: invalid index ${JSON.stringify(key)}`);
  const i = Number(key);
  if (i > arr.length || (!adding && i === arr.length)) throw new StatusError(422, 'Invalid', `json patch ${op} operation does not apply: index ${i} out of bounds`);
  return i;
}

function getAt(doc: Json, parts: string[], op: string): Json {
  if (parts.length === 0) return doc;
  const { parent, key } = parentOf(doc, parts, op);
  const v = Array.isArray(parent) ? parent[arrayIndex(parent, key, false, op)] : isObject(parent) ? parent[key] : undefined;
  if (v === undefined) throw new StatusError(422, 'Invalid', `json patch ${op} operation does not apply: doc is missing path: /${parts.join('/')}`);
  return v;
}

function removeAt(doc: Json, parts: string[], op: string): Json {
  const v = getAt(doc, parts, op);
  const { parent, key } = parentOf(doc, parts, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, false, op), 1);
  else if (isObject(parent)) delete parent[key];
  return v;
}

function addAt(doc: Json, parts: string[], value: Json, op: string, replace: boolean): Json {
  if (parts.length === 0) return clone(value);
  const { parent, key } = parentOf(doc, parts, op);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, !replace, op);
    parent.splice(i, replace ? 1 : 0, clone(value));
  } else if (isObject(parent)) {
    if (replace && !(key in parent)) throw new StatusError(422, 'Invalid', `json patch replace operation does not apply: doc is missing key: /${parts.join('/')}`);
    parent[key] = clone(value);
  } else throw new StatusError(422, 'Invalid', `json patch ${op} operation does not apply: doc is missing path: /${parts.join('/')}`);
  return doc;
}

export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw badRequest('json patch: the patch must be a JSON array of operations');
  let doc = clone(target);
  for (const op of ops) {
    if (!isObject(op)) throw badRequest('json patch: an operation must be an object');
    const name = String(op.op);
    const path = pointer(op.path);
    if (name === 'add') doc = addAt(doc, path, op.value, name, false);
    else if (name === 'replace') doc = addAt(doc, path, op.value, name, true);
    else if (name === 'remove') removeAt(doc, path, name);
    else if (name === 'move') doc = addAt(doc, path, removeAt(doc, pointer(op.from), name), name, false);
    else if (name === 'copy') doc = addAt(doc, path, getAt(doc, pointer(op.from), name), name, false);
    else if (name === 'test') {
      if (!deepEqual(getAt(doc, path, name), op.value)) throw new StatusError(422, 'Invalid', `json patch test operation does not apply: testing value ${String(op.path)} failed`);
    } else throw badRequest(`json patch: unsupported operation ${JSON.stringify(name)}`);
  }
  return doc;
}

// ---- strategic merge patch ------------------------------------------------------------------

/** the merge key of each list the API merges by key (patchStrategy "merge") */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  conditions: 'type',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  resourceClaims: 'name',
};
/** lists of scalars the API merges as sets */
const SET_LISTS = new Set(['finalizers']);

function mergeKeyOf(field: string, a: Json[], b: Json[]): string | undefined {
  if (field === 'ports') return [...a, ...b].some((x) => isObject(x) && 'containerPort' in x) ? 'containerPort' : 'port';
  return MERGE_KEYS[field];
}

function strategicList(field: string, target: Json, patch: Json[]): Json[] {
  const base = Array.isArray(target) ? clone(target) : [];
  if (SET_LISTS.has(field)) return [...base, ...patch.filter((x) => !base.some((y) => deepEqual(x, y)))];
  const key = mergeKeyOf(field, base, patch);
  if (!key || patch.some((x) => isObject(x) && x.$patch === 'replace')) return clone(patch.filter((x) => !(isObject(x) && x.$patch === 'replace')));
  for (const item of patch) {
    if (!isObject(item)) throw badRequest(`strategic merge patch: the elements of ${field} must be objects with ${JSON.stringify(key)}`);
    const at = base.findIndex((x) => isObject(x) && x[key] === item[key]);
    if (item.$patch === 'delete') {
      if (at >= 0) base.splice(at, 1);
    } else if (at >= 0) base[at] = strategicPatch(base[at], item, field);
    else base.push(strategicPatch({}, item, field));
  }
  return base;
}

/** strategic merge patch: a merge patch whose keyed lists merge element by element */
export function strategicPatch(target: Json, patch: Json, _field: string): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _drop, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, Json> = isObject(target) ? clone(target) : {};
  const retain = Array.isArray(patch.$retainKeys) ? new Set(patch.$retainKeys.map(String)) : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[f]) && Array.isArray(v)) out[f] = (out[f] as Json[]).filter((x) => !v.some((y) => deepEqual(x, y)));
      continue;
    }
    if (v === null) delete out[k];
    else if (Array.isArray(v)) out[k] = strategicList(k, out[k], v);
    else {
      const merged = strategicPatch(out[k], v, k);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.has(k)) delete out[k];
  return out;
}
