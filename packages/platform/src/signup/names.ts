import { randomInt } from 'node:crypto';
import { errors } from '@micro/sdk';

/**
 * The names of customers' namespaces: ASCII lower case, 3 to 32 characters,
 * `[a-z][a-z0-9-]{2,31}`, no `--` (no punycode look-alikes, no `xn--`) and no trailing
 * `-`; none of the platform's own names. A namespace name is part of URLs, registry
 * entries, Postgres keys and Kubernetes namespaces, so the rule is the narrowest of theirs.
 */

const NAME = /^[a-z][a-z0-9-]{2,31}$/;

/** Names of the platform and names a customer could pass off as the platform's. */
export const RESERVED_NAMESPACES: ReadonlySet<string> = new Set([
  'micro', 'm3o', 'admin', 'administrator', 'api', 'app', 'auth', 'billing', 'blog', 'cdn', 'console', 'dashboard', 'default',
  'dev', 'docs', 'help', 'internal', 'kube-system', 'kube-public', 'login', 'mail', 'network', 'platform', 'public', 'root',
  'security', 'signup', 'staff', 'static', 'status', 'support', 'system', 'test', 'www',
]);

/** A 400 naming `namespace` when `name` may not be a customer's namespace. */
export function checkNamespaceName(name: string): string {
  const bad = (why: string) => errors.BadRequest('signup', `namespace: ${why}`);
  if (!NAME.test(name)) throw bad('3 to 32 of a-z, 0-9 and -, starting with a letter (ASCII lower case only)');
  if (name.includes('--') || name.endsWith('-')) throw bad('no "--" and no "-" at the end');
  if (RESERVED_NAMESPACES.has(name) || name.startsWith('micro-') || name.startsWith('m3o-')) throw bad(`"${name}" is reserved`);
  return name;
}

const ADJECTIVES = ['brave', 'calm', 'clever', 'eager', 'fair', 'gentle', 'happy', 'jolly', 'keen', 'kind', 'lively', 'lucky', 'merry', 'nimble', 'noble', 'proud', 'quick', 'quiet', 'sharp', 'shy', 'swift', 'tidy', 'witty', 'bold', 'bright', 'cosy', 'daring', 'fancy', 'grand', 'humble', 'loyal', 'mighty'];
const COLOURS = ['amber', 'azure', 'black', 'blue', 'bronze', 'coral', 'crimson', 'cyan', 'golden', 'green', 'grey', 'indigo', 'ivory', 'jade', 'lemon', 'lilac', 'navy', 'olive', 'orange', 'pink', 'plum', 'purple', 'red', 'ruby', 'rust', 'sage', 'silver', 'tan', 'teal', 'violet', 'white', 'yellow'];
const ANIMALS = ['badger', 'bear', 'beaver', 'bison', 'crane', 'deer', 'dolphin', 'eagle', 'falcon', 'ferret', 'finch', 'fox', 'gecko', 'heron', 'ibex', 'koala', 'lemur', 'lion', 'lynx', 'moose', 'newt', 'otter', 'owl', 'panda', 'puffin', 'rabbit', 'raven', 'seal', 'tiger', 'walrus', 'wolf', 'yak'];

/** A readable name such as `brave-blue-otter` (32,768 of them); after `attempt` 3 a number joins, for room. */
export function generatedName(attempt = 0): string {
  const pick = (words: string[]) => words[randomInt(words.length)] as string;
  const base = `${pick(ADJECTIVES)}-${pick(COLOURS)}-${pick(ANIMALS)}`;
  return attempt < 3 ? base : `${base}-${randomInt(10, 10_000)}`;
}
