import { BadRequest } from '../../errors/errors.js';

/**
 * Subject names of the NATS transport and broker. Every name a user chooses (namespace,
 * service) becomes one subject token, encoded so that it can hold no dot, wildcard or
 * whitespace and two names never share a token: names of letters, digits, `_` and `-`
 * stay as they are, any other byte becomes `=XX` (hex of its UTF-8 byte).
 */

const PLAIN = /^[A-Za-z0-9_-]+$/;

export function subjectToken(name: string): string {
  if (typeof name !== 'string' || name.length === 0) throw BadRequest('micro.transport', 'a subject name must be a non-empty string');
  if (PLAIN.test(name)) return name;
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Requests of one service: every instance subscribes here in queue group `<service>`. */
export function rpcSubject(prefix: string, namespace: string, service: string): string {
  return `${prefix}.rpc.${subjectToken(namespace)}.${subjectToken(service)}`;
}

/** Cancellations of unary calls, heard by every instance (the caller does not know which one has it). */
export function cancelSubject(rpc: string): string {
  return `${rpc}.cancel`;
}

/**
 * One instance (one RpcServer): its registered address, and where the frames of the
 * streams it serves go after their first message.
 */
export function instanceSubject(prefix: string, id: string): string {
  return `${prefix}.rpcs.${id}`;
}

/** Whether a subject names one instance rather than a service's queue group. */
export function isInstanceSubject(subject: string): boolean {
  const first = subject.indexOf('.');
  return first > 0 && subject.startsWith('.rpcs.', first);
}

/** Messages of one broker topic (wildcards stay wildcards: topics follow NATS rules). */
export function brokerSubject(prefix: string, namespace: string, topic: string): string {
  return `${prefix}.broker.${subjectToken(namespace)}.${topic}`;
}

export const NATS_SCHEME = 'nats:';
/** Longest subject accepted in an address (NATS has no hard limit; this bounds hostile input). */
const MAX_SUBJECT = 1024;
const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

/** The subject of a `nats:<subject>` address, or a BadRequest. */
export function parseNatsAddress(address: string): string {
  const subject = typeof address === 'string' && address.startsWith(NATS_SCHEME) ? address.slice(NATS_SCHEME.length) : '';
  if (!subject || subject.length > MAX_SUBJECT || !SUBJECT.test(subject) || /\p{Cc}/u.test(subject)) {
    throw BadRequest('micro.transport', `invalid address ${JSON.stringify(String(address).slice(0, 80))}: a NATS address is nats:<subject> with no wildcards or whitespace`);
  }
  return subject;
}
