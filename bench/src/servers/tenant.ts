/**
 * What the child servers with a tenant share: the tenant made through the gateway's own
 * API, as a user would.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_LIMIT } from '@micro/server/engine';

export type GatewayCall = <T>(path: string, body: unknown, token?: string) => Promise<T>;

/** POSTs to the gateway at `url`; anything but a 200 stops the child with what it answered. */
export function gatewayCall(url: string): GatewayCall {
  return async <T>(path: string, body: unknown, token?: string): Promise<T> => {
    const res = await fetch(new URL(path, url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${path} answered ${res.status} ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  };
}

/**
 * Tenant `namespace` of the server in `home`, its gateway at `url`: the staff (the server's
 * admin) make it with its owner (`auth.CreateAccount`, scope admin) and raise its
 * `requestsPerSecond` and `requestsPerMonth` quotas to the largest limit (`quota.Set`: both
 * checks still run on every call); the owner logs in and makes an API key
 * (`auth.CreateKey`). Returns the key, an access token of the admin and the caller.
 */
export async function benchTenant(url: string, home: string, namespace: string): Promise<{ key: string; admin: string; call: GatewayCall }> {
  const call = gatewayCall(url);
  const creds = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const { token: admin } = await call<{ token: string }>('/v1/auth/Token', { ...creds, namespace: 'micro' });
  const secret = 'bench-owner-password-1';
  await call('/v1/auth/CreateAccount', { id: 'owner', namespace, secret, scopes: ['admin'] }, admin);
  // before the tenant's first call: the gateway keeps a namespace's limits for 5 s once it has read them
  await call('/v1/quota/Set', { namespace, limits: { requestsPerSecond: MAX_LIMIT, requestsPerMonth: MAX_LIMIT } }, admin);
  const { token: owner } = await call<{ token: string }>('/v1/auth/Login', { id: 'owner', password: secret, namespace });
  const { key } = await call<{ key: string }>('/v1/auth/CreateKey', { name: 'bench', namespace }, owner);
  return { key, admin, call };
}
