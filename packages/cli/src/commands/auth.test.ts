import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { createLogger } from '@micro/sdk';
import { MicroServer } from '@micro/server';
import { Home } from '../config.js';
import { CliContext } from '../context.js';
import { CliError } from '../output.js';
import { accountRow, describeRule, keyRow, keyStatus, parseAccess, parseAccountType, parseExpires, parseMetadata, parsePriority, parseScopes, parseServices, registerAuthCommands, ruleRow } from './auth.js';
import { checkPassword, registerUserCommands } from './user.js';

test('flags are parsed, and wrong ones are named', () => {
  assert.deepEqual(parseScopes(' admin, dev,,admin '), ['admin', 'dev']);
  assert.equal(parseScopes(undefined), undefined);
  assert.deepEqual(parseScopes(''), []);
  assert.deepEqual(parseMetadata(['team=core', 'url=a=b']), { team: 'core', url: 'a=b' });
  assert.throws(() => parseMetadata(['nokey']), /--metadata must be KEY=VALUE/);
  assert.throws(() => parseMetadata(['=v']), /--metadata/);
  assert.equal(parseAccountType('service'), 'service');
  assert.throws(() => parseAccountType('admin'), /--type must be user or service/);
  assert.equal(parseAccess('denied'), 'denied');
  assert.throws(() => parseAccess('allow'), /--access must be granted or denied/);
  assert.equal(parsePriority('-5'), -5);
  assert.throws(() => parsePriority('1.5'), /--priority must be a whole number/);
  assert.throws(() => parsePriority('99999999'), /--priority/);
  assert.equal(parseExpires('90d'), 90 * 86_400);
  assert.equal(parseExpires('12h'), 12 * 3600);
  assert.equal(parseExpires('120'), 120);
  for (const bad of ['10s', '0m', 'soon', '4000d', '-1h']) assert.throws(() => parseExpires(bad), /--expires/, bad);
  assert.throws(() => checkPassword('short'), /at least 8/);
  assert.throws(() => checkPassword('two\nlines'), /one line/);
});

test('API keys: --services parsed, rows with their last use, expiry and status', () => {
  assert.deepEqual(parseServices('store, db,store'), ['store', 'db']);
  assert.deepEqual(parseServices('*'), ['*']);
  assert.equal(parseServices(undefined), undefined);
  for (const bad of ['', ' , ', ',']) assert.throws(() => parseServices(bad), /--services must name at least one service/, bad);
  const key = { id: 'mk_1', name: 'ci', description: '', account: 'ada', namespace: 'shop', scopes: [], services: ['*'], createdAt: 0, blocked: false };
  assert.deepEqual(keyRow(key, 1), ['mk_1', 'ci', 'ada', '-', '*', '-', '1970-01-01T00:00:00Z', 'never', 'never', 'active']);
  assert.deepEqual(keyRow({ ...key, description: 'd', lastUsedAt: 60_000, expiresAt: 120_000 }, 1).slice(3), ['d', '*', '-', '1970-01-01T00:00:00Z', '1970-01-01T00:01:00Z', '1970-01-01T00:02:00Z', 'active']);
  assert.equal(keyStatus({ ...key, expiresAt: 5 }, 5), 'expired');
  assert.equal(keyStatus({ ...key, expiresAt: 5, blocked: true, blockMessage: 'unpaid' }, 5), 'blocked: unpaid');
});

test('rows and descriptions say what a rule does', () => {
  assert.deepEqual(ruleRow({ id: 'r', resource: 'service:x:*', scope: '', access: 'granted', priority: 3 }), ['r', 'service:x:*', "'' (public)", 'granted', '3']);
  assert.equal(describeRule({ id: 'r', resource: 'service:x:*', scope: '*', access: 'denied', priority: 1 }), 'denies service:x:* to any account of the namespace at priority 1');
  assert.deepEqual(accountRow({ id: 'a', type: 'user', issuer: 'ns', scopes: [], metadata: { k: 'v' }, createdAt: 0 }), ['a', 'user', 'ns', '-', 'k=v', '1970-01-01T00:00:00Z']);
});

/*
 * The commands against a micro server in this process: the home the server writes is the
 * home the CLI reads (server.json, admin.json), as for `micro server` in another terminal.
 */
describe('micro auth and micro user against a server', () => {
  let home: string;
  let server: MicroServer;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'micro-cli-auth-'));
    server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: createLogger({ level: 'silent' }) }).start();
  });
  after(async () => {
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  });

  /** runs `micro <args>` with the auth and user commands; returns stdout and stderr, or throws the CliError */
  async function micro(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const stdin = new PassThrough();
    stdin.end(input ?? '');
    const ctx = new CliContext(new Home(home), { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, stdin });
    const program = new Command('micro').exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
    registerAuthCommands(program, ctx);
    registerUserCommands(program, ctx);
    await program.parseAsync(args, { from: 'user' });
    return { stdout: out.join(''), stderr: err.join('') };
  }

  test('create, list and delete accounts; a generated secret is printed once', async () => {
    const made = await micro(['auth', 'create', 'account', 'alice', '--namespace', 'team', '--scopes', 'admin,dev', '--metadata', 'team=core']);
    const secret = /secret: (\S+)/.exec(made.stdout)?.[1];
    assert.ok(secret, made.stdout);
    assert.match(made.stdout, /created user account alice in namespace team with scopes admin, dev/);
    const list = await micro(['auth', 'list', 'accounts', '--namespace', 'team']);
    assert.match(list.stdout, /^ID +TYPE +NAMESPACE +SCOPES +METADATA +CREATED\n/);
    assert.match(list.stdout, /^alice +user +team +admin,dev +team=core /m);
    assert.ok(!list.stdout.includes(secret as string));
    const json = JSON.parse((await micro(['auth', 'list', 'accounts', '--namespace', 'team', '-o', 'json'])).stdout) as { id: string }[];
    assert.deepEqual(json.map((a) => a.id), ['alice']);
    await micro(['auth', 'create', 'account', 'svc', '--type', 'service', '--secret', '-', '--namespace', 'team'], 'a-long-secret\n');
    await assert.rejects(micro(['auth', 'create', 'account', 'alice', '--namespace', 'team']), (e: CliError) => /exists/.test(e.message));
    await assert.rejects(micro(['auth', 'create', 'account', 'x', '--secret', 'short', '--namespace', 'team']), (e: CliError) => /secret: at least 8 characters/.test(e.message));
    await micro(['auth', 'delete', 'account', 'svc', '--namespace', 'team']);
    await assert.rejects(micro(['auth', 'delete', 'account', 'svc', '--namespace', 'team']), (e: CliError) => /no account svc/.test(e.message));
  });

  test('rules: created, listed in evaluation order, conflicts refused, deleted', async () => {
    await micro(['auth', 'create', 'rule', 'public', '--resource', 'service:hello:*', '--scope', '', '--priority', '10', '--namespace', 'team']);
    await micro(['auth', 'create', 'rule', 'block', '--resource', 'service:billing:*', '--scope', '*', '--access', 'denied', '--priority', '-5', '--namespace', 'team']);
    const list = await micro(['auth', 'list', 'rules', '--namespace', 'team']);
    assert.deepEqual(
      list.stdout.trim().split('\n').slice(1).map((l) => l.split(/ {2,}/)[0]),
      ['public', 'default', 'block'],
    );
    await assert.rejects(
      micro(['auth', 'create', 'rule', 'allow', '--resource', 'service:billing:*', '--scope', '*', '--priority', '-5', '--namespace', 'team']),
      (e: CliError) => /conflicts with rule block/.test(e.message),
    );
    await assert.rejects(micro(['auth', 'create', 'rule', 'x', '--resource', 'nope', '--scope', '*', '--namespace', 'team']), (e: CliError) => /resource/.test(e.message));
    await assert.rejects(micro(['auth', 'create', 'rule', 'x', '--resource', 'service:a:*', '--scope', '*', '--access', 'maybe']), (e: CliError) => /--access/.test(e.message));
    await micro(['auth', 'delete', 'rule', 'block', '--namespace', 'team']);
  });

  test('micro user: token, namespace, set password; API keys of one\'s own', async () => {
    const token = (await micro(['user', 'token'])).stdout.trim();
    assert.equal(token.split('.').length, 3);
    assert.equal((await micro(['user', 'namespace'])).stdout, 'micro\n');
    const made = await micro(['auth', 'create', 'key', 'ci', '--expires', '30d']);
    const key = made.stdout.trim();
    assert.match(key, /^mk_[0-9a-f]{16}\./);
    const keys = await micro(['auth', 'list', 'keys', '-o', 'json']);
    const listed = JSON.parse(keys.stdout) as { id: string; expiresAt?: number }[];
    assert.ok(listed.some((k) => k.id === key.split('.')[0] && k.expiresAt));
    await micro(['auth', 'delete', 'key', key.split('.')[0] as string]);

    await assert.rejects(micro(['user', 'set', 'password']), (e: CliError) => /--password-stdin/.test(e.message));
    await assert.rejects(micro(['user', 'set', 'password', '--password-stdin'], 'short\n'), (e: CliError) => /at least 8/.test(e.message));
    await micro(['user', 'set', 'password', '--password-stdin'], 'a-brand-new-password\n');
    // the CLI goes on as the admin with the new password, stored as the login of local
    const stored = JSON.parse(readFileSync(join(home, 'credentials', 'local.json'), 'utf8')) as { secret: string };
    assert.equal(stored.secret, 'a-brand-new-password');
    assert.equal((await micro(['user', 'token'])).stdout.split('.').length, 3);
  });
});
