// Test harness (Node only, not part of the library): a real `micro server` with its
// gateway on free ports and a temporary MICRO_HOME, plus test services registered in it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, RemoteRegistry, Service, TokenSource, bearer, bidiStream, clientStream, createLogger, defineService, endpoint, errors, platformClient, serverStream, z } from '@micro/sdk';
import { MicroServer } from '@micro/server';

export const silent = createLogger({ level: 'silent' });

export const greeter = defineService({
  name: 'greeter',
  version: '1.0.0',
  description: 'Greets people',
  endpoints: {
    Call: endpoint({
      description: 'Returns a greeting',
      request: z.object({ name: z.string().describe('who to greet'), times: z.number().int().min(1).max(10).optional(), from: z.string().optional() }),
      response: z.object({ message: z.string() }),
      readonly: true,
    }),
    // priced in its definition: /openapi.json shows x-micro-price (this server meters nothing: no platform)
    'Greeter.Hello': endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string() }), price: 100, freeQuota: 1000 }),
    Nested: endpoint({
      description: 'Nested objects, arrays, enums, records and nullables',
      request: z.object({
        user: z.object({ name: z.string(), address: z.object({ city: z.string(), zip: z.string().optional() }) }),
        tags: z.array(z.object({ key: z.string(), value: z.string() })).optional(),
        mode: z.enum(['fast', 'slow']).optional(),
        labels: z.record(z.string(), z.string()).optional(),
        note: z.string().nullable().optional(),
      }),
      response: z.object({ city: z.string(), count: z.number().int(), echo: z.unknown() }),
    }),
    Slow: endpoint({ request: z.object({ ms: z.number().int() }), response: z.object({ ok: z.boolean() }) }),
    Stream: serverStream({ request: z.object({ name: z.string(), count: z.number().int().min(0).max(1000) }), response: z.object({ message: z.string(), index: z.number().int() }), readonly: true }),
    Sum: clientStream({ description: 'Adds numbers up', request: z.object({ x: z.number() }), response: z.object({ sum: z.number(), count: z.number().int() }), price: 0 }),
    Chat: bidiStream({
      description: 'Answers each message in capitals',
      request: z.object({ text: z.string(), fail: z.boolean().optional() }),
      response: z.object({ text: z.string() }),
    }),
  },
});

export interface Harness {
  home: string;
  server: MicroServer;
  /** the gateway's http:// URL */
  url: string;
  /** an access token of the admin of `micro` */
  token: string;
  /** the `text` of the first message of each Chat stream that was cancelled (its ctx.signal fired) */
  cancelled: string[];
  close(): Promise<void>;
}

/** micro server (gateway on a free port) + the greeter service in namespace micro. */
export async function startHarness(): Promise<Harness> {
  const home = mkdtempSync(join(tmpdir(), 'micro-client-'));
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent }).start();
  const services: Service[] = [];
  const cancelled: string[] = [];
  try {
    const url = server.gatewayUrl;
    if (!url) throw new Error('micro server started without its gateway');
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const tokens = new TokenSource({ ...admin, namespace: 'micro' }, new Client({ address: server.address, namespace: 'micro', preferLocal: false }));
    const registry = new RemoteRegistry(platformClient(server.address, [bearer(tokens)]));
    const svc = new Service(
      greeter,
      {
        Call: ({ name, times, from }) => ({ message: `Hello ${name}`.repeat(times ?? 1) + (from ? ` from ${from}` : '') }),
        'Greeter.Hello': ({ name }) => ({ message: `Hi ${name}` }),
        Nested: (req) => ({ city: req.user.address.city, count: req.tags?.length ?? 0, echo: req }),
        Slow: async ({ ms }, ctx) => {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, ms);
            ctx.signal.addEventListener('abort', () => {
              clearTimeout(t);
              resolve();
            });
          });
          return { ok: true };
        },
        async *Stream({ name, count }) {
          for (let index = 0; index < count; index++) yield { message: `Hello ${name}`, index };
        },
        Sum: async (requests) => {
          let sum = 0;
          let count = 0;
          for await (const { x } of requests) {
            sum += x;
            count++;
          }
          return { sum, count };
        },
        async *Chat(requests, ctx) {
          let first: string | undefined;
          ctx.signal.addEventListener('abort', () => cancelled.push(first ?? ''));
          for await (const { text, fail } of requests) {
            first ??= text;
            if (fail) throw errors.BadRequest('greeter', `cannot answer ${JSON.stringify(text)}`);
            yield { text: text.toUpperCase() };
          }
        },
      },
      { registry, address: 'tcp://127.0.0.1:0', namespace: 'micro', logger: silent },
    );
    await svc.start();
    services.push(svc);
    const res = await fetch(`${url}/v1/auth/Token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...admin, namespace: 'micro' }) });
    const token = ((await res.json()) as { token: string }).token;
    return {
      home,
      server,
      url,
      token,
      cancelled,
      close: async () => {
        try {
          for (const s of services) await s.stop();
          await server.stop();
        } finally {
          rmSync(home, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    for (const s of services) await s.stop().catch(() => undefined);
    await server.stop();
    rmSync(home, { recursive: true, force: true });
    throw err;
  }
}
