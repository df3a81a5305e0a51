import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { micro, post, startServer, stopProcess, tempDir, type RunningServer } from './testing.js';

/*
 * API keys as people use them from the micro command: made with a description, the
 * services they may call and an expiry, used at the gateway, listed with their last use,
 * blocked and unblocked by the platform's admin, revoked; bad input refused with what to
 * do; the last use kept across a restart of micro server.
 */

let home: string;
let server: RunningServer;

before(async () => {
  home = tempDir('micro-keys-e2e-');
  server = await startServer(home);
});

after(async () => {
  if (server) await stopProcess(server.proc);
  rmSync(home, { recursive: true, force: true });
});

interface ListedKey {
  id: string;
  name: string;
  description: string;
  services: string[];
  lastUsedAt?: number;
  expiresAt?: number;
  blocked: boolean;
  blockMessage?: string;
}

const run = (args: string[], input?: string) => micro(home, args, input === undefined ? {} : { input });
const succeeds = async (args: string[], input?: string) => {
  const r = await run(args, input);
  assert.equal(r.code, 0, `micro ${args.join(' ')}: ${r.stderr}`);
  return r;
};
const fails = async (args: string[], stderr: RegExp) => {
  const r = await run(args);
  assert.equal(r.code, 1, `micro ${args.join(' ')} succeeded: ${r.stdout}`);
  assert.match(r.stderr, stderr);
};

async function loginAs(id: string, secret: string, namespace: string): Promise<void> {
  await succeeds(['login', '--id', id, '--secret', '-', '--namespace', namespace], `${secret}\n`);
}

async function listed(id: string, namespace?: string): Promise<ListedKey> {
  const r = await succeeds(['auth', 'list', 'keys', '-o', 'json', ...(namespace ? ['--namespace', namespace] : [])]);
  const key = (JSON.parse(r.stdout) as ListedKey[]).find((k) => k.id === id);
  assert.ok(key, `key ${id} listed`);
  return key;
}

test('micro auth create|list|block|unblock|delete key: services, description, expiry, last use, blocks with a message', { timeout: 120_000 }, async () => {
  const made = await succeeds(['auth', 'create', 'account', 'ada', '--namespace', 'shop', '--scopes', 'admin', '-o', 'json']);
  const { secret } = JSON.parse(made.stdout) as { secret: string };
  await loginAs('ada', secret, 'shop');

  // bad input: each refused, nothing made
  await fails(['auth', 'create', 'key', 'bad', '--services', 'Bad Name'], /services/);
  await fails(['auth', 'create', 'key', 'bad', '--services', ' , '], /--services must name at least one service, or \* for any/);
  await fails(['auth', 'create', 'key', 'bad', '--services', '*,store'], /\* \(any service\) stands alone/);
  await fails(['auth', 'create', 'key', 'bad', '--services', Array.from({ length: 33 }, (_, i) => `s${i}`).join(',')], /services/);
  await fails(['auth', 'create', 'key', 'bad', '--description', 'x'.repeat(257)], /description/);
  await fails(['auth', 'create', 'key', 'bad', '--expires', '10s'], /--expires must be a duration from 1m to 3650d/);
  assert.equal((JSON.parse((await succeeds(['auth', 'list', 'keys', '-o', 'json'])).stdout) as unknown[]).length, 0);

  const created = await succeeds(['auth', 'create', 'key', 'shop', '--description', "the shop's backend", '--services', 'store,db', '--expires', '30d', '-o', 'json']);
  const { key, info } = JSON.parse(created.stdout) as { key: string; info: ListedKey };
  assert.match(key, /^mk_[0-9a-f]{16}\./);
  assert.deepEqual([info.description, info.services, info.blocked], ["the shop's backend", ['store', 'db'], false]);
  const text = await succeeds(['auth', 'create', 'key', 'plain']);
  assert.match(text.stdout, /^mk_[0-9a-f]{16}\.\S+\n$/);
  assert.match(text.stderr, /for any service — shown only now/);

  // at the gateway: the services it was made for, not others; each call is its last use
  const before = Date.now();
  assert.equal((await post(server.gateway, '/v1/store/List', {}, key)).status, 200);
  const refused = await post(server.gateway, '/v1/config/Get', {}, key);
  assert.deepEqual([refused.status, refused.body.id, refused.body.detail], [403, 'v1.blocked', 'insufficient privileges: this API key may call store, db']);
  const used = (await listed(info.id)).lastUsedAt;
  assert.ok(used !== undefined && used >= before, 'last used, at once');
  const table = (await succeeds(['auth', 'list', 'keys'])).stdout;
  assert.match(table, /^ID +NAME +ACCOUNT +DESCRIPTION +SERVICES +SCOPES +CREATED +LAST USED +EXPIRES +STATUS$/m);
  assert.match(table, new RegExp(`^${info.id} +shop +ada +the shop's backend +store,db +admin +\\S+Z +\\S+Z +\\S+Z +active$`, 'm'));
  assert.match(table, /^mk_[0-9a-f]{16} +plain +ada +- +\* +admin +\S+Z +never +never +active$/m);

  // only the platform's admins block: not the key's owner, though an admin of its namespace
  await fails(['auth', 'block', 'key', info.id, '--message', 'x'], /needs an admin of namespace micro/);
  await succeeds(['logout']);
  await fails(['auth', 'block', 'key', info.id], /--message/);
  await fails(['auth', 'block', 'key', info.id, '--message', 'unpaid'], /no API key mk_[0-9a-f]+ in namespace micro/);
  await fails(['auth', 'block', 'key', 'mk_0000000000000000', '--namespace', 'shop', '--message', 'unpaid'], /no API key mk_0000000000000000 in namespace shop/);
  await fails(['auth', 'block', 'key', info.id, '--namespace', 'shop', '--message', 'x'.repeat(501)], /message/);
  const blocked = await succeeds(['auth', 'block', 'key', info.id, '--namespace', 'shop', '--message', 'unpaid invoice: contact billing@example.com']);
  assert.match(blocked.stdout, /blocked API key mk_[0-9a-f]+ \(shop\) of ada in namespace shop: its callers are told "unpaid invoice: contact billing@example.com"/);
  await fails(['auth', 'block', 'key', info.id, '--namespace', 'shop', '--message', 'again'], /blocked already .*unpaid invoice/);
  const refusedNow = await post(server.gateway, '/v1/store/List', {}, key);
  assert.deepEqual([refusedNow.status, refusedNow.body.id, refusedNow.body.detail], [403, 'v1.blocked', 'this API key is blocked: unpaid invoice: contact billing@example.com']);
  assert.equal((await post(server.gateway, '/v1/auth/Token', { apiKey: key })).status, 403);
  // its owner sees why
  await loginAs('ada', secret, 'shop');
  assert.match((await succeeds(['auth', 'list', 'keys'])).stdout, new RegExp(`^${info.id} .* blocked: unpaid invoice: contact billing@example.com$`, 'm'));
  await succeeds(['logout']);
  const unblocked = await succeeds(['auth', 'unblock', 'key', info.id, '--namespace', 'shop', '-o', 'json']);
  assert.equal((JSON.parse(unblocked.stdout) as ListedKey).blocked, false);
  await fails(['auth', 'unblock', 'key', info.id, '--namespace', 'shop'], /is not blocked/);
  assert.equal((await post(server.gateway, '/v1/store/List', {}, key)).status, 200);
  const lastUse = (await listed(info.id, 'shop')).lastUsedAt as number;

  // the last use survives a restart: written when the server stops
  await stopProcess(server.proc);
  server = await startServer(home);
  assert.equal((await listed(info.id, 'shop')).lastUsedAt, lastUse);

  // revoked by its owner: gone
  await loginAs('ada', secret, 'shop');
  await succeeds(['auth', 'delete', 'key', info.id]);
  assert.equal((await post(server.gateway, '/v1/store/List', {}, key)).status, 401);
  await succeeds(['logout']);
});
