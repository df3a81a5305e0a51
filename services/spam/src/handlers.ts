import { errors, type Handlers } from '@micro/sdk';
import { missing, publicService } from '@micro/services-kit';
import { classify, shippedModel } from './classify.js';
import { spamDef } from './definition.js';
import { parseEmail, UnreadableEmail, type Message } from './message.js';
import { Classifier } from './model.js';

export { classify, shippedModel, THRESHOLD } from './classify.js';
export { Classifier, train } from './model.js';
export type { Model } from './model.js';

type Parts = Partial<Record<keyof Message | 'text_body' | 'html_body', string>>;

/** The parts given, over what the raw message says (a part given explicitly wins). */
function given(parts: Parts): Partial<Message> {
  const out: Partial<Message> = {};
  const pairs = [['subject', parts.subject], ['from', parts.from], ['to', parts.to], ['text', parts.text_body], ['html', parts.html_body]] as const;
  for (const [field, value] of pairs) if (value !== undefined && value !== '') out[field] = value;
  return out;
}

function unreadable(e: unknown): never {
  if (e instanceof UnreadableEmail) throw errors.BadRequest('spam', `email_body: not a message mailparser can read (${e.message}); send the parts instead (subject, from, to, text_body, html_body)`);
  throw e;
}

/** Stateless: a message in, a verdict out; nothing of a tenant's is kept. */
export function spamHandlers(classifier = new Classifier(shippedModel())): Handlers<typeof spamDef> {
  return {
    async Classify({ email_body, text_body, html_body, subject, from, to }) {
      const parts = given({ text_body, html_body, subject, from, to });
      const hasEmail = email_body !== undefined && email_body.trim() !== '';
      if (!hasEmail && parts.text === undefined && parts.html === undefined && parts.subject === undefined) throw missing('spam', 'email_body (or text_body, html_body or subject)');
      const base: Message = hasEmail ? await parseEmail(email_body).catch(unreadable) : { subject: '', from: '', to: '', text: '', html: '' };
      return classify(classifier, { ...base, ...parts });
    },
  };
}

export const service = publicService(spamDef, () => spamHandlers());
