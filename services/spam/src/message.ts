import { Parser } from 'htmlparser2';
import { simpleParser } from 'mailparser';
import { SPAM_LIMITS } from './definition.js';

/** What the classifier reads of an email, whether it came whole or in parts. */
export interface Message {
  subject: string;
  from: string;
  to: string;
  /** the plain-text body ('' when the message has none) */
  text: string;
  /** the HTML body ('' when the message has none) */
  html: string;
}

/** Elements whose text is not shown. */
const HIDDEN = new Set(['script', 'style', 'template', 'object', 'iframe', 'svg']);
/** Elements within a line: no word boundary at their tags (`<b>fr</b>ee` is "free", as a reader sees it). */
const INLINE = new Set(['a', 'abbr', 'b', 'bdi', 'bdo', 'big', 'cite', 'code', 'em', 'font', 'i', 'kbd', 'mark', 'q', 's', 'small', 'span', 'strike', 'strong', 'sub', 'sup', 'tt', 'u', 'wbr']);

/**
 * How deep elements may nest before the rest of the HTML is read as text with its tags cut
 * out: htmlparser2 keeps its stack of open elements with `unshift`, so nesting n deep costs
 * n² (256 KiB of `<b>` took 0.3 s); no message a person reads nests this deep.
 */
export const MAX_HTML_DEPTH = 256;

/**
 * HTML reduced to the text a reader sees, with the links' addresses (their hosts are
 * features) kept as ` [url] `. htmlparser2's tokenizer reads it in one pass and builds no
 * tree: nothing is run or fetched; entities are decoded. Past MAX_HTML_DEPTH, the rest is
 * text with its tags cut out. At most 256 KiB of HTML is read (the definition bounds it
 * already) and as much text made.
 */
export function htmlText(html: string): string {
  const out: string[] = [];
  let length = 0;
  let hidden = 0;
  let depth = 0;
  const push = (s: string) => {
    if (length < SPAM_LIMITS.body) out.push(s);
    length += s.length;
  };
  const parser: Parser = new Parser(
    {
      onopentag(name, attributes) {
        if (++depth > MAX_HTML_DEPTH) parser.pause();
        if (HIDDEN.has(name)) hidden++;
        else if (!INLINE.has(name)) push(' ');
        const href = attributes.href;
        if (name === 'a' && href !== undefined && /^https?:/i.test(href)) push(` [${href}] `);
      },
      onclosetag(name) {
        depth--;
        if (HIDDEN.has(name)) hidden = Math.max(0, hidden - 1);
        else if (!INLINE.has(name)) push(' ');
      },
      ontext(text) {
        if (hidden === 0) push(text);
      },
    },
    { decodeEntities: true, lowerCaseTags: true },
  );
  const input = html.slice(0, SPAM_LIMITS.body);
  parser.write(input);
  if (depth > MAX_HTML_DEPTH) push(' ' + input.slice(parser.endIndex + 1).replace(/<[^<>]*>?/g, ' '));
  else parser.end();
  return out.join('').replace(/\s+/g, ' ').trim();
}

/** An mbox "From " line before the headers (as mail archives and the corpus keep messages). */
const MBOX_FROM = /^From [^\n]*\n/;

/** A raw message mailparser cannot read (a MIME bomb, a line or header over its limits): a 400. */
export class UnreadableEmail extends Error {}

/**
 * A raw RFC 822 message (at most 256 KiB, checked by the definition) read by mailparser:
 * MIME parts, transfer encodings and charsets decoded, attachments ignored. Its text
 * is not made up from its HTML (so "no plain-text part" stays visible to the rules).
 */
export async function parseEmail(raw: string): Promise<Message> {
  const mail = await simpleParser(raw.replace(MBOX_FROM, ''), {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
    skipTextLinks: true,
    maxHtmlLengthToParse: SPAM_LIMITS.body,
  }).catch((e: unknown) => {
    throw new UnreadableEmail(e instanceof Error ? e.message : String(e));
  });
  const to = Array.isArray(mail.to) ? mail.to.map((a) => a.text).join(', ') : (mail.to?.text ?? '');
  return {
    subject: mail.subject ?? '',
    from: mail.from?.text ?? '',
    to,
    text: mail.text ?? '',
    html: typeof mail.html === 'string' ? mail.html : '',
  };
}
