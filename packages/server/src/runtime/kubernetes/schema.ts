import { createRequire } from 'node:module';

/**
 * Kubernetes objects checked against the API's own schemas (the OpenAPI document of the
 * Kubernetes release that `kubernetes-models` was generated from), as an API server
 * checks them before it stores one: every object the runtime creates, every manifest of
 * `deploy/`, and what the test API server accepts go through `validateObject`.
 *
 * Only the types and values are checked: like the schemas themselves, an unknown field
 * passes (the API server would drop it silently, so the tests of each object also read
 * back the fields that matter).
 */

const require = createRequire(import.meta.url);

/** `apps/v1`, `v1`, `networking.k8s.io/v1` — never a path of anything else */
const API_VERSION = /^(?:[a-z0-9]+(?:\.[a-z0-9-]+)*\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

const modules = new Map<string, Record<string, ModelClass> | null>();

function modelsOf(apiVersion: string): Record<string, ModelClass> | null {
  let m = modules.get(apiVersion);
  if (m !== undefined) return m;
  try {
    m = require(`kubernetes-models/${apiVersion}`) as Record<string, ModelClass>;
  } catch {
    m = null;
  }
  modules.set(apiVersion, m);
  return m;
}

export class SchemaError extends Error {
  constructor(
    message: string,
    /** each violation as `path: what is wrong` */
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'SchemaError';
  }
}

/** Whether the schemas know `apiVersion` / `kind` (a CustomResource, say, is not known). */
export function knownKind(apiVersion: string, kind: string): boolean {
  return API_VERSION.test(apiVersion) && /^[A-Z][A-Za-z0-9]*$/.test(kind) && typeof modelsOf(apiVersion)?.[kind] === 'function';
}

/** Throws a `SchemaError` naming the object and each violation when `obj` is not a valid object of its kind. */
export function validateObject(obj: unknown): void {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new SchemaError('a Kubernetes object must be a JSON object', ['(root): not an object']);
  const { apiVersion, kind, metadata } = obj as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  const name = `${String(kind)} ${typeof metadata?.namespace === 'string' ? `${metadata.namespace}/` : ''}${String(metadata?.name)}`;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new SchemaError(`${name}: apiVersion and kind are required`, ['apiVersion, kind: missing']);
  if (!knownKind(apiVersion, kind)) throw new SchemaError(`${name}: ${apiVersion} ${kind} is not a kind of the Kubernetes API`, [`apiVersion/kind: unknown ${apiVersion} ${kind}`]);
  if (typeof metadata?.name !== 'string' && !(metadata && 'generateName' in metadata)) throw new SchemaError(`${name}: metadata.name is required`, ['metadata.name: missing']);
  const Model = modelsOf(apiVersion)?.[kind] as ModelClass;
  try {
    new Model(obj).validate();
  } catch (err) {
    const errors = (err as { errors?: { instancePath?: string; message?: string }[] }).errors;
    const problems = errors?.map((e) => `${e.instancePath?.replace(/^\//, '').replace(/\//g, '.') || '(root)'}: ${e.message ?? 'invalid'}`) ?? [String(err)];
    throw new SchemaError(`${name} is not valid: ${problems.join('; ')}`, problems);
  }
}
