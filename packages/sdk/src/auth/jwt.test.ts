import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { KeySet, signJwt, TokenError, type AccessClaims, type PublicJwk } from './jwt.js';

function keyPair(kid: string): { kid: string; privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']; jwk: PublicJwk } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const { x } = publicKey.export({ format: 'jwk' }) as { x: string };
  return { kid, privateKey, jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' } };
}

const now = Math.floor(Date.now() / 1000);
const claims: AccessClaims = { sub: 'alice', iss: 'tenant-a', iat: now, exp: now + 900, jti: 'j1', typ: 'user', scopes: ['dev'] };
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TokenError, String(err));
    assert.equal(err.code, 401);
    return err.problem;
  }
  assert.fail('the token was accepted');
}

test('a token signed by a key of the set verifies and gives its claims', () => {
  const k = keyPair('k1');
  const keys = new KeySet({ keys: [k.jwk] });
  const token = signJwt({ ...claims, md: { team: 'x' } }, k);
  assert.deepEqual(keys.verify(token), { ...claims, md: { team: 'x' } });
});

test('forged, tampered, alg none, HMAC-confused, expired and malformed tokens are refused, each saying why', () => {
  const k = keyPair('k1');
  const other = keyPair('k1'); // same kid, another key: a forger's
  const keys = new KeySet({ keys: [k.jwk] });
  const good = signJwt(claims, k);
  const [h, p, s] = good.split('.') as [string, string, string];

  assert.equal(problem(() => keys.verify(signJwt(claims, other))), 'signature');
  assert.equal(problem(() => keys.verify(signJwt(claims, keyPair('k9')))), 'unknown-key');
  // the payload changed after signing (more scopes)
  assert.equal(problem(() => keys.verify(`${h}.${b64({ ...claims, scopes: ['admin'] })}.${s}`)), 'signature');
  assert.equal(problem(() => keys.verify(`${h}.${b64({ ...claims, iss: 'micro' })}.${s}`)), 'signature');
  // alg none, with and without a signature
  const none = b64({ alg: 'none', kid: 'k1' });
  assert.equal(problem(() => keys.verify(`${none}.${p}.`)), 'algorithm');
  assert.equal(problem(() => keys.verify(`${none}.${p}.${s}`)), 'algorithm');
  // HS256 keyed with the public key (the classic confusion)
  const hs = b64({ alg: 'HS256', kid: 'k1' });
  const mac = createHmac('sha256', k.jwk.x).update(`${hs}.${p}`).digest('base64url');
  assert.equal(problem(() => keys.verify(`${hs}.${p}.${mac}`)), 'algorithm');
  // expired (beyond the leeway), issued in the future, claims missing
  assert.equal(problem(() => keys.verify(signJwt({ ...claims, iat: now - 4000, exp: now - 60 }, k))), 'expired');
  assert.match((() => { try { keys.verify(signJwt({ ...claims, exp: now - 60 }, k)); } catch (err) { return (err as Error).message; } return ''; })(), /token expired at/);
  assert.equal(problem(() => keys.verify(signJwt({ ...claims, iat: now + 3600, exp: now + 7200 }, k))), 'not-yet-valid');
  assert.equal(problem(() => keys.verify(signJwt({ ...claims, sub: undefined } as unknown as AccessClaims, k))), 'claims');
  for (const bad of ['', 'abc', 'a.b', 'a.b.c.d', `${h}.${p}`, `!!.${p}.${s}`, 'x'.repeat(20_000)]) {
    assert.equal(problem(() => keys.verify(bad)), 'malformed', bad.slice(0, 20));
  }
});

test('any change of any byte of a token makes it invalid', () => {
  const k = keyPair('k1');
  const keys = new KeySet({ keys: [k.jwk] });
  const token = signJwt(claims, k);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
  fc.assert(
    fc.property(fc.nat({ max: token.length - 1 }), fc.constantFrom(...alphabet), (i, c) => {
      fc.pre(token[i] !== c);
      const changed = token.slice(0, i) + c + token.slice(i + 1);
      // the last character of a base64url part may carry unused bits: decoding can ignore them
      let accepted = false;
      try {
        keys.verify(changed);
        accepted = true;
      } catch (err) {
        assert.ok(err instanceof TokenError);
      }
      if (accepted) assert.deepEqual(Buffer.from(changed.split('.')[2] ?? '', 'base64url'), Buffer.from(token.split('.')[2] ?? '', 'base64url'));
    }),
    { numRuns: 300 },
  );
});

test('a key set skips keys it cannot use', () => {
  const k = keyPair('k1');
  const keys = new KeySet({ keys: [{ kty: 'RSA', kid: 'r' }, { kty: 'OKP', crv: 'Ed25519', kid: 'bad', x: '!!' }, null, k.jwk] });
  assert.equal(keys.size, 1);
  assert.ok(keys.has('k1'));
});

test('audience: the server takes general tokens only, a service only tokens scoped to it', () => {
  const k = keyPair('k1');
  const keys = new KeySet({ keys: [k.jwk] });
  const general = signJwt(claims, k);
  const scoped = signJwt({ ...claims, aud: 'acme/greeter' }, k);
  // the server (no audience) and a service
  assert.equal(keys.verify(general).sub, 'alice');
  assert.equal(problem(() => keys.verify(scoped)), 'audience');
  assert.deepEqual(keys.verify(scoped, 'greeter', now, 'acme/greeter'), { ...claims, aud: 'acme/greeter' });
  assert.equal(problem(() => keys.verify(general, 'greeter', now, 'acme/greeter')), 'audience');
  // another service, or the same name in another namespace
  assert.equal(problem(() => keys.verify(scoped, 'evil', now, 'acme/evil')), 'audience');
  assert.equal(problem(() => keys.verify(scoped, 'greeter', now, 'globex/greeter')), 'audience');
  // an aud that is not a string is malformed, whoever checks
  const odd = signJwt({ ...claims, aud: ['acme/greeter'] } as unknown as AccessClaims, k);
  assert.equal(problem(() => keys.verify(odd, 'greeter', now, 'acme/greeter')), 'claims');
  assert.equal(problem(() => keys.verify(odd)), 'claims');
});
