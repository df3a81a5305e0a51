import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest } from '@micro/services-kit';

/** The languages Analyze scores: the lexicon is English. */
export const LANGUAGES = ['en'] as const;

/** The longest text Analyze takes, in characters (UTF-16 code units, as JavaScript counts). */
export const MAX_TEXT = 10_000;

/** The sentiment service, as M3O's: `Analyze {text, lang}` → `{score}`. */
export const sentimentDef = defineService({
  name: 'sentiment',
  version: '1.0.0',
  description: 'How positive or negative a text is: a score from -1 (most negative) to 1 (most positive), 0 for neutral',
  public: true,
  endpoints: {
    Analyze: endpoint({
      description: `The sentiment of \`text\` (at most ${MAX_TEXT.toLocaleString('en')} characters) in \`lang\` (${LANGUAGES.join(', ')}; default en): a score from -1 to 1`,
      request: m3oRequest({
        text: z.string().max(MAX_TEXT).optional(),
        lang: z.string().max(35).optional().describe(`the text's language, a BCP 47 tag (${LANGUAGES.join(', ')}; default en)`),
      }),
      response: z.object({ score: z.number().describe('from -1 (most negative) to 1 (most positive); 0 when no word carries a sentiment') }),
      idempotent: true,
      readonly: true,
      // $0.00001 a call beyond 10,000 free a month (units of 10^-6 USD)
      price: 10,
      freeQuota: 10_000,
    }),
  },
});
