import { errors, type Handlers } from '@micro/sdk';
import { missing, publicService } from '@micro/services-kit';
import { LANGUAGES, sentimentDef } from './definition.js';
import { score } from './score.js';

export { score, rawScore } from './score.js';

/** `en`, `EN`, `en-GB`, `en_US` → `en`; anything else is a 400 naming the languages there are. */
function language(lang: string | undefined): string {
  const primary = (lang ?? '').trim().toLowerCase().split(/[-_]/)[0] || 'en';
  if (!(LANGUAGES as readonly string[]).includes(primary)) {
    throw errors.BadRequest('sentiment', `lang: ${JSON.stringify(String(lang).slice(0, 35))} is not supported; the supported languages are ${LANGUAGES.join(', ')}`);
  }
  return primary;
}

/** Stateless: a text in, its score out; nothing of a tenant's is kept. */
export function sentimentHandlers(): Handlers<typeof sentimentDef> {
  return {
    Analyze({ text, lang }) {
      language(lang);
      if (text === undefined || text.trim() === '') throw missing('sentiment', 'text');
      return { score: score(text) };
    },
  };
}

export const service = publicService(sentimentDef, () => sentimentHandlers());
