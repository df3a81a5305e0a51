import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { micro, startServer, stopProcess, tempDir, type RunningServer } from './testing.js';

/* micro auth and micro user as people use them: the micro command against micro server. */

let home: string;
let server: RunningServer;

before(async () => {
  home = tempDir('micro-auth-e2e-');
  server = await startServer(home);
});

after(async () => {
  if (server) await stopProcess(server.proc);
  rmSync(home, { recursive: true, force: true });
});

test('an admin makes an account; its owner logs in and reaches only its own namespace', async () => {
  const made = await micro(home, ['auth', 'create', 'account', 'bob', '--namespace', 'team', '--scopes', 'dev', '-o', 'json']);
  assert.equal(made.code, 0, made.stderr);
  const { secret, account } = JSON.parse(made.stdout) as { secret: string; account: { issuer: string } };
  assert.equal(account.issuer, 'team');

  const rules = await micro(home, ['auth', 'list', 'rules', '--namespace', 'team']);
  assert.equal(rules.code, 0, rules.stderr);
  assert.match(rules.stdout, /^default +service:\*:\* +\* \(any account\) +granted +0$/m);

  const login = await micro(home, ['login', '--id', 'bob', '--secret', '-', '--namespace', 'team'], { input: `${secret}\n` });
  assert.equal(login.code, 0, login.stderr);
  assert.equal((await micro(home, ['user', 'namespace'])).stdout, 'team\n');
  const token = await micro(home, ['user', 'token']);
  assert.equal(token.code, 0, token.stderr);
  assert.equal(token.stdout.trim().split('.').length, 3);

  // not an admin of team, and nothing at all of micro
  const list = await micro(home, ['auth', 'list', 'accounts']);
  assert.equal(list.code, 1);
  assert.match(list.stderr, /forbidden: .*needs scope admin in namespace team/);
  const other = await micro(home, ['auth', 'list', 'rules', '--namespace', 'micro']);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /forbidden: account bob of namespace team may not act in namespace micro/);

  // an API key of one's own, shown once, then revoked
  const key = await micro(home, ['auth', 'create', 'key', 'ci']);
  assert.equal(key.code, 0, key.stderr);
  const id = key.stdout.trim().split('.')[0] as string;
  assert.match((await micro(home, ['auth', 'list', 'keys'])).stdout, new RegExp(`^${id} +ci +bob `, 'm'));
  assert.equal((await micro(home, ['auth', 'delete', 'key', id])).code, 0);

  assert.equal((await micro(home, ['logout'])).code, 0);
  // back to the local admin
  assert.equal((await micro(home, ['user', 'namespace'])).stdout, 'micro\n');
  const usage = await micro(home, ['auth', 'create', 'rule', 'x', '--resource', 'service:a:*', '--scope', '*', '--priority', 'high']);
  assert.equal(usage.code, 1);
  assert.match(usage.stderr, /--priority must be a whole number/);
});
