import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { checkRace, fundRace, ledgerContract, raceKeysTwoHandles, raceTwoHandles, spendAndRace } from './contract.js';
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

/** two handles on one file, as two processes have them */
function twoHandles(t: { after(fn: () => unknown): void }) {
  const path = tempPath(t);
  const a = openSqliteLedger(path);
  const b = openSqliteLedger(path);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  return { a, b };
}

test('sqlite: two handles on one file (two processes) never overdraw', async (t) => {
  const { a, b } = twoHandles(t);
  assert.equal(await raceTwoHandles(a, b, 2, 4), 2);
});

test('sqlite: two handles racing for the same keys record each once', async (t) => {
  const { a, b } = twoHandles(t);
  await raceKeysTwoHandles(a, b);
});

test('sqlite: two processes on one file, posting at once, never overdraw and record each key once', async (t) => {
  const path = tempPath(t);
  const l = openSqliteLedger(path);
  t.after(() => l.close());
  await fundRace(l);
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
  const [mine, theirs] = await Promise.all([spendAndRace(l, 'parent'), answer.then((line) => JSON.parse(line) as Parameters<typeof checkRace>[2])]);
  await checkRace(l, mine, theirs);
});
