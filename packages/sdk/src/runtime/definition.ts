import { z } from 'zod';
import { defineService, endpoint, serverStream } from '../service/definition.js';
import { LOG_LEVELS, TRACE_ID } from '../logger/fields.js';

/**
 * The contract of the runtime, the core service of `micro server` that builds and runs
 * services from source (`micro run`, `status`, `logs`, `update`, `kill`). The CLI and
 * the dashboard call it; the server implements it with a driver (local processes, later
 * Kubernetes).
 */

const NAME = z.string().min(1).max(128).regex(/^[a-z][a-z0-9]*([._-][a-z0-9]+)*$/, 'lower-case letters, digits, ".", "-" or "_", starting with a letter');
const ENV_KEY = z.string().min(1).max(256).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');

/** `lost`: published by a node whose lease has ended (nats profile): nothing of it is known to run. */
export const RuntimeState = z.enum(['pending', 'building', 'starting', 'running', 'stopped', 'error', 'crashed', 'lost']);
export type RuntimeState = z.infer<typeof RuntimeState>;

export const RuntimeInstance = z.object({
  id: z.string(),
  pid: z.number().int().optional(),
  state: RuntimeState,
  startedAt: z.string().optional().describe('ISO time the current process started'),
  restarts: z.number().int(),
  lastError: z.string().optional().describe('why it last stopped, with the tail of its stderr'),
});
export type RuntimeInstance = z.infer<typeof RuntimeInstance>;

export const RuntimeService = z.object({
  name: NAME,
  namespace: z.string(),
  version: z.string().describe('the version the service registers, or the source ref'),
  source: z.string().describe('what the service is built from: a path, a git URL with @ref, or upload:<blob key>'),
  state: RuntimeState,
  instances: z.array(RuntimeInstance),
  desiredInstances: z.number().int(),
  env: z.record(z.string(), z.string()).describe('environment given with --env; secret values are masked'),
  createdAt: z.string(),
  updatedAt: z.string(),
  app: z.object({ port: z.number().int() }).optional().describe('set for a plain HTTP app: the port it listens on'),
  node: z.string().optional().describe('the server node that runs it (nats profile: every node shows the services of all)'),
  nodeSeenAt: z.string().optional().describe("ISO time of that node's last report, for services of other nodes"),
  build: z
    .object({
      id: z.string(),
      commit: z.string().optional(),
      builtAt: z.string().optional(),
      error: z.string().optional().describe("the build's output when it failed"),
    })
    .optional(),
});
export type RuntimeService = z.infer<typeof RuntimeService>;

/**
 * A plain HTTP app (any Node web server that listens on $PORT) rather than a micro service:
 * the runtime starts its entry through the app bridge (app-bridge.ts), which gives it PORT,
 * waits until it answers HTTP there, and then registers it as the service's node with
 * `protocol: http` metadata and an address the gateway's app proxy forwards to.
 */
export const RuntimeApp = z.object({
  port: z.number().int().min(1).max(65535).describe('the port the app listens on inside its sandbox ($PORT)'),
});
export type RuntimeApp = z.infer<typeof RuntimeApp>;

/** The registry metadata that marks a node as an app's HTTP address (set by the app bridge only). */
export const APP_PROTOCOL_KEY = 'protocol';
export const APP_PROTOCOL = 'http';

/**
 * Create and Update stream their progress (fetching, installing, building, starting)
 * so that `micro run` can show it, and end with the service as it then is.
 */
export const RuntimeProgress = z.object({
  step: z.enum(['fetch', 'install', 'build', 'start', 'done']),
  message: z.string(),
  service: RuntimeService.optional().describe('with the last (done) message'),
});
export type RuntimeProgress = z.infer<typeof RuntimeProgress>;

export const runtime = defineService({
  name: 'runtime',
  version: '1.0.0',
  description: 'Builds and runs services from source',
  endpoints: {
    Create: serverStream({
      description: 'Builds a service from source and starts it (micro run), streaming progress',
      request: z.object({
        source: z
          .string()
          .min(1)
          .max(4096)
          .describe(
            'upload:<key> of a gzipped tar the caller put in its blob store under runtime/uploads/<hex id>/<folder>.tar.gz; an https:// or ssh:// git URL (or git@host:path) with optional @branch, @tag or @commit; admins of micro only: a folder of the server (absolute path), file:// URL, local repository, http:// or git:// URL',
          ),
        name: NAME.optional().describe('defaults to the name in package.json or the folder name'),
        namespace: z.string().max(255).optional(),
        env: z.record(ENV_KEY, z.string().max(64 * 1024)).optional(),
        instances: z.number().int().min(1).max(64).optional(),
        app: RuntimeApp.optional().describe('run it as a plain HTTP app rather than a micro service (see RuntimeApp)'),
        asTenant: z.boolean().optional().describe("fetch the source under the rules for the namespace's own sources (a stranger's) even when an admin of micro calls on its behalf"),
      }),
      response: RuntimeProgress,
    }),
    Read: endpoint({
      description: 'Lists services run by the runtime (micro status)',
      request: z.object({ name: NAME.optional(), namespace: z.string().max(255).optional() }),
      response: z.object({ services: z.array(RuntimeService) }),
      idempotent: true,
      readonly: true,
    }),
    Update: serverStream({
      description: 'Rebuilds a service from its source and replaces its instances one by one (micro update), streaming progress',
      request: z.object({
        name: NAME,
        namespace: z.string().max(255).optional(),
        source: z.string().min(1).max(4096).optional().describe("a new source (as Create's) that replaces the service's; without it, the same source again"),
        env: z.record(ENV_KEY, z.string().max(64 * 1024)).optional().describe("a new environment (as Create's) for the new instances; without it, the same"),
        asTenant: z.boolean().optional().describe("as Create's"),
      }),
      response: RuntimeProgress,
    }),
    Delete: endpoint({
      description: 'Stops a service and forgets it (micro kill)',
      request: z.object({ name: NAME, namespace: z.string().max(255).optional() }),
      response: z.object({}),
    }),
    Logs: serverStream({
      description: 'Log lines of a service (or of every service of the namespace without a name), oldest first; with follow, new lines as they come (micro logs)',
      request: z.object({
        name: NAME.optional().describe('the service; without it, every service of the namespace'),
        namespace: z.string().max(255).optional(),
        lines: z.number().int().min(0).max(100_000).optional().describe('how many of the last lines (default 100)'),
        since: z.string().max(64).optional().describe('only lines at or after this ISO time, or this long ago (30s, 10m, 2h, 1d)'),
        follow: z.boolean().optional(),
        level: z.enum(LOG_LEVELS).optional().describe('only lines at or above this level (lines that are not JSON: stderr counts as error, runtime notes as warn, stdout as info)'),
        traceId: z.string().regex(TRACE_ID, '32 lower-case hex digits').optional().describe('only lines logged within this trace'),
      }),
      response: z.object({
        time: z.string(),
        instance: z.string(),
        stream: z.enum(['stdout', 'stderr', 'runtime']),
        line: z.string(),
        service: z.string().optional().describe('the service the line is of'),
        level: z.enum(LOG_LEVELS).optional().describe('the level of a JSON log line'),
        traceId: z.string().optional().describe('the trace of a line logged within a call'),
      }),
      readonly: true,
    }),
  },
});
