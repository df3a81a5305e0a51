import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authApi, configService, MicroError, registryService, runtime, storeService, type Account } from '@micro/sdk';
import { roleCheck, roleOf } from './roles.js';

const as = (scopes: string[], type = 'user'): Account => ({ id: 'someone@example.com', type, issuer: 'acme', scopes }) as Account;

const refused = (fn: () => void, name: string) =>
  assert.throws(fn, (err: unknown) => err instanceof MicroError && err.code === 403, name);

test('roleOf: the strongest role scope; none for accounts without one', () => {
  assert.equal(roleOf(as(['viewer', 'developer'])), 'developer');
  assert.equal(roleOf(as(['admin', 'viewer'])), 'admin');
  assert.equal(roleOf(as(['custom'])), undefined);
});

test('a viewer reaches only read-only endpoints of the core services, and its own session', () => {
  const viewer = as(['viewer']);
  for (const [def, writes, reads] of [
    [runtime, ['Create', 'Update', 'Delete'], ['Read', 'Logs']],
    [storeService, ['Write', 'Delete', 'Blob.Delete'], ['Read', 'List', 'Databases', 'Tables']],
    [configService, ['Set', 'Delete'], ['Get', 'Watch']],
    [authApi, ['CreateKey', 'RevokeKey', 'BlockKey', 'UnblockKey', 'CreateAccount', 'CreateRule', 'DeleteRule', 'UpdateAccount'], ['ListKeys', 'ListRules', 'Logout', 'Scope', 'SetPassword', 'Debug.Health']],
  ] as const) {
    const check = roleCheck(def);
    for (const e of writes) refused(() => check(viewer, e), `${def.name}.${e}`);
    for (const e of reads) check(viewer, e);
  }
  const registry = roleCheck(registryService);
  for (const [name, ep] of Object.entries(registryService.endpoints)) if (!ep.readonly) refused(() => registry(viewer, name), `registry.${name}`);
});

test('a developer does all but manage accounts, keys and rules; admins and role-less accounts are not restricted here', () => {
  const auth = roleCheck(authApi);
  for (const e of ['CreateKey', 'RevokeKey', 'BlockKey', 'UnblockKey', 'CreateAccount', 'UpdateAccount', 'DeleteAccount', 'CreateRule', 'DeleteRule']) refused(() => auth(as(['developer']), e), e);
  for (const e of ['Create', 'Update', 'Delete']) roleCheck(runtime)(as(['developer']), e);
  roleCheck(storeService)(as(['developer']), 'Write');
  auth(as(['admin']), 'CreateKey');
  auth(as([]), 'CreateKey');
  roleCheck(storeService)(as(['viewer'], 'apikey'), 'Read');
  refused(() => roleCheck(storeService)(as(['viewer'], 'apikey'), 'Write'), 'a viewer key');
});
