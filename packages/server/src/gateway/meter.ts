import { errors, MicroError, toMicroErrorPublic, type Account, type EndpointRecord, type Logger } from './deps.js';

/**
 * The gateway's hook for metering (the platform's meter, `@micro/platform` metering/):
 * every call the gateway makes is offered to `admit` once it is resolved and authorized
 * and its request read, just before the service is called; a metered call gets a ticket
 * whose `settle` is called once, when the call has ended. See the README, "Metering".
 */
export interface MeteredCall {
  /** the gateway's id of this request (a random UUID), also sent back as `X-Request-Id` */
  requestId: string;
  /** the `Idempotency-Key` header (1–200 printable ASCII characters: checked), or undefined */
  idempotencyKey: string | undefined;
  /** the caller; undefined for an anonymous one, whom a metered endpoint refuses with `credentialsRequired()` */
  account: Account | undefined;
  /** the API key the caller used (`account.metadata.key` of an account of type apikey), or undefined */
  keyId: string | undefined;
  /** the namespace the call acts in (the caller's) */
  namespace: string;
  /** where the service runs: `micro` for the core and platform services, else `namespace` */
  home: string;
  service: string;
  /** the endpoint's registry record (its name, kind and whatever its definition carries) */
  endpoint: EndpointRecord;
  /** a WebSocket or a server-sent event stream (one call from open to end) */
  stream: boolean;
}

export interface MeterTicket {
  /**
   * The call ended: `ok` when the service answered with success (a stream: it ended
   * normally), `code` the HTTP status of the outcome (200, or the error's). The gateway
   * awaits it on success before the caller sees the answer (the 200, a stream's normal
   * end): a rejection turns the answer into that error. On failure it is not awaited.
   * Called exactly once per ticket.
   */
  settle(ok: boolean, code: number): Promise<void>;
}

export interface GatewayMeter {
  /**
   * Whether and how the call may go: undefined (not metered: the gateway goes on, and an
   * unmetered call must not be made to await), a ticket (metered: admitted), or a Promise
   * of either; a refusal is thrown (403 `v1.blocked`, 429 with `retryAfter` as
   * `RateLimited`, 401 for an anonymous caller). Not asked for calls of accounts of
   * namespace `micro` (the platform's staff and services are not metered).
   */
  admit(call: MeteredCall): MeterTicket | undefined | Promise<MeterTicket | undefined>;
}

/** The one answer to a caller without credentials who may not call what it asked for; a meter gives it to anonymous callers of a metered endpoint. */
export function credentialsRequired(): MicroError {
  return errors.Unauthorized('gateway', 'credentials required: send an access token or API key as Authorization: Bearer <token>');
}

const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,200}$/;

/** The Idempotency-Key header, checked: 1–200 printable ASCII characters, else a 400 that says so. */
export function idempotencyKeyOf(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !IDEMPOTENCY_KEY.test(value)) {
    throw errors.BadRequest('gateway', 'idempotency-key: 1 to 200 printable ASCII characters (the same key on a retry of the same call), e.g. a UUID');
  }
  return value;
}

/** The status a failed call is recorded with: the error's, as the caller sees it. */
export function failureCode(err: unknown, id: string): number {
  const code = toMicroErrorPublic(err, id).code;
  return code >= 400 && code <= 599 ? code : 500;
}

/**
 * `settle` of a ticket at most once, whoever asks first: a stream ends in several ways
 * (the service's end, an error, the client leaving, the gateway closing) and only the
 * first counts. A failure's settle is not awaited; its own failure is logged.
 */
export class Settlement {
  private done = false;

  constructor(
    private readonly ticket: MeterTicket,
    private readonly logger: Logger | undefined,
  ) {}

  /** success: awaited by the caller before the client sees the end */
  ok(): Promise<void> {
    if (this.done) return Promise.resolve();
    this.done = true;
    return this.ticket.settle(true, 200);
  }

  failed(code: number): void {
    if (this.done) return;
    this.done = true;
    this.ticket.settle(false, code).catch((err: unknown) => this.logger?.error({ err }, 'metering: recording a failed call failed'));
  }
}
