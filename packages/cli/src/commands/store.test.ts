import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { MemoryRegistry, RpcServer, Service, authService, createLogger, errors, type Account, type Context, type HandlerMiddleware } from '@micro/sdk';
import { MemoryBlobStore, MemoryStore, storeHandlers, storeService } from '@micro/sdk';
import { Home } from '../config.js';
import { CliContext } from '../context.js';
import { CliError } from '../output.js';
import { parseCount, parseMetadata, parseOrder, parseTtl, parseValue, printableKey, recordRow, registerStoreCommands } from './store.js';

/*
 * `micro store` in this process against a stand-in for micro server: the real store
 * service over memory engines and a Token endpoint, on a real TCP port, found through
 * the home's server.json as the CLI finds a local server. (store.e2e.test.ts runs the
 * `micro` command against the real server.)
 */

const silent = createLogger({ level: 'silent' });

test('values: JSON when it parses, else the text; --string keeps the text', () => {
  assert.deepEqual(parseValue('{"a":1}', false), { a: 1 });
  assert.equal(parseValue('42', false), 42);
  assert.equal(parseValue('true', false), true);
  assert.equal(parseValue('"quoted"', false), 'quoted');
  assert.equal(parseValue('hello world', false), 'hello world');
  assert.equal(parseValue('{broken', false), '{broken');
  assert.equal(parseValue('42', true), '42');
});

test('--ttl, --metadata, --order, --limit are checked, naming the flag', () => {
  assert.equal(parseTtl('60'), 60);
  assert.equal(parseTtl('1.5s'), 1.5);
  assert.equal(parseTtl('10m'), 600);
  assert.equal(parseTtl('2h'), 7200);
  assert.equal(parseTtl('1d'), 86_400);
  assert.equal(parseTtl('500ms'), 0.5);
  for (const bad of ['', 'soon', '-1', '0', '1y', '99999d', '1e3']) assert.throws(() => parseTtl(bad), /--ttl/);
  assert.deepEqual({ ...parseMetadata(['owner=alice', 'note=a=b', 'empty=']) }, { owner: 'alice', note: 'a=b', empty: '' });
  assert.equal(parseMetadata([]), undefined);
  assert.throws(() => parseMetadata(['novalue']), /--metadata/);
  assert.throws(() => parseMetadata(['=x']), /--metadata/);
  assert.equal(Object.getPrototypeOf(parseMetadata(['__proto__=x'])), Object.prototype);
  assert.throws(() => parseMetadata(Array.from({ length: 65 }, (_, i) => `k${i}=v`)), /at most 64/);
  assert.equal(parseOrder('desc'), 'desc');
  assert.throws(() => parseOrder('up'), /--order/);
  assert.equal(parseCount('--limit', '10', 1, 1000), 10);
  for (const bad of ['0', '1001', '1.5', 'ten', '-1']) assert.throws(() => parseCount('--limit', bad, 1, 1000), /--limit must be a whole number from 1 to 1000/);
});

test('rows and keys are printable: control characters never reach the terminal raw', () => {
  assert.equal(printableKey('plain key'), 'plain key');
  assert.equal(printableKey('evil\u001b[2Jkey\n'), '"evil\\u001b[2Jkey\\n"');
  assert.deepEqual(recordRow({ key: 'k', value: { a: 1 }, metadata: { owner: 'al', n: 2 }, expiry: 10_000 + 90_000 }, 10_000), ['k', '{"a":1}', 'owner=al,n=2', 'in 1m30s']);
  assert.deepEqual(recordRow({ key: 'k', value: 'text' }), ['k', '"text"', '', '-']);
});

// ---- the commands against a stand-in server ------------------------------------------

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('micro store commands', () => {
  let home: string;
  let rpc: RpcServer;
  const services: Service[] = [];
  const savedEnv = process.env.MICRO_ENV;

  before(async () => {
    process.env.MICRO_ENV = '';
    home = mkdtempSync(join(tmpdir(), 'micro-cli-store-'));
    rpc = new RpcServer({ logger: silent });
    const address = await rpc.listen('tcp://127.0.0.1:0');
    const common = { server: rpc, namespace: 'micro', registry: new MemoryRegistry(), logger: silent, registerTTL: 0 };
    // tokens name their account: t:<namespace>:<id>; the admin of micro may act anywhere
    const accountOf = (token: string): Account | undefined => {
      const m = /^t:([^:]+):(.+)$/.exec(token);
      if (!m) return undefined;
      const [, issuer, id] = m as unknown as [string, string, string];
      return { id, type: 'user', issuer, scopes: issuer === 'micro' && id === 'admin' ? ['admin'] : [] };
    };
    services.push(
      await new Service(
        authService,
        {
          Token: ({ id, secret, namespace }) => {
            if (secret !== 'right') throw errors.Unauthorized('auth', 'wrong secret');
            const token = `t:${namespace ?? 'micro'}:${id ?? ''}`;
            return { token, expiresAt: Math.floor(Date.now() / 1000) + 3600, account: accountOf(token) as Account };
          },
        },
        common,
      ).start(),
    );
    const asAccount: HandlerMiddleware = async (ctx, req, next) => {
      const account = accountOf((ctx.metadata.authorization ?? '').replace(/^Bearer /, ''));
      if (!account) throw errors.Unauthorized('store', 'credentials required');
      (ctx as { account: Account | undefined }).account = account;
      return next(req);
    };
    const namespaceFor = (ctx: Context, asked: string | undefined) => {
      const account = ctx.account as Account;
      const namespace = asked ?? account.issuer;
      if (namespace !== account.issuer && !account.scopes.includes('admin')) throw errors.Forbidden('store', `account ${account.id} of namespace ${account.issuer} may not act in namespace ${namespace}`);
      return namespace;
    };
    services.push(await new Service(storeService, storeHandlers(new MemoryStore(), new MemoryBlobStore(), { namespace: namespaceFor }), { ...common, middleware: [asAccount] }).start());
    mkdirSync(join(home, 'server'), { recursive: true });
    writeFileSync(join(home, 'server', 'server.json'), JSON.stringify({ address, pid: process.pid, startedAt: new Date().toISOString() }));
    writeFileSync(join(home, 'server', 'admin.json'), JSON.stringify({ id: 'admin', secret: 'right', namespace: 'micro' }));
  });

  after(async () => {
    for (const svc of services) await svc.stop();
    await rpc.close();
    rmSync(home, { recursive: true, force: true });
    if (savedEnv === undefined) delete process.env.MICRO_ENV;
    else process.env.MICRO_ENV = savedEnv;
  });

  /** `micro store …` as main() runs it: the exit code and what went to stdout and stderr. */
  async function micro(args: string[], input = '', at = home): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const io = {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      stdin: Readable.from([Buffer.from(input)]) as unknown as NodeJS.ReadableStream,
    };
    const ctx = new CliContext(new Home(at), io);
    const program = new Command('micro').exitOverride().configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
    registerStoreCommands(program, ctx);
    try {
      await program.parseAsync(['store', ...args], { from: 'user' });
      return { code: 0, stdout, stderr };
    } catch (err) {
      if (err instanceof CommanderError) return { code: err.exitCode, stdout, stderr };
      if (err instanceof CliError) return { code: err.exitCode, stdout, stderr: stderr + err.message };
      throw err;
    }
  }

  test('write, then read prints the value: strings as they are, the rest as JSON', async () => {
    assert.equal((await micro(['write', 'greeting', 'hello world'])).code, 0);
    assert.equal((await micro(['read', 'greeting'])).stdout, 'hello world\n');
    const w = await micro(['write', 'user:1', '{"name":"Alice","age":42}', '--metadata', 'owner=alice', '--metadata', 'team=x']);
    assert.equal(w.code, 0);
    assert.match(w.stdout, /wrote user:1 in micro\/default \(namespace micro\)/);
    assert.deepEqual(JSON.parse((await micro(['read', 'user:1'])).stdout), { name: 'Alice', age: 42 });
    const json = await micro(['read', 'user:1', '-o', 'json']);
    assert.deepEqual(JSON.parse(json.stdout), { key: 'user:1', value: { name: 'Alice', age: 42 }, metadata: { owner: 'alice', team: 'x' } });
    assert.equal((await micro(['write', 'n', '42', '--string'])).code, 0);
    assert.equal(JSON.parse((await micro(['read', 'n', '-o', 'json'])).stdout).value, '42');
  });

  test('a value from stdin with -', async () => {
    assert.equal((await micro(['write', 'piped', '-'], '{"from":"stdin"}\n')).code, 0);
    assert.deepEqual(JSON.parse((await micro(['read', 'piped'])).stdout), { from: 'stdin' });
  });

  test('read --prefix prints a table of records (JSON with -o json); a missing key is an error that says what to do', async () => {
    await micro(['write', 'cart:1', '1', '--ttl', '1h']);
    await micro(['write', 'cart:2', '"two"']);
    const table = await micro(['read', 'cart:', '--prefix']);
    assert.equal(table.code, 0);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0] as string, /^KEY +VALUE +METADATA +EXPIRES$/);
    assert.match(lines[1] as string, /^cart:1 +1 +in (59m\d+s|1h0m)$/);
    assert.match(lines[2] as string, /^cart:2 +"two" +-$/);
    const json = JSON.parse((await micro(['read', 'cart:', '--prefix', '--order', 'desc', '--limit', '1', '-o', 'json'])).stdout) as { key: string }[];
    assert.deepEqual(json.map((r) => r.key), ['cart:2']);
    const missing = await micro(['read', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no record at "nope" in micro\/default \(namespace micro\) — see `micro store list`/);
    const none = await micro(['read', 'zzz', '--prefix']);
    assert.equal(none.code, 0);
    assert.match(none.stdout, /no records match "zzz"/);
  });

  test('list, delete, databases and tables', async () => {
    await micro(['write', 'a1', '1', '--table', 'letters']);
    await micro(['write', 'a2', '2', '--table', 'letters']);
    await micro(['write', 'b1', '3', '--table', 'letters']);
    await micro(['write', 'x', '1', '--database', 'other', '--table', 't']);
    assert.equal((await micro(['list', '--table', 'letters'])).stdout, 'a1\na2\nb1\n');
    assert.equal((await micro(['list', '--table', 'letters', '--prefix', 'a', '--order', 'desc'])).stdout, 'a2\na1\n');
    assert.deepEqual(JSON.parse((await micro(['list', '--table', 'letters', '--after', 'a1', '--limit', '1', '-o', 'json'])).stdout), ['a2']);
    assert.equal((await micro(['list', '--table', 'letters', '--suffix', '1', '--offset', '1'])).stdout, 'b1\n');
    assert.match((await micro(['delete', 'a1', '--table', 'letters'])).stdout, /deleted a1 in micro\/letters/);
    assert.equal((await micro(['list', '--table', 'letters'])).stdout, 'a2\nb1\n');
    assert.equal((await micro(['databases'])).stdout, 'micro\nother\n');
    assert.deepEqual(JSON.parse((await micro(['tables', '--database', 'other', '-o', 'json'])).stdout), ['t']);
    assert.match((await micro(['list', '--table', 'empty'])).stdout, /no keys in micro\/empty/);
    assert.match((await micro(['tables', '--database', 'none'])).stdout, /no tables in database none/);
  });

  test('bad flags and bad input are refused with a message naming what is wrong', async () => {
    const cases: [string[], RegExp][] = [
      [['write', 'k', 'v', '--ttl', 'soon'], /--ttl must be a duration/],
      [['write', 'k', 'v', '--metadata', 'novalue'], /--metadata takes key=value/],
      [['list', '--limit', '0'], /--limit must be a whole number from 1 to 1000/],
      [['list', '--offset', 'x'], /--offset/],
      [['read', 'k', '--prefix', '--order', 'sideways'], /--order must be asc or desc/],
      [['write', 'k'.repeat(2000), 'v'], /key must be at most 1024 bytes/],
      [['write', 'k', 'v', '--table', '../etc'], /table/],
      [['list', '--database', 'a b'], /database/],
      [['write', 'k', 'v', '--metadata', '__proto__=x'], /__proto__/],
      [['list', '-o', 'yaml'], /--output must be json or text/],
    ];
    for (const [args, message] of cases) {
      const r = await micro(args);
      assert.equal(r.code, 1, `${args.join(' ')} fails`);
      assert.match(r.stderr, message, args.join(' '));
    }
    const missing = await micro(['write', 'k']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /missing required argument 'value'/);
  });

  test('another namespace: admins may, other accounts get a 403 that says what to do', async () => {
    assert.equal((await micro(['write', 'k', 'theirs', '--namespace', 'tenant'])).code, 0);
    assert.equal((await micro(['read', 'k', '--namespace', 'tenant'])).stdout, 'theirs\n');
    // an account of namespace tenant, logged in to the local environment
    const other = mkdtempSync(join(tmpdir(), 'micro-cli-store-user-'));
    try {
      mkdirSync(join(other, 'server'), { recursive: true });
      mkdirSync(join(other, 'credentials'), { recursive: true });
      writeFileSync(join(other, 'server', 'server.json'), JSON.stringify({ address: rpc.address, pid: process.pid }));
      writeFileSync(join(other, 'credentials', 'local.json'), JSON.stringify({ id: 'bob', secret: 'right', namespace: 'tenant' }));
      assert.equal((await micro(['read', 'k'], '', other)).stdout, 'theirs\n');
      const r = await micro(['read', 'k', '--namespace', 'micro'], '', other);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /forbidden: account bob of namespace tenant may not act in namespace micro — account bob may not do this; log in as another account with `micro login`/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
