import { htmlText, type Message } from './message.js';
import { address, RULES } from './rules.js';

/** The most distinct features read of one message: bounds the work of a large body. */
export const MAX_FEATURES = 5_000;

/** Words: letters, digits and `$`, joined by `'`, `.` or `-` ("don't", "u.s.", "e-mail"). */
const WORD = /[\p{L}\p{N}$]+(?:['’.-][\p{L}\p{N}$]+)*/gu;
/** The host of an http(s) link, in text or in an href. */
const LINK_HOST = /\bhttps?:\/\/([^\s/?#<>"'\\[\]]{1,253})/gi;

function words(text: string, prefix: string, into: Set<string>): void {
  for (const [w] of text.matchAll(WORD)) {
    if (into.size >= MAX_FEATURES) return;
    // long digit runs (phone numbers, ids, dates) and very long strings say little and would swell the vocabulary
    if (w.length < 2 || w.length > 30 || /^\d{5,}$/.test(w)) continue;
    into.add(prefix + w.toLowerCase());
  }
}

/** The hosts that the message's links go to, lower-cased, without `www.` and credentials. */
export function linkHosts(m: Message): string[] {
  const hosts = new Set<string>();
  for (const text of [m.text, m.html]) {
    for (const [, host] of text.matchAll(LINK_HOST)) {
      hosts.add((host as string).toLowerCase().replace(/^.*@/, '').replace(/^www\./, ''));
      if (hosts.size >= 100) break;
    }
  }
  return [...hosts];
}

/** What the classifier sees of a message: distinct features, `rule:`s first. */
export function features(m: Message): string[] {
  const links = linkHosts(m);
  const out = new Set<string>();
  for (const rule of RULES) if (rule.fires(m, links)) out.add(`rule:${rule.name}`);
  const domain = address(m.from).split('@')[1];
  if (domain) out.add(`from:${domain}`);
  for (const host of links) out.add(`link:${host}`);
  words(m.subject, 'subject:', out);
  words(m.text, '', out);
  if (m.html !== '') words(htmlText(m.html), '', out);
  return [...out];
}
