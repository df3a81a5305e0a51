import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { ledgerContract, raceKeysTwoHandles, raceTwoHandles, spendAndRace } from './contract.js';
import { openSqliteLedger } from './sqlite.js';

function tempPath(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-ledger-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'ledger.db');
}

ledgerContract('sqlite', async (t, options) => openSqliteLedger(tempPath(t), options));

test('sqlite: entries and postings cannot be changed or deleted, even by hand', async (t) => {
  const l = openSqliteLedger(tempPath(t));
  t.after(() => l.close());
  await l.openAccount({ id: 'external:payments', allowNegative: true });
  await l.openAccount({ id: 'customer:c1:balance' });
  await l.post({ key: 'k', reason: 'r', entries: [{ account: 'customer:c1:balance', amount: 5 }, { account: 'external:payments', amount: -5 }] });
  assert.throws(() => l.db.prepare('UPDATE entries SET amount = 500').run(), /immutable/);
  assert.throws(() => l.db.prepare('DELETE FROM entries').run(), /immutable/);
  assert.throws(() => l.db.prepare("UPDATE postings SET reason = 'x'").run(), /immutable/);
  assert.throws(() => l.db.prepare('DELETE FROM postings').run(), /immutable/);
  // a balance changed by hand is caught by the trial balance
  l.db.prepare("UPDATE accounts SET balance = 6 WHERE id = 'customer:c1:balance'").run();
  assert.deepEqual((await l.trialBalance()).mismatched, ['customer:c1:balance']);
});

test('sqlite: two handles on one file (two processes) never overdraw', async (t) => {
  const path = tempPath(t);
  const a = openSqliteLedger(path);
  const b = openSqliteLedger(path);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  assert.equal(await raceTwoHandles(a, b, 2, 4), 2);
});

test('sqlite: two handles racing for the same keys record each once', async (t) => {
  const path = tempPath(t);
  const a = openSqliteLedger(path);
  const b = openSqliteLedger(path);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  await raceKeysTwoHandles(a, b);
});

test('sqlite: two processes on one file, posting at once, never overdraw and record each key once', async (t) => {
  const path = tempPath(t);
  const l = openSqliteLedger(path);
  t.after(() => l.close());
  await l.openAccount({ id: 'external:payments', allowNegative: true });
  await l.openAccount({ id: 'platform:revenue' });
  await l.openAccount({ id: 'customer:c1:balance' });
  await l.openAccount({ id: 'customer:c2:balance' });
  const funds = 211;
  await l.post({ key: 'pay', reason: 'card', entries: [{ account: 'customer:c1:balance', amount: funds }, { account: 'external:payments', amount: -funds }] });
  await l.post({ key: 'pay-2', reason: 'card', entries: [{ account: 'customer:c2:balance', amount: 1_000 }, { account: 'external:payments', amount: -1_000 }] });
  const code = `
    import { openSqliteLedger } from ${JSON.stringify(new URL('./sqlite.js', import.meta.url).href)};
    import { spendAndRace } from ${JSON.stringify(new URL('./contract.js', import.meta.url).href)};
    const l = openSqliteLedger(process.argv[1]);
    process.stdout.write('ready\\n');
    process.stdin.once('data', async () => {
      const result = await spendAndRace(l, 'child');
      await l.close();
      process.stdout.write(JSON.stringify(result) + '\\n');
    });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  const lines: string[] = [];
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      const take = () => {
        const n = out.indexOf('\n');
        if (n < 0) return false;
        lines.push(out.slice(0, n));
        out = out.slice(n + 1);
        resolve(lines[lines.length - 1] as string);
        return true;
      };
      if (take()) return;
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (take()) child.stdout.off('data', onData);
      };
      child.stdout.on('data', onData);
      child.once('exit', (c) => reject(new Error(`the child exited with ${c}`)));
    });
  assert.equal(await nextLine(), 'ready');
  const answer = nextLine();
  child.stdin.write('go\n');
  const [mine, theirs] = await Promise.all([spendAndRace(l, 'parent'), answer.then((line) => JSON.parse(line) as Awaited<ReturnType<typeof spendAndRace>>)]);
  assert.deepEqual([...mine.odd, ...theirs.odd], [], 'every refusal is for funds');
  assert.equal(mine.spent + theirs.spent, funds, 'funds for 211 spends: exactly 211 went through');
  for (let k = 0; k < 100; k++) {
    const [x, y] = [mine.shared[k], theirs.shared[k]] as [[number, boolean], [number, boolean]];
    assert.ok(x[0] > 0 && x[0] === y[0], `shared-${k}: one posting for both`);
    assert.equal(Number(x[1]) + Number(y[1]), 1, `shared-${k}: one records, the other replays`);
  }
  assert.equal(await l.balance('customer:c1:balance'), 0);
  assert.equal(await l.balance('customer:c2:balance'), 900);
  const trial = await l.trialBalance();
  assert.deepEqual([trial.ok, trial.postings], [true, 2 + funds + 100]);
});
