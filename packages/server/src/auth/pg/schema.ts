import type { Migration } from '../../postgres/index.js';

/**
 * The tables of auth in the platform's schema (`MICRO_PREFIX`), the same as the SQLite
 * ones of ../db.ts plus what several nodes need: the node that handed out an instance
 * secret or an admin secret (`node`), and the signing keys (private halves sealed).
 * Times are ms since the epoch (bigint; node-postgres hands them back as strings).
 * Ordering by id uses COLLATE "C" (bytes), as SQLite does.
 */
export const AUTH_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'auth: accounts, secrets, API keys, refresh tokens, rules, signing keys',
    up: `
CREATE TABLE auth_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE auth_namespaces (name text PRIMARY KEY, created_at bigint NOT NULL);
CREATE TABLE auth_accounts (
  namespace text NOT NULL,
  id text COLLATE "C" NOT NULL,
  type text NOT NULL,
  scopes text NOT NULL,
  metadata text NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (namespace, id)
);
CREATE TABLE auth_secrets (
  seq bigserial PRIMARY KEY,
  namespace text NOT NULL,
  account text COLLATE "C" NOT NULL,
  kind text NOT NULL CHECK (kind IN ('scrypt', 'hmac')),
  salt text,
  hash text NOT NULL,
  ephemeral boolean NOT NULL DEFAULT false,
  node text,
  created_at bigint NOT NULL,
  FOREIGN KEY (namespace, account) REFERENCES auth_accounts (namespace, id) ON DELETE CASCADE
);
CREATE INDEX auth_secrets_account ON auth_secrets (namespace, account);
CREATE INDEX auth_secrets_node ON auth_secrets (node) WHERE ephemeral;
CREATE TABLE auth_api_keys (
  key_id text PRIMARY KEY,
  namespace text NOT NULL,
  account text COLLATE "C" NOT NULL,
  name text NOT NULL,
  scopes text NOT NULL,
  hash text NOT NULL,
  created_at bigint NOT NULL,
  expires_at bigint,
  FOREIGN KEY (namespace, account) REFERENCES auth_accounts (namespace, id) ON DELETE CASCADE
);
CREATE INDEX auth_api_keys_account ON auth_api_keys (namespace, account);
CREATE TABLE auth_refresh_tokens (
  hash text PRIMARY KEY,
  family text NOT NULL,
  namespace text NOT NULL,
  account text COLLATE "C" NOT NULL,
  used_at bigint,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  FOREIGN KEY (namespace, account) REFERENCES auth_accounts (namespace, id) ON DELETE CASCADE
);
CREATE INDEX auth_refresh_family ON auth_refresh_tokens (family);
CREATE INDEX auth_refresh_account ON auth_refresh_tokens (namespace, account);
CREATE INDEX auth_refresh_expires ON auth_refresh_tokens (expires_at);
CREATE TABLE auth_rules (
  namespace text NOT NULL,
  id text NOT NULL,
  resource text NOT NULL,
  scope text NOT NULL,
  access text NOT NULL CHECK (access IN ('granted', 'denied')),
  priority integer NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (namespace, id)
);
CREATE TABLE auth_signing_keys (
  kid text PRIMARY KEY,
  created_at bigint NOT NULL,
  private_sealed text,
  public_jwk text NOT NULL,
  retired_at bigint
);
`,
  },
  {
    version: 2,
    description: 'auth: the revocation list (entries live as long as the tokens they can match)',
    up: `
CREATE TABLE auth_revocations (
  kind text NOT NULL CHECK (kind IN ('account', 'session', 'token')),
  id text NOT NULL,
  before bigint NOT NULL,
  PRIMARY KEY (kind, id)
);
CREATE INDEX auth_revocations_before ON auth_revocations (before);
`,
  },
  {
    version: 3,
    description: 'auth: accounts can be disabled',
    up: `ALTER TABLE auth_accounts ADD COLUMN disabled boolean NOT NULL DEFAULT false;`,
  },
  {
    version: 4,
    description: 'auth: API keys have a description, the services they may call, their last use, and blocks',
    up: `
ALTER TABLE auth_api_keys ADD COLUMN description text NOT NULL DEFAULT '';
ALTER TABLE auth_api_keys ADD COLUMN services text NOT NULL DEFAULT '["*"]';
ALTER TABLE auth_api_keys ADD COLUMN last_used_at bigint;
ALTER TABLE auth_api_keys ADD COLUMN blocked_at bigint;
ALTER TABLE auth_api_keys ADD COLUMN block_message text;
`,
  },
];
