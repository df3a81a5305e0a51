/**
 * What an email address the platform sends to looks like, in one place: the platform's
 * mail checks refuse a message to anything else, and the email service's Validate answers
 * whether Send would take an address by asking the same question.
 */

/** RFC 5321: a path is at most 256 octets with its brackets, so an address is at most 254. */
export const MAX_ADDRESS_LENGTH = 254;
const MAX_LOCAL_LENGTH = 64;

// dot-atom of RFC 5322 restricted to ASCII: no quoted local parts, no comments, no spaces.
const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
// C0 controls (CR, LF, NUL, TAB…), DEL, C1 controls, and the Unicode line and paragraph separators.
// eslint-disable-next-line no-control-regex -- finding control characters is what it is for
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/** `value` on one line: each run of control characters becomes one space. */
export function oneLine(value: string): string {
  return value.replace(CONTROLS, ' ');
}

/**
 * Why `address` is not one bare ASCII address (`name@example.com`), or undefined when it
 * is. A recipient's domain needs a dot (`a@example` is a typo); a sender's may be one
 * label (`no-reply@localhost`) with `oneLabel`. Display names, lists, comments and quoted
 * local parts are refused: whatever reaches a header is exactly one mailbox.
 */
export function addressProblem(address: string, oneLabel = false): string | undefined {
  if (address.length > MAX_ADDRESS_LENGTH) return `is ${address.length} characters, at most ${MAX_ADDRESS_LENGTH} allowed`;
  if (oneLine(address) !== address) return 'must not contain line breaks or control characters';
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return 'must be one email address like name@example.com';
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.length > MAX_LOCAL_LENGTH) return `the part before @ is at most ${MAX_LOCAL_LENGTH} characters`;
  if (!LOCAL.test(local)) return 'must be one bare address like name@example.com (no display name, list or quotes)';
  const labels = domain.split('.');
  if ((labels.length < 2 && !oneLabel) || !labels.every((l) => LABEL.test(l))) {
    return `the domain "${domain}" is not a domain name like example.com (ASCII; write an international domain in its xn-- form)`;
  }
  return undefined;
}
