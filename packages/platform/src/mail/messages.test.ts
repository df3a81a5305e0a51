import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMicroError } from '@micro/sdk';
import { balanceMessage, escapeHtml, MAX_LISTED_NAMESPACES, namespacesMessage, platformInviteMessage, teamInviteMessage, verificationMessage } from './messages.js';

const base = 'https://m3o.example.com/';
const badRequest = (field: string) => (err: unknown) => isMicroError(err) && err.code === 400 && err.detail.startsWith(`${field}: `);
const hostileName = '<script>alert("x")</script>\r\nBcc: eve@evil.com & \'co\'';

describe('mail messages', () => {
  it('verification: the code and the link, in text and HTML', () => {
    const m = verificationMessage({ to: 'al+ice@example.com', code: '123456', base, validMinutes: 15 });
    const url = 'https://m3o.example.com/signup/verify?email=al%2Bice%40example.com&code=123456';
    assert.equal(m.to, 'al+ice@example.com');
    assert.equal(m.subject, 'Your M3O verification code');
    assert.ok(m.text.includes('123456'));
    assert.ok(m.text.includes(url), m.text);
    assert.ok(m.text.includes('15 minutes'));
    assert.ok(m.html?.includes(`<a href="${escapeHtml(url)}">`), m.html);
    assert.ok(m.html?.includes('&#38;code=123456'));
  });

  it('verification: refuses a bad code, base or address', () => {
    assert.throws(() => verificationMessage({ to: 'a@example.com', code: '12 34', base }), badRequest('code'));
    assert.throws(() => verificationMessage({ to: 'a@example.com', code: '1\r\n', base }), badRequest('code'));
    assert.throws(() => verificationMessage({ to: 'a@example.com', code: '1234', base: 'javascript:alert(1)' }), badRequest('base'));
    assert.throws(() => verificationMessage({ to: 'a@example.com', code: '1234', base: 'not a url' }), badRequest('base'));
    assert.throws(() => verificationMessage({ to: 'a@example.com', code: '1234', base: 'https://x.com/?a=1' }), badRequest('base'));
    assert.throws(() => verificationMessage({ to: 'a@example.com', code: '1234', base: 'https://u:p@x.com' }), badRequest('base'));
    assert.throws(() => verificationMessage({ to: 'a@example.com\r\nBcc: e@evil.com', code: '1234', base }), badRequest('to'));
  });

  it('platform invite: with and without a namespace and an inviter', () => {
    const plain = platformInviteMessage({ to: 'bob@example.com', base });
    assert.ok(plain.text.includes('You are invited to M3O.'));
    assert.ok(plain.text.includes('https://m3o.example.com/signup?email=bob%40example.com\n'));
    const into = platformInviteMessage({ to: 'bob@example.com', base, inviter: 'Alice', namespace: 'acme' });
    assert.ok(into.text.includes('Alice invited you to join the namespace acme on M3O.'));
    assert.ok(into.text.includes('signup?email=bob%40example.com&namespace=acme'));
    assert.equal(into.subject, 'You are invited to M3O');
  });

  it('team invite: namespace, inviter and role', () => {
    const m = teamInviteMessage({ to: 'bob@example.com', base, namespace: 'acme', inviter: 'alice@example.com', role: 'developer' });
    assert.ok(m.text.includes('alice@example.com invited you to the team namespace acme on M3O as developer.'));
    assert.ok(m.text.includes('signup?email=bob%40example.com&namespace=acme'));
    assert.equal(m.subject, 'You are invited to a team on M3O');
    assert.throws(() => teamInviteMessage({ to: 'bob@example.com', base, namespace: '', inviter: 'a' }), badRequest('namespace'));
    assert.throws(() => teamInviteMessage({ to: 'bob@example.com', base, namespace: 'acme', inviter: 'x'.repeat(101) }), badRequest('inviter'));
  });

  it('escapes names in HTML, keeps them off the subject and on one line in the text', () => {
    const m = teamInviteMessage({ to: 'bob@example.com', base, namespace: '"><img src=x onerror=alert(1)>', inviter: hostileName, role: '<b>owner</b>' });
    assert.ok(!/<script|<img|<b>/.test(m.html ?? ''), m.html);
    assert.ok(m.html?.includes('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;'));
    assert.ok(m.html?.includes('&#38; &#39;co&#39;'));
    assert.equal(m.subject, 'You are invited to a team on M3O');
    assert.ok(!m.text.includes('\r'));
    assert.ok(!m.text.split('\n').some((line) => line.startsWith('Bcc:')), m.text);
    // the namespace reaches the link only URL-encoded
    assert.ok(m.text.includes('namespace=%22%3E%3Cimg+src%3Dx+onerror%3Dalert%281%29%3E'), m.text);
    const p = platformInviteMessage({ to: 'bob@example.com', base, inviter: hostileName });
    assert.ok(!(p.html ?? '').includes('<script'));
    assert.equal(p.subject, 'You are invited to M3O');
  });

  it('namespaces: lists names, says when there are none, bounds the list', () => {
    const m = namespacesMessage({ to: 'a@example.com', namespaces: ['acme', '<i>x</i>'] });
    assert.ok(m.text.includes('  - acme\n  - <i>x</i>'));
    assert.ok(m.html?.includes('<li>acme</li><li>&#60;i&#62;x&#60;/i&#62;</li>'));
    assert.equal(m.subject, 'Your M3O namespaces');
    assert.ok(namespacesMessage({ to: 'a@example.com', namespaces: [] }).text.includes('No M3O namespace belongs to a@example.com.'));
    const many = namespacesMessage({ to: 'a@example.com', namespaces: Array.from({ length: 250 }, (_, i) => `ns${i}`) });
    assert.equal(many.text.split('\n').filter((l) => l.startsWith('  - ')).length, MAX_LISTED_NAMESPACES);
    assert.ok(many.text.includes('and 150 more.'));
    assert.throws(() => namespacesMessage({ to: 'a@example.com', namespaces: 'acme' as unknown as string[] }), badRequest('namespaces'));
    assert.throws(() => namespacesMessage({ to: 'a@example.com', namespaces: [''] }), badRequest('namespaces[0]'));
  });

  it('balance: low and used up, with the billing link; amounts and state checked', () => {
    const low = balanceMessage({ to: 'owner@example.com', state: 'low', balance: '$0.42', threshold: '$1.00', base });
    assert.equal(low.subject, 'Your M3O balance is low');
    assert.ok(low.text.includes('Your prepaid M3O balance is $0.42, below $1.00.'), low.text);
    assert.ok(low.text.includes('https://m3o.example.com/#/billing\n'), low.text);
    const zero = balanceMessage({ to: 'owner@example.com', state: 'zero', balance: '$0.00', threshold: '$1,000.000001', base });
    assert.equal(zero.subject, 'Your M3O balance is used up');
    assert.ok(zero.html?.includes('<a href="https://m3o.example.com/#/billing">'));
    assert.throws(() => balanceMessage({ to: 'owner@example.com', state: 'high' as 'low', balance: '$1.00', threshold: '$1.00', base }), badRequest('state'));
    assert.throws(() => balanceMessage({ to: 'owner@example.com', state: 'low', balance: '<b>1</b>', threshold: '$1.00', base }), badRequest('balance'));
    assert.throws(() => balanceMessage({ to: 'owner@example.com', state: 'low', balance: '$1.00', threshold: '1 dollar\r\nBcc: x', base }), badRequest('threshold'));
    assert.throws(() => balanceMessage({ to: 'a@b.c, e@evil.com', state: 'low', balance: '$1.00', threshold: '$1.00', base }), badRequest('to'));
  });
});
