import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectRefused, expectShape, startPlatform } from '@micro/services-kit/testing';
import { MAX_TEXT } from './definition.js';
import { score } from './score.js';
import { service } from './handlers.js';

test("sentiment through the gateway as M3O's client calls it: scores, languages, bad and hostile input", async (t) => {
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const analyze = (body: unknown, key = p.a.key) => p.call(key, 'sentiment', 'Analyze', body);
  const refused = async (body: unknown, detail: RegExp) => expectRefused(await analyze(body), 400, detail, 'sentiment');

  const happy = await analyze({ text: 'I love this product, it works really well!', lang: 'en' });
  assert.equal(happy.status, 200, JSON.stringify(happy.body));
  await expectShape('sentiment', 'Analyze', happy.body);
  assert.deepEqual(happy.body, { score: score('I love this product, it works really well!') });
  assert.equal(happy.body.score, 0.6486, 'as the README shows');
  const sad = await p.call(p.b.key, 'sentiment', 'analyze', { text: 'This is not good at all, a terrible waste of money.' });
  assert.equal(sad.body.score, -0.8402, 'as the README shows');
  // neutral is a 0, present in the answer
  const neutral = await analyze({ text: 'The train leaves at nine.' });
  await expectShape('sentiment', 'Analyze', neutral.body);
  assert.deepEqual(neutral.body, { score: 0 });
  // lang: en in any case and with a region; missing is en
  for (const lang of ['EN', 'en-GB', 'en_US', '', undefined]) assert.equal((await analyze({ text: 'good', lang })).body.score, score('good'), String(lang));
  // the longest text there is
  assert.equal((await analyze({ text: 'fine. '.repeat(MAX_TEXT / 6 - 1) + 'good' })).status, 200);

  await refused({ text: 'bon', lang: 'fr' }, /lang: "fr" is not supported; the supported languages are en/);
  await refused({ text: 'good', lang: 'x'.repeat(36) }, /lang/);
  await refused({}, /Missing text/);
  await refused({ text: '   ' }, /Missing text/);
  await refused({ text: 'x'.repeat(MAX_TEXT + 1) }, /text/);
  for (const text of [5, true, ['good'], { $gt: '' }, null]) await refused({ text }, /text/);
  await refused({ text: 'good', lang: ['en'] }, /lang/);
  // binary and control characters are text like any other: no word of the lexicon, a 0
  assert.deepEqual((await analyze({ text: '\u0000\u0007\u001b[31m\ud800\ufffe' })).body, { score: 0 });
  // /openapi.json of a tenant describes the endpoint, with its limits
  const doc = (await (await fetch(`${p.url}/openapi.json`, { headers: { authorization: `Bearer ${p.a.key}` } })).json()) as { paths: Record<string, unknown> };
  assert.match(JSON.stringify(doc.paths['/v1/sentiment/Analyze']), /10,000 characters/);
  // no credentials: 401
  assert.equal((await p.call(undefined, 'sentiment', 'Analyze', { text: 'good' })).status, 401);
});
