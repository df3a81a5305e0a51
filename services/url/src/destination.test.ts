import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDestination, internalHost } from './destination.js';

const refused: [string, RegExp][] = [
  ['javascript:alert(1)', /http or https/],
  ['JaVaScRiPt:alert(document.cookie)', /http or https/],
  ['data:text/html,<script>alert(1)</script>', /http or https/],
  ['file:///etc/passwd', /http or https/],
  ['ftp://example.com/x', /http or https/],
  ['vbscript:msgbox', /http or https/],
  ['//example.com/x', /absolute URL/],
  ['example.com', /absolute URL/],
  [' https://example.com', /spaces or control/],
  ['https://example.com/\u0000', /spaces or control/],
  ['https://exa mple.com', /spaces or control/],
  ['java\tscript:alert(1)', /spaces or control/],
  ['http://localhost/admin', /internal/],
  ['http://LOCALHOST./admin', /internal/],
  ['http://app.localhost/', /internal/],
  ['http://127.0.0.1/', /internal/],
  ['http://127.1/', /internal/],
  ['http://2130706433/', /internal/],
  ['http://0x7f000001/', /internal/],
  ['http://0x7f.0.0.1/', /internal/],
  ['http://0177.0.0.1/', /internal/],
  ['http://0/', /internal/],
  ['http://10.1.2.3/', /internal/],
  ['http://172.16.0.1/', /internal/],
  ['http://172.31.255.255/', /internal/],
  ['http://192.168.1.1/', /internal/],
  ['http://169.254.169.254/latest/meta-data/', /internal/],
  ['http://2852039166/latest/meta-data/', /internal/],
  ['http://100.64.0.1/', /internal/],
  ['http://[::1]/', /internal/],
  ['http://[::]/', /internal/],
  ['http://[::ffff:127.0.0.1]/', /internal/],
  ['http://[::ffff:a9fe:a9fe]/', /internal/],
  ['http://[64:ff9b::a9fe:a9fe]/', /internal/],
  ['http://[fe80::1]/', /internal/],
  ['http://[fd00::1]/', /internal/],
  ['http://metadata.google.internal/computeMetadata/v1/', /internal/],
  ['http://router/', /internal/],
  ['http://nas.local/', /internal/],
  ['https://user:pass@example.com/', /user name or password/],
  ['https://example.com@evil.com/', /user name or password/],
  ['https://' + 'a'.repeat(2100) + '.com', /at most 2048/],
  ['', /required/],
];

test('destinations other than public http(s) URLs are refused, naming the field and why', () => {
  for (const [url, why] of refused) {
    assert.throws(() => checkDestination(url), (err: { code: number; detail: string }) => {
      assert.equal(err.code, 400, url);
      assert.match(err.detail, /^destinationURL: /, url);
      assert.match(err.detail, why, `${url}: ${err.detail}`);
      return true;
    }, url);
  }
});

test('public http(s) destinations pass, normalized', () => {
  assert.equal(checkDestination('https://example.com'), 'https://example.com/');
  assert.equal(checkDestination('HTTP://Example.COM/a?b=c#d'), 'http://example.com/a?b=c#d');
  assert.equal(checkDestination('https://8.8.8.8/dns'), 'https://8.8.8.8/dns');
  assert.equal(checkDestination('https://[2606:4700:4700::1111]/'), 'https://[2606:4700:4700::1111]/');
  assert.equal(checkDestination('https://bücher.example/'), 'https://xn--bcher-kva.example/');
  assert.equal(internalHost('172.32.0.1'), false);
  assert.equal(internalHost('11.0.0.1'), false);
});
