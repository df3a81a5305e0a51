import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { call, currentSession } from './api';
import { priceFor, priceText, type Price, type PriceRow } from './money';
import { fieldsOf, requestFrom, type Field, type JsonSchema } from './schema';
import { Json, messageOf, Problem, Section, useLoad } from './ui';

interface EndpointRecord {
  name: string;
  kind: 'unary' | 'server' | 'client' | 'bidi';
  request: JsonSchema;
  response: JsonSchema;
  description?: string;
  /** what the service's definition says (pricing.List has the price that applies) */
  price?: number;
  freeQuota?: number;
}
interface ServiceRecord {
  name: string;
  version: string;
  namespace?: string;
  description?: string;
  endpoints: EndpointRecord[];
  nodes: { id: string; address: string }[];
  /** a public service of micro (the platform's value-add services), which serves this namespace too */
  shared?: boolean;
}

/**
 * registry.ListServices: every service of the namespace, one entry per version, and the
 * public services of micro that its calls reach (those its own services do not shadow).
 */
export function Services() {
  const namespace = currentSession()?.account.issuer ?? 'micro';
  const list = useLoad(async () => {
    const own = await call<{ services: ServiceRecord[] }>('registry', 'ListServices', {});
    if (namespace === 'micro') return own;
    // micro's registry shows a stranger its public services only
    const shared = await call<{ services: ServiceRecord[] }>('registry', 'ListServices', { namespace: 'micro' }).catch(() => ({ services: [] as ServiceRecord[] }));
    const mine = new Set(own.services.map((s) => s.name));
    return { services: [...own.services, ...shared.services.filter((s) => !mine.has(s.name)).map((s) => ({ ...s, namespace: 'micro', shared: true }))] };
  });
  // the prices that apply (an admin's over the definition's); a server without the pricing service has the records' own
  const prices = useLoad(() => call<{ prices: PriceRow[] }>('pricing', 'List', {}).catch(() => ({ prices: [] as PriceRow[] })));
  const [open, setOpen] = useState<string>();
  const services = [...(list.value?.services ?? [])].sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
  return (
    <Section title="Services" actions={<button onClick={list.reload}>Refresh</button>}>
      <Problem error={list.error} />
      {list.loading && !list.value ? <p>Loading…</p> : null}
      <table class="list">
        <thead>
          <tr>
            <th>Name</th>
            <th>Version</th>
            <th>Instances</th>
            <th>Endpoints</th>
          </tr>
        </thead>
        <tbody>
          {services.map((s) => {
            const key = `${s.name}@${s.version}`;
            return (
              <Fragment key={key}>
                <tr class="clickable" onClick={() => setOpen(open === key ? undefined : key)}>
                  <td>
                    <button class="link" aria-expanded={open === key}>
                      {s.name}
                    </button>
                    {s.shared ? <span class="muted"> · public</span> : null}
                    {s.description ? <div class="muted">{s.description}</div> : null}
                  </td>
                  <td>{s.version}</td>
                  <td>{s.nodes.length}</td>
                  <td>{s.endpoints.length}</td>
                </tr>
                {open === key ? (
                  <tr>
                    <td colSpan={4}>
                      <ServiceDetail service={s} price={(ep) => priceFor(prices.value?.prices ?? [], s.namespace ?? namespace, s.name, s.version, ep)} />
                    </td>
                  </tr>
                ) : null}
              </Fragment>
            );
          })}
        </tbody>
      </table>
    </Section>
  );
}

function ServiceDetail({ service, price }: { service: ServiceRecord; price: (ep: EndpointRecord) => Price | undefined }) {
  return (
    <div class="detail">
      {service.nodes.map((n) => (
        <div class="muted" key={n.id}>
          {n.id} at {n.address}
        </div>
      ))}
      {service.endpoints.map((ep) => (
        <EndpointView key={ep.name} service={service.name} endpoint={ep} price={price(ep)} />
      ))}
    </div>
  );
}

function EndpointView({ service, endpoint, price }: { service: string; endpoint: EndpointRecord; price: Price | undefined }) {
  const [schemas, setSchemas] = useState(false);
  return (
    <article class="endpoint" data-endpoint={endpoint.name}>
      <h3>
        {service}.{endpoint.name} <span class="badge">{endpoint.kind}</span>
      </h3>
      {endpoint.description ? <p class="muted">{endpoint.description}</p> : null}
      {price ? (
        <p class="price" aria-label={`price of ${service}.${endpoint.name}`}>
          Price: {priceText(price)} <span class="badge">{price.source === 'admin' ? 'set by the platform' : 'from its definition'}</span>
        </p>
      ) : null}
      <button class="link" onClick={() => setSchemas(!schemas)}>
        {schemas ? 'Hide schemas' : 'Show schemas'}
      </button>
      {schemas ? (
        <div class="schemas">
          <div>
            <h4>Request</h4>
            <Json value={endpoint.request} />
          </div>
          <div>
            <h4>Response</h4>
            <Json value={endpoint.response} />
          </div>
        </div>
      ) : null}
      {endpoint.kind === 'unary' ? <CallForm service={service} endpoint={endpoint} /> : <p class="muted">A stream: open it with `micro stream` or a WebSocket.</p>}
    </article>
  );
}

/** A form made from the request schema: one input per top-level field (JSON for nested ones), or the raw JSON. */
function CallForm({ service, endpoint }: { service: string; endpoint: EndpointRecord }) {
  const fields = fieldsOf(endpoint.request);
  const [values, setValues] = useState<Record<string, string | boolean>>({});
  const [raw, setRaw] = useState<string>();
  const [answer, setAnswer] = useState<{ value?: unknown; error?: string }>();
  const [busy, setBusy] = useState(false);
  const set = (name: string, v: string | boolean) => setValues({ ...values, [name]: v });
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const request = raw !== undefined ? (JSON.parse(raw || '{}') as unknown) : requestFrom(fields, values);
      setAnswer({ value: await call(service, endpoint.name, request) });
    } catch (err) {
      setAnswer({ error: err instanceof SyntaxError ? `the request is not valid JSON: ${err.message}` : messageOf(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="call" onSubmit={submit} aria-label={`call ${service}.${endpoint.name}`}>
      {raw === undefined ? (
        fields.map((f) => <FieldInput key={f.name} field={f} value={values[f.name]} set={set} />)
      ) : (
        <label>
          Request (JSON)
          <textarea name="request" rows={6} value={raw} onInput={(e) => setRaw(e.currentTarget.value)} />
        </label>
      )}
      <div class="row">
        <button type="submit" disabled={busy}>
          {busy ? 'Calling…' : 'Call'}
        </button>
        <button
          type="button"
          class="link"
          onClick={() => {
            if (raw !== undefined) return setRaw(undefined);
            let current = {};
            try {
              current = requestFrom(fields, values);
            } catch {
              // start the JSON from what parses
            }
            setRaw(JSON.stringify(current, null, 2));
          }}
        >
          {raw === undefined ? 'Edit as JSON' : 'Edit as form'}
        </button>
      </div>
      {answer?.error ? <Problem error={answer.error} /> : null}
      {answer && !answer.error ? (
        <div class="answer" aria-label="answer">
          <Json value={answer.value} />
        </div>
      ) : null}
    </form>
  );
}

function FieldInput({ field, value, set }: { field: Field; value: string | boolean | undefined; set: (name: string, v: string | boolean) => void }) {
  const label = (
    <span>
      {field.name}
      {field.required ? <span class="req"> *</span> : null} <span class="muted">{field.kind}</span>
    </span>
  );
  const hint = field.description ? <small class="muted">{field.description}</small> : null;
  if (field.kind === 'boolean')
    return (
      <label class="check">
        <input type="checkbox" name={field.name} checked={value === true} onChange={(e) => set(field.name, e.currentTarget.checked)} />
        {label} {hint}
      </label>
    );
  if (field.kind === 'enum')
    return (
      <label>
        {label}
        <select name={field.name} value={typeof value === 'string' ? value : ''} onChange={(e) => set(field.name, e.currentTarget.value)}>
          <option value="">—</option>
          {field.options?.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
        {hint}
      </label>
    );
  if (field.kind === 'json')
    return (
      <label>
        {label}
        <textarea name={field.name} rows={3} placeholder="JSON" value={typeof value === 'string' ? value : ''} onInput={(e) => set(field.name, e.currentTarget.value)} />
        {hint}
      </label>
    );
  return (
    <label>
      {label}
      <input
        name={field.name}
        type={field.kind === 'string' ? 'text' : 'number'}
        step={field.kind === 'integer' ? '1' : 'any'}
        required={field.required}
        value={typeof value === 'string' ? value : ''}
        onInput={(e) => set(field.name, e.currentTarget.value)}
      />
      {hint}
    </label>
  );
}
