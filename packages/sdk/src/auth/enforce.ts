import { Client } from '../client/client.js';
import { createClient, type TypedClient } from '../client/typed.js';
import type { Account, CallContext, Context } from '../context/context.js';
import { Forbidden, isMicroError, ServiceUnavailable, Unauthorized } from '../errors/errors.js';
import type { Logger } from '../logger/logger.js';
import type { HandlerMiddleware } from '../service/router.js';
import { authApi, NAMESPACE_NAME, type Credentials } from './definition.js';
import { bearerToken, KeySet, tokenKid, accountOf, TokenError, type AccessClaims } from './jwt.js';
import { admitClaims, maxTokenTtlFromEnv, RevocationList, revokedError } from './revocations.js';
import { identityTokens, processIdentity, type Identity } from './process.js';
import { audienceOf, handOnIdentity, scopedBearer } from './scoped.js';
import { isPlatformAdmin, RuleSet, serviceResource, type Rule } from './rules.js';
import { TokenSource } from './token.js';

/**
 * Auth where the call is served: every service that runs against a `micro server`
 * checks each call itself — the gateway or a caller in front of it is not trusted to.
 *
 * - The caller's token is verified locally with the server's public keys (auth.Keys, a
 *   JWKS fetched once and again when a token names a key not seen yet); the result is
 *   cached per token until the token expires. Only a token scoped to this service (`aud`
 *   = `<namespace>/<name>`, see scoped.ts) is accepted: a general token, or one scoped to
 *   another service, gets a 401 — whoever holds a token this service received cannot
 *   use it anywhere else, and this service cannot use its callers' tokens either.
 * - The account must belong to the service's namespace (or be an admin of `micro`).
 * - The namespace's rules (auth.ListRules, fetched with the service's own token and
 *   refreshed every few seconds) decide, compiled once per rule set. No rule: denied —
 *   401 without credentials, 403 with.
 * - Revoked tokens are refused: the service follows the server's revocation list
 *   (auth.Revocations, a stream: the list, then each new entry, and a heartbeat every
 *   second), so a deleted account, a revoked API key or a logout stops its tokens here
 *   within a second. Without word from the server for `revocationsStaleAfter` (5 s)
 *   calls get a 503 until the stream is back: fail closed, because a service that cannot
 *   know whether a token was revoked cannot tell a good caller from one that was thrown
 *   out, and a short outage costs less than serving a deleted account. Tokens claiming
 *   a lifetime over the server's maximum (MICRO_AUTH_TOKEN_MAX_TTL) are refused too.
 * - The account is set on `ctx.account`. The caller's token is not handed on: nested
 *   calls made with `{ parent: ctx }` carry the service's own identity instead, as a
 *   token scoped to each callee (or its general token to a core service), so the callee
 *   sees which service calls it (and a user's token never leaves the first hop).
 *
 * `Debug.Health` and `Debug.Metrics` are always public.
 *
 * A public service of `micro` (ServiceDefOptions.public, see servePublic) serves every
 * namespace: an account of any namespace whose token is scoped to it (only the gateway
 * mints those for other namespaces, after applying the caller's own namespace's rules)
 * may call it, `micro`'s rules are not applied to strangers, and `ctx.tenant` is the
 * caller's namespace — for an admin of micro the `micro-tenant` it acts in (the gateway
 * sets it from the Micro-Namespace header), else `micro`. Anonymous calls get a 401.
 */

export interface ServiceAuthOptions {
  /** the server's RPC address */
  address: string;
  /** the service's account (default: its identity from the environment) */
  credentials?: Credentials | { token: string };
  /** ms between rule refreshes (default 5,000) */
  refreshInterval?: number;
  /**
   * true: a server without an auth service is an error (calls get 503). false (the
   * default for services started from the environment): such a server — a test double,
   * a server built without auth — means calls are not checked; a warning is logged.
   */
  required?: boolean;
  /** ms without a message of the revocation stream after which calls get a 503 (default 5,000) */
  revocationsStaleAfter?: number;
  logger?: Logger;
}

type State = 'unknown' | 'on' | 'off';

const HEALTH = 'Debug.Health';
/** metrics (issue 7): scraped by micro server without a token, like the health check */
const METRICS = 'Debug.Metrics';
/** one retry of a failed fetch per this many ms, so that a down server is not hammered by every call */
const RETRY_AFTER = 1_000;
const CACHE_LIMIT = 10_000;

export class ServiceAuth {
  private readonly auth: TypedClient<typeof authApi>;
  private readonly identity: Identity | undefined;
  private readonly refreshInterval: number;
  private readonly required: boolean;
  private logger: Logger | undefined;
  private namespace = '';
  private state: State = 'unknown';
  private keys: KeySet | undefined;
  private rules: RuleSet | undefined;
  private rulesVersion = '';
  /** verified tokens, with the audience they were checked against */
  private readonly verified = new Map<string, { account: Account; exp: number; aud: string; claims: AccessClaims }>();
  /** the audience of each service name served (made once, not per call) */
  private readonly audiences = new Map<string, string>();
  /** the public services served (they take accounts of every namespace when served in micro) */
  private readonly publicServices = new Set<string>();
  /** the server's revocation list, as the stream told it; 'off' for a server without one */
  private readonly revocations = new RevocationList();
  private revocationsState: 'unknown' | 'on' | 'off' = 'unknown';
  private revocationsHeardAt = 0;
  private revocationsError: unknown;
  private revocationsFollow: AbortController | undefined;
  private revocationsSynced: Promise<void> | undefined;
  private maxTtl = maxTokenTtlFromEnv(900);
  private readonly staleAfter: number;
  private keysPending: Promise<void> | undefined;
  private keysFailedAt = 0;
  private keysError: unknown;
  private rulesPending: Promise<void> | undefined;
  private rulesFailedAt = 0;
  private rulesError: unknown;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: ServiceAuthOptions) {
    this.refreshInterval = options.refreshInterval ?? 5_000;
    this.required = options.required ?? false;
    this.staleAfter = options.revocationsStaleAfter ?? 5_000;
    this.logger = options.logger;
    const creds = options.credentials;
    // the token client: auth.Token and auth.Scope
    const server = new Client({ address: options.address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: [] });
    if (creds && 'token' in creds) this.identity = { kind: 'token', token: creds.token, server };
    else if (creds) this.identity = { kind: 'source', source: new TokenSource(creds, server) };
    else this.identity = processIdentity();
    const tokens = this.identity ? identityTokens(this.identity) : undefined;
    const client = new Client({
      address: options.address,
      namespace: 'micro',
      preferLocal: false,
      timeout: 10_000,
      retries: 2,
      middleware: tokens ? [scopedBearer(tokens)] : [],
    });
    this.auth = createClient(authApi, client);
  }

  /** For a service started from the environment: on when MICRO_SERVER is set. */
  static fromEnv(logger?: Logger, required = false): ServiceAuth | undefined {
    const address = process.env.MICRO_SERVER;
    return address ? new ServiceAuth({ address, logger, required }) : undefined;
  }

  private currentState(): State {
    return this.state;
  }

  /** Serves `service` as a public service (see the class comment): a Service calls this for a definition with `public`. */
  servePublic(service: string): void {
    this.publicServices.add(service);
  }

  /** Whether calls are checked: undefined until the server has been asked. */
  get enforcing(): boolean | undefined {
    return this.state === 'unknown' ? undefined : this.state === 'on';
  }

  /** Asks the server for its keys and rules, and keeps the rules fresh. A failure here is retried on the first call. */
  async start(namespace: string, logger?: Logger): Promise<void> {
    this.namespace = namespace;
    this.logger ??= logger;
    await this.loadKeys().catch(() => undefined);
    if (this.state === 'on') {
      this.followRevocations();
      await this.loadRules().catch(() => undefined);
    }
    if (this.state !== 'off' && !this.timer && this.refreshInterval > 0) {
      this.timer = setInterval(() => {
        if (this.state === 'on') this.loadRules().catch(() => undefined);
      }, this.refreshInterval);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.revocationsFollow?.abort();
    this.revocationsFollow = undefined;
    // a start after this follows afresh (and is not current until it has heard again)
    this.revocationsSynced = undefined;
    if (this.revocationsState === 'on') this.revocationsState = 'unknown';
    this.verified.clear();
  }

  /**
   * Follows auth.Revocations until stop(): every message (entries or a heartbeat) marks
   * the list current; a lost stream is opened again after 250 ms, doubling to 1 s.
   * A server without the endpoint (404, an older server or a test double) is not
   * followed unless `required`.
   */
  private followRevocations(): Promise<void> {
    if (this.revocationsSynced) return this.revocationsSynced;
    const follow = new AbortController();
    this.revocationsFollow = follow;
    let synced!: () => void;
    this.revocationsSynced = new Promise<void>((resolve) => (synced = resolve));
    const loop = async () => {
      let delay = 250;
      while (!follow.signal.aborted) {
        try {
          for await (const msg of this.auth.Revocations({}, { signal: follow.signal })) {
            this.revocationsHeardAt = Date.now();
            this.revocationsError = undefined;
            if (this.maxTtl !== msg.maxTokenTtl) {
              this.maxTtl = msg.maxTokenTtl;
              this.revocations.keepFor = Math.max(this.revocations.keepFor, msg.maxTokenTtl + 10);
            }
            for (const r of msg.entries) this.revocations.add(r);
            this.revocationsState = 'on';
            delay = 250;
            synced();
          }
        } catch (err) {
          if (follow.signal.aborted) return;
          this.revocationsError = err;
          if (!this.required && this.revocationsState === 'unknown' && isMicroError(err) && err.code === 404) {
            this.revocationsState = 'off';
            this.logger?.warn(`the server has no revocation list (${err.detail}): revoked tokens are refused only when they expire`);
            synced();
            return;
          }
        }
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
        delay = Math.min(delay * 2, 1_000);
      }
    };
    void loop();
    return this.revocationsSynced;
  }

  /** The revocation list is current (a message within staleAfter), or a 503 that says why not. */
  private async revocationsCurrent(service: string): Promise<void> {
    if (this.revocationsState === 'off') return;
    if (this.revocationsState === 'unknown') {
      // the first answer may be on its way; once a try has failed, calls do not wait for the next
      const first = this.followRevocations();
      if (this.revocationsError === undefined) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([first, new Promise((resolve) => (timer = setTimeout(resolve, this.staleAfter)))]);
        clearTimeout(timer);
      }
      if (this.revocationsState === 'unknown') throw unavailable(service, 'the revocation list', this.revocationsError ?? new Error('no answer yet'));
      return;
    }
    const silent = Date.now() - this.revocationsHeardAt;
    if (silent > this.staleAfter) throw unavailable(service, 'the revocation list', this.revocationsError ?? new Error(`no word for ${Math.round(silent / 1000)} s`));
  }

  /** The current rules (after start), in evaluation order. */
  get currentRules(): readonly Rule[] {
    return this.rules?.rules ?? [];
  }

  /** Fetches the rules now (tests, and after a change that must apply at once). */
  refreshRules(): Promise<void> {
    this.rulesFailedAt = 0;
    return this.loadRules();
  }

  private loadKeys(): Promise<void> {
    this.keysPending ??= this.auth
      .Keys({})
      .then(
        (jwks) => {
          this.keys = new KeySet(jwks);
          this.keysError = undefined;
          if (this.state !== 'on') this.state = 'on';
        },
        (err: unknown) => {
          this.keysFailedAt = Date.now();
          this.keysError = err;
          // a server that answers but has no auth service does not check anyone
          if (!this.required && this.state === 'unknown' && isMicroError(err) && err.code === 404) {
            this.state = 'off';
            this.logger?.warn(`the server has no auth service (${err.detail}): calls to this service are not checked`);
            return;
          }
          throw err;
        },
      )
      .finally(() => (this.keysPending = undefined));
    return this.keysPending;
  }

  private loadRules(): Promise<void> {
    this.rulesPending ??= this.auth
      .ListRules({ namespace: this.namespace })
      .then(
        ({ rules }) => {
          // recompile only when the rules changed
          const version = JSON.stringify(rules);
          if (version !== this.rulesVersion || !this.rules) {
            this.rules = new RuleSet(rules);
            this.rulesVersion = version;
          }
          this.rulesError = undefined;
        },
        (err: unknown) => {
          this.rulesFailedAt = Date.now();
          this.rulesError = err;
          if (this.rules) this.logger?.warn({ err }, 'could not refresh the access rules; the last ones stay in force');
          throw err;
        },
      )
      .finally(() => (this.rulesPending = undefined));
    return this.rulesPending;
  }

  /** Keys and rules are there, or a 503 that says why not. */
  private async ready(service: string): Promise<void> {
    if (this.state === 'unknown' || !this.keys) {
      if (Date.now() - this.keysFailedAt < RETRY_AFTER && this.keysError) throw unavailable(service, 'the public keys of auth', this.keysError);
      await this.loadKeys().catch((err: unknown) => {
        throw unavailable(service, 'the public keys of auth', err);
      });
      if (this.state !== 'on') return;
    }
    if (!this.rules) {
      if (Date.now() - this.rulesFailedAt < RETRY_AFTER && this.rulesError) throw unavailable(service, 'the access rules', this.rulesError);
      await this.loadRules().catch((err: unknown) => {
        throw unavailable(service, 'the access rules', err);
      });
    }
  }

  /** The account a token scoped to `aud` speaks for (cached until it expires); a 401 that says why otherwise. */
  private async verify(token: string, service: string, aud: string): Promise<Account> {
    const now = Date.now() / 1000;
    const hit = this.verified.get(token);
    if (hit) {
      if (hit.exp > now && hit.aud === aud) return this.unrevoked(hit, service);
      this.verified.delete(token);
    }
    let keys = this.keys as KeySet;
    const kid = tokenKid(token);
    // a key not seen yet: the server may have rotated; ask again (at most once a second)
    if (kid && !keys.has(kid) && Date.now() - this.keysFailedAt >= RETRY_AFTER) {
      await this.loadKeys().catch(() => undefined);
      keys = this.keys as KeySet;
    }
    const claims = keys.verify(token, service, now, aud);
    admitClaims(claims, this.revocations, this.maxTtl, service);
    const account = accountOf(claims);
    if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
    this.verified.set(token, { account, exp: claims.exp, aud, claims });
    return account;
  }

  /** A token verified before, unless it was revoked since. */
  private unrevoked(hit: { account: Account; claims: AccessClaims }, service: string): Account {
    const r = this.revocations.match(hit.claims);
    if (r) throw revokedError(service, r);
    return hit.account;
  }

  /** The middleware a Service puts first. */
  middleware(): HandlerMiddleware {
    return async (ctx, req, next) => {
      if (this.state === 'off' || ctx.endpoint === HEALTH || ctx.endpoint === METRICS) return next(req);
      if (this.state !== 'on' || !this.rules) {
        await this.ready(ctx.service);
        if (this.currentState() === 'off') return next(req);
      }
      const header = ctx.metadata.authorization;
      let account: Account | undefined;
      if (header) {
        if (this.revocationsState !== 'off' && (this.revocationsState !== 'on' || Date.now() - this.revocationsHeardAt > this.staleAfter)) await this.revocationsCurrent(ctx.service);
        const token = bearerToken(header, ctx.service);
        const aud = this.audiences.get(ctx.service) ?? this.audienceOf(ctx);
        // the hot path: a token seen before costs a map lookup or three
        const hit = this.verified.get(token);
        account = hit && hit.exp > Date.now() / 1000 && hit.aud === aud ? this.unrevoked(hit, ctx.service) : await this.verify(token, ctx.service, aud);
      }
      const call = ctx as CallContext;
      this.authorize(call, account);
      call.account = account;
      this.handOn(call);
      return next(req);
    };
  }

  private audienceOf(ctx: Context): string {
    const aud = audienceOf(this.namespace || ctx.namespace, ctx.service);
    if (this.namespace && this.audiences.size < 100) this.audiences.set(ctx.service, aud);
    return aud;
  }

  /** The namespace rule, then the rules of the namespace (a public service's strangers: see the class comment). */
  private authorize(ctx: CallContext, account: Account | undefined): void {
    if (ctx.namespace === 'micro' && this.publicServices.has(ctx.service)) {
      if (!account) throw Unauthorized(ctx.service, `credentials required to call ${ctx.service}.${ctx.endpoint} — send authorization: Bearer <token or API key>`);
      ctx.tenant = isPlatformAdmin(account) ? adminTenant(ctx.metadata['micro-tenant']) : account.issuer;
      if (account.issuer !== 'micro') return;
    }
    if (account && isPlatformAdmin(account)) return;
    if (account && account.issuer !== ctx.namespace) {
      throw Forbidden(ctx.service, `a token of namespace ${account.issuer} cannot call services of namespace ${ctx.namespace}`);
    }
    const resource = serviceResource(ctx.service, ctx.endpoint);
    const decision = (this.rules as RuleSet).evaluate(resource, account);
    if (decision.access === 'granted') return;
    const why = decision.rule ? `rule ${decision.rule.id} denies it` : 'no rule grants it';
    if (!account) throw Unauthorized(ctx.service, `credentials required to call ${resource} (${why}) — send authorization: Bearer <token>`);
    throw Forbidden(ctx.service, `account ${account.id} may not call ${resource}: ${why}`);
  }

  /**
   * Nested calls carry this service's identity, never the caller's token: the caller's
   * leaves the metadata, and the Client attaches a token of this service scoped to each
   * callee (see scoped.ts).
   */
  private handOn(call: CallContext): void {
    const md = call.metadata;
    if (md.authorization !== undefined) {
      const { authorization: _drop, ...rest } = md;
      (call as { metadata: Record<string, string> }).metadata = rest;
    }
    if (this.identity) handOnIdentity(call, identityTokens(this.identity));
  }
}

/** The namespace an admin of micro acts in on a public service: the one it names, if it is a namespace name. */
function adminTenant(asked: string | undefined): string {
  return asked !== undefined && asked.length <= 63 && NAMESPACE_NAME.test(asked) ? asked : 'micro';
}

function unavailable(service: string, what: string, err: unknown): Error {
  if (err instanceof TokenError) return err;
  const detail = isMicroError(err) ? `${err.code} ${err.detail}` : err instanceof Error ? err.message : String(err);
  return ServiceUnavailable(service, `cannot check the caller: ${what} could not be fetched from micro server (${detail})`);
}
