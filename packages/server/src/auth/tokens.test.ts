import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeySet, MicroError, type Account } from '@micro/sdk';
import { Tokens } from './tokens.js';

const alice: Account = { id: 'alice', type: 'user', issuer: 'tenant-a', scopes: ['dev'], metadata: { team: 'x' } };

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-tokens-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('tokens carry the account and expire after the TTL', async (t) => {
  await withDir(async (dir) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.parse('2030-01-01T00:00:00Z') });
    const tokens = await Tokens.load(join(dir, 'keys.json'), { ttl: 60 });
    const { token, expiresAt } = await tokens.issue(alice);
    assert.equal(expiresAt, Date.parse('2030-01-01T00:01:00Z') / 1000);
    assert.deepEqual(await tokens.verify(token), alice);
    t.mock.timers.tick(59_000);
    assert.deepEqual(await tokens.verify(token), alice);
    // past the expiry and the clock leeway
    t.mock.timers.tick(12_000);
    await assert.rejects(tokens.verify(token), (err: MicroError) => err.code === 401 && /expired/.test(err.detail));
  });
});

test('keys rotate every period; the old public key stays until its tokens expired, then leaves the JWKS', async (t) => {
  await withDir(async (dir) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.parse('2030-01-01T00:00:00Z') });
    const path = join(dir, 'keys.json');
    const tokens = await Tokens.load(path, { ttl: 7200, rotateEvery: 3_600_000 });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const first = tokens.currentKid;
    const old = (await tokens.issue(alice)).token;
    t.mock.timers.tick(3_600_000);
    const fresh = (await tokens.issue(alice)).token;
    assert.notEqual(tokens.currentKid, first, 'rotated on the first issue after the period');
    assert.deepEqual(tokens.jwks().keys.map((k) => k.kid), [first, tokens.currentKid]);
    // both verify, with the server's tokens and with the JWKS a service fetches
    const jwks = new KeySet(tokens.jwks());
    assert.equal(jwks.verify(old).sub, 'alice');
    assert.equal(jwks.verify(fresh).sub, 'alice');
    assert.deepEqual(await tokens.verify(old), alice);
    // the private half of the retired key is gone from the file
    const file = JSON.parse(readFileSync(path, 'utf8')) as { keys: { kid: string; privateJwk?: unknown }[] };
    assert.deepEqual(file.keys.map((k) => [k.kid, k.privateJwk !== undefined]), [[first, false], [tokens.currentKid, true]]);
    // once every token of the old key has expired, the key leaves the JWKS
    t.mock.timers.tick(7_300_000);
    assert.deepEqual(tokens.jwks().keys.map((k) => k.kid), [tokens.currentKid]);
    // a restart keeps the ring
    const again = await Tokens.load(path, { ttl: 7200, rotateEvery: 3_600_000 });
    assert.equal(again.currentKid, tokens.currentKid);
    assert.deepEqual(await again.verify((await again.issue(alice)).token), alice);
  });
});

test('on-demand rotation; a key file of the old format or of garbage is replaced by a new ring', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'keys.json');
    writeFileSync(path, JSON.stringify({ kid: 'old', privateJwk: {}, publicJwk: {} }));
    const tokens = await Tokens.load(path);
    assert.notEqual(tokens.currentKid, 'old');
    const before = tokens.currentKid;
    const kid = tokens.rotate();
    assert.equal(tokens.currentKid, kid);
    assert.deepEqual(tokens.jwks().keys.map((k) => k.kid), [before, kid]);
    writeFileSync(path, 'not json');
    assert.ok((await Tokens.load(path)).currentKid);
  });
});
