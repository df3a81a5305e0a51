import type { Message } from './message.js';

/**
 * Header and layout rules. Each fired rule is one more feature of the message
 * (`rule:<name>`), so its weight is learnt from the corpus like a word's, not set by hand.
 */
export interface Rule {
  name: string;
  /** what it means, for `details` */
  describe: string;
  fires(m: Message, links: string[]): boolean;
}

function letters(s: string): string {
  return (s.match(/\p{L}/gu) ?? []).join('');
}

/** The address in a From/To text (`"Ann" <ann@example.com>` → `ann@example.com`), or ''. */
export function address(s: string): string {
  const m = /<([^<>\s@]+@[^<>\s@]+\.[^<>\s@]+)>/.exec(s) ?? /([^<>\s@"',;]+@[^<>\s@"',;]+\.[^<>\s@"',;]+)/.exec(s);
  return m ? (m[1] as string).toLowerCase() : '';
}

export const RULES: readonly Rule[] = [
  { name: 'SUBJECT_ALL_CAPS', describe: 'the subject is written in capitals', fires: (m) => letters(m.subject).length >= 8 && letters(m.subject) === letters(m.subject).toUpperCase() },
  { name: 'SUBJECT_EXCLAMATION', describe: 'the subject shouts with "!"', fires: (m) => /!\s*$|!!/.test(m.subject) },
  { name: 'SUBJECT_MONEY', describe: 'the subject speaks of money or percentages', fires: (m) => /[$€£]\s?\d|\d\s?%|\bfree\b/i.test(m.subject) },
  { name: 'SUBJECT_MISSING', describe: 'the message has no subject', fires: (m) => m.subject.trim() === '' },
  { name: 'HTML_ONLY', describe: 'the message is HTML without a plain-text part', fires: (m) => m.html.trim() !== '' && m.text.trim() === '' },
  { name: 'LINK_NUMERIC_HOST', describe: 'a link goes to a numeric IP address', fires: (_, links) => links.some((h) => /^\d{1,3}(\.\d{1,3}){3}(:\d+)?$/.test(h)) },
  { name: 'FROM_NO_ADDRESS', describe: 'the sender has no valid address', fires: (m) => address(m.from) === '' },
  { name: 'TO_MISSING', describe: 'the message names no recipient', fires: (m) => m.to.trim() === '' },
];
