import { useState } from 'preact/hooks';
import { call } from './api';
import { Problem, Section, Submit, time, useLoad, useSubmit } from './ui';

/** balance.Read's answer (packages/platform/src/balance/definition.ts); amounts in units of 10^-6 USD. */
interface BalanceRead {
  namespace: string;
  payer: string;
  balance: number;
  due: number;
  level: 'ok' | 'low' | 'zero';
  lowBalance: number;
  provider: string;
  topUp: { min: number; max: number };
}

interface Entry {
  id: number;
  at: number;
  amount: number;
  balanceAfter: number;
  kind: string;
  reason: string;
}

interface Session {
  id: string;
  url: string;
  amount: number;
}

const UNITS = 1_000_000;

/** units → `$1,234.50` (six decimals when cents do not say it all), as billing's formatDollars writes it */
export function dollars(units: number): string {
  const sign = units < 0 ? '-' : '';
  const abs = Math.abs(units);
  const whole = Math.floor(abs / UNITS);
  const frac = String(abs % UNITS).padStart(6, '0');
  return `${sign}$${whole.toLocaleString('en-US')}.${frac.endsWith('0000') ? frac.slice(0, 2) : frac}`;
}

/** `25`, `$25.50` → units; undefined for anything else (the server checks the bounds). */
export function unitsOf(text: string): number | undefined {
  const m = /^\$?(\d{1,9})(?:\.(\d{1,6}))?$/.exec(text.trim());
  return m ? Number(m[1]) * UNITS + Number((m[2] ?? '').padEnd(6, '0')) : undefined;
}

/** What came back from the payment page: `#/billing/paid` or `#/billing` (canceled). */
function Returned({ sub }: { sub: string }) {
  if (sub !== 'paid') return null;
  return <p role="status">Thank you. The payment shows here once the payment provider confirms it (Refresh).</p>;
}

/** The prepaid balance, what is due, the history, and a top-up through the payment page. */
export function Billing({ sub }: { sub: string }) {
  const read = useLoad(() => call<BalanceRead>('balance', 'Read', {}));
  const [account, setAccount] = useState<'balance' | 'due'>('balance');
  const history = useLoad(() => call<{ entries: Entry[]; next?: number }>('balance', 'History', { account, limit: 50 }), [account]);
  const reload = () => {
    read.reload();
    history.reload();
  };
  const b = read.value;
  return (
    <>
      <Section title={`Billing${b ? ` of ${b.namespace}` : ''}`} actions={<button onClick={reload}>Refresh</button>}>
        <Returned sub={sub} />
        <Problem error={read.error} />
        {b ? (
          <table class="list" aria-label="balance">
            <tbody>
              <tr>
                <td>Prepaid balance</td>
                <td class="num" data-field="balance">
                  {dollars(b.balance)}
                </td>
                <td>{b.level === 'ok' ? null : <span class="badge">{b.level === 'zero' ? 'used up' : `below ${dollars(b.lowBalance)}`}</span>}</td>
              </tr>
              <tr>
                <td>Due</td>
                <td class="num" data-field="due">
                  {dollars(b.due)}
                </td>
                <td>{b.due < 0 ? <PayDue /> : <span class="muted">nothing owed</span>}</td>
              </tr>
            </tbody>
          </table>
        ) : null}
        {b && b.provider !== 'manual' ? <TopUp min={b.topUp.min} max={b.topUp.max} /> : null}
        {b && b.provider === 'manual' ? <p class="muted">To top up, pay by bank transfer: the platform staff record it.</p> : null}
      </Section>
      <Section
        title="History"
        actions={
          <select aria-label="account" value={account} onChange={(e) => setAccount(e.currentTarget.value as 'balance' | 'due')}>
            <option value="balance">Balance</option>
            <option value="due">Due</option>
          </select>
        }
      >
        <Problem error={history.error} />
        {history.value && history.value.entries.length === 0 ? <p class="muted">Nothing yet.</p> : null}
        {history.value && history.value.entries.length > 0 ? (
          <table class="list" aria-label="history">
            <thead>
              <tr>
                <th>When</th>
                <th>Kind</th>
                <th>Reason</th>
                <th class="num">Amount</th>
                <th class="num">After</th>
              </tr>
            </thead>
            <tbody>
              {history.value.entries.map((e) => (
                <tr key={e.id}>
                  <td class="nowrap">{time(e.at)}</td>
                  <td>{e.kind || '—'}</td>
                  <td>{e.reason}</td>
                  <td class="num">{e.amount > 0 ? `+${dollars(e.amount)}` : dollars(e.amount)}</td>
                  <td class="num">{dollars(e.balanceAfter)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {history.value?.next ? <p class="muted">Only the 50 latest entries are shown (micro balance history pages through all).</p> : null}
      </Section>
    </>
  );
}

/** balance.TopUp, then off to the payment page. */
function TopUp({ min, max }: { min: number; max: number }) {
  const [amount, setAmount] = useState('');
  const { busy, error, run } = useSubmit();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const units = unitsOf(amount);
      if (units === undefined) throw new Error(`Amount: dollars such as 25 or 25.50, from ${dollars(min)} to ${dollars(max)}`);
      const { session } = await call<{ session: Session }>('balance', 'TopUp', { amount: units });
      location.assign(session.url);
    });
  };
  return (
    <form onSubmit={submit} aria-label="top up" class="call">
      <label>
        Top up (dollars, {dollars(min)} to {dollars(max)})
        <input name="amount" inputMode="decimal" maxLength={20} value={amount} onInput={(e) => setAmount(e.currentTarget.value)} required />
      </label>
      <Submit busy={busy} label="Top up" working="Opening the payment page…" error={error} />
    </form>
  );
}

/** balance.PayDue, then off to the payment page. */
function PayDue() {
  const { busy, error, run } = useSubmit();
  return (
    <>
      <button
        disabled={busy}
        onClick={() =>
          void run(async () => {
            const { session } = await call<{ session: Session }>('balance', 'PayDue', {});
            location.assign(session.url);
          })
        }
      >
        Pay what is due
      </button>
      <Problem error={error} />
    </>
  );
}
