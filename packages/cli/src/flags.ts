import { UsageError, parseOutputFormat, type OutputFormat } from './output.js';

/**
 * Requests from command-line flags, typed by the endpoint's request JSON Schema as the
 * registry publishes it (what zod's toJSONSchema makes):
 *
 *   micro helloworld call --name=Alice               {"name": "Alice"}
 *   micro users create --age 42 --admin              numbers and booleans by schema
 *   micro users tag --tags=a --tags=b                arrays: repeat the flag …
 *   micro users tag --tags='["a","b"]'               … or give a JSON array
 *   micro users update --profile_address_city=Paris  nesting with "_"
 *   micro users update --meta='{"k":"v"}'            objects as JSON
 *   micro users update '{"id":"1"}' --name=x         a JSON body, flags on top of it
 *
 * A property whose name itself holds "_" wins over nesting. Flags the schema does not
 * know are refused (a typo should not silently send an empty request), and so is every
 * value of the wrong type, naming the flag: the request is checked before it is sent.
 * Keys are only ever looked up as own properties and `__proto__` is refused, so no flag
 * can reach Object.prototype.
 */

export type JSONSchema = Record<string, unknown>;

/** A schema with $ref, anyOf/oneOf/allOf and type arrays folded into one view. */
export interface SchemaView {
  /** JSON Schema type names; empty = anything */
  types: Set<string>;
  properties: Record<string, JSONSchema> | undefined;
  /** a schema for the values of other keys (records), true = anything, false/undefined = none */
  additional: JSONSchema | boolean | undefined;
  items: JSONSchema | undefined;
  enum: unknown[] | undefined;
  required: string[];
  description: string | undefined;
}

const MAX_REF_DEPTH = 32;

/** Folds a schema (resolving refs against `root`) into what flag parsing needs. */
export function viewOf(schema: unknown, root: JSONSchema = asSchema(schema), depth = 0): SchemaView {
  const v: SchemaView = { types: new Set(), properties: undefined, additional: undefined, items: undefined, enum: undefined, required: [], description: undefined };
  mergeInto(v, asSchema(schema), root, depth);
  return v;
}

function mergeInto(v: SchemaView, s: JSONSchema, root: JSONSchema, depth: number): void {
  if (depth > MAX_REF_DEPTH) return;
  if (typeof s.description === 'string' && !v.description) v.description = s.description;
  if (typeof s.$ref === 'string') {
    const target = resolveRef(s.$ref, root);
    if (target) mergeInto(v, target, root, depth + 1);
  }
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const list = s[key];
    if (Array.isArray(list)) for (const sub of list) mergeInto(v, asSchema(sub), root, depth + 1);
  }
  const type = s.type;
  if (typeof type === 'string') v.types.add(type);
  else if (Array.isArray(type)) for (const t of type) if (typeof t === 'string') v.types.add(t);
  if (Object.hasOwn(s, 'const')) {
    v.enum = [...(v.enum ?? []), s.const];
    v.types.add(jsonType(s.const));
  }
  if (Array.isArray(s.enum)) {
    v.enum = [...(v.enum ?? []), ...(s.enum as unknown[])];
    for (const e of s.enum as unknown[]) v.types.add(jsonType(e));
  }
  if (isPlainObject(s.properties)) {
    v.properties = Object.assign(Object.create(null) as Record<string, JSONSchema>, v.properties, s.properties);
    v.types.add('object');
  }
  if (s.additionalProperties !== undefined && (typeof s.additionalProperties === 'boolean' || isPlainObject(s.additionalProperties))) {
    // a schema for extra keys (a record) is the most permissive answer of the variants
    if (v.additional === undefined || v.additional === false || isPlainObject(s.additionalProperties)) v.additional = s.additionalProperties as JSONSchema | boolean;
  }
  if (isPlainObject(s.items) && !v.items) v.items = s.items as JSONSchema;
  if (Array.isArray(s.required)) v.required.push(...(s.required as unknown[]).filter((r): r is string => typeof r === 'string'));
  // "integer" is a "number" too, but not the other way round
  if (v.types.has('integer') && v.types.has('number')) v.types.delete('integer');
}

function resolveRef(ref: string, root: JSONSchema): JSONSchema | undefined {
  if (ref === '#') return root;
  const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref);
  if (!m) return undefined;
  const defs = root[m[1] as string];
  const name = decodeURIComponent((m[2] as string).replace(/~1/g, '/').replace(/~0/g, '~'));
  return isPlainObject(defs) && Object.hasOwn(defs, name) ? asSchema((defs as Record<string, unknown>)[name]) : undefined;
}

function asSchema(value: unknown): JSONSchema {
  return isPlainObject(value) ? (value as JSONSchema) : {};
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

const isObjectLike = (v: SchemaView) => v.types.has('object') || v.properties !== undefined || isPlainObject(v.additional);
const isArray = (v: SchemaView) => v.types.has('array');
const isAny = (v: SchemaView) => v.types.size === 0;

/** Where a flag goes in the request: the keys from the top, and the schema of the value. */
export interface FlagTarget {
  path: string[];
  schema: SchemaView;
}

/**
 * Maps a flag name to its place in the request. Exact property names first; else the
 * name is split at an "_" into a property and the rest, longest property first, so a
 * property literally named `first_name` beats nesting into `first`.
 */
export function resolveFlag(name: string, root: JSONSchema, view: SchemaView = viewOf(root, root), depth = 0): FlagTarget | undefined {
  if (depth > 16 || name === '' || name === '__proto__') return undefined;
  const props = view.properties;
  if (props && Object.hasOwn(props, name)) return { path: [name], schema: viewOf(props[name], root) };
  if (props) {
    for (let i = name.lastIndexOf('_'); i > 0; i = name.lastIndexOf('_', i - 1)) {
      const head = name.slice(0, i);
      const rest = name.slice(i + 1);
      if (!rest || !Object.hasOwn(props, head)) continue;
      const child = viewOf(props[head], root);
      if (!isObjectLike(child)) continue;
      const inner = resolveFlag(rest, root, child, depth + 1);
      if (inner) return { path: [head, ...inner.path], schema: inner.schema };
    }
  }
  // records take any key (as is: their keys are data, not nesting)
  if (isPlainObject(view.additional)) return { path: [name], schema: viewOf(view.additional, root) };
  if (view.additional === true || (isAny(view) && !props)) return { path: [name], schema: viewOf({}, root) };
  return undefined;
}

export interface ParsedFlags {
  request: Record<string, unknown>;
  help: boolean;
  output: OutputFormat | undefined;
}

export interface ParseOptions {
  /** how to get help, for error messages, e.g. "micro helloworld call --help" */
  helpCommand?: string;
}

/**
 * Parses the arguments after `micro <service> <endpoint>` into a request. `--help`/`-h`
 * ask for help, `--output`/`-o` choose the output (unless the request has a field of
 * that name); one positional JSON object is the base the flags are set on.
 */
export function parseFlags(args: readonly string[], schema: JSONSchema, options: ParseOptions = {}): ParsedFlags {
  const root = asSchema(schema);
  const top = viewOf(root, root);
  const seeHelp = options.helpCommand ? ` — see \`${options.helpCommand}\`` : '';
  let request: Record<string, unknown> = {};
  let help = false;
  let output: OutputFormat | undefined;
  let base = false;
  const given = new Set<string>();
  const fieldNamed = (n: string) => top.properties !== undefined && Object.hasOwn(top.properties, n);

  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      if ((arg === '-o' || arg.startsWith('-o=')) && !fieldNamed('o')) {
        output = parseOutputFormat(arg === '-o' ? args[++i] : arg.slice(3));
        continue;
      }
      if (arg.startsWith('-') && arg.length > 1 && !/^-\d/.test(arg)) throw new UsageError(`unknown option ${arg}: fields are given as --field=value${seeHelp}`);
      if (!base && arg.trimStart().startsWith('{')) {
        request = parseJsonObject(arg, 'the request body');
        base = true;
        continue;
      }
      throw new UsageError(`unexpected argument "${arg}": fields are given as --field=value, or the whole request as one JSON object${seeHelp}`);
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (name === 'output' && !fieldNamed('output')) {
      output = parseOutputFormat(value ?? args[++i]);
      continue;
    }
    const target = resolveFlag(name, root, top);
    if (!target) throw unknownFlag(name, root, seeHelp);
    if (value === undefined) {
      // `--flag value`, except after a boolean that is followed by something else
      const next = args[i + 1];
      const takesBare = target.schema.types.has('boolean') || (isArray(target.schema) && viewOf(target.schema.items, root).types.has('boolean'));
      if (next !== undefined && !next.startsWith('--') && (!takesBare || /^(true|false)$/i.test(next))) {
        value = next;
        i++;
      }
    }
    const key = target.path.join('\u0000');
    const repeated = given.has(key);
    given.add(key);
    if (isArray(target.schema)) {
      const existing = getPath(request, target.path);
      const list = repeated && Array.isArray(existing) ? existing : [];
      list.push(...coerceArrayValue(name, value, target.schema, root));
      setPath(request, target.path, list, name);
    } else {
      if (repeated) throw new UsageError(`--${name} is given more than once; it takes one value${seeHelp}`);
      setPath(request, target.path, coerce(name, value, target.schema, root), name);
    }
  }
  return { request, help, output };
}

function unknownFlag(name: string, root: JSONSchema, seeHelp: string): UsageError {
  if (name === '') return new UsageError(`"--" with no name is not a flag${seeHelp}`);
  const known = describeFields(root).map((f) => f.flag);
  const close = suggest(name, known.map((f) => f.slice(2)));
  const hint = close ? ` (did you mean --${close}?)` : known.length ? ` (fields: ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', …' : ''})` : ' (this endpoint takes no fields)';
  return new UsageError(`unknown flag --${name}${hint}${seeHelp}`);
}

/** The value of one flag, typed by its schema. */
export function coerce(flag: string, raw: string | undefined, view: SchemaView, root: JSONSchema = {}): unknown {
  const t = view.types;
  if (raw === undefined) {
    if (t.has('boolean') || isAny(view)) return true;
    throw new UsageError(`--${flag} needs a value (${typeName(view, root)}), e.g. --${flag}=${example(view)}`);
  }
  let value: unknown;
  if (isAny(view)) value = parseLoose(raw);
  else value = coerceTyped(flag, raw, view, root);
  if (view.enum && !view.enum.some((e) => e === value)) {
    throw new UsageError(`--${flag} must be one of ${view.enum.map((e) => JSON.stringify(e)).join(', ')}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

function coerceTyped(flag: string, raw: string, view: SchemaView, root: JSONSchema): unknown {
  const t = view.types;
  const trimmed = raw.trim();
  if (t.has('null') && trimmed === 'null') return null;
  if (t.has('boolean') && /^(true|false)$/i.test(trimmed)) return trimmed.toLowerCase() === 'true';
  if ((t.has('number') || t.has('integer')) && trimmed !== '' && /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(trimmed)) {
    const n = Number(trimmed);
    if (Number.isFinite(n) && (t.has('number') || Number.isInteger(n))) return n;
  }
  if ((t.has('object') || t.has('array')) && /^[[{]/.test(trimmed)) {
    const parsed = parseJson(raw);
    if (parsed.ok && ((t.has('object') && isPlainObject(parsed.value)) || (t.has('array') && Array.isArray(parsed.value)))) return guardJson(parsed.value);
  }
  if (t.has('string')) return raw;
  throw new UsageError(`--${flag} must be ${article(typeName(view, root))}, not ${JSON.stringify(raw)}${hintFor(flag, view)}`);
}

function coerceArrayValue(flag: string, raw: string | undefined, view: SchemaView, root: JSONSchema): unknown[] {
  const items = viewOf(view.items ?? {}, root);
  if (raw !== undefined && raw.trim().startsWith('[')) {
    const parsed = parseJson(raw);
    if (!parsed.ok || !Array.isArray(parsed.value)) throw new UsageError(`--${flag} must be a JSON array or one item per flag, not ${JSON.stringify(raw)}`);
    return (guardJson(parsed.value) as unknown[]).map((item) => checkItem(flag, item, items, root));
  }
  return [coerce(flag, raw, items, root)];
}

/** An item given inside a JSON array: checked for its basic type only, the server checks the rest. */
function checkItem(flag: string, item: unknown, items: SchemaView, root: JSONSchema): unknown {
  if (isAny(items)) return item;
  const type = jsonType(item);
  const ok = items.types.has(type) || (type === 'integer' && items.types.has('number'));
  if (!ok) throw new UsageError(`--${flag} takes items of type ${typeName(items, root)}, not ${JSON.stringify(item)}`);
  return item;
}

function parseJson(raw: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

function parseJsonObject(raw: string, what: string): Record<string, unknown> {
  const parsed = parseJson(raw);
  if (!parsed.ok) throw new UsageError(`${what} is not valid JSON: ${parsed.error}`);
  if (!isPlainObject(parsed.value)) throw new UsageError(`${what} must be a JSON object, e.g. '{"name":"Alice"}'`);
  return guardJson(parsed.value) as Record<string, unknown>;
}

/**
 * JSON.parse makes `__proto__` an own key, harmless in the parsed value but a trap for
 * any code that later copies it with assignment; requests have no use for it.
 */
function guardJson(value: unknown): unknown {
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (v && typeof v === 'object') {
      if (Object.hasOwn(v, '__proto__')) throw new UsageError('"__proto__" is not allowed as a key');
      stack.push(...Object.values(v));
    }
  }
  return value;
}

/** For fields of no declared type: JSON when it is JSON, else the text. */
function parseLoose(raw: string): unknown {
  const parsed = parseJson(raw);
  return parsed.ok ? guardJson(parsed.value) : raw;
}

function getPath(obj: Record<string, unknown>, path: readonly string[]): unknown {
  let cur: unknown = obj;
  for (const key of path) {
    if (!isPlainObject(cur) || !Object.hasOwn(cur, key)) return undefined;
    cur = cur[key];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown, flag: string): void {
  let cur = obj;
  for (let i = 0; i < path.length; i++) {
    const key = path[i] as string;
    if (key === '__proto__') throw new UsageError(`--${flag}: "__proto__" is not a field`);
    if (i === path.length - 1) {
      cur[key] = value;
      return;
    }
    let next = Object.hasOwn(cur, key) ? cur[key] : undefined;
    if (!isPlainObject(next)) {
      next = {};
      cur[key] = next;
    }
    cur = next as Record<string, unknown>;
  }
}

// ---- describing fields (help and error messages) ----------------------------------------

export interface FieldInfo {
  /** e.g. `--outer_inner` */
  flag: string;
  /** e.g. `string`, `integer`, `string[]`, `json`, `"a"|"b"` */
  type: string;
  required: boolean;
  description: string | undefined;
}

/** The flags an endpoint takes, nested objects flattened to `--outer_inner` (3 levels). */
export function describeFields(schema: JSONSchema): FieldInfo[] {
  const root = asSchema(schema);
  const out: FieldInfo[] = [];
  const walk = (view: SchemaView, prefix: string, parentRequired: boolean, depth: number) => {
    const props = view.properties;
    if (!props) return;
    for (const name of Object.keys(props)) {
      const child = viewOf(props[name], root);
      const flag = prefix ? `${prefix}_${name}` : name;
      const required = parentRequired && view.required.includes(name);
      if (child.properties && Object.keys(child.properties).length > 0 && depth < 3 && !isArray(child)) {
        walk(child, flag, required, depth + 1);
        continue;
      }
      out.push({ flag: `--${flag}`, type: typeName(child, root), required, description: child.description });
    }
  };
  walk(viewOf(root, root), '', true, 0);
  return out;
}

/** A short type name for help and errors. */
export function typeName(view: SchemaView, root: JSONSchema = {}): string {
  if (view.enum && view.enum.length > 0 && view.enum.length <= 8) return view.enum.map((e) => JSON.stringify(e)).join('|');
  if (isAny(view)) return 'json';
  const names: string[] = [];
  for (const t of view.types) {
    if (t === 'array') names.push(`${typeName(viewOf(view.items ?? {}, root), root)}[]`);
    else if (t === 'object') names.push(view.properties && Object.keys(view.properties).length > 0 ? 'object' : 'json');
    else if (t === 'boolean') names.push('bool');
    else names.push(t);
  }
  return names.join('|');
}

function example(view: SchemaView): string {
  const t = view.types;
  if (view.enum?.length) return String(view.enum[0]);
  if (t.has('integer') || t.has('number')) return '42';
  if (t.has('array')) return '\'["a","b"]\'';
  if (t.has('object')) return '\'{"key":"value"}\'';
  return 'value';
}

function hintFor(flag: string, view: SchemaView): string {
  if (view.types.has('object')) return ` (give JSON, e.g. --${flag}='{"key":"value"}', or set one field with --${flag}_<field>=…)`;
  if (view.types.has('boolean')) return ` (use --${flag}, --${flag}=true or --${flag}=false)`;
  return '';
}

function article(type: string): string {
  if (type.includes('|') || type.endsWith('[]')) return `of type ${type}`;
  if (type === 'json') return 'JSON';
  if (type === 'bool') return 'true or false';
  return `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}

/** The closest of `candidates` to `word`, if close enough to be a likely typo. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  // as commander does: at most a third of the word may differ
  return best !== undefined && bestDistance > 0 && bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** Optimal-string-alignment distance: insertions, deletions, substitutions, swaps. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8) return Infinity;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}
