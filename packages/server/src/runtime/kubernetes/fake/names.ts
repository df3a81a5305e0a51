import type { FieldError } from './status.js';

/**
 * The API's rules for names, label keys and values, in its own words: what a Namespace, a
 * Service or any other object may be called, and what labels may say.
 */

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

const LABEL_MSG =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_MSG =
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_MSG =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

export type NameRule = 'label' | 'subdomain' | 'dns1035';

function tooLong(field: string, value: string, max: number): FieldError {
  return { type: 'Invalid', field, value, detail: `must be no more than ${max} characters` };
}

/** the problems of `value` as a name of the given rule (none when it is one) */
export function checkName(rule: NameRule, value: string, field: string): FieldError[] {
  const errors: FieldError[] = [];
  const [re, max, msg] = rule === 'label' ? [LABEL, 63, LABEL_MSG] : rule === 'dns1035' ? [DNS1035, 63, DNS1035_MSG] : [SUBDOMAIN, 253, SUBDOMAIN_MSG];
  if (value.length > max) errors.push(tooLong(field, value, max));
  if (!re.test(value)) errors.push({ type: 'Invalid', field, value, detail: msg });
  return errors;
}

/** a label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name a qualified name */
export function checkQualifiedName(key: string, field: string): FieldError[] {
  const parts = key.split('/');
  if (parts.length > 2) return [{ type: 'Invalid', field, value: key, detail: `a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character with an optional DNS subdomain prefix and '/'` }];
  const name = parts[parts.length - 1] ?? '';
  const errors: FieldError[] = [];
  if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    if (prefix.length === 0) errors.push({ type: 'Invalid', field, value: key, detail: 'prefix part must be non-empty' });
    else if (prefix.length > 253 || !SUBDOMAIN.test(prefix)) errors.push({ type: 'Invalid', field, value: key, detail: `prefix part ${SUBDOMAIN_MSG}` });
  }
  if (name.length === 0) errors.push({ type: 'Invalid', field, value: key, detail: 'name part must be non-empty' });
  else if (name.length > 63) errors.push({ type: 'Invalid', field, value: key, detail: 'name part must be no more than 63 characters' });
  else if (!QUALIFIED_NAME.test(name)) errors.push({ type: 'Invalid', field, value: key, detail: QUALIFIED_MSG });
  return errors;
}

export function checkLabels(labels: Record<string, unknown> | undefined, field: string): FieldError[] {
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(labels ?? {})) {
    errors.push(...checkQualifiedName(k, field));
    const value = String(v);
    if (value.length > 63) errors.push(tooLong(field, value, 63));
    if (!LABEL_VALUE.test(value)) errors.push({ type: 'Invalid', field, value, detail: VALUE_MSG });
  }
  return errors;
}

export const ANNOTATIONS_MAX = 256 * 1024;

export function checkAnnotations(annotations: Record<string, unknown> | undefined, field: string): FieldError[] {
  const errors: FieldError[] = [];
  let size = 0;
  for (const [k, v] of Object.entries(annotations ?? {})) {
    errors.push(...checkQualifiedName(k.toLowerCase(), field));
    size += k.length + String(v).length;
  }
  if (size > ANNOTATIONS_MAX) errors.push({ type: 'TooLong', field, detail: `must have at most ${ANNOTATIONS_MAX} bytes` });
  return errors;
}

/** a port's name: at most 15 characters, lower case, at least one letter, no double hyphen */
export function checkPortName(name: string, field: string): FieldError[] {
  if (name.length > 15) return [{ type: 'Invalid', field, value: name, detail: 'must be no more than 15 characters' }];
  if (!IANA_SVC_NAME.test(name) || !/[a-z]/.test(name) || name.includes('--')) {
    return [{ type: 'Invalid', field, value: name, detail: 'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-); must contain at least one letter (a-z); must not contain consecutive hyphens' }];
  }
  return [];
}
