import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { classify, shippedModel } from './classify.js';
import { heldOut, measure, readCorpus } from './corpus.js';
import { features } from './features.js';
import { parseEmail } from './message.js';
import { Classifier, train } from './model.js';

const corpus = readCorpus();
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The README's row `| <what> | <number> |` of the held-out measures. */
function claimed(what: string): number {
  const row = new RegExp(`^\\| ${what} \\| ([0-9.,]+)%? \\|`, 'm').exec(readme);
  assert.ok(row, `the README has a row for ${what}`);
  return Number((row[1] as string).replace(/,/g, ''));
}

test('the labelled set is the one the README describes: 1,500 messages, half spam, a fifth held out', () => {
  assert.equal(corpus.length, 1_500);
  assert.equal(corpus.filter((m) => m.label === 'spam').length, 750);
  assert.equal(new Set(corpus.map((m) => m.id)).size, corpus.length);
  const test = corpus.filter((m) => heldOut(m.id));
  assert.equal(test.length, claimed('held-out messages'));
  assert.equal(corpus.length - test.length, claimed('training messages'));
});

test("the shipped model's accuracy, precision and recall on the held-out part are the README's", async () => {
  const metrics = await measure(new Classifier(shippedModel()), corpus.filter((m) => heldOut(m.id)));
  // the README gives percentages to one decimal
  const percent = (x: number) => Math.round(x * 1000) / 10;
  assert.equal(percent(metrics.accuracy), claimed('accuracy'), 'accuracy');
  assert.equal(percent(metrics.precision), claimed('precision'), 'precision');
  assert.equal(percent(metrics.recall), claimed('recall'), 'recall');
  assert.ok(metrics.accuracy > 0.9, `accuracy ${metrics.accuracy}`);
});

test('the shipped model is what training on the training part makes (no message held out was seen)', async () => {
  const examples = [];
  for (const m of corpus.filter((c) => !heldOut(c.id))) examples.push({ features: features(await parseEmail(m.message)), spam: m.label === 'spam' });
  const model = train(examples);
  assert.deepEqual(model, shippedModel());
  assert.equal(Object.keys(model.features).length, claimed('features'));
});

test('naive Bayes on a toy set: counts, smoothing, weights, the prior', () => {
  const model = train(
    [
      { features: ['cash', 'now', 'cash'], spam: true },
      { features: ['cash', 'win'], spam: true },
      { features: ['meeting', 'now'], spam: false },
    ],
    1,
  );
  assert.deepEqual(model, { version: 1, messages: { spam: 2, ham: 1 }, features: { cash: [2, 0], meeting: [0, 1], now: [1, 1], win: [1, 0] } });
  const c = new Classifier(model);
  // totals: spam 4 feature-messages, ham 2; vocabulary 4
  const w = (s: number, h: number) => Math.log((s + 1) / (4 + 4)) - Math.log((h + 1) / (2 + 4));
  const v = c.classify(['cash', 'unknown', 'cash']);
  assert.deepEqual(v.weights, [['cash', w(2, 0)]]);
  const logOdds = Math.log(2 / 1) + w(2, 0);
  assert.ok(Math.abs(v.probability - 1 / (1 + Math.exp(-logOdds))) < 1e-12);
  assert.ok(c.classify(['meeting']).probability < 0.5);
  // features named like Object's properties are features like any other
  assert.deepEqual(c.classify(['constructor', '__proto__', 'toString']).weights, []);
  assert.equal(c.counts('__proto__'), undefined);
  assert.throws(() => new Classifier({ version: 1, messages: { spam: 0, ham: 3 }, features: {} }), /both classes/);
});

test('details: the rules that fired and the weightiest words towards the verdict', () => {
  const c = new Classifier(shippedModel());
  const spam = classify(c, { subject: 'MAKE MONEY FAST!!!', from: 'deals@win-big.example', to: '', text: 'Click here to claim your FREE prize. Limited time offer, order now! http://203.0.113.7/claim', html: '' });
  assert.equal(spam.is_spam, true);
  assert.ok(spam.score > 0.99);
  for (const rule of ['SUBJECT_ALL_CAPS', 'SUBJECT_EXCLAMATION', 'LINK_NUMERIC_HOST', 'TO_MISSING']) assert.ok(spam.details.some((d) => d.startsWith(`${rule}: `)), `${rule} in ${spam.details.join('; ')}`);
  const words = spam.details.filter((d) => /^(subject )?word "/.test(d));
  assert.ok(words.length > 0 && words.length <= 5);
  for (const d of words) assert.match(d, /\(\+\d+\.\d\d\)$/, 'words for spam weigh towards spam');
  const ham = classify(c, { subject: 'Re: meeting notes', from: 'Ann <ann@example.com>', to: 'bob@example.com', text: "Hi Bob, I've attached the notes from yesterday's meeting. Let me know if I missed anything about the release schedule. Thanks, Ann", html: '' });
  assert.equal(ham.is_spam, false);
  assert.ok(ham.score < 0.01);
  for (const d of ham.details) assert.match(d, /\(-\d+\.\d\d\)$/, 'words for ham weigh towards ham');
});
