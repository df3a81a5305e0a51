/**
 * Errors as the API server writes them: a `Status` object with `reason`, `code`, a message in
 * the API's own words and `details` naming the object. Everything the fake refuses is one of
 * these, so a client's error handling meets what it meets on a real cluster.
 */

export interface Cause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: Cause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
    /** response headers, e.g. Retry-After */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'StatusError';
  }

  status(): Status {
    return failure(this.code, this.reason, this.message, this.details);
  }
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): Status {
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) s.details = details;
  return s;
}

/** what a resource is called in messages: `pods`, `deployments.apps` */
export interface Named {
  group: string;
  plural: string;
  kind: string;
}

export function qualified(r: Named): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

function details(r: Named, name: string): StatusDetails {
  const d: StatusDetails = { name, kind: r.plural };
  if (r.group) d.group = r.group;
  return d;
}

export const notFound = (r: Named, name: string) => new StatusError(404, 'NotFound', `${qualified(r)} "${name}" not found`, details(r, name));

export const alreadyExists = (r: Named, name: string) => new StatusError(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, details(r, name));

export const conflict = (r: Named, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
  new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`, details(r, name));

export const forbidden = (r: Named, name: string, why: string, causes?: Cause[]) =>
  new StatusError(403, 'Forbidden', `${qualified(r)} "${name}" is forbidden: ${why}`, { ...details(r, name), ...(causes ? { causes } : {}) });

export const badRequest = (message: string) => new StatusError(400, 'BadRequest', message);

export const methodNotAllowed = () => new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');

export const unauthorized = () => new StatusError(401, 'Unauthorized', 'Unauthorized');

export const expired = (message: string) => new StatusError(410, 'Expired', message);

export const pathNotFound = (path: string) => new StatusError(404, 'NotFound', `the server could not find the requested resource`, { causes: [{ reason: 'UnexpectedServerResponse', message: `404 page not found: ${path}` }] });

/** a field that is wrong, as validation reports it */
export interface FieldError {
  type: 'Required' | 'Invalid' | 'Forbidden' | 'Duplicate' | 'NotSupported' | 'NotFound' | 'TooLong' | 'TooMany';
  field: string;
  value?: unknown;
  detail?: string;
}

const CAUSE_REASON: Record<FieldError['type'], string> = {
  Required: 'FieldValueRequired',
  Invalid: 'FieldValueInvalid',
  Forbidden: 'FieldValueForbidden',
  Duplicate: 'FieldValueDuplicate',
  NotSupported: 'FieldValueNotSupported',
  NotFound: 'FieldValueNotFound',
  TooLong: 'FieldValueTooLong',
  TooMany: 'FieldValueTooMany',
};

function goValue(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v ?? null);
}

/** the text of one field error, in the API's words (`spec.replicas: Invalid value: -1: must be ...`) */
export function fieldMessage(e: FieldError): string {
  const tail = e.detail ? `: ${e.detail}` : '';
  switch (e.type) {
    case 'Required':
      return `Required value${tail}`;
    case 'Forbidden':
      return `Forbidden${tail}`;
    case 'Duplicate':
      return `Duplicate value: ${goValue(e.value)}`;
    case 'NotSupported':
      return `Unsupported value: ${goValue(e.value)}${tail}`;
    case 'NotFound':
      return `Not found: ${goValue(e.value)}`;
    case 'TooLong':
      return `Too long${tail}`;
    case 'TooMany':
      return `Too many${tail}`;
    default:
      return `Invalid value: ${goValue(e.value)}${tail}`;
  }
}

/** 422 Invalid: `Deployment.apps "web" is invalid: [spec.selector: Required value, ...]` */
export function invalid(r: Named, name: string, errors: FieldError[]): StatusError {
  const causes = errors.map((e) => ({ reason: CAUSE_REASON[e.type], message: fieldMessage(e), field: e.field }));
  const list = causes.map((c) => `${c.field}: ${c.message}`);
  const text = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  const kind = r.group ? `${r.kind}.${r.group}` : r.kind;
  return new StatusError(422, 'Invalid', `${kind} "${name}" is invalid: ${text}`, { name, ...(r.group ? { group: r.group } : {}), kind: r.kind, causes });
}

/** the Status an injected fault answers with: the reason a real server gives that code */
export function faultStatus(code: number, retryAfter = 1): StatusError {
  const reasons: Record<number, [string, string]> = {
    400: ['BadRequest', 'the server rejected our request for an unknown reason'],
    401: ['Unauthorized', 'Unauthorized'],
    403: ['Forbidden', 'forbidden'],
    404: ['NotFound', 'the server could not find the requested resource'],
    409: ['Conflict', 'the server reported a conflict'],
    410: ['Expired', 'the resource version is too old'],
    429: ['TooManyRequests', 'the server has received too many requests and has asked us to try again later'],
    500: ['InternalError', 'an error on the server ("injected fault") has prevented the request from succeeding'],
    503: ['ServiceUnavailable', 'the server is currently unable to handle the request'],
    504: ['Timeout', 'the server was unable to return a response in the time allotted, but may still be processing the request'],
  };
  const [reason, message] = reasons[code] ?? ['InternalError', `an injected fault answered ${code}`];
  if (code === 429 || code === 503) return new StatusError(code, reason, message, { retryAfterSeconds: retryAfter }, { 'Retry-After': String(retryAfter) });
  return new StatusError(code, reason, message);
}
