import { test } from 'node:test';
import assert from 'node:assert/strict';
import { features, linkHosts, MAX_FEATURES } from './features.js';
import { htmlText, MAX_HTML_DEPTH, parseEmail, UnreadableEmail } from './message.js';
import { address, RULES } from './rules.js';

const none = { subject: '', from: '', to: '', text: '', html: '' };

test('a raw message: headers decoded, MIME parts found, the mbox From line skipped, no text made from HTML', async () => {
  const raw = [
    'From someone@example.com  Thu Aug 22 13:17:22 2002',
    'From: =?UTF-8?B?w4VzYQ==?= <asa@example.com>',
    'To: bob@example.com, carol@example.com',
    'Subject: =?ISO-8859-1?Q?Caf=E9?= tonight',
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'See you at the caf=C3=A9',
    '--b',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>See you at the <b>caf&eacute;</b></p>',
    '--b--',
    '',
  ].join('\r\n');
  const m = await parseEmail(raw);
  assert.equal(m.subject, 'Café tonight');
  assert.equal(m.from, '"Åsa" <asa@example.com>');
  assert.equal(m.to, 'bob@example.com, carol@example.com');
  assert.equal(m.text.trim(), 'See you at the café');
  assert.match(m.html, /<b>caf&eacute;<\/b>/);
  const htmlOnly = await parseEmail('From: a@example.com\nSubject: x\nContent-Type: text/html\n\n<p>only html</p>\n');
  assert.equal(htmlOnly.text, '');
  assert.ok(RULES.find((r) => r.name === 'HTML_ONLY')?.fires(htmlOnly, []));
});

test('hostile raw messages: a MIME bomb is an UnreadableEmail, binary is read as text', async () => {
  let bomb = 'From: a@b.example\nSubject: nest\nMIME-Version: 1.0\n';
  for (let i = 0; i < 3000; i++) bomb += `Content-Type: multipart/mixed; boundary="b${i}"\n\n--b${i}\n`;
  await assert.rejects(parseEmail(bomb), UnreadableEmail);
  const binary = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 256)).toString('latin1');
  const m = await parseEmail(binary);
  assert.equal(typeof m.text, 'string');
  assert.ok(features(m).length <= MAX_FEATURES);
});

test('HTML to text: what a reader sees, links kept, nothing hidden or run, deep nesting cut off cheaply', () => {
  assert.equal(htmlText('<p>Hello <b>fr</b>ee <a href="http://x.example/a">money</a><script>evil()</script><style>p{color:red}</style> &amp; more</p>'), 'Hello free [http://x.example/a] money & more');
  assert.equal(htmlText('<div>one</div><div>two</div><br>three'), 'one two three');
  assert.equal(htmlText('<a href="javascript:alert(1)">x</a><img src="http://t.example/p.gif">'), 'x');
  // past MAX_HTML_DEPTH the rest is text with its tags cut out
  assert.equal(htmlText('<div>'.repeat(MAX_HTML_DEPTH + 10) + 'deep <i>text</i>' + '</div>'.repeat(10)), 'deep text');
  assert.equal(htmlText('<b>'.repeat(80_000)), '');
  assert.equal(htmlText('<div'.repeat(60_000)), '');
  assert.equal(htmlText('<<<>>>&#0;&#xD800;'), '<<<>>>\ufffd\ufffd');
});

test('features: subject words, body words, link hosts, the sender\'s domain, rules; bounded', () => {
  const f = features({ subject: 'Cheap $$$ offer', from: 'Spammer <x@Bulk.Example>', to: 'me@example.com', text: "Don't miss http://user@www.Deals.example/buy now 1234567890", html: '<a href="https://203.0.113.9:8080/x">claim</a>' });
  for (const want of ['subject:cheap', 'subject:offer', "don't", 'miss', 'now', 'from:bulk.example', 'link:deals.example', 'link:203.0.113.9:8080', 'rule:LINK_NUMERIC_HOST', 'claim']) assert.ok(f.includes(want), `${want} in ${f.join(' ')}`);
  assert.ok(!f.includes('1234567890'), 'long digit runs are not words');
  assert.deepEqual(linkHosts({ ...none, text: 'http://a.example http://A.example/x https://b.example' }), ['a.example', 'b.example']);
  const many = features({ ...none, subject: 'x', text: Array.from({ length: 20_000 }, (_, i) => `w${i}`).join(' ') });
  assert.ok(many.length <= MAX_FEATURES);
  assert.equal(address('"Ann" <ann@Example.com>'), 'ann@example.com');
  assert.equal(address('ann@example.com (Ann)'), 'ann@example.com');
  assert.equal(address('undisclosed-recipients:;'), '');
});

test('the rules fire on what they say', () => {
  const fired = (m: Partial<typeof none>) => RULES.filter((r) => r.fires({ ...none, ...m }, linkHosts({ ...none, ...m }))).map((r) => r.name);
  const plain = { subject: 'Lunch tomorrow?', from: 'ann@example.com', to: 'bob@example.com', text: 'Shall we?' };
  assert.deepEqual(fired(plain), []);
  assert.deepEqual(fired({ ...plain, subject: 'ACT NOW BEFORE IT ENDS' }), ['SUBJECT_ALL_CAPS']);
  assert.deepEqual(fired({ ...plain, subject: 'Great news!' }), ['SUBJECT_EXCLAMATION']);
  assert.deepEqual(fired({ ...plain, subject: 'Save 50% today' }), ['SUBJECT_MONEY']);
  assert.deepEqual(fired({ ...plain, subject: '' }), ['SUBJECT_MISSING']);
  assert.deepEqual(fired({ ...plain, text: '', html: '<p>hi</p>' }), ['HTML_ONLY']);
  assert.deepEqual(fired({ ...plain, text: 'see http://192.0.2.1/x' }), ['LINK_NUMERIC_HOST']);
  assert.deepEqual(fired({ ...plain, from: 'Ann' }), ['FROM_NO_ADDRESS']);
  assert.deepEqual(fired({ ...plain, to: '' }), ['TO_MISSING']);
});
