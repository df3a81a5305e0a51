import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createClient, MicroError, registryService, type TypedClient } from '@micro/sdk';
import { startAuthHarness, type AuthHarness } from '../auth/testing.js';

/*
 * The registry's guard as a property, against a model: random namespaces, each with a
 * plain user, an admin and the service accounts of random services, send random
 * registrations, heart-beats, deregistrations and reads naming random namespaces and
 * services. What succeeds is exactly what the rule allows (registering and deregistering
 * service S of namespace N: S's own service account of N, or an admin of N; reading: any
 * account of N), nothing registers, deregisters or lists across namespaces, and the
 * registry ends up holding exactly the model's nodes.
 */

type Registry = TypedClient<typeof registryService>;
interface Actor {
  name: string;
  namespace: string;
  /** the services it may register: all (an admin), its own (a service account) or none */
  serves: (service: string) => boolean;
  registry: Registry;
}

let h: AuthHarness;
const actors: Actor[] = [];
let namespaces: string[] = [];
let serviceNames: string[] = [];
/** namespace → service → node ids: what the registry must hold */
const model = new Map<string, Map<string, Set<string>>>();

const unique = <T>(arb: fc.Arbitrary<T>, n: number): T[] => fc.sample(fc.uniqueArray(arb, { minLength: n, maxLength: n }), 1)[0] as T[];

before(async () => {
  h = await startAuthHarness();
  const admin = h.authAs(h.admin);
  namespaces = unique(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/).filter((s) => s !== 'micro'), 3);
  serviceNames = unique(fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}$/), 3);
  for (const ns of namespaces) {
    model.set(ns, new Map());
    for (const [id, scopes] of [['user', ['dev']], ['boss', ['admin']]] as const) {
      const secret = (await admin.CreateAccount({ id, namespace: ns, scopes: [...scopes] })).secret as string;
      actors.push({ name: `${ns}/${id}`, namespace: ns, serves: () => id === 'boss', registry: createClient(registryService, h.platformAs({ id, secret, namespace: ns })) });
    }
    for (const svc of serviceNames.slice(0, 2)) {
      const c = { ...h.accounts.issueServiceSecret(svc, ns), namespace: ns };
      actors.push({ name: `${ns}/service:${svc}`, namespace: ns, serves: (s) => s === svc, registry: createClient(registryService, h.platformAs(c)) });
    }
  }
});

after(() => h.close());

type Op =
  | { kind: 'Register' | 'Deregister'; namespace: string; service: string; node: string; port: number }
  | { kind: 'ListServices' | 'GetService'; namespace: string; service: string };

const ops = (): fc.Arbitrary<Op> => {
  const ns = fc.constantFrom(...namespaces);
  const svc = fc.constantFrom(...serviceNames);
  return fc.oneof(
    fc.record({ kind: fc.constantFrom('Register' as const, 'Deregister' as const), namespace: ns, service: svc, node: fc.constantFrom('n1', 'n2'), port: fc.integer({ min: 1, max: 65535 }) }),
    fc.record({ kind: fc.constantFrom('ListServices' as const, 'GetService' as const), namespace: ns, service: svc }),
  );
};

async function snapshot(): Promise<Record<string, Record<string, string[]>>> {
  const admin = createClient(registryService, h.platformAs(h.admin));
  const out: Record<string, Record<string, string[]>> = {};
  for (const ns of namespaces) {
    out[ns] = {};
    for (const s of (await admin.ListServices({ namespace: ns })).services) (out[ns] as Record<string, string[]>)[s.name] = s.nodes.map((n) => n.id).sort();
  }
  return out;
}

function expected(): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  for (const [ns, services] of model) {
    out[ns] = {};
    for (const [svc, nodes] of services) if (nodes.size > 0) (out[ns] as Record<string, string[]>)[svc] = [...nodes].sort();
  }
  return out;
}

async function apply(actor: Actor, op: Op): Promise<void> {
  const record = { name: op.service, version: '1', endpoints: [], nodes: 'node' in op ? [{ id: op.node, address: `tcp://127.0.0.1:${op.port}` }] : [] };
  const call = (): Promise<unknown> => {
    switch (op.kind) {
      case 'Register':
        return actor.registry.Register({ service: record, namespace: op.namespace });
      case 'Deregister':
        return actor.registry.Deregister({ service: record, namespace: op.namespace });
      case 'ListServices':
        return actor.registry.ListServices({ namespace: op.namespace });
      case 'GetService':
        return actor.registry.GetService({ name: op.service, namespace: op.namespace });
    }
  };
  const own = op.namespace === actor.namespace;
  const allowed = own && (op.kind === 'ListServices' || op.kind === 'GetService' || actor.serves(op.service));
  const outcome = await call().then(
    (value) => ({ value }),
    (err: unknown) => ({ err }),
  );
  const what = `${actor.name} ${op.kind} ${op.namespace}/${op.service}`;
  if (!allowed) {
    assert.ok('err' in outcome, `${what} succeeded`);
    assert.ok(outcome.err instanceof MicroError && outcome.err.code === 403, `${what}: ${String(outcome.err)}`);
    return;
  }
  assert.ok('value' in outcome, `${what} failed: ${String((outcome as { err: unknown }).err)}`);
  const services = model.get(op.namespace) as Map<string, Set<string>>;
  if (op.kind === 'Register') {
    if (!services.has(op.service)) services.set(op.service, new Set());
    services.get(op.service)?.add(op.node);
  } else if (op.kind === 'Deregister') {
    services.get(op.service)?.delete(op.node);
  } else {
    // reads answer from the namespace asked for only
    const listed = (outcome.value as { services: { name: string; namespace?: string; nodes: { id: string }[] }[] }).services;
    const mine = expected()[op.namespace] as Record<string, string[]>;
    for (const s of listed) {
      assert.ok(s.namespace === undefined || s.namespace === op.namespace, `${what} answered a service of ${s.namespace}`);
      assert.deepEqual(s.nodes.map((n) => n.id).sort(), mine[s.name], `${what}: ${s.name}`);
    }
  }
}

test('registrations follow the rule, and nothing registers, deregisters or lists across namespaces', async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: actors.length - 1 }), fc.array(ops(), { minLength: 1, maxLength: 6 }), async (who, sequence) => {
      const actor = actors[who] as Actor;
      for (const op of sequence) await apply(actor, op);
      assert.deepEqual(await snapshot(), expected());
    }),
    { numRuns: 80 },
  );
});
