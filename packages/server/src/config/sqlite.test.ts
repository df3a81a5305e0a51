import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { MicroError } from '@micro/sdk';
import { ConfigCipher, SECRET_MASK } from '@micro/sdk';
import { configContract } from '@micro/sdk/testing';
import { SqliteConfig } from './sqlite.js';
import { CONFIG_KEY_ENV, configKeyPath, loadConfigKey } from './key.js';
import { configCoreService } from './index.js';
import { silent, tempDir } from './testing.js';
import type { CoreContext } from '../core.js';

const root = tempDir('micro-config-sqlite-');
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const newPath = () => join(root, `config-${files++}.db`);

configContract('sqlite', async () => {
  const impl = new SqliteConfig({ path: newPath(), cipher: ConfigCipher.random() });
  return { impl, close: () => impl.close() };
});

/** Every byte of the database and its WAL (where a fresh commit lives before a checkpoint). */
function bytesOf(path: string): Buffer {
  return Buffer.concat([path, `${path}-wal`, `${path}-journal`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));
}

describe('config in SQLite', () => {
  test('what was set is there after a reopen, with its version', async () => {
    const path = newPath();
    const cipher = ConfigCipher.random();
    const a = new SqliteConfig({ path, cipher });
    await a.set('db', { host: 'h', port: 1 }, { namespace: 'ns' });
    await a.set('db.password', 'pw', { namespace: 'ns', secret: true });
    await a.close();
    const b = new SqliteConfig({ path, cipher });
    assert.deepEqual(await b.get('', { namespace: 'ns' }), { db: { host: 'h', port: 1, password: SECRET_MASK } });
    assert.equal(await b.get('db.password', { namespace: 'ns', secrets: true }), 'pw');
    const w = b.watch('', { namespace: 'ns' });
    assert.equal((await w[Symbol.asyncIterator]().next()).value?.version, 2);
    w.stop();
    await b.close();
  });

  test('the file and its WAL never hold a secret in clear, while open and after', async () => {
    const path = newPath();
    const plain = `plaintext-${randomBytes(8).toString('hex')}`;
    const inObject = `nested-${randomBytes(8).toString('hex')}`;
    const c = new SqliteConfig({ path, cipher: ConfigCipher.random() });
    await c.set('db.password', plain, { namespace: 'ns', secret: true });
    await c.set('creds', { user: 'u', token: inObject }, { namespace: 'ns', secret: true });
    // written over without `secret`: it stays sealed
    await c.set('db', { password: `${plain}-2` }, { namespace: 'ns' });
    await c.set('creds.token', `${inObject}-2`, { namespace: 'ns' });
    assert.equal(await c.get('db.password', { namespace: 'ns', secrets: true }), `${plain}-2`);
    assert.ok(existsSync(`${path}-wal`), 'the commits are in the WAL');
    for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is private`);
    for (const needle of [plain, inObject, Buffer.from(plain).toString('base64')]) {
      assert.equal(bytesOf(path).includes(needle), false, `${needle} is in the database files`);
    }
    assert.ok(bytesOf(path).includes('$secret'), 'the markers are there');
    await c.close();
    for (const needle of [plain, inObject]) assert.equal(bytesOf(path).includes(needle), false);
  });

  test('opened with another key while secrets are stored: refused with a clear error; the right key still works', async () => {
    const path = newPath();
    const key = randomBytes(32);
    const a = new SqliteConfig({ path, cipher: new ConfigCipher(key, 'MICRO_CONFIG_SECRET_KEY') });
    await a.set('s', 'v', { namespace: 'ns', secret: true });
    await a.close();
    assert.throws(
      () => new SqliteConfig({ path, cipher: new ConfigCipher(randomBytes(32), 'MICRO_CONFIG_SECRET_KEY') }),
      /config secrets in .* were encrypted with another key than MICRO_CONFIG_SECRET_KEY .*start micro server with the key they were encrypted with/,
    );
    const b = new SqliteConfig({ path, cipher: new ConfigCipher(key) });
    assert.equal(await b.get('s', { namespace: 'ns', secrets: true }), 'v');
    await b.close();
  });

  test('without secrets stored, a new key is simply adopted', async () => {
    const path = newPath();
    const a = new SqliteConfig({ path, cipher: ConfigCipher.random() });
    await a.set('plain', 1, { namespace: 'ns' });
    await a.close();
    const key = ConfigCipher.random();
    const b = new SqliteConfig({ path, cipher: key });
    await b.set('s', 'v', { namespace: 'ns', secret: true });
    await b.close();
    const c = new SqliteConfig({ path, cipher: key });
    assert.equal(await c.get('s', { namespace: 'ns', secrets: true }), 'v');
    await c.close();
  });

  test('a secret changed on disk is an error that says so, never garbage; masked reads still work', async () => {
    const path = newPath();
    const cipher = ConfigCipher.random();
    const c = new SqliteConfig({ path, cipher });
    await c.set('a.s', 'value', { namespace: 'ns', secret: true });
    await c.set('a.plain', 1, { namespace: 'ns' });
    await c.close();
    const db = new Database(path);
    const row = db.prepare<[], { document: string }>("SELECT document FROM documents WHERE namespace = 'ns'").get() as { document: string };
    const doc = JSON.parse(row.document) as { a: { s: { $secret: string } } };
    const raw = Buffer.from(doc.a.s.$secret, 'base64');
    raw[14] = (raw[14] as number) ^ 1;
    doc.a.s.$secret = raw.toString('base64');
    db.prepare("UPDATE documents SET document = ?, version = version + 1 WHERE namespace = 'ns'").run(JSON.stringify(doc));
    db.close();
    const d = new SqliteConfig({ path, cipher });
    assert.deepEqual(await d.get('a', { namespace: 'ns' }), { s: SECRET_MASK, plain: 1 });
    await assert.rejects(d.get('a.s', { namespace: 'ns', secrets: true }), (err: unknown) => {
      assert.ok(err instanceof MicroError);
      assert.equal(err.code, 500);
      assert.match(err.detail, /the secret at "a\.s" of namespace ns cannot be decrypted: it was encrypted with another key .* or changed on disk/);
      return true;
    });
    await d.close();
  });

  test('a document that is not JSON any more is a clear error, not a crash', async () => {
    const path = newPath();
    const c = new SqliteConfig({ path, cipher: ConfigCipher.random() });
    await c.set('a', 1, { namespace: 'ns' });
    await c.close();
    const db = new Database(path);
    db.prepare("UPDATE documents SET document = '{broken', version = 9 WHERE namespace = 'ns'").run();
    db.close();
    const d = new SqliteConfig({ path, cipher: ConfigCipher.random() });
    await assert.rejects(d.get('a', { namespace: 'ns' }), /not valid JSON/);
    await assert.rejects(d.set('b', 1, { namespace: 'ns' }), /not valid JSON/);
    assert.equal(await d.get('a', { namespace: 'other' }), undefined, 'other namespaces are unaffected');
    await d.close();
  });

  test('a file of a newer schema is refused', async () => {
    const path = newPath();
    new SqliteConfig({ path, cipher: ConfigCipher.random() }).close();
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
    db.close();
    assert.throws(() => new SqliteConfig({ path, cipher: ConfigCipher.random() }), /schema version 99, newer than this micro server knows \(1\)/);
  });

  test('refused writes leave the stored row as it was (same bytes, same version)', async () => {
    const path = newPath();
    const c = new SqliteConfig({ path, cipher: ConfigCipher.random() });
    await c.set('list', [1, 2], { namespace: 'ns' });
    await c.set('big', 'x'.repeat(200_000), { namespace: 'ns' });
    const snapshot = () => new Database(path, { readonly: true }).prepare<[], { document: string; version: number }>("SELECT document, version FROM documents WHERE namespace = 'ns'").get();
    const before = snapshot();
    const attempts: Promise<unknown>[] = [
      c.set('list.0', 3, { namespace: 'ns' }),
      c.set('a..b', 1, { namespace: 'ns' }),
      c.set('x', { 'a.b': 1 }, { namespace: 'ns' }),
      ...Array.from({ length: 5 }, (_, i) => c.set(`more${i}`, 'y'.repeat(250_000), { namespace: 'ns' })),
      c.delete('list.0', { namespace: 'ns' }),
    ];
    const results = await Promise.allSettled(attempts);
    const fulfilled = results.filter((r) => r.status === 'fulfilled').length;
    // three 250 KB values fit beside the 200 KB one, the rest is refused
    assert.equal(fulfilled, 3);
    const after = snapshot();
    assert.ok(after && before);
    assert.equal(after.version, before.version + 3);
    const doc = JSON.parse(after.document) as Record<string, unknown>;
    assert.deepEqual(doc.list, [1, 2]);
    assert.equal(Object.keys(doc).length, 5);
    await c.close();
  });

  test('acknowledged means durable: a kill -9 right after a set loses nothing', async () => {
    const path = newPath();
    const key = randomBytes(32).toString('hex');
    const module = pathToFileURL(join(import.meta.dirname, 'sqlite.js')).href;
    const sdk = import.meta.resolve('@micro/sdk');
    const script = `
      const { SqliteConfig } = await import(${JSON.stringify(module)});
      const { ConfigCipher } = await import(${JSON.stringify(sdk)});
      const c = new SqliteConfig({ path: ${JSON.stringify(path)}, cipher: new ConfigCipher(Buffer.from(${JSON.stringify(key)}, 'hex')) });
      for (let i = 0; ; i++) {
        await c.set('n' + i, { i, pad: 'x'.repeat(1000) }, { namespace: 'ns', secret: i % 2 === 0 });
        process.stdout.write('ack ' + i + '\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let acked = -1;
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        for (const m of d.toString().matchAll(/ack (\d+)/g)) acked = Number(m[1]);
        // killed while it writes, after a good number of acknowledged sets
        if (acked >= 40) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      void exited.then((code) => (acked >= 40 ? resolve() : reject(new Error(`the writer exited (${code}) early: ${err}`))));
    });
    await exited;
    const c = new SqliteConfig({ path, cipher: new ConfigCipher(Buffer.from(key, 'hex')) });
    for (let i = 0; i <= acked; i++) {
      assert.deepEqual(await c.get(`n${i}.i`, { namespace: 'ns', secrets: true }), i, `set ${i} was acknowledged`);
    }
    await c.close();
  });
});

describe('the key of config secrets', () => {
  test('from MICRO_CONFIG_SECRET_KEY as hex or base64', () => {
    const home = tempDir('micro-config-key-');
    const key = randomBytes(32);
    assert.deepEqual(loadConfigKey(home, { [CONFIG_KEY_ENV]: key.toString('hex') }).key, key);
    assert.deepEqual(loadConfigKey(home, { [CONFIG_KEY_ENV]: key.toString('base64') }).key, key);
    assert.deepEqual(loadConfigKey(home, { [CONFIG_KEY_ENV]: ` ${key.toString('base64url')}\n` }).key, key);
    assert.equal(existsSync(configKeyPath(home)), false, 'no file is made when the variable is set');
    rmSync(home, { recursive: true, force: true });
  });

  test('a key of the wrong length or form is refused with a message naming the variable', () => {
    const home = tempDir('micro-config-key-');
    for (const [value, says] of [
      [randomBytes(16).toString('hex'), /MICRO_CONFIG_SECRET_KEY must be a 32-byte key .* it is 16 bytes/],
      [randomBytes(33).toString('base64'), /it is 33 bytes/],
      ['not a key!', /it is neither/],
    ] as const) {
      assert.throws(() => loadConfigKey(home, { [CONFIG_KEY_ENV]: value }), says);
    }
    rmSync(home, { recursive: true, force: true });
  });

  test('made once into <home>/server/config-secret.key (0600), then reused; a loose file is tightened', () => {
    const home = tempDir('micro-config-key-');
    const first = loadConfigKey(home, {});
    assert.equal(first.generated, true);
    const path = configKeyPath(home);
    assert.equal(first.source, path);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const again = loadConfigKey(home, {});
    assert.equal(again.generated, false);
    assert.deepEqual(again.key, first.key);
    rmSync(path);
    writeFileSync(path, first.key.toString('hex'), { mode: 0o644 });
    loadConfigKey(home, {});
    assert.equal(statSync(path).mode & 0o777, 0o600);
    writeFileSync(path, 'short');
    assert.throws(() => loadConfigKey(home, {}), new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} must be a 32-byte key`));
    rmSync(home, { recursive: true, force: true });
  });

  test('the factory opens <dataDir>/config.db, and refuses to start with a key of the wrong length', async () => {
    const home = tempDir('micro-config-factory-');
    const ctx = { home, dataDir: home, logger: silent } as unknown as CoreContext;
    const previous = process.env[CONFIG_KEY_ENV];
    try {
      delete process.env[CONFIG_KEY_ENV];
      const cs = await configCoreService(ctx);
      assert.equal(cs.def.name, 'config');
      assert.ok(existsSync(join(home, 'config.db')));
      assert.ok(existsSync(configKeyPath(home)));
      await cs.stop?.();
      process.env[CONFIG_KEY_ENV] = 'abcd';
      assert.throws(() => configCoreService(ctx), /MICRO_CONFIG_SECRET_KEY must be a 32-byte key/);
    } finally {
      if (previous === undefined) delete process.env[CONFIG_KEY_ENV];
      else process.env[CONFIG_KEY_ENV] = previous;
      rmSync(home, { recursive: true, force: true });
    }
  });
});
