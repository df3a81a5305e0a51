import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectRefused, expectShape, startPlatform } from '@micro/services-kit/testing';
import { SPAM_LIMITS } from './definition.js';
import { service } from './handlers.js';

const SPAM = {
  subject: 'MAKE MONEY FAST!!!',
  from: 'deals@win-big.example',
  text_body: 'Click here to claim your FREE prize. Limited time offer, order now! Remove me: http://203.0.113.7/claim',
};
const HAM = {
  subject: 'Re: meeting notes',
  from: 'Ann <ann@example.com>',
  to: 'bob@example.com',
  text_body: "Hi Bob, I've attached the notes from yesterday's meeting. Let me know if I missed anything about the release schedule. Thanks, Ann",
};
const rfc822 = (m: typeof HAM) => `From: ${m.from}\r\nTo: ${m.to}\r\nSubject: ${m.subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${m.text_body}\r\n`;

test("spam through the gateway as M3O's client calls it: parts or a raw message, bad and hostile input", async (t) => {
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const classify = (body: unknown, key = p.a.key) => p.call(key, 'spam', 'Classify', body);
  const refused = async (body: unknown, detail: RegExp) => expectRefused(await classify(body), 400, detail, 'spam');

  const spam = await classify(SPAM);
  assert.equal(spam.status, 200, JSON.stringify(spam.body));
  await expectShape('spam', 'Classify', spam.body);
  assert.equal(spam.body.is_spam, true);
  assert.ok(spam.body.score > 0.99, JSON.stringify(spam.body));
  assert.ok(spam.body.details.includes('SUBJECT_ALL_CAPS: the subject is written in capitals (+2.49)'), JSON.stringify(spam.body.details));

  const ham = await classify(HAM, p.b.key);
  await expectShape('spam', 'Classify', ham.body);
  assert.equal(ham.body.is_spam, false);
  assert.ok(ham.body.score < 0.01, JSON.stringify(ham.body));
  // the same message whole gives the same verdict, in snake_case or lowerCamelCase
  assert.deepEqual((await classify({ email_body: rfc822(HAM) })).body, ham.body);
  assert.deepEqual((await classify({ emailBody: rfc822(HAM) })).body, ham.body);
  assert.deepEqual((await classify({ subject: HAM.subject, from: HAM.from, to: HAM.to, textBody: HAM.text_body })).body, ham.body);
  // a part given explicitly wins over the raw message's
  assert.equal((await classify({ email_body: rfc822(HAM), ...SPAM })).body.is_spam, true);
  // HTML alone is read as text
  const html = await classify({ subject: 'Hello', html_body: `<p>${SPAM.text_body}</p><script>while(1);</script>` });
  assert.equal(html.status, 200);
  assert.ok(html.body.details.some((d: string) => d.startsWith('HTML_ONLY: ')));
  // the largest bodies there are
  assert.equal((await classify({ text_body: 'hello '.repeat(SPAM_LIMITS.body / 6) })).status, 200);
  assert.equal((await classify({ html_body: '<div>'.repeat(SPAM_LIMITS.body / 5) })).status, 200);

  await refused({}, /Missing email_body \(or text_body, html_body or subject\)/);
  await refused({ email_body: '  ', from: 'a@example.com' }, /Missing email_body/);
  for (const field of ['email_body', 'text_body', 'html_body']) await refused({ [field]: 'x'.repeat(SPAM_LIMITS.body + 1) }, new RegExp(field));
  for (const field of ['subject', 'from', 'to']) await refused({ text_body: 'hi', [field]: 'x'.repeat(SPAM_LIMITS.header + 1) }, new RegExp(field));
  for (const value of [5, true, ['x'], { $ne: '' }, null]) await refused({ email_body: value }, /email_body/);
  await refused({ text_body: 'hi', subject: { toString: 'x' } }, /subject/);
  let bomb = 'From: a@b.example\nSubject: nest\nMIME-Version: 1.0\n';
  for (let i = 0; i < 3000; i++) bomb += `Content-Type: multipart/mixed; boundary="b${i}"\n\n--b${i}\n`;
  await refused({ email_body: bomb }, /email_body: not a message mailparser can read/);
  // binary is read as text: an answer, not an error
  const binary = Buffer.from(Array.from({ length: 60_000 }, (_, i) => (i * 7919) % 256)).toString('latin1');
  for (const body of [{ email_body: binary }, { text_body: binary }, { html_body: binary }]) {
    const res = await classify(body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await expectShape('spam', 'Classify', res.body);
  }
  // /openapi.json of a tenant describes the endpoint
  const doc = (await (await fetch(`${p.url}/openapi.json`, { headers: { authorization: `Bearer ${p.a.key}` } })).json()) as { paths: Record<string, unknown> };
  assert.match(JSON.stringify(doc.paths['/v1/spam/Classify']), /RFC 822/);
  assert.equal((await p.call(undefined, 'spam', 'Classify', SPAM)).status, 401);
});
