import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { authApi, bearer, Client, createClient, runtime, TokenSource, type RuntimeProgress, type RuntimeService, type TypedClient } from '@micro/sdk';
import type { MicroServer } from '../server.js';

/**
 * The runtime contract suite: one set of behaviours, as the CLI and the dashboard see them
 * (the `runtime` service over RPC, calls through the gateway), that every driver passes.
 * `contract.local.test.ts` runs it against LocalRuntime, `kubernetes/contract.test.ts`
 * against KubernetesRuntime on the fake cluster; each starts a real micro server with its
 * driver.
 */

export interface ContractHarness {
  /** the runtime as the CLI reaches it, as admin of micro */
  rt: TypedClient<typeof runtime>;
  /** POST /v1/<service>/<endpoint> through the gateway, in `namespace` */
  call(namespace: string, service: string, endpoint: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** writes files into the source folder of a service (a folder of the server's machine: admins may run one) and gives its path */
  source(name: string, files: Record<string, string>): string;
  close(): Promise<void>;
}

/** The admin's RPC clients of a started micro server and calls through its gateway. */
export async function serverClients(server: MicroServer): Promise<{ rt: TypedClient<typeof runtime>; admin: Client; token: string; call: ContractHarness['call'] }> {
  const creds = JSON.parse(readFileSync(join(server.paths.home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const rpc = new Client({ address: server.address, namespace: 'micro', preferLocal: false });
  const admin = new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(creds, rpc))], timeout: 120_000 });
  const token = (await createClient(authApi, rpc).Token({ ...creds, namespace: 'micro' })).token;
  const gateway = server.gatewayUrl;
  if (!gateway) throw new Error('the contract suite needs the gateway');
  return {
    rt: createClient(runtime, admin),
    admin,
    token,
    async call(namespace, service, endpoint, body = {}) {
      const res = await fetch(`${gateway}/v1/${service}/${endpoint}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'micro-namespace': namespace },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      return { status: res.status, body: parsed };
    },
  };
}

/** Writes `files` under `dir` and gives `dir`. */
export function writeSource(dir: string, files: Record<string, string>): string {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

/** A plain JavaScript service (no tsc): `Call` answers its version, instance and GREETING, and logs a line. */
export function contractService(name: string, version: string): Record<string, string> {
  return {
    'package.json': JSON.stringify({ name, version: '1.0.0', type: 'module', main: 'main.js', dependencies: { '@micro/sdk': '0.1.0' } }),
    'main.js': `import { defineService, endpoint, run, z } from '@micro/sdk';
const def = defineService({ name: ${JSON.stringify(name)}, version: ${JSON.stringify(version)}, endpoints: { Call: endpoint({ request: z.object({ name: z.string().optional() }), response: z.object({ version: z.string(), instance: z.string(), greeting: z.string() }) }) } });
const svc = await run(def, { Call: ({ name }, ctx) => { ctx.logger.info({ who: name ?? '' }, 'called'); return { version: ${JSON.stringify(version)}, instance: process.env.MICRO_RUNTIME_INSTANCE ?? '', greeting: process.env.GREETING ?? '' }; } });
svc.logger.info('${name} ${version} up');
`,
  };
}

async function progressOf(stream: AsyncIterable<RuntimeProgress>): Promise<{ steps: RuntimeProgress[]; error?: Error & { code?: number } }> {
  const steps: RuntimeProgress[] = [];
  try {
    for await (const p of stream) steps.push(p);
    return { steps };
  } catch (err) {
    return { steps, error: err as Error & { code?: number } };
  }
}

async function rejectsWith(p: Promise<unknown>, code: number, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error & { code?: number }) => {
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** The keys of a service every driver fills in `micro status`. */
const SERVICE_KEYS = ['name', 'namespace', 'version', 'source', 'state', 'instances', 'desiredInstances', 'env', 'createdAt', 'updatedAt', 'build'];

/** Runs the contract against the driver `start` sets up (in a micro server of its own). */
export function runtimeContract(driver: string, start: () => Promise<ContractHarness>): void {
  describe(`the runtime contract: ${driver}`, () => {
    let h: ContractHarness;
    const NS = 'contract';
    let src = '';

    before(async () => {
      h = await start();
      src = h.source('echo', contractService('echo', 'v1'));
    });

    after(async () => {
      await h?.close();
    });

    it('run: progress from fetch to done, the service running with its instances and env', async () => {
      const { steps, error } = await progressOf(h.rt.Create({ source: src, namespace: NS, instances: 2, env: { GREETING: 'hi', API_TOKEN: 's3cr3t', MICRO_LOG_LEVEL: 'info' } }));
      assert.equal(error, undefined, `${error?.message}\n${steps.map((s) => `${s.step}: ${s.message}`).join('\n')}`);
      assert.equal(steps[0]?.step, 'fetch');
      assert.ok(steps.some((s) => s.step === 'start'));
      const done = steps.at(-1);
      assert.equal(done?.step, 'done');
      assert.equal(done?.service?.name, 'echo');
      assert.equal(done?.service?.namespace, NS);
      assert.equal(done?.service?.desiredInstances, 2);
    });

    it('status: the same shape from both drivers, secrets masked', async () => {
      const { services } = await h.rt.Read({ namespace: NS });
      assert.equal(services.length, 1);
      const s = services[0] as RuntimeService;
      for (const k of SERVICE_KEYS) assert.ok(k in s, `status has ${k}`);
      assert.equal(s.state, 'running');
      assert.equal(s.instances.length, 2);
      for (const i of s.instances) {
        assert.equal(i.state, 'running');
        assert.equal(i.restarts, 0);
        assert.equal(typeof i.id, 'string');
      }
      assert.equal(s.version, 'v1');
      assert.equal(s.source, src);
      assert.deepEqual(s.env, { GREETING: 'hi', API_TOKEN: '••••', MICRO_LOG_LEVEL: 'info' });
      assert.ok(s.build?.id);
      assert.ok(!Number.isNaN(Date.parse(s.createdAt)));
      assert.deepEqual((await h.rt.Read({ name: 'echo', namespace: NS })).services.map((x) => x.name), ['echo']);
    });

    it('call: through the gateway, with the env it was run with', async () => {
      const r = await h.call(NS, 'echo', 'Call', { name: 'contract' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual({ ...(r.body as object), instance: '' }, { version: 'v1', instance: '', greeting: 'hi' });
    });

    it('logs: the service\'s lines, with the instance they came from', async () => {
      const { services } = await h.rt.Read({ name: 'echo', namespace: NS });
      const ids = new Set(services[0]?.instances.map((i) => i.id));
      const lines = [];
      for await (const l of h.rt.Logs({ name: 'echo', namespace: NS, lines: 100 })) lines.push(l);
      const up = lines.filter((l) => l.line.includes('echo v1 up'));
      assert.ok(up.length >= 1, lines.map((l) => l.line).join('\n'));
      for (const l of up) {
        assert.ok(ids.has(l.instance), `line of instance ${l.instance}`);
        assert.ok(!Number.isNaN(Date.parse(l.time)));
      }
      assert.ok(lines.some((l) => l.line.includes('"who":"contract"')));
    });

    it('errors: the same codes from both drivers', async () => {
      await rejectsWith(progressOf(h.rt.Create({ source: src, namespace: NS })).then((r) => Promise.reject(r.error ?? new Error('accepted'))), 409, /already running/);
      await rejectsWith(h.rt.Read({ name: 'nothere', namespace: NS }), 404);
      await rejectsWith(h.rt.Delete({ name: 'nothere', namespace: NS }), 404);
      await rejectsWith(progressOf(h.rt.Update({ name: 'nothere', namespace: NS })).then((r) => Promise.reject(r.error ?? new Error('accepted'))), 404);
      for (const instances of [0, 65, 1.5]) {
        await rejectsWith(progressOf(h.rt.Create({ source: src, name: 'other', namespace: NS, instances })).then((r) => Promise.reject(r.error ?? new Error('accepted'))), 400);
      }
      await rejectsWith(progressOf(h.rt.Create({ source: src, name: 'other', namespace: NS, env: { MICRO_SERVER: 'tcp://evil:1' } })).then((r) => Promise.reject(r.error ?? new Error('accepted'))), 400, /MICRO_SERVER/);
      await rejectsWith(progressOf(h.rt.Create({ source: `${src}-missing`, namespace: NS })).then((r) => Promise.reject(r.error ?? new Error('accepted'))), 404, /does not exist/);
      // the failures made nothing
      assert.deepEqual((await h.rt.Read({ namespace: NS })).services.map((s) => s.name), ['echo']);
    });

    it('a service that crashes as it starts: the run fails saying why, status shows it, kill forgets it', async () => {
      const crash = h.source('crasher', { 'package.json': JSON.stringify({ name: 'crasher', type: 'module', main: 'main.js' }), 'main.js': "console.error('boom: no database configured'); process.exit(3);\n" });
      const { steps, error } = await progressOf(h.rt.Create({ source: crash, namespace: NS }));
      assert.ok(error, `the run succeeded: ${steps.map((s) => s.message).join('\n')}`);
      assert.equal(error.code, 400, error.message);
      assert.match(error.message, /crasher crashed at start: exited with code 3/);
      assert.match(error.message, /boom: no database configured/, 'its last output says why');
      const crashed = (await h.rt.Read({ namespace: NS })).services.find((x) => x.name === 'crasher');
      // the local runtime forgets a service that never started; Kubernetes' shows the failure until it is killed or run again
      if (crashed) assert.equal(crashed.state, 'error');
      await h.rt.Delete({ name: 'crasher', namespace: NS });
      await rejectsWith(h.rt.Read({ name: 'crasher', namespace: NS }), 404);
    });

    it('update: the new build answers, instances and env kept', async () => {
      const before = (await h.rt.Read({ name: 'echo', namespace: NS })).services[0];
      h.source('echo', contractService('echo', 'v2'));
      const { steps, error } = await progressOf(h.rt.Update({ name: 'echo', namespace: NS }));
      assert.equal(error, undefined, `${error?.message}\n${steps.map((s) => s.message).join('\n')}`);
      assert.equal(steps.at(-1)?.step, 'done');
      const r = await h.call(NS, 'echo', 'Call');
      assert.equal(r.status, 200);
      assert.equal((r.body as { version: string }).version, 'v2');
      assert.equal((r.body as { greeting: string }).greeting, 'hi');
      const after = (await h.rt.Read({ name: 'echo', namespace: NS })).services[0];
      assert.notEqual(after?.build?.id, before?.build?.id);
      assert.equal(after?.desiredInstances, 2);
      assert.equal(after?.version, 'v2');
    });

    it('kill: gone from status and from the gateway', async () => {
      await h.rt.Delete({ name: 'echo', namespace: NS });
      await rejectsWith(h.rt.Read({ name: 'echo', namespace: NS }), 404);
      assert.deepEqual((await h.rt.Read({ namespace: NS })).services, []);
      const deadline = Date.now() + 10_000;
      let status = 0;
      while (Date.now() < deadline) {
        status = (await h.call(NS, 'echo', 'Call')).status;
        if (status === 404) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 404);
    });
  });
}
