import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Home, LOCAL_ENV, normalizeAddress } from './config.js';
import { CliError } from './output.js';

function tempHome(t: { after: (fn: () => void) => void }): Home {
  const dir = mkdtempSync(join(tmpdir(), 'micro-cli-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return new Home(dir);
}

const mode = (path: string) => statSync(path).mode & 0o777;

test('a new home has the local environment, current, with no server and no credentials', (t) => {
  const home = tempHome(t);
  assert.deepEqual(home.listEnvs(), [{ name: LOCAL_ENV, address: undefined, current: true }]);
  const env = home.resolve();
  assert.equal(env.name, LOCAL_ENV);
  assert.equal(env.address, undefined);
  assert.equal(env.credentialSource, 'none');
  assert.equal(env.namespace, 'micro');
});

test('env add, set and rm keep config.json, and refuse what they cannot do', (t) => {
  const home = tempHome(t);
  home.addEnv('prod', '10.0.0.5:8081');
  home.addEnv('unix', 'unix:///tmp/micro.sock');
  assert.throws(() => home.addEnv('prod', '1.2.3.4:1'), /exists .* `micro env rm prod`/);
  assert.throws(() => home.addEnv(LOCAL_ENV, '1.2.3.4:1'), /built in/);
  assert.throws(() => home.addEnv('../evil', '1.2.3.4:1'), /invalid environment name/);
  assert.throws(() => home.addEnv('__proto__', '1.2.3.4:1'), /invalid environment name/);
  assert.throws(() => home.addEnv('bad', 'nowhere'), /invalid address "nowhere"/);
  home.setCurrent('prod');
  assert.throws(() => home.setCurrent('nope'), (err: unknown) => err instanceof CliError && /unknown environment "nope" — known: local, prod, unix/.test(err.message));
  assert.deepEqual(JSON.parse(readFileSync(home.configPath, 'utf8')), {
    current: 'prod',
    envs: { prod: { address: 'tcp://10.0.0.5:8081' }, unix: { address: 'unix:///tmp/micro.sock' } },
  });
  assert.equal(mode(home.configPath), 0o600);
  assert.equal(home.resolve().address, 'tcp://10.0.0.5:8081');

  home.writeCredentials('prod', { id: 'ops', secret: 's3cret' });
  assert.deepEqual(home.removeEnv('prod'), { wasCurrent: true });
  assert.equal(home.readConfig().current, LOCAL_ENV);
  assert.equal(existsSync(home.credentialsPath('prod')), false, 'its credentials go with it');
  assert.throws(() => home.removeEnv(LOCAL_ENV), /built in/);
});

test('MICRO_ENV chooses the environment of one command', (t) => {
  const home = tempHome(t);
  home.addEnv('staging', '127.0.0.1:9000');
  process.env.MICRO_ENV = 'staging';
  t.after(() => delete process.env.MICRO_ENV);
  assert.equal(home.currentEnvName(), 'staging');
  process.env.MICRO_ENV = 'nope';
  assert.throws(() => home.currentEnvName(), /unknown environment "nope" \(from MICRO_ENV\)/);
});

test('credentials are 0600 in a 0700 folder, and logout deletes them', (t) => {
  const home = tempHome(t);
  const path = home.writeCredentials('local', { id: 'alice', secret: 'pw', namespace: 'team' });
  assert.equal(mode(path), 0o600);
  assert.equal(mode(join(home.dir, 'credentials')), 0o700);
  assert.deepEqual(home.readCredentials('local'), { id: 'alice', secret: 'pw', namespace: 'team' });
  const env = home.resolve();
  assert.equal(env.credentialSource, 'login');
  assert.equal(env.namespace, 'team');
  // rewriting keeps the mode (a temp file renamed over the old one)
  home.writeCredentials('local', { id: 'alice', secret: 'pw2' });
  assert.equal(mode(path), 0o600);
  assert.equal(home.deleteCredentials('local'), true);
  assert.equal(home.deleteCredentials('local'), false);
  assert.equal(home.resolve().credentialSource, 'none');
});

test('local follows server.json of a live server and uses admin.json when not logged in', (t) => {
  const home = tempHome(t);
  mkdirSync(home.serverDir, { recursive: true });
  writeFileSync(join(home.serverDir, 'server.json'), JSON.stringify({ address: 'tcp://127.0.0.1:4567', pid: process.pid, startedAt: new Date().toISOString() }));
  writeFileSync(join(home.serverDir, 'admin.json'), JSON.stringify({ id: 'admin', secret: 'x', namespace: 'micro' }));
  let env = home.resolve();
  assert.equal(env.address, 'tcp://127.0.0.1:4567');
  assert.equal(env.credentialSource, 'admin');
  assert.equal(env.credentials?.id, 'admin');
  // logging in wins over the admin account
  home.writeCredentials('local', { id: 'bob', secret: 'y' });
  env = home.resolve();
  assert.equal(env.credentialSource, 'login');
  assert.equal(env.credentials?.id, 'bob');
  // a server that died (its pid is gone) does not count
  writeFileSync(join(home.serverDir, 'server.json'), JSON.stringify({ address: 'tcp://127.0.0.1:4567', pid: 2 ** 22 + 1 }));
  assert.equal(home.resolve().address, undefined);
});

test('a hand-broken config is repaired on read, an unparsable one is reported', (t) => {
  const home = tempHome(t);
  writeFileSync(home.configPath, JSON.stringify({ current: 'gone', envs: { ok: { address: 'tcp://1.2.3.4:5' }, bad: 7, '../x': { address: 'a' }, __proto__: { address: 'b' } } }));
  const config = home.readConfig();
  assert.equal(config.current, LOCAL_ENV);
  assert.deepEqual(Object.keys(config.envs), ['ok']);
  writeFileSync(home.configPath, '{oops');
  assert.throws(() => home.readConfig(), /config.json is not valid JSON — fix or delete it/);
});

test('normalizeAddress', () => {
  assert.equal(normalizeAddress('127.0.0.1:8081'), 'tcp://127.0.0.1:8081');
  assert.equal(normalizeAddress('tcp://example.com:80'), 'tcp://example.com:80');
  assert.equal(normalizeAddress('[::1]:8081'), 'tcp://[::1]:8081');
  assert.equal(normalizeAddress('unix:///tmp/s.sock'), 'unix:///tmp/s.sock');
  for (const bad of ['', 'localhost', 'http://x:1', 'x:99999', 'unix://relative', 'a b:1']) assert.throws(() => normalizeAddress(bad), /invalid address/);
});
