import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { createLogger, isMicroError, MemoryRegistry } from '@micro/sdk';
import { Sealer } from '../auth/crypto.js';
import { migrate } from '../postgres/index.js';
import { testPostgres } from '../postgres/testing.js';
import { BUILT_IN_DEFAULTS, resolveLimits, type LimitSettings } from '../quota/limits.js';
import { RUNTIME_MIGRATIONS } from './directory.js';
import { NodeLease } from './lease.js';
import { LocalRuntime } from './local.js';
import { PostgresPlacement, type ServiceSpec } from './placement.js';
import { capLimits, instanceCap } from './quota.js';
import { PLACEMENT_SPEC } from './testing.js';

/*
 * The runtime's quotas: services counted exactly at the boundary (one node: the runtime's
 * own services; several: runtime_desired in PostgreSQL), instancesPerService at Create,
 * and memory/CPU per instance capping the sandbox limits.
 */

const silent = createLogger({ level: 'silent' });
const refusal = (limit: string, used: number, max: number, remedy: string) => (err: unknown) =>
  isMicroError(err) && err.code === 403 && err.id === 'quota' && err.detail === `quota exceeded: ${limit} ${used} of ${max} used in namespace acme; ${remedy} or ask for a larger quota (micro quota)`;

const quotasOf = (settings: Record<string, LimitSettings>) => ({ limits: async (ns: string) => resolveLimits(ns, settings[ns] ?? {}, BUILT_IN_DEFAULTS) });

function runtimeFor(t: test.TestContext, settings: Record<string, LimitSettings>): { rt: LocalRuntime; source: string } {
  const root = mkdtempSync(join(tmpdir(), 'micro-runtime-quota-'));
  // a source whose build fails at once (no package.json, no entry): a failed service stays, and counts, until killed
  const source = join(root, 'broken');
  mkdirSync(source);
  writeFileSync(join(source, 'notes.txt'), 'not a service');
  const rt = new LocalRuntime({
    home: join(root, 'home'),
    serverAddress: 'tcp://127.0.0.1:1',
    registry: new MemoryRegistry(),
    credentials: async () => ({ id: 'x', secret: 'y' }),
    logger: silent,
    quotas: quotasOf(settings),
  });
  t.after(async () => {
    await rt.stop();
    rmSync(root, { recursive: true, force: true });
  });
  return { rt, source };
}

test('one node: N parallel creates with room for k services: exactly k are added, the rest are 403; kill gives a service back', async (t) => {
  const { rt, source } = runtimeFor(t, { acme: { services: 3 } });
  await rt.start();
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => rt.create({ source, name: `svc${i}`, namespace: 'acme' })));
  const refused = results.filter((r) => r.status === 'rejected' && refusal('services', 3, 3, 'kill a service')(r.reason));
  assert.equal(refused.length, 7, results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join('\n'));
  const kept = rt.readLocal({ namespace: 'acme' }).services;
  assert.equal(kept.length, 3);
  assert.deepEqual(await rt.usage('acme'), { services: 3 });
  // a failed service of the same name is replaced, not added
  await assert.rejects(rt.create({ source, name: kept[0]!.name, namespace: 'acme' }), (err) => !refusal('services', 3, 3, 'kill a service')(err));
  await rt.delete({ name: kept[0]!.name, namespace: 'acme' });
  assert.deepEqual(await rt.usage('acme'), { services: 2 });
  await assert.rejects(rt.create({ source, name: 'again', namespace: 'acme' }), (err) => !refusal('services', 2, 3, 'kill a service')(err));
  await assert.rejects(rt.create({ source, name: 'one-more', namespace: 'acme' }), refusal('services', 3, 3, 'kill a service'));
  // other namespaces have their own count
  await assert.rejects(rt.create({ source, name: 'svc0', namespace: 'globex' }), (err) => !isMicroError(err) || err.id !== 'quota');
});

test('instancesPerService: a Create asking for more instances is refused before anything is fetched', async (t) => {
  const { rt, source } = runtimeFor(t, { acme: { instancesPerService: 2 } });
  await rt.start();
  await assert.rejects(rt.create({ source, name: 'wide', namespace: 'acme', instances: 3 }), refusal('instancesPerService', 3, 2, 'run fewer instances'));
  assert.deepEqual(rt.readLocal({ namespace: 'acme' }).services, [], 'nothing is kept of a refused create');
  await assert.rejects(rt.create({ source, name: 'fits', namespace: 'acme', instances: 2 }), (err) => !isMicroError(err) || err.id !== 'quota');
});

test('memoryPerInstance and cpuPerInstance cap the sandbox limits, never raise them', () => {
  const base = { memory: 512 * 1024 * 1024, cpu: 1, pids: 256, nofile: 1024, disk: 1e9, tmp: 64 * 1024 * 1024 };
  const limits = resolveLimits('acme', { memoryPerInstance: 128 * 1024 * 1024, cpuPerInstance: 250 }, BUILT_IN_DEFAULTS);
  assert.deepEqual(capLimits(base, instanceCap(limits)), { ...base, memory: 128 * 1024 * 1024, cpu: 0.25 });
  const generous = resolveLimits('acme', { memoryPerInstance: 4 * 1024 ** 3, cpuPerInstance: 8000 }, BUILT_IN_DEFAULTS);
  assert.deepEqual(capLimits(base, instanceCap(generous)), base);
  assert.deepEqual(capLimits(base, instanceCap(resolveLimits('micro', {}, BUILT_IN_DEFAULTS))), base, 'micro is not capped');
});

/** the placement tests' service, without env */
const SPEC: ServiceSpec = { ...PLACEMENT_SPEC, env: {} };

test('several nodes: concurrent creates of two placements with room for k services: exactly k; remove gives back', async (t) => {
  const db = await testPostgres(t, 'rtquota');
  if (!db) return;
  await migrate(db, 'runtime', RUNTIME_MIGRATIONS);
  const leases = await Promise.all(['node-a', 'node-b'].map((node) => NodeLease.acquire(db, { node, address: '', leaseMs: 60_000, renewEvery: 60_000 })));
  t.after(() => Promise.all(leases.map((l) => l.close())));
  const sealer = new Sealer('placement-test-key-0123456789abcdef');
  const [a, b] = [new PostgresPlacement(db, sealer), new PostgresPlacement(db, sealer)];
  const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).create('acme', `svc${i}`, SPEC, 1, i % 2 ? 'node-a' : 'node-b', 4)));
  assert.equal(results.filter((r) => r.status === 'fulfilled' && r.value).length, 4);
  for (const r of results) if (r.status === 'rejected') assert.ok(refusal('services', 4, 4, 'kill a service')(r.reason), String(r.reason));
  assert.equal(await a.count('acme'), 4);
  const name = (await db.query<{ name: string }>(`SELECT name FROM ${db.schema}.runtime_desired LIMIT 1`)).rows[0]!.name;
  assert.equal(await b.remove('acme', name), true);
  assert.equal(await a.create('acme', 'next', SPEC, 1, 'node-a', 4), true);
  await assert.rejects(b.create('acme', 'over', SPEC, 1, 'node-b', 4), refusal('services', 4, 4, 'kill a service'));
  // no limit (namespace micro, shared services): unchecked
  assert.equal(await a.create('micro', 'core', SPEC, 1, 'node-a', null), true);
});
