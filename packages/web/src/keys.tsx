import { useState } from 'preact/hooks';
import { call, currentSession } from './api';
import { ChooseNamespace, Confirm, Head, isStaff, useChange } from './team';
import { Problem, Section, Submit, time, useLoad, useSubmit } from './ui';

/** What auth.ListKeys answers of a key (packages/sdk/src/auth/definition.ts, KeyInfoSchema). */
interface KeyInfo {
  id: string;
  name: string;
  description: string;
  account: string;
  namespace: string;
  scopes: string[];
  services: string[];
  createdAt: number;
  lastUsedAt?: number;
  expiresAt?: number;
  blocked: boolean;
  blockedAt?: number;
  blockMessage?: string;
}

/** How long a new key works: the choices of the form (seconds; 0: until revoked). */
const EXPIRIES: ReadonlyArray<[label: string, seconds: number]> = [
  ['Never (until revoked)', 0],
  ['7 days', 7 * 86_400],
  ['30 days', 30 * 86_400],
  ['90 days', 90 * 86_400],
  ['1 year', 365 * 86_400],
];

/**
 * API keys (auth.ListKeys): one's own, or all of the namespace for its admins; create one
 * (shown once, with a copy button), revoke. Staff (admins of micro) name a namespace and
 * block a key with a message its callers are told, or unblock it.
 */
export function Keys() {
  const session = currentSession();
  const staff = isStaff(session);
  const own = session?.account.issuer ?? '';
  const [namespace, setNamespace] = useState(own);
  const list = useLoad(() => call<{ keys: KeyInfo[] }>('auth', 'ListKeys', namespace === own ? {} : { namespace }), [namespace]);
  return (
    <>
      <Section title={namespace === own ? 'API keys' : `API keys of ${namespace}`} actions={<button onClick={list.reload}>Refresh</button>}>
        {staff ? <ChooseNamespace namespace={namespace} choose={(n) => setNamespace(n || own)} /> : null}
        <Problem error={list.error} />
        {list.value ? <KeyTable keys={list.value.keys} namespace={namespace} staff={staff} reload={list.reload} /> : null}
      </Section>
      {/* a key acts for the caller's own account, so it is made in the caller's namespace only */}
      {namespace === own ? <CreateKey onCreated={list.reload} /> : null}
    </>
  );
}

function KeyTable({ keys, namespace, staff, reload }: { keys: KeyInfo[]; namespace: string; staff: boolean; reload: () => void }) {
  const { busy, error, done, change } = useChange(reload);
  const revoke = (k: KeyInfo) => change(() => call('auth', 'RevokeKey', { id: k.id, namespace }), `The key ${k.name} (${k.id}) was revoked: it no longer works.`);
  const block = (k: KeyInfo, message: string) => change(() => call('auth', 'BlockKey', { id: k.id, message, namespace }), `The key ${k.name} (${k.id}) is blocked.`);
  const unblock = (k: KeyInfo) => change(() => call('auth', 'UnblockKey', { id: k.id, namespace }), `The key ${k.name} (${k.id}) works again.`);
  const said = (
    <>
      {done ? <p role="status">{done}</p> : null}
      <Problem error={error} />
    </>
  );
  if (keys.length === 0) {
    return (
      <>
        {said}
        <p class="muted">No API keys.</p>
      </>
    );
  }
  return (
    <>
      {said}
      <table class="list" aria-label="API keys">
        <Head columns={['Key', 'Account', 'Services', 'Created', 'Last used', 'Expires', 'Status', '']} />
        <tbody>
          {keys.map((k) => (
            <tr key={k.id} data-key={k.id}>
              <td>
                <div>{k.name}</div>
                <div class="mono muted">{k.id}</div>
                {k.description ? <div class="muted">{k.description}</div> : null}
              </td>
              <td>{k.account}</td>
              <td class="mono">{k.services.join(', ')}</td>
              <td class="nowrap">{minute(k.createdAt)}</td>
              <td class="nowrap">{k.lastUsedAt === undefined ? 'never' : minute(k.lastUsedAt)}</td>
              <td class="nowrap">{k.expiresAt === undefined ? 'never' : minute(k.expiresAt)}</td>
              <td>
                <Status k={k} />
              </td>
              <td class="nowrap">
                {staff ? <BlockControl k={k} busy={busy} block={block} unblock={unblock} /> : null}{' '}
                <Confirm label="Revoke" question={`Revoke ${k.name}? Whoever uses it is refused at once.`} disabled={busy} onConfirm={() => revoke(k)} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted">Last used is kept to the minute: a use shows here at once on the server that served it, on the other servers of the platform within a minute.</p>
    </>
  );
}

/** epoch ms → "2026-11-26 16:30" (local time): last uses are kept to the minute */
function minute(t: number): string {
  return time(t).slice(0, 16);
}

function Status({ k }: { k: KeyInfo }) {
  if (k.blocked) {
    return (
      <span class="state state-error" title={k.blockedAt === undefined ? undefined : `since ${time(k.blockedAt)}`}>
        blocked: {k.blockMessage}
      </span>
    );
  }
  if (k.expiresAt !== undefined && k.expiresAt <= Date.now()) return <span class="state">expired</span>;
  return <span class="state state-running">active</span>;
}

/** Unblock, or Block with the message its callers will be told (asked in place). */
function BlockControl({ k, busy, block, unblock }: { k: KeyInfo; busy: boolean; block: (k: KeyInfo, message: string) => void; unblock: (k: KeyInfo) => void }) {
  const [open, setOpen] = useState(false);
  const [message, setMessage] = useState('');
  if (k.blocked) {
    return (
      <button disabled={busy} onClick={() => unblock(k)}>
        Unblock
      </button>
    );
  }
  if (!open) {
    return (
      <button class="danger" disabled={busy} onClick={() => setOpen(true)}>
        Block
      </button>
    );
  }
  const submit = (e: Event) => {
    e.preventDefault();
    setOpen(false);
    block(k, message.trim());
  };
  return (
    <form class="row" onSubmit={submit} aria-label={`block ${k.name}`}>
      <input name="message" placeholder="what its callers are told" maxLength={500} value={message} onInput={(e) => setMessage(e.currentTarget.value)} required />
      <button class="danger" type="submit" disabled={busy}>
        Block
      </button>
      <button class="link" type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
    </form>
  );
}

/** `db, cache` → [db, cache]; blank → undefined (the server's default: any service). */
function servicesOf(text: string): string[] | undefined {
  const list = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return list.length === 0 ? undefined : list;
}

/** auth.CreateKey for the caller's account; the key it answers is shown once (NewKey). */
function CreateKey({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [services, setServices] = useState('*');
  const [expires, setExpires] = useState(0);
  const [made, setMade] = useState<{ key: string; info: KeyInfo }>();
  const { busy, error, run } = useSubmit();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const request = { name: name.trim(), description: description.trim() || undefined, services: servicesOf(services), expiresIn: expires || undefined };
      setMade(await call<{ key: string; info: KeyInfo }>('auth', 'CreateKey', request));
      setName('');
      setDescription('');
      onCreated();
    });
  };
  return (
    <Section title="Create an API key">
      {made ? <NewKey made={made} done={() => setMade(undefined)} /> : null}
      <form onSubmit={submit} aria-label="create an API key">
        <label>
          Name
          <input name="name" maxLength={128} value={name} onInput={(e) => setName(e.currentTarget.value)} required />
        </label>
        <label>
          Description
          <input name="description" maxLength={256} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
        <label>
          Services
          <input name="services" placeholder="* for any, or db, cache" value={services} onInput={(e) => setServices(e.currentTarget.value)} />
          <span class="muted">The services it may call through the gateway: * for any, or their names separated by commas.</span>
        </label>
        <label>
          Expires
          <select name="expires" value={String(expires)} onChange={(e) => setExpires(Number(e.currentTarget.value))}>
            {EXPIRIES.map(([label, seconds]) => (
              <option key={seconds} value={String(seconds)}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <Submit busy={busy} label="Create key" working="Creating…" error={error} />
      </form>
    </Section>
  );
}

/** The new key, shown this once, with Copy; Done forgets it (the server keeps only a hash). */
function NewKey({ made, done }: { made: { key: string; info: KeyInfo }; done: () => void }) {
  const [copied, setCopied] = useState<string>();
  const copy = () =>
    navigator.clipboard.writeText(made.key).then(
      () => setCopied('Copied to the clipboard.'),
      () => setCopied('The browser refused the clipboard: select the key and copy it.'),
    );
  return (
    <div role="region" aria-label="new API key" class="detail">
      <p>
        The key <strong>{made.info.name}</strong> ({made.info.id}), for {made.info.services.includes('*') ? 'any service' : made.info.services.join(', ')}. It is shown only now:
        copy it and keep it safe. Use it as <span class="mono">Authorization: Bearer &lt;key&gt;</span>.
      </p>
      <pre class="json" aria-label="the key">{made.key}</pre>
      <div class="row">
        <button onClick={() => void copy()}>Copy</button>
        <button class="link" onClick={done}>
          Done
        </button>
        {copied ? <span role="status">{copied}</span> : null}
      </div>
    </div>
  );
}
