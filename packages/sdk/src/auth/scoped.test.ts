import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../client/client.js';
import { Service } from '../service/service.js';
import { defineService } from '../service/definition.js';
import { MemoryRegistry } from '../registry/memory.js';
import { createLogger } from '../logger/logger.js';
import { authApi, authService } from './definition.js';
import { audienceProblem, CORE_SERVICES, isCoreService, ScopedTokens } from './scoped.js';

/*
 * Which token each callee gets: the general one to the server's core services only, a
 * token scoped to it to every other service (minted once per target), none without a
 * server to mint at.
 */

const scopeOnly = defineService({ name: 'auth', version: '1.0.0', endpoints: { Scope: authApi.endpoints.Scope } });
const minted: { audience: string; parent: string | undefined }[] = [];
let svc: Service;
let server: Client;

before(async () => {
  svc = new Service(
    scopeOnly,
    {
      Scope: ({ audience }, ctx) => {
        minted.push({ audience, parent: ctx.metadata.authorization });
        return { token: `scoped(${ctx.metadata.authorization?.slice(7)},${audience})`, expiresAt: Math.floor(Date.now() / 1000) + 900 };
      },
    },
    { namespace: 'micro', address: 'tcp://127.0.0.1:0', registry: new MemoryRegistry(), logger: createLogger({ level: 'silent' }), auth: false },
  );
  await svc.start();
  server = new Client({ address: svc.address as string, namespace: 'micro', preferLocal: false, middleware: [] });
});

after(() => svc.stop());

test('core services get the general token; others a scoped one, minted once per target and per general token', async () => {
  let general = 'g1';
  const tokens = new ScopedTokens(() => Promise.resolve(general), server);
  assert.equal(await tokens.tokenFor('micro', 'store'), 'g1');
  assert.equal(await tokens.tokenFor('micro', 'registry'), 'g1');
  assert.equal(minted.length, 0);
  const [a, b] = await Promise.all([tokens.tokenFor('acme', 'greeter'), tokens.tokenFor('acme', 'greeter')]);
  assert.equal(a, 'scoped(g1,acme/greeter)');
  assert.equal(b, a);
  assert.equal(await tokens.tokenFor('acme', 'greeter'), a);
  assert.deepEqual(minted, [{ audience: 'acme/greeter', parent: 'Bearer g1' }], 'one mint for concurrent and later calls');
  // a core service's name in a tenant namespace, and a non-core service of micro, are services like any
  assert.equal(await tokens.tokenFor('acme', 'store'), 'scoped(g1,acme/store)');
  assert.equal(await tokens.tokenFor('micro', 'helloworld'), 'scoped(g1,micro/helloworld)');
  // a new general token (renewed) gets new scoped ones
  general = 'g2';
  assert.equal(await tokens.tokenFor('acme', 'greeter'), 'scoped(g2,acme/greeter)');
  assert.equal(minted.length, 4);
});

test('without a server to mint at, other services get no token at all', async () => {
  const tokens = new ScopedTokens(() => Promise.resolve('general'), undefined);
  assert.equal(await tokens.tokenFor('micro', 'auth'), 'general');
  assert.equal(await tokens.tokenFor('acme', 'greeter'), undefined);
});

test('a server that mints none (a stand-in without auth.Scope): other services get no token', async () => {
  const stand = new Service(
    defineService({ name: 'auth', version: '1.0.0', endpoints: { Token: authService.endpoints.Token } }),
    { Token: () => ({ token: 't', expiresAt: 0, account: { id: 'x', type: 'user', issuer: 'micro', scopes: [] } }) },
    { namespace: 'micro', address: 'tcp://127.0.0.1:0', registry: new MemoryRegistry(), logger: createLogger({ level: 'silent' }), auth: false },
  );
  await stand.start();
  try {
    const tokens = new ScopedTokens(() => Promise.resolve('general'), new Client({ address: stand.address as string, namespace: 'micro', preferLocal: false, middleware: [] }));
    assert.equal(await tokens.tokenFor('acme', 'greeter'), undefined);
    assert.equal(await tokens.tokenFor('acme', 'other'), undefined);
    assert.equal(await tokens.tokenFor('micro', 'store'), 'general');
  } finally {
    await stand.stop();
  }
});

test('audiences: <namespace>/<service>, never a core service', () => {
  assert.equal(audienceProblem('acme/greeter'), undefined);
  assert.equal(audienceProblem('micro/helloworld'), undefined);
  assert.match(audienceProblem('acme') ?? '', /<namespace>\/<service>/);
  assert.match(audienceProblem('../x/y') ?? '', /not a namespace name/);
  assert.match(audienceProblem('acme/a/b') ?? '', /service name/);
  assert.match(audienceProblem('acme/') ?? '', /service name/);
  assert.match(audienceProblem('micro/auth') ?? '', /core service/);
  assert.ok(CORE_SERVICES.has('store') && isCoreService('micro', 'store') && !isCoreService('acme', 'store'));
});
