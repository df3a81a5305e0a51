import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMicroError } from '@micro/sdk';
import { findEndpoint, parseCallback } from './callback.js';
import { MIN_GAP, parseDuration, parseInterval } from './interval.js';

const at = (iso: string) => Date.parse(iso);

function refused(fn: () => unknown, detail: RegExp): void {
  assert.throws(fn, (err: unknown) => isMicroError(err) && err.code === 400 && detail.test(err.detail));
}

test('cron expressions tick in UTC, at least a minute apart; @every ticks at multiples of its duration since the epoch', () => {
  assert.equal(parseInterval('*/5 * * * *').next(at('2030-01-01T10:02:00Z')), at('2030-01-01T10:05:00Z'));
  assert.equal(parseInterval('0 9 * * 1-5').next(at('2030-01-05T12:00:00Z')), at('2030-01-07T09:00:00Z')); // a Saturday, then Monday 9:00
  assert.equal(parseInterval('@hourly').next(at('2030-01-01T10:00:00Z')), at('2030-01-01T11:00:00Z'));
  assert.equal(parseInterval('30 * * * * *').next(at('2030-01-01T10:00:00Z')), at('2030-01-01T10:00:30Z'));
  assert.equal(parseInterval('  * * * * *  ').next(at('2030-01-01T10:00:00Z')), at('2030-01-01T10:01:00Z'));
  assert.equal(parseInterval('@every 5m').next(at('2030-01-01T10:02:00Z')), at('2030-01-01T10:05:00Z'));
  assert.equal(parseInterval('@every 1h30m').next(0), 90 * 60_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.ok(Number.isNaN(parseDuration('5 minutes')));
  // every tick of the most frequent expression is a minute after the last
  const every = parseInterval('* * * * *');
  let t = at('2030-01-01T00:00:00Z');
  for (let i = 0; i < 100; i++) {
    const next = every.next(t) as number;
    assert.equal(next - t, MIN_GAP);
    t = next;
  }
});

test('intervals that never fire, fire more than once a minute, or are not intervals are 400s that say why', () => {
  refused(() => parseInterval('0 0 30 2 *'), /never fires/);
  refused(() => parseInterval('0 0 31 4 *'), /never fires/);
  refused(() => parseInterval('* * * * * *'), /more often than once a minute/);
  refused(() => parseInterval('*/10 * * * * *'), /more often than once a minute/);
  refused(() => parseInterval('0,30 * * * * *'), /more often than once a minute/);
  refused(() => parseInterval('@every 30s'), /more often than once a minute/);
  refused(() => parseInterval('@every 59999ms'), /more often than once a minute/);
  refused(() => parseInterval('@every 9000h'), /longer than 366 days/);
  refused(() => parseInterval('@every soon'), /not a duration/);
  refused(() => parseInterval(''), /Missing interval/);
  refused(() => parseInterval('   '), /Missing interval/);
  refused(() => parseInterval('x'.repeat(101)), /at most 100 characters/);
  for (const bad of ['hello', '* * *', '61 * * * *', '* * * * * * *', '0 0 1 1 * 2020', '@fortnightly', '1-2-3 * * * *', '$(reboot) * * * *']) refused(() => parseInterval(bad), /interval/);
});

test('a callback is an endpoint of a service of the caller\'s namespace: nothing names a namespace, a host or a URL', () => {
  assert.deepEqual(parseCallback('greeter.Call'), { service: 'greeter', endpoint: 'Call' });
  assert.deepEqual(parseCallback(' /v1/greeter/call '), { service: 'greeter', endpoint: 'call' });
  assert.deepEqual(parseCallback('/v1/my-svc/Handler/Method'), { service: 'my-svc', endpoint: 'Handler.Method' });
  assert.deepEqual(parseCallback('my_svc.Handler.Method'), { service: 'my_svc', endpoint: 'Handler.Method' });
  for (const url of ['https://example.com/hook', 'http://127.0.0.1:8080/v1/greeter/Call', 'file:///etc/passwd', 'localhost:8080/x', 'nats://x']) refused(() => parseCallback(url), /URLs are not called/);
  for (const bad of ['tenant-a/greeter.Call', '/v1/greeter/Call?ns=tenant-a', '/v1/greeter', 'greeter', '../greeter.Call', 'greeter.Call.x.y', '/v2/greeter/Call', 'tenant-a.greeter.Call.x', 'greeter .Call', 'g'.repeat(64) + '.Call']) {
    refused(() => parseCallback(bad), /is not an endpoint of a service of your own namespace/);
  }
  refused(() => parseCallback(''), /Missing callback/);
  assert.equal(findEndpoint(['Call', 'Stream'], 'call'), 'Call');
  assert.equal(findEndpoint(['Handler.Method'], 'Handler.Method'), 'Handler.Method');
  assert.equal(findEndpoint(['Call'], 'CALL'), undefined);
});
