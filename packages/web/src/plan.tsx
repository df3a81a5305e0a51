import { useState } from 'preact/hooks';
import { call, currentSession } from './api';
import { Problem, Section, time, useLoad, useSubmit } from './ui';

/** A plan as billing answers it (packages/platform/src/plans/definition.ts). */
interface PlanView {
  id: string;
  name: string;
  description: string;
  /** units (10^-6 USD) per seat a month */
  price: number;
  limits: Record<string, number>;
  support: string;
  sla: { uptimeBasisPoints: number | null; responseHours: number | null };
  sharedNamespaces: boolean;
  perNamespaceQuotas: boolean;
  status: 'available' | 'reserved' | 'retired';
}

interface Subscription {
  customer: string;
  email?: string;
  subscribed: boolean;
  plan: PlanView;
  since: number;
  cancelAtPeriodEnd: boolean;
  period: { id: string; start: number; end: number };
  namespaces: string[];
  seats: number;
  members: number;
  charged: number;
  next: { period: string; plan: string; name: string; price: number; seats: number; amount: number };
}

/** units (10^-6 USD) → `$35.00`, `$0.000100`, `-$1.50`: as billing's formatDollars, in integers only */
export function dollars(units: number): string {
  const sign = units < 0 ? '-' : '';
  const abs = Math.abs(units);
  const whole = Math.floor(abs / 1_000_000);
  const frac = String(abs % 1_000_000).padStart(6, '0');
  return `${sign}$${whole.toLocaleString('en-US')}.${frac.endsWith('0000') ? frac.slice(0, 2) : frac}`;
}

/** An admin of micro (platform staff): names the customer whose plan they see. */
function isStaff(): boolean {
  const s = currentSession();
  return !s?.email && s?.account.issuer === 'micro' && (s.account.scopes ?? []).includes('admin');
}

/**
 * The plan of the namespace's payer (billing.Subscription): plan, seats, period, what was
 * charged and the next fee; the plans to choose (billing.Plans) with their prices
 * (ChangePlan, asked first in place: pro-rated now); Cancel at period end and Resume. The
 * page only offers; the server decides (a member's change is its 403, a downgrade below
 * what is used its 409 with what to remove), and says so here as it says it.
 */
export function Plan() {
  const staff = isStaff();
  const [customer, setCustomer] = useState('');
  const who = staff ? { customer } : {};
  const sub = useLoad(async () => (staff && !customer ? undefined : (await call<{ subscription: Subscription }>('billing', 'Subscription', who)).subscription), [customer]);
  const plans = useLoad(async () => (await call<{ plans: PlanView[] }>('billing', 'Plans', {})).plans);
  const { busy, error, run } = useSubmit();
  const [done, setDone] = useState<string>();
  const act = (fn: () => Promise<string>) =>
    void run(async () => {
      setDone(undefined);
      try {
        setDone(await fn());
      } finally {
        sub.reload();
      }
    });
  const change = (p: PlanView) =>
    act(async () => {
      const { subscription: s, charged } = await call<{ subscription: Subscription; charged: number }>('billing', 'ChangePlan', { plan: p.id, ...who });
      const money = charged === 0 ? 'nothing charged' : charged > 0 ? `${dollars(charged)} charged for the rest of ${s.period.id}` : `${dollars(-charged)} credited for the rest of ${s.period.id}`;
      return `Now on ${s.plan.name}: ${money}.`;
    });
  const cancel = (yes: boolean) =>
    act(async () => {
      const { subscription: s } = await call<{ subscription: Subscription }>('billing', yes ? 'Cancel' : 'Resume', who);
      return yes ? `${s.plan.name} ends with ${s.period.id}; then Community.` : `${s.plan.name} goes on after ${s.period.id}.`;
    });
  const s = sub.value;
  return (
    <>
      <Section title={s ? `Plan of ${s.namespaces.join(', ') || s.email || s.customer}` : 'Plan'} actions={<button onClick={sub.reload}>Refresh</button>}>
        {staff ? <ChooseCustomer choose={setCustomer} /> : null}
        <Problem error={sub.error} />
        {s ? <Current s={s} busy={busy} cancel={cancel} /> : null}
        {done ? <p role="status">{done}</p> : null}
        <Problem error={error} />
      </Section>
      <Section title="Plans">
        <Problem error={plans.error} />
        {plans.value ? <Plans plans={plans.value} current={s?.plan.id} busy={busy || !s} choose={change} /> : null}
      </Section>
    </>
  );
}

function ChooseCustomer({ choose }: { choose: (c: string) => void }) {
  const [value, setValue] = useState('');
  const submit = (e: Event) => {
    e.preventDefault();
    choose(value.trim());
  };
  return (
    <form class="row" onSubmit={submit} aria-label="choose a customer">
      <label>
        Customer
        <input name="customer" maxLength={254} placeholder="email or cus_…" value={value} onInput={(e) => setValue(e.currentTarget.value)} required />
      </label>
      <button type="submit">Show</button>
    </form>
  );
}

function Current({ s, busy, cancel }: { s: Subscription; busy: boolean; cancel: (yes: boolean) => void }) {
  const next = s.next.amount === 0 ? `${s.next.name}: nothing to pay` : `${s.next.name}, ${s.next.seats} × ${dollars(s.next.price)} = ${dollars(s.next.amount)}`;
  return (
    <>
      <dl class="facts" aria-label="subscription">
        <dt>Plan</dt>
        <dd data-fact="plan">
          {s.plan.name}, {dollars(s.plan.price)} a seat a month{s.subscribed ? `, since ${time(s.since)}` : ''}
        </dd>
        <dt>Period</dt>
        <dd data-fact="period">
          {s.period.id}, until {time(s.period.end)}
          {s.cancelAtPeriodEnd ? <span class="badge">cancelled: Community after it</span> : null}
        </dd>
        <dt>Seats</dt>
        <dd data-fact="seats">
          {s.seats} charged this period; {s.members} member{s.members === 1 ? '' : 's'} now
        </dd>
        <dt>Charged</dt>
        <dd data-fact="charged">{dollars(s.charged)} this period</dd>
        <dt>Next</dt>
        <dd data-fact="next">
          {s.next.period}: {next}
        </dd>
      </dl>
      {s.plan.id === 'community' ? null : s.cancelAtPeriodEnd ? (
        <button disabled={busy} onClick={() => cancel(false)}>
          Resume
        </button>
      ) : (
        <Ask label="Cancel at period end" question={`Back to Community when ${s.period.id} ends? Nothing is credited.`} busy={busy} yes={() => cancel(true)} />
      )}
    </>
  );
}

/** A button that asks first, in place (no window.confirm: it blocks the page). */
function Ask({ label, question, busy, yes }: { label: string; question: string; busy: boolean; yes: () => void }) {
  const [open, setOpen] = useState(false);
  if (!open) {
    return (
      <button disabled={busy} onClick={() => setOpen(true)}>
        {label}
      </button>
    );
  }
  return (
    <span role="group" aria-label={question} class="confirm">
      {question}{' '}
      <button
        onClick={() => {
          setOpen(false);
          yes();
        }}
      >
        Yes
      </button>{' '}
      <button class="link" onClick={() => setOpen(false)}>
        Cancel
      </button>
    </span>
  );
}

function Plans({ plans, current, busy, choose }: { plans: PlanView[]; current: string | undefined; busy: boolean; choose: (p: PlanView) => void }) {
  const n = (p: PlanView, key: string) => (p.limits[key] === undefined ? '-' : p.limits[key]?.toLocaleString('en-US'));
  return (
    <table class="list" aria-label="plans">
      <thead>
        <tr>
          <th>Plan</th>
          <th>Per seat a month</th>
          <th>Services</th>
          <th>Requests a second</th>
          <th>Members</th>
          <th>Support</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {plans.map((p) => (
          <tr key={p.id} data-plan={p.id}>
            <td>
              <strong>{p.name}</strong>
              <div class="muted">{p.description}</div>
            </td>
            <td class="num nowrap">{p.status === 'reserved' ? 'later' : dollars(p.price)}</td>
            <td class="num">{n(p, 'services')}</td>
            <td class="num">{n(p, 'requestsPerSecond')}</td>
            <td class="num">{p.sharedNamespaces ? n(p, 'members') : 'you alone'}</td>
            <td>
              {p.support}
              {p.sla.uptimeBasisPoints === null ? null : <div class="muted">{p.sla.uptimeBasisPoints / 100} % uptime</div>}
            </td>
            <td>
              {p.id === current ? (
                <span class="badge">current</span>
              ) : p.status === 'reserved' ? (
                <button disabled>Coming later</button>
              ) : (
                <Ask label="Choose" question={`Change to ${p.name} now? The rest of this period is charged at its price less the old one's, to the second.`} busy={busy} yes={() => choose(p)} />
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
