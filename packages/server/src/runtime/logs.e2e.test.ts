import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authService, Client, createLogger, errors, MemoryRegistry, registryHandlers, registryService, RpcServer, Service } from '@micro/sdk';
import { LocalRuntime } from './local.js';
import type { LogLine } from './logs.js';

/*
 * The lines of a real service started by the runtime: the SDK's logger puts service,
 * namespace, instance (the runtime's instance id) and, inside a call, the call's trace id
 * on them, and runtime.Logs finds them by level and trace id.
 */

const silent = createLogger({ level: 'silent' });
const ID = 'svc-account';
const SECRET = 'svc-secret';

/** A plain JavaScript service (nothing to compile): Ping logs inside the call and answers its trace id. */
const main = `import { defineService, endpoint, run, z } from '@micro/sdk';
const def = defineService({ name: 'chatty', version: '1.0.0', endpoints: { Ping: endpoint({ request: z.object({ big: z.boolean().optional() }), response: z.object({ traceId: z.string() }) }) } });
const svc = await run(def, {
  Ping: ({ big }, ctx) => {
    ctx.logger.debug('a detail');
    ctx.logger.warn({ big: big ? 'x'.repeat(100000) : undefined }, 'pinged');
    return { traceId: ctx.traceId };
  },
});
svc.logger.info('ready to be pinged');
`;

describe('logs of a service run by the runtime', () => {
  const root = mkdtempSync(join(tmpdir(), 'micro-logs-e2e-'));
  const registry = new MemoryRegistry();
  const server = new RpcServer({ logger: silent });
  let services: Service[] = [];
  let rt: LocalRuntime;
  let client: Client;

  before(async () => {
    const address = await server.listen('tcp://127.0.0.1:0');
    const options = { server, namespace: 'micro', registry: new MemoryRegistry(), logger: silent };
    services = [
      await new Service(registryService, registryHandlers(registry), options).start(),
      await new Service(
        authService,
        {
          Token: ({ id, secret, namespace }) => {
            if (id !== ID || secret !== SECRET) throw errors.Unauthorized('auth', 'wrong credentials');
            return { token: 'token', expiresAt: Math.floor(Date.now() / 1000) + 3600, account: { id, type: 'service', issuer: namespace ?? 'micro', scopes: [] } };
          },
        },
        options,
      ).start(),
    ];
    const source = join(root, 'src', 'chatty');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'package.json'), JSON.stringify({ name: 'chatty', version: '0.0.1', private: true, type: 'module', main: 'main.js', dependencies: { '@micro/sdk': '0.1.0' } }));
    writeFileSync(join(source, 'main.js'), main);
    rt = new LocalRuntime({ home: join(root, 'home'), serverAddress: address, registry, credentials: async () => ({ id: ID, secret: SECRET }), logger: silent });
    await rt.start();
    // the test runs with MICRO_LOG_LEVEL=silent; the service logs from debug up
    await rt.create({ source, namespace: 'micro', env: { MICRO_LOG_LEVEL: 'debug' } });
    client = new Client({ registry, namespace: 'micro', preferLocal: false, timeout: 10_000 });
  });

  after(async () => {
    await rt?.stop();
    for (const s of services) await s.stop();
    await server.close();
    await registry.close?.();
    rmSync(root, { recursive: true, force: true });
  });

  async function logs(req: Parameters<LocalRuntime['logs']>[0]): Promise<LogLine[]> {
    const out: LogLine[] = [];
    for await (const l of rt.logs(req)) out.push(l);
    return out;
  }

  /** The log file is written asynchronously: wait until `want` lines pass the filter. */
  async function waitFor(req: Parameters<LocalRuntime['logs']>[0], want: number): Promise<LogLine[]> {
    for (let i = 0; ; i++) {
      const lines = await logs(req);
      if (lines.length >= want || i === 100) return lines;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('finds the lines of one call by trace id, each with service, namespace and instance', async () => {
    const { traceId } = (await client.call('chatty', 'Ping', {})) as { traceId: string };
    const { traceId: other } = (await client.call('chatty', 'Ping', {})) as { traceId: string };
    assert.notEqual(traceId, other);
    const [status] = (await rt.read({ name: 'chatty' })).services;
    const instance = status?.instances[0]?.id;
    assert.ok(instance);

    const ofCall = await waitFor({ name: 'chatty', traceId }, 2);
    assert.deepEqual(
      ofCall.map((l) => [l.level, l.traceId, l.instance, JSON.parse(l.line).msg]),
      [
        ['debug', traceId, instance, 'a detail'],
        ['warn', traceId, instance, 'pinged'],
      ],
    );
    for (const l of ofCall) {
      const fields = JSON.parse(l.line) as Record<string, unknown>;
      assert.deepEqual([fields.service, fields.namespace, fields.instance, fields.traceId], ['chatty', 'micro', instance, traceId]);
    }
    // the service's own lines (outside a call) carry the same fields, without a trace
    const ready = (await logs({ name: 'chatty', lines: 1000 })).find((l) => l.line.includes('ready to be pinged'));
    assert.ok(ready, 'the service logged at start');
    assert.deepEqual([ready.level, ready.traceId], ['info', undefined]);
    assert.deepEqual(
      (({ service, namespace, instance: i }) => [service, namespace, i])(JSON.parse(ready.line) as Record<string, unknown>),
      ['chatty', 'micro', instance],
    );

    // at or above warn: the two `pinged` lines (and the SDK's warning that this test's
    // platform has no rules to enforce), not the details nor the info lines
    const warnings = (await waitFor({ name: 'chatty', level: 'warn', lines: 1000 }, 2)).filter((l) => l.stream !== 'runtime');
    for (const l of warnings) assert.ok(l.level === 'warn' || l.level === 'error' || l.level === 'fatal', l.line);
    assert.ok(!warnings.some((l) => l.line.includes('ready to be pinged') || l.line.includes('a detail')));
    assert.deepEqual(
      warnings.filter((l) => l.traceId).map((l) => [l.level, l.traceId]),
      [
        ['warn', traceId],
        ['warn', other],
      ],
    );
  });

  it('cuts a huge line, and still finds its level and trace id', async () => {
    const { traceId } = (await client.call('chatty', 'Ping', { big: true })) as { traceId: string };
    const [line] = (await waitFor({ name: 'chatty', traceId, level: 'warn' }, 1)) as [LogLine];
    assert.ok(line.line.endsWith(' …[truncated]'));
    assert.ok(line.line.length < 17 * 1024);
    assert.deepEqual([line.level, line.traceId], ['warn', traceId]);
    // every service of the namespace: the same line, tagged with its service
    const all = await logs({ traceId, level: 'warn' });
    assert.deepEqual(
      all.map((l) => [l.service, l.traceId]),
      [['chatty', traceId]],
    );
  });
});
