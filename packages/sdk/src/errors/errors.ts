/**
 * Typed errors that cross process boundaries intact.
 *
 * The wire shape is Micro's: `{id, code, detail, status}` where `id` names the
 * service (or the component) that raised the error, `code` is an HTTP status code,
 * `detail` is a human readable message and `status` is the HTTP status text.
 */

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The JSON shape of an error on the wire. */
export interface ErrorJSON {
  id: string;
  code: number;
  detail: string;
  status: string;
}

export function statusText(code: number): string {
  return STATUS_TEXT[code] ?? (code >= 500 ? 'Internal Server Error' : 'Error');
}

export class MicroError extends Error {
  readonly id: string;
  readonly code: number;
  readonly detail: string;
  readonly status: string;

  constructor(id: string, code: number, detail: string, status: string = statusText(code)) {
    super(detail);
    this.name = 'MicroError';
    this.id = id;
    this.code = code;
    this.detail = detail;
    this.status = status;
  }

  toJSON(): ErrorJSON {
    return { id: this.id, code: this.code, detail: this.detail, status: this.status };
  }

  override toString(): string {
    return `${this.id}: ${this.code} ${this.status}: ${this.detail}`;
  }
}

const make =
  (code: number) =>
  (id: string, detail: string): MicroError =>
    new MicroError(id, code, detail);

/** Constructors named after the go-micro errors package. */
export const BadRequest = make(400);
export const Unauthorized = make(401);
export const Forbidden = make(403);
export const NotFound = make(404);
export const MethodNotAllowed = make(405);
export const Conflict = make(409);
export const PayloadTooLarge = make(413);
export const TooManyRequests = make(429);
export const Cancelled = make(499);
export const InternalServerError = make(500);
export const NotImplemented = make(501);
export const BadGateway = make(502);
export const ServiceUnavailable = make(503);
export const Timeout = make(504);

export function isMicroError(err: unknown): err is MicroError {
  return err instanceof MicroError;
}

/** Rebuilds a MicroError from its wire shape; anything unrecognisable becomes a 500. */
export function fromJSON(value: unknown, fallbackId = 'micro'): MicroError {
  if (value && typeof value === 'object') {
    const v = value as Partial<ErrorJSON>;
    const code = typeof v.code === 'number' && v.code >= 100 && v.code <= 599 ? v.code : 500;
    const id = typeof v.id === 'string' && v.id.length > 0 ? v.id : fallbackId;
    const detail = typeof v.detail === 'string' ? v.detail : 'unknown error';
    const status = typeof v.status === 'string' && v.status.length > 0 ? v.status : statusText(code);
    return new MicroError(id, code, detail, status);
  }
  return new MicroError(fallbackId, 500, typeof value === 'string' ? value : 'unknown error');
}

/**
 * Turns anything thrown by a handler into a MicroError. Typed errors pass through;
 * anything else becomes a 500 whose detail does not leak the message or the stack of
 * the original error (that stays in the service's own log).
 */
export function toMicroError(err: unknown, id: string): MicroError {
  if (err instanceof MicroError) return err;
  return new MicroError(id, 500, 'internal server error');
}
