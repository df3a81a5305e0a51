import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest } from '@micro/services-kit';

/** The bounds of a Classify request. */
export const SPAM_LIMITS = Object.freeze({
  /** a raw message, and each of the text and HTML bodies: 256 KiB */
  body: 256 * 1024,
  /** subject, from and to */
  header: 2_000,
});

const body = (what: string) => z.string().max(SPAM_LIMITS.body).optional().describe(`${what} (at most 256 KiB)`);
const header = (what: string) => z.string().max(SPAM_LIMITS.header).optional().describe(`${what} (at most ${SPAM_LIMITS.header.toLocaleString('en')} characters)`);

/** The spam service, as M3O's: `Classify` a message → `{is_spam, score, details}`. */
export const spamDef = defineService({
  name: 'spam',
  version: '1.0.0',
  description: 'Whether an email is spam: a naive Bayes classifier trained offline on the SpamAssassin public corpus, with a few header rules',
  public: true,
  endpoints: {
    Classify: endpoint({
      description: 'Classify an email, given whole as `email_body` (a raw RFC 822 message) or in parts (`subject`, `from`, `to`, `text_body`, `html_body`): `is_spam`, a `score` from 0 to 1 (the probability of spam), and the reasons in `details`',
      request: m3oRequest({
        email_body: body('the whole message, headers and body, as sent (RFC 822)'),
        text_body: body('the plain-text body'),
        html_body: body('the HTML body'),
        subject: header('the Subject'),
        from: header('the From address'),
        to: header('the To address'),
      }),
      response: z.object({
        is_spam: z.boolean(),
        score: z.number().describe('the probability of spam, from 0 to 1; is_spam when at least 0.5'),
        details: z.array(z.string()).describe('the rules that fired and the words that weighed most, with their weights'),
      }),
      idempotent: true,
      readonly: true,
      // $0.0001 a call beyond 1,000 free a month (units of 10^-6 USD)
      price: 100,
      freeQuota: 1_000,
    }),
  },
});
