import { call, currentSession } from './api';
import { bytes, Problem, Section, useLoad } from './ui';

/** quota.Read's answer (packages/sdk/src/quota/definition.ts). */
interface QuotaRead {
  namespace: string;
  /** each limit: a whole number, or null for unlimited */
  limits: Record<string, number | null>;
  /** what the namespace uses of each counted limit */
  usage: Record<string, number>;
  custom: string[];
}

/** How each limit is read and shown; a key the server adds later shows as a plain count. */
const KINDS: Record<string, { title: string; format: (n: number) => string }> = {
  services: { title: 'Services', format: count },
  instancesPerService: { title: 'Instances per service', format: count },
  memoryPerInstance: { title: 'Memory per instance', format: bytes },
  cpuPerInstance: { title: 'CPU per instance', format: (n) => `${count(n)} millicores` },
  storeBytes: { title: 'Store size', format: bytes },
  storeRecords: { title: 'Store records', format: count },
  blobBytes: { title: 'Blob size', format: bytes },
  apiKeys: { title: 'API keys', format: count },
  requestsPerSecond: { title: 'Requests a second', format: count },
  cacheBytes: { title: 'Cache size', format: bytes },
  members: { title: 'Members and invites', format: count },
  requestsPerMonth: { title: 'Requests this month', format: count },
  eventsBytes: { title: 'Events size', format: bytes },
  eventRetention: { title: 'Events kept for', format: seconds },
};

function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** A duration given in seconds, in its largest whole unit (604800 → 7 days). */
function seconds(n: number): string {
  for (const [unit, size] of [['day', 86_400], ['hour', 3_600], ['minute', 60]] as const) {
    if (n >= size && n % size === 0) return `${count(n / size)} ${unit}${n === size ? '' : 's'}`;
  }
  return `${count(n)} s`;
}

/** Share of the limit used, 0–100 (a limit of 0 with nothing used is empty, with anything used full). */
export function percent(used: number, limit: number): number {
  if (limit <= 0) return used > 0 ? 100 : 0;
  return Math.min(100, Math.max(0, (used / limit) * 100));
}

export function Bar({ title, used, limit, format }: { title: string; used: number; limit: number | null; format: (n: number) => string }) {
  if (limit === null) return <span class="muted">unlimited</span>;
  const p = percent(used, limit);
  const level = p >= 100 ? 'full' : p >= 80 ? 'high' : 'ok';
  return (
    <div class={`bar bar-${level}`} role="meter" aria-label={title} aria-valuemin={0} aria-valuemax={limit} aria-valuenow={Math.min(used, limit)} aria-valuetext={`${format(used)} of ${format(limit)}`}>
      <div class="bar-fill" style={{ width: `${p}%` }} />
    </div>
  );
}

function Row({ name, q }: { name: string; q: QuotaRead }) {
  const kind = KINDS[name] ?? { title: name, format: count };
  const limit = q.limits[name] ?? null;
  const used = q.usage[name];
  return (
    <tr data-limit={name}>
      <td>
        {kind.title} {q.custom.includes(name) ? <span class="badge">custom</span> : null}
      </td>
      <td class="num nowrap">{used === undefined ? <span class="muted">not counted</span> : kind.format(used)}</td>
      <td class="num nowrap">{limit === null ? 'unlimited' : kind.format(limit)}</td>
      <td class="bar-cell">{used === undefined ? null : <Bar title={kind.title} used={used} limit={limit} format={kind.format} />}</td>
    </tr>
  );
}

/** quota.Read of the caller's namespace: what it uses of each limit. */
export function Quotas() {
  const q = useLoad(() => call<QuotaRead>('quota', 'Read', {}));
  const value = q.value;
  const names = value ? Object.keys(value.limits) : [];
  return (
    <Section title={`Quotas${value ? ` of ${value.namespace}` : ''}`} actions={<button onClick={q.reload}>Refresh</button>}>
      <Problem error={q.error} />
      {value ? (
        <table class="list" aria-label="quotas">
          <thead>
            <tr>
              <th>Limit</th>
              <th class="num">Used</th>
              <th class="num">Of</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {names.map((n) => (
              <Row key={n} name={n} q={value} />
            ))}
          </tbody>
        </table>
      ) : null}
      <p class="muted">
        A write or a new API key over a limit is refused with a 403 that names it. {currentSession()?.email ? 'Ask us for a larger quota.' : 'Admins of micro change them with micro quota set.'}
      </p>
    </Section>
  );
}
