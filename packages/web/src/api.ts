/**
 * The gateway's public HTTP API, with the user's token. The token lives in memory and in
 * sessionStorage (gone when the tab closes); nothing else is stored.
 */

export interface Session {
  token: string;
  account: { id: string; type?: string; issuer?: string; scopes?: string[] };
  expiresAt: number;
  /** a customer's login (signup.Login): the email and its namespaces, for switching namespace */
  email?: string;
  namespaces?: string[];
}

/** What signup.Login and signup.CompleteSignup answer (the refresh token is not kept). */
export interface SignupSession {
  token: string;
  expiresAt: number;
  account: { id: string; issuer: string; scopes: string[] };
  namespace: string;
  namespaces: string[];
}

export interface ApiError {
  id: string;
  code: number;
  detail: string;
  status: string;
}

const KEY = 'micro.session';
let session: Session | undefined = load();
const listeners = new Set<(s: Session | undefined) => void>();

function load(): Session | undefined {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Session | null;
    return s && typeof s.token === 'string' && s.expiresAt * 1000 > Date.now() ? s : undefined;
  } catch {
    return undefined;
  }
}

export function currentSession(): Session | undefined {
  return session;
}

export function onSession(fn: (s: Session | undefined) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function setSession(s: Session | undefined): void {
  session = s;
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(s);
}

/** Forgets the session here and ends it at the server (its token stops working everywhere at once). */
export function logout(): void {
  const token = session?.token;
  setSession(undefined);
  if (token) void fetch(endpointPath('auth', 'Logout'), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{}' }).catch(() => undefined);
}

/** An error of the API as thrown by call(): the gateway's JSON error. */
export class CallError extends Error {
  constructor(readonly error: ApiError) {
    super(`${error.code} ${error.status}: ${error.detail}`);
  }
}

async function errorOf(res: Response): Promise<CallError> {
  const text = await res.text();
  try {
    const e = JSON.parse(text) as ApiError;
    if (e && typeof e.detail === 'string') return new CallError(e);
  } catch {
    // not JSON: described below
  }
  return new CallError({ id: 'dashboard', code: res.status, detail: text.slice(0, 500) || res.statusText, status: res.statusText });
}

/** `Handler.Method` → `Handler/Method`, as the gateway routes it. */
export function endpointPath(service: string, endpoint: string): string {
  return `/v1/${encodeURIComponent(service)}/${endpoint.split('.').map(encodeURIComponent).join('/')}`;
}

export interface CallOptions {
  /**
   * The request carries a password the server checks (AcceptInvite): its 401 is about that
   * password, not the token, and leaves the session alone. default false
   */
  checksPassword?: boolean;
}

/** POST /v1/{service}/{endpoint} with the token; the answer, or a CallError. A 401 ends the session. */
export async function call<T = unknown>(service: string, endpoint: string, request: unknown = {}, options: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (session) headers.authorization = `Bearer ${session.token}`;
  const res = await fetch(endpointPath(service, endpoint), { method: 'POST', headers, body: JSON.stringify(request) });
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && session && !options.checksPassword) setSession(undefined);
    throw err;
  }
  return (await res.json()) as T;
}

/**
 * A server stream read as server-sent events (POST of the request as JSON with Accept:
 * text/event-stream: the gateway lets GET reach read-only endpoints only, and Update is
 * not one): each message to onMessage until the stream ends. onOpen once the gateway has
 * answered (the stream is open); aborting `signal` closes the connection (the gateway
 * then cancels the stream) and resolves.
 */
export async function stream(
  service: string,
  endpoint: string,
  request: Record<string, unknown>,
  onMessage: (m: unknown) => void,
  { signal, onOpen }: { signal?: AbortSignal; onOpen?: () => void } = {},
): Promise<void> {
  const headers: Record<string, string> = { accept: 'text/event-stream', 'content-type': 'application/json' };
  if (session) headers.authorization = `Bearer ${session.token}`;
  let reader: ReadableStreamDefaultReader<string> | undefined;
  try {
    const res = await fetch(endpointPath(service, endpoint), { method: 'POST', headers, body: JSON.stringify(request), signal: signal ?? null });
    if (!res.ok || !res.body) {
      const err = await errorOf(res);
      if (res.status === 401 && session) setSession(undefined);
      throw err;
    }
    reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    onOpen?.();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (event === 'end') return;
        if (event === 'error') throw new CallError(JSON.parse(data) as ApiError);
        if (data) onMessage(JSON.parse(data));
        if (signal?.aborted) return;
      }
    }
  } catch (err) {
    // closed on purpose: not an error
    if (signal?.aborted) return;
    throw err;
  } finally {
    if (reader) void reader.cancel().catch(() => undefined);
  }
}

/** Starts the session of a customer's token (signup.Login or CompleteSignup). */
export function startSignupSession(r: SignupSession, email: string): Session {
  const s: Session = { token: r.token, account: r.account, expiresAt: r.expiresAt, email, namespaces: r.namespaces };
  setSession(s);
  return s;
}

/** A customer's namespaces changed (an invite accepted): the session lists them, for Switch namespace. */
export function setSessionNamespaces(namespaces: string[]): void {
  if (session?.email) setSession({ ...session, namespaces });
}

/** auth.Token with an id and secret; the session on success. */
export async function login(id: string, secret: string, namespace: string): Promise<Session> {
  const r = await call<Session>('auth', 'Token', { id, secret, namespace: namespace || undefined });
  const s: Session = { token: r.token, account: r.account, expiresAt: r.expiresAt };
  setSession(s);
  return s;
}
