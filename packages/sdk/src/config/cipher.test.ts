import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { MicroError } from '../errors/errors.js';
import { ConfigCipher, isSecretMarker, parseConfigKey } from './cipher.js';

const json = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as never);

test('property: what is sealed opens to the same value, and the marker holds no plaintext', () => {
  const cipher = ConfigCipher.random();
  fc.assert(
    fc.property(json, fc.string({ minLength: 1, maxLength: 20 }), (value, path) => {
      const marker = cipher.seal(value, 'ns', path);
      assert.ok(isSecretMarker(marker));
      assert.deepStrictEqual(cipher.open(marker, 'ns', path), value);
      const text = JSON.stringify(value);
      if (text.length >= 6) assert.equal(marker.$secret.includes(text), false);
    }),
    { numRuns: 300 },
  );
});

test('every seal has its own IV: the same value seals differently each time', () => {
  const cipher = ConfigCipher.random();
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) seen.add(cipher.seal('same', 'ns', 'p').$secret);
  assert.equal(seen.size, 100);
});

test('a marker opens only with its key, in its namespace, at its path, unchanged', () => {
  const key = randomBytes(32);
  const cipher = new ConfigCipher(key, 'MICRO_CONFIG_SECRET_KEY');
  const marker = cipher.seal({ user: 'u', pass: 'p' }, 'ns', 'db.creds');
  const refused = (f: () => unknown) =>
    assert.throws(f, (err: unknown) => err instanceof MicroError && err.code === 500 && /cannot be decrypted: it was encrypted with another key than MICRO_CONFIG_SECRET_KEY, or changed on disk/.test(err.detail));
  refused(() => new ConfigCipher(randomBytes(32), 'MICRO_CONFIG_SECRET_KEY').open(marker, 'ns', 'db.creds'));
  refused(() => cipher.open(marker, 'other', 'db.creds'));
  refused(() => cipher.open(marker, 'ns', 'db.other'));
  const raw = Buffer.from(marker.$secret, 'base64');
  for (const i of [0, 11, 12, raw.length - 17, raw.length - 1]) {
    const bad = Buffer.from(raw);
    bad[i] = (bad[i] as number) ^ 0x80;
    refused(() => cipher.open({ $secret: bad.toString('base64') }, 'ns', 'db.creds'));
  }
  refused(() => cipher.open({ $secret: '' }, 'ns', 'db.creds'));
  refused(() => cipher.open({ $secret: 'not base64 at all !!' }, 'ns', 'db.creds'));
  assert.deepEqual(new ConfigCipher(key).open(marker, 'ns', 'db.creds'), { user: 'u', pass: 'p' });
  assert.equal(new ConfigCipher(key).fingerprint, cipher.fingerprint);
  assert.notEqual(ConfigCipher.random().fingerprint, cipher.fingerprint);
  assert.equal(cipher.fingerprint.includes(key.toString('hex').slice(0, 8)), false);
});

test('keys: 32 bytes as hex or base64; anything else is refused with what is wrong', () => {
  const key = randomBytes(32);
  assert.deepEqual(parseConfigKey(key.toString('hex'), 'K'), key);
  assert.deepEqual(parseConfigKey(key.toString('hex').toUpperCase(), 'K'), key);
  assert.deepEqual(parseConfigKey(key.toString('base64'), 'K'), key);
  assert.deepEqual(parseConfigKey(key.toString('base64url'), 'K'), key);
  assert.throws(() => parseConfigKey(randomBytes(31).toString('hex'), 'K'), /K must be a 32-byte key .* it is 31 bytes/);
  assert.throws(() => parseConfigKey('', 'K'), /it is neither/);
  assert.throws(() => new ConfigCipher(randomBytes(16)), /must be 32 bytes, not 16/);
  fc.assert(
    fc.property(fc.string({ maxLength: 100 }), (text) => {
      try {
        assert.equal(parseConfigKey(text, 'K').length, 32);
      } catch (err) {
        assert.ok(err instanceof Error && /^K must be a 32-byte key/.test(err.message), String(err));
      }
    }),
    { numRuns: 1000 },
  );
});
