import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTable } from '../output.js';
import { keyLabel, quotaTable, usageFilter, usageHeading, usageTable, type UsageRead } from './usage-format.js';

// an answer of usage.Read as its definition describes it (packages/platform/src/usage/definition.ts)
const read: UsageRead = {
  namespace: 'acme',
  payer: 'cus_1',
  from: '2026-01-01',
  to: '2026-01-31',
  rows: [
    { service: 'books', endpoint: 'Read', day: '2026-01-02', key: 'mk_abc', calls: 1200, ok: 1190, failed: 10, free: 1000, charged: 19_000 },
    { service: 'books', endpoint: 'Write', day: '2026-01-03', key: '', calls: 3, ok: 3, failed: 0, free: 0, charged: 35_000_000 },
  ],
  totals: { calls: 1203, ok: 1193, failed: 10, free: 1000, charged: 35_019_000 },
  quotas: [{ service: 'books', endpoint: 'Read', price: 100, freeQuota: 1000, used: 1000, left: 0 }],
};

test('the usage table per endpoint: counts with separators, charges in dollars, totals last', () => {
  const t = usageTable(read, 'endpoint');
  assert.deepEqual(t.headers, ['SERVICE', 'ENDPOINT', 'CALLS', 'OK', 'FAILED', 'FREE', 'CHARGED']);
  assert.deepEqual(t.rows, [
    ['books', 'Read', '1,200', '1,190', '10', '1,000', '$0.019000'],
    ['books', 'Write', '3', '3', '0', '0', '$35.00'],
    ['TOTAL', '', '1,203', '1,193', '10', '1,000', '$35.019000'],
  ]);
  assert.match(formatTable(t.headers, t.rows), /^books {4}Read {6}1,200 {2}1,190 {2}10 {6}1,000 {2}\$0\.019000$/m);
});

test('per day and per key: the day or the key leads; calls made with a token show as (token)', () => {
  assert.deepEqual(usageTable(read, 'day').rows.map((r) => r[0]), ['2026-01-02', '2026-01-03', '']);
  assert.deepEqual(usageTable(read, 'day').rows[2]?.slice(0, 2), ['', 'TOTAL']);
  assert.deepEqual(usageTable(read, 'key').headers.slice(0, 2), ['KEY', 'SERVICE']);
  assert.deepEqual(usageTable(read, 'key').rows.map((r) => r[0]), ['mk_abc', '(token)', '']);
  assert.equal(keyLabel(undefined), '(token)');
});

test('quotas and the heading', () => {
  assert.deepEqual(quotaTable(read), { headers: ['SERVICE', 'ENDPOINT', 'PRICE', 'FREE/MONTH', 'USED', 'LEFT'], rows: [['books', 'Read', '$0.000100 a call', '1,000', '1,000', '0']] });
  assert.equal(usageHeading(read), 'usage of namespace acme (paid by cus_1), 2026-01-01 to 2026-01-31 (UTC)');
  assert.equal(usageHeading({ ...read, payer: 'acme' }), 'usage of namespace acme, 2026-01-01 to 2026-01-31 (UTC)');
  const empty = { ...read, rows: [], totals: { calls: 0, ok: 0, failed: 0, free: 0, charged: 0 }, quotas: [] };
  assert.deepEqual(usageTable(empty, 'endpoint').rows, [['TOTAL', '', '0', '0', '0', '0', '$0.00']]);
});

test('the filter from the flags: what the service takes, and wrong flags named', () => {
  assert.deepEqual(usageFilter({}), { by: 'endpoint' });
  assert.deepEqual(usageFilter({ period: '2026-01', by: 'day', service: 'books', key: 'mk_1', namespace: 'acme' }), { by: 'day', period: '2026-01', service: 'books', key: 'mk_1', namespace: 'acme' });
  assert.deepEqual(usageFilter({ from: '2024-02-01', to: '2024-02-29' }), { by: 'endpoint', from: '2024-02-01', to: '2024-02-29' });
  const bad: [Record<string, string>, RegExp][] = [
    [{ by: 'month' }, /--by must be endpoint, day or key, not "month"/],
    [{ period: '2026-13' }, /--period must be a month YYYY-MM/],
    [{ period: '26-01' }, /--period/],
    [{ period: '2026-1' }, /--period/],
    [{ from: '2026-02-30', to: '2026-03-01' }, /--from must be a day YYYY-MM-DD \(UTC\), not "2026-02-30"/],
    [{ from: '2025-02-29', to: '2025-03-01' }, /--from must be a day/],
    [{ from: '2026-01-01', to: 'tomorrow' }, /--to must be a day/],
    [{ from: '2026-01-01' }, /--from and --to go together/],
    [{ to: '2026-01-01' }, /--from and --to go together/],
    [{ from: '2026-02-01', to: '2026-01-01' }, /--from 2026-02-01 is after --to 2026-01-01/],
    [{ period: '2026-01', from: '2026-01-01', to: '2026-01-02' }, /--period or --from\/--to, not both/],
  ];
  for (const [flags, message] of bad) assert.throws(() => usageFilter(flags), message, JSON.stringify(flags));
});
