/** Just what the dashboard reads of the JSON Schemas the registry holds for each endpoint. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  description?: string;
  default?: unknown;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
}

export type FieldKind = 'string' | 'number' | 'integer' | 'boolean' | 'enum' | 'json';

export interface Field {
  name: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  options?: string[];
}

/** The top-level fields of an object schema, each with the input that edits it (JSON for anything nested). */
export function fieldsOf(schema: JsonSchema | undefined): Field[] {
  const props = schema?.properties ?? {};
  const required = new Set(schema?.required ?? []);
  return Object.entries(props).map(([name, s]) => {
    const field: Field = { name, kind: kindOf(s), required: required.has(name) };
    if (s.description) field.description = s.description;
    if (field.kind === 'enum') field.options = (s.enum ?? []).map(String);
    return field;
  });
}

function kindOf(s: JsonSchema): FieldKind {
  if (Array.isArray(s.enum) && s.enum.every((v) => typeof v === 'string')) return 'enum';
  const t = Array.isArray(s.type) ? s.type.filter((x) => x !== 'null') : s.type ? [s.type] : [];
  if (t.length === 1 && (t[0] === 'string' || t[0] === 'number' || t[0] === 'integer' || t[0] === 'boolean')) return t[0];
  return 'json';
}

/**
 * The request from the form's values: empty inputs are left out, numbers and JSON parsed.
 * Throws an Error naming the field that is wrong.
 */
export function requestFrom(fields: Field[], values: Record<string, string | boolean>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const v = values[f.name];
    if (f.kind === 'boolean') {
      if (v === true) out[f.name] = true;
      else if (f.required) out[f.name] = false;
      continue;
    }
    if (typeof v !== 'string' || v === '') continue;
    if (f.kind === 'number' || f.kind === 'integer') {
      const n = Number(v);
      if (!Number.isFinite(n) || (f.kind === 'integer' && !Number.isInteger(n))) throw new Error(`${f.name}: expected ${f.kind === 'integer' ? 'an integer' : 'a number'}`);
      out[f.name] = n;
    } else if (f.kind === 'json') {
      try {
        out[f.name] = JSON.parse(v);
      } catch {
        throw new Error(`${f.name}: not valid JSON`);
      }
    } else out[f.name] = v;
  }
  return out;
}
