import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quotaContract } from './contract.js';
import { openSqliteQuotas } from './sqlite.js';

quotaContract('sqlite', async (t, defaults) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-quota-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return openSqliteQuotas({ path: join(dir, 'quota.db'), defaults });
});
