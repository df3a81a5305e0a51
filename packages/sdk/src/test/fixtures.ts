import { z } from 'zod';
import { bidiStream, clientStream, defineService, endpoint, serverStream } from '../service/definition.js';
import type { Handlers } from '../service/handlers.js';
import * as errors from '../errors/errors.js';
import { MemoryRegistry } from '../registry/memory.js';
import { Service, type ServiceOptions } from '../service/service.js';
import { Client, type ClientOptions } from '../client/client.js';
import { createClient } from '../client/typed.js';
import { createLogger } from '../logger/logger.js';

/** A service with every kind of endpoint, used across the SDK's tests. */
export const echo = defineService({
  name: 'echo',
  version: '1.2.3',
  endpoints: {
    Call: endpoint({
      request: z.object({ name: z.string(), nested: z.object({ count: z.number().int() }).optional() }),
      response: z.object({ message: z.string(), metadata: z.record(z.string(), z.string()).optional() }),
      idempotent: true,
    }),
    Fail: endpoint({ request: z.object({ kind: z.enum(['typed', 'crash', 'conflict']) }), response: z.object({}) }),
    Slow: endpoint({ request: z.object({ ms: z.number() }), response: z.object({ remaining: z.number(), aborted: z.boolean() }) }),
    'Nested.Call': endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string(), traceId: z.string(), remaining: z.number() }) }),
    Big: endpoint({ request: z.object({ size: z.number() }), response: z.object({ data: z.string() }) }),
    Count: serverStream({ request: z.object({ to: z.number().int().min(0) }), response: z.object({ n: z.number() }) }),
    Sum: clientStream({ request: z.object({ n: z.number() }), response: z.object({ sum: z.number(), count: z.number() }) }),
    Chat: bidiStream({ request: z.object({ text: z.string() }), response: z.object({ echo: z.string() }) }),
  },
});

export const silent = createLogger({ level: 'silent' });

/** Counters the handlers update, for tests that check what ran on the server. */
export interface Probe {
  produced: number;
  streamClosed: number;
  lastTrace?: string;
  aborted: number;
}

export function echoHandlers(probe: Probe = { produced: 0, streamClosed: 0, aborted: 0 }, callNested?: () => Client): Handlers<typeof echo> {
  return {
    Call: ({ name }, ctx) => ({ message: `Hello ${name}`, metadata: { ...ctx.metadata } }),
    Fail: ({ kind }) => {
      if (kind === 'typed') throw errors.NotFound('echo', 'no such thing');
      if (kind === 'conflict') throw errors.Conflict('echo', 'already there');
      throw new Error('secret database password in a stack trace');
    },
    Slow: async ({ ms }, ctx) => {
      const remaining = ctx.remaining();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        ctx.signal.addEventListener('abort', () => {
          probe.aborted++;
          clearTimeout(t);
          resolve();
        });
      });
      return { remaining, aborted: ctx.signal.aborted };
    },
    'Nested.Call': async ({ name }, ctx) => {
      probe.lastTrace = ctx.traceId;
      if (callNested) {
        const inner = createClient(echo, callNested());
        const res = await inner.Slow({ ms: 0 }, { parent: ctx });
        return { message: `nested ${name}`, traceId: ctx.traceId, remaining: res.remaining };
      }
      return { message: `nested ${name}`, traceId: ctx.traceId, remaining: ctx.remaining() };
    },
    Big: ({ size }) => ({ data: 'x'.repeat(size) }),
    async *Count({ to }, ctx) {
      try {
        for (let n = 1; n <= to; n++) {
          if (ctx.signal.aborted) return;
          probe.produced++;
          yield { n };
          // let the event loop breathe so cancellation can arrive
          if (n % 16 === 0) await new Promise((r) => setImmediate(r));
        }
      } finally {
        probe.streamClosed++;
      }
    },
    Sum: async (requests) => {
      let sum = 0;
      let count = 0;
      for await (const { n } of requests) {
        sum += n;
        count++;
      }
      return { sum, count };
    },
    async *Chat(requests) {
      for await (const { text } of requests) yield { echo: text.toUpperCase() };
    },
  };
}

export interface Harness {
  registry: MemoryRegistry;
  service: Service<typeof echo>;
  client: Client;
  typed: ReturnType<typeof createClient<typeof echo>>;
  probe: Probe;
  close(): Promise<void>;
}

let nsCounter = 0;

/**
 * Starts echo with its own registry and namespace. `remote` makes the client call over
 * the network (a client that does not prefer local instances), else calls are in-process.
 */
export async function startEcho(
  opts: { remote?: boolean; address?: string | false; service?: ServiceOptions; client?: ClientOptions } = {},
): Promise<Harness> {
  const registry = new MemoryRegistry();
  const namespace = `test${process.pid}x${nsCounter++}`;
  const probe: Probe = { produced: 0, streamClosed: 0, aborted: 0 };
  const makeClient = (): Client => new Client({ registry, namespace, preferLocal: !opts.remote, ...opts.client });
  const service = new Service(echo, echoHandlers(probe, makeClient), {
    registry,
    namespace,
    logger: silent,
    address: opts.address ?? (opts.remote ? 'tcp://127.0.0.1:0' : false),
    drainTimeout: 2_000,
    ...opts.service,
  });
  await service.start();
  const client = makeClient();
  return {
    registry,
    service,
    client,
    typed: createClient(echo, client),
    probe,
    async close() {
      await service.stop();
      await registry.close?.();
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
