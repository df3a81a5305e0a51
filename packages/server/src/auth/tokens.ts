import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { readJson, writeJsonDurable, errors, type Account } from '@micro/sdk';

/**
 * Access tokens: JWTs signed with the server's Ed25519 key, valid for an hour. The key
 * pair is made on first start and kept in <home>/server/jwt-keys.json (0600); the
 * public key is what any node needs to check a token.
 */
const ALG = 'EdDSA';
const TOKEN_TTL = 3600;
type Key = Awaited<ReturnType<typeof importJWK>>;

interface KeysFile {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export class Tokens {
  private readonly cache = new Map<string, { account: Account; exp: number }>();

  private constructor(
    private readonly kid: string,
    private readonly privateKey: Key,
    private readonly publicKey: Key,
  ) {}

  static async load(path: string): Promise<Tokens> {
    let file = readJson<KeysFile>(path);
    if (!file) {
      const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true, crv: 'Ed25519' });
      file = { kid: `k${Date.now().toString(36)}`, privateJwk: await exportJWK(privateKey), publicJwk: await exportJWK(publicKey) };
      writeJsonDurable(path, file);
    }
    return new Tokens(file.kid, await importJWK(file.privateJwk, ALG), await importJWK(file.publicJwk, ALG));
  }

  async issue(account: Account): Promise<{ token: string; expiresAt: number }> {
    const expiresAt = Math.floor(Date.now() / 1000) + TOKEN_TTL;
    const token = await new SignJWT({ typ: account.type, scopes: account.scopes })
      .setProtectedHeader({ alg: ALG, kid: this.kid })
      .setSubject(account.id)
      .setIssuer(account.issuer)
      .setIssuedAt()
      .setExpirationTime(expiresAt)
      .sign(this.privateKey);
    return { token, expiresAt };
  }

  /** The account a token speaks for; a 401 for a token that is forged, expired or malformed. */
  async verify(token: string): Promise<Account> {
    const now = Date.now() / 1000;
    const hit = this.cache.get(token);
    if (hit && hit.exp > now) return hit.account;
    try {
      const { payload } = await jwtVerify(token, this.publicKey, { algorithms: [ALG] });
      const account: Account = {
        id: String(payload.sub),
        type: String(payload.typ ?? 'user'),
        issuer: String(payload.iss),
        scopes: Array.isArray(payload.scopes) ? payload.scopes.map(String) : [],
      };
      if (this.cache.size >= 1000) this.cache.clear();
      this.cache.set(token, { account, exp: Number(payload.exp) });
      return account;
    } catch (err) {
      throw errors.Unauthorized('auth', `invalid token: ${(err as { code?: string }).code ?? 'rejected'}`);
    }
  }
}
