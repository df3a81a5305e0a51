import { errors, type RuntimeProgress } from '@micro/sdk';

/** The checks and bounds of the runtime contract every driver applies alike. */

const ERROR_ID = 'runtime';
export const MAX_INSTANCES = 64;
const MAX_ENV_KEYS = 256;
const MAX_ENV_BYTES = 256 * 1024;
/** Progress lines of one build step sent to the caller; the rest are in the service's log. */
const MAX_PROGRESS_LINES = 500;
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SECRET_KEY = /secret|password|passwd|token|key|credential/i;
/** Set by the runtime for every service; --env may not override them. */
const RESERVED_ENV = new Set([
  'MICRO_SERVER',
  'MICRO_NAMESPACE',
  'MICRO_HOME',
  'MICRO_REGISTRY',
  'MICRO_AUTH_ID',
  'MICRO_AUTH_SECRET',
  'MICRO_AUTH_TOKEN',
  'MICRO_AUTH_NAMESPACE',
  'MICRO_RUNTIME_INSTANCE',
  'MICRO_SERVICE_NAME',
  'MICRO_PROFILE',
  'MICRO_NATS_URL',
  'MICRO_PREFIX',
  'MICRO_SERVICE_ADDRESS',
]);
/** The runner of the Kubernetes driver reads these (kubernetes/runner.ts); --env may not set them either. */
const RESERVED_PREFIXES = ['MICRO_RUNNER_', 'MICRO_POD_'];

export type Progress = (step: 'fetch' | 'install' | 'build' | 'start', message: string) => void;

/** Progress for the caller, with at most MAX_PROGRESS_LINES tool output lines per step. */
export function limitedProgress(onProgress: (progress: RuntimeProgress) => void): Progress {
  const counts = new Map<string, number>();
  return (step, message) => {
    const n = (counts.get(step) ?? 0) + 1;
    counts.set(step, n);
    if (n <= MAX_PROGRESS_LINES) onProgress({ step, message });
    else if (n === MAX_PROGRESS_LINES + 1) onProgress({ step, message: '… (more output in micro logs)' });
  };
}

export function notFound(namespace: string, name: string) {
  return errors.NotFound(ERROR_ID, `service ${name} is not run by the runtime in namespace ${namespace}`);
}

export function checkNamespace(namespace: string | undefined): string {
  if (namespace === undefined || namespace === '') return 'micro';
  if (!NAMESPACE.test(namespace)) throw errors.BadRequest(ERROR_ID, `namespace "${namespace}" must be letters, digits, ".", "-" or "_" (at most 128)`);
  return namespace;
}

export function checkInstances(instances: number | undefined): number {
  const n = instances ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_INSTANCES) throw errors.BadRequest(ERROR_ID, `instances must be between 1 and ${MAX_INSTANCES}`);
  return n;
}

export function checkEnv(env: Record<string, string>): Record<string, string> {
  const keys = Object.keys(env);
  if (keys.length > MAX_ENV_KEYS) throw errors.BadRequest(ERROR_ID, `env has ${keys.length} variables; at most ${MAX_ENV_KEYS}`);
  let bytes = 0;
  for (const k of keys) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw errors.BadRequest(ERROR_ID, `env: "${k}" is not an environment variable name`);
    if (RESERVED_ENV.has(k) || RESERVED_PREFIXES.some((p) => k.startsWith(p))) throw errors.BadRequest(ERROR_ID, `env: ${k} is set by the runtime and cannot be given`);
    const v = env[k];
    if (typeof v !== 'string' || v.includes('\0')) throw errors.BadRequest(ERROR_ID, `env: ${k} must be a string without NUL characters`);
    bytes += k.length + v.length;
  }
  if (bytes > MAX_ENV_BYTES) throw errors.BadRequest(ERROR_ID, `env is larger than ${MAX_ENV_BYTES / 1024} KiB`);
  return { ...env };
}

/** --env values whose names look secret are shown as •••• (the values stay with the runtime). */
export function maskEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, SECRET_KEY.test(k) ? '••••' : v]));
}

/** Keeps `op` in `operations` until it settles (what stop() awaits). */
export function tracked<T>(operations: Set<Promise<unknown>>, op: Promise<T>): Promise<T> {
  operations.add(op);
  const done = () => operations.delete(op);
  op.then(done, done);
  return op;
}
