import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { authApi, createClient, MicroError, registryService, type TypedClient } from '@micro/sdk';
import { startAuthHarness, type AuthHarness } from './testing.js';

/*
 * Namespace isolation, as a property: whatever an account of namespace A sends — as a
 * user, as the namespace's admin, as a service, through an API key — to the auth and
 * registry services about namespace B, it reads nothing of B and changes nothing of B.
 * (The registry's own rule, within a namespace too, is a property in
 * ../registry/isolation.test.ts.)
 */

let h: AuthHarness;
type Auth = TypedClient<typeof authApi>;
const actors: Record<string, { auth: Auth; registry: TypedClient<typeof registryService> }> = {};
let adminOfB: Auth;
let bKeyId: string;

async function snapshotOfB(): Promise<string> {
  const [accounts, rules, keys, services] = await Promise.all([
    adminOfB.ListAccounts({}),
    adminOfB.ListRules({}),
    adminOfB.ListKeys({}),
    createClient(registryService, h.platformAs(h.admin)).ListServices({ namespace: 'b' }),
  ]);
  return JSON.stringify({ accounts, rules, keys, services });
}

before(async () => {
  h = await startAuthHarness();
  const admin = h.authAs(h.admin);
  const make = async (id: string, namespace: string, scopes: string[]) => ({ id, namespace, secret: (await admin.CreateAccount({ id, namespace, scopes })).secret as string });
  const bAdmin = await make('b-admin', 'b', ['admin']);
  await make('b-user', 'b', ['dev']);
  adminOfB = h.authAs(bAdmin);
  await adminOfB.CreateRule({ id: 'b-rule', resource: 'service:b-svc:*', scope: 'dev', access: 'granted', priority: 5 });
  bKeyId = (await adminOfB.CreateKey({ name: 'b-key' })).info.id;
  await createClient(registryService, h.platformAs(bAdmin)).Register({ service: { name: 'b-svc', version: '1', endpoints: [], nodes: [{ id: 'n1', address: 'tcp://127.0.0.1:1' }] }, namespace: 'b' });

  const aAdmin = await make('a-admin', 'a', ['admin', 'dev']);
  const aUser = await make('a-user', 'a', ['dev']);
  const aService = { ...h.accounts.issueServiceSecret('a-svc', 'a'), namespace: 'a' };
  const { key } = await h.authAs(aAdmin).CreateKey({ name: 'a-key' });
  const viaKey = await h.authAs().Token({ apiKey: key });
  for (const [name, creds] of Object.entries({ aAdmin, aUser, aService, aKey: { token: viaKey.token } })) {
    const platform = h.platformAs(creds);
    actors[name] = { auth: createClient(authApi, platform), registry: createClient(registryService, platform) };
  }
});

after(() => h.close());

const accountId = fc.constantFrom('b-admin', 'b-user', 'new-one', 'a-user');
const ruleId = fc.constantFrom('b-rule', 'default', 'new-rule');
const targetNs = fc.constantFrom('b' as const);

type Op = (a: { auth: Auth; registry: TypedClient<typeof registryService> }) => Promise<unknown>;

const ops: fc.Arbitrary<[string, Op]> = fc.oneof(
  fc.tuple(fc.constant('ListAccounts'), targetNs).map(([n, ns]) => [n, (a) => a.auth.ListAccounts({ namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('CreateAccount'), accountId, fc.subarray(['admin', 'dev']), targetNs).map(([n, id, scopes, ns]) => [n, (a) => a.auth.CreateAccount({ id, scopes, namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('DeleteAccount'), accountId, targetNs).map(([n, id, ns]) => [n, (a) => a.auth.DeleteAccount({ id, namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('SetPassword'), accountId, targetNs).map(([n, id, ns]) => [n, (a) => a.auth.SetPassword({ id, password: 'taken-over-pw', current: 'whatever', namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('CreateRule'), ruleId, fc.constantFrom('granted' as const, 'denied' as const), fc.integer({ min: -5, max: 5 }), targetNs).map(
    ([n, id, access, priority, ns]) => [n, (a) => a.auth.CreateRule({ id, resource: 'service:*:*', scope: '', access, priority, namespace: ns })] as [string, Op],
  ),
  fc.tuple(fc.constant('ListRules'), targetNs).map(([n, ns]) => [n, (a) => a.auth.ListRules({ namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('DeleteRule'), ruleId, targetNs).map(([n, id, ns]) => [n, (a) => a.auth.DeleteRule({ id, namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('CreateKey'), targetNs).map(([n, ns]) => [n, (a) => a.auth.CreateKey({ name: 'stolen', namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('ListKeys'), targetNs).map(([n, ns]) => [n, (a) => a.auth.ListKeys({ namespace: ns })] as [string, Op]),
  // B's key by its id, naming B or not
  fc.tuple(fc.constant('RevokeKey'), fc.constantFrom<'b' | undefined>('b', undefined)).map(([n, ns]) => [n, (a) => a.auth.RevokeKey({ id: bKeyId, namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('BlockKey'), fc.constantFrom<'b' | undefined>('b', undefined)).map(([n, ns]) => [n, (a) => a.auth.BlockKey({ id: bKeyId, message: 'taken over', namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('UnblockKey'), fc.constantFrom<'b' | undefined>('b', undefined)).map(([n, ns]) => [n, (a) => a.auth.UnblockKey({ id: bKeyId, namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('ListServices'), targetNs).map(([n, ns]) => [n, (a) => a.registry.ListServices({ namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('GetService'), targetNs).map(([n, ns]) => [n, (a) => a.registry.GetService({ name: 'b-svc', namespace: ns })] as [string, Op]),
  fc.tuple(fc.constant('Register'), fc.constantFrom('b-svc', 'a-svc'), targetNs).map(
    ([n, name, ns]) => [n, (a) => a.registry.Register({ service: { name, version: '1', endpoints: [], nodes: [{ id: 'n1', address: 'tcp://127.0.0.1:2' }] }, namespace: ns })] as [string, Op],
  ),
  fc.tuple(fc.constant('Deregister'), targetNs).map(([n, ns]) => [n, (a) => a.registry.Deregister({ service: { name: 'b-svc', version: '1', endpoints: [], nodes: [{ id: 'n1', address: 'tcp://127.0.0.1:1' }] }, namespace: ns })] as [string, Op]),
);

test('an account of namespace A can neither read nor change anything of namespace B', async () => {
  const before = await snapshotOfB();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...Object.keys(actors)), fc.array(ops, { minLength: 1, maxLength: 4 }), async (actor, sequence) => {
      for (const [name, op] of sequence) {
        const outcome = await op(actors[actor] as (typeof actors)[string]).then(
          (value) => ({ value }),
          (err: unknown) => ({ err }),
        );
        assert.ok('err' in outcome, `${actor} ${name} on B succeeded: ${JSON.stringify((outcome as { value: unknown }).value)}`);
        const err = outcome.err;
        assert.ok(err instanceof MicroError, String(err));
        assert.ok(err.code === 403 || err.code === 404, `${actor} ${name}: ${err.code} ${err.detail}`);
      }
      assert.equal(await snapshotOfB(), before, 'namespace B is unchanged');
    }),
    { numRuns: 60 },
  );
});
