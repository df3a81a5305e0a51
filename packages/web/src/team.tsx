import { useEffect, useState } from 'preact/hooks';
import { call, currentSession, setSessionNamespaces, startSignupSession, type Session, type SignupSession } from './api';
import { EmailInput } from './signup';
import { Problem, Section, Submit, time, useLoad, useSubmit } from './ui';

/** The team roles (packages/server/src/auth/roles.ts; signup's team endpoints give them). */
export type Role = 'owner' | 'admin' | 'developer' | 'viewer';
const ROLES: readonly Role[] = ['owner', 'admin', 'developer', 'viewer'];
/** An invite never makes an owner: SetRole does, by an owner. */
const INVITABLE: readonly Role[] = ['admin', 'developer', 'viewer'];

interface Member {
  /** absent for a deleted customer */
  email?: string;
  account: string;
  role: Role;
  createdAt: number;
}
interface TeamInvite {
  id: string;
  email: string;
  role: Role;
  createdAt: number;
  expiresAt: number;
}
interface MemberList {
  members: Member[];
  invites: TeamInvite[];
}
interface Membership {
  namespace: string;
  role: Role;
}

/**
 * What the page offers the caller. It only hides what the server would refuse (the server
 * checks every call): `manage` members (owners, admins, and staff: admins of micro),
 * touch `owner`s and make them (owners and staff). An unknown role offers everything.
 */
interface Powers {
  manage: boolean;
  owner: boolean;
}

function powersOf(role: Role | 'staff' | undefined): Powers {
  return { manage: role !== 'developer' && role !== 'viewer', owner: role !== 'admin' && role !== 'developer' && role !== 'viewer' };
}

/** An admin of micro (platform staff): manages any namespace's team, as an owner. */
export function isStaff(s: Session | undefined): boolean {
  return !s?.email && s?.account.issuer === 'micro' && (s.account.scopes ?? []).includes('admin');
}

/**
 * The team of the session's namespace (signup.ListMembers): members with their roles and the
 * live invites; invite (InviteMember), change a role (SetRole), remove a member or revoke an
 * invite (RemoveMember, confirmed first). A customer also joins another team here
 * (AcceptInvite); `sub` (`#/team/<namespace>`, where an invite's link leads) fills that in.
 */
export function Team({ sub }: { sub: string }) {
  const session = currentSession();
  const customer = Boolean(session?.email);
  // staff's own namespace, micro, has no team: they name one first
  const [namespace, setNamespace] = useState(isStaff(session) ? '' : (session?.account.issuer ?? ''));
  const mine = useLoad(async () => (customer ? (await call<{ namespaces: Membership[] }>('signup', 'Namespaces', {})).namespaces : []));
  // the session's list feeds Switch namespace and the login's picker: kept as the server says
  useEffect(() => {
    if (customer && mine.value) setSessionNamespaces(mine.value.map((m) => m.namespace));
  }, [mine.value]);
  const list = useLoad(async () => (namespace ? call<MemberList>('signup', 'ListMembers', { namespace }) : undefined), [namespace]);
  const role = isStaff(session) ? 'staff' : mine.value?.find((m) => m.namespace === namespace)?.role;
  const powers = powersOf(role);
  return (
    <>
      <Section title={namespace ? `Team of ${namespace}` : 'Team'} actions={<button onClick={list.reload}>Refresh</button>}>
        {isStaff(session) ? <ChooseNamespace namespace={namespace} choose={setNamespace} /> : null}
        {role && role !== 'staff' ? <p class="muted">You are {role} of {namespace}.</p> : null}
        <Problem error={list.error} />
        {list.value ? <Members namespace={namespace} list={list.value} powers={powers} me={session?.email} reload={list.reload} /> : null}
        {namespace ? <InviteForm namespace={namespace} role={role} onInvited={list.reload} /> : null}
      </Section>
      {customer ? <JoinTeam email={session?.email ?? ''} namespace={sub} onJoined={mine.reload} /> : null}
    </>
  );
}

/** Staff pick the namespace whose team (or API keys) they see (their own, micro, has no team). */
export function ChooseNamespace({ namespace, choose }: { namespace: string; choose: (n: string) => void }) {
  const [value, setValue] = useState(namespace);
  const submit = (e: Event) => {
    e.preventDefault();
    choose(value.trim());
  };
  return (
    <form class="row" onSubmit={submit} aria-label="choose a namespace">
      <label>
        Namespace
        <input name="namespace" maxLength={32} value={value} onInput={(e) => setValue(e.currentTarget.value)} required />
      </label>
      <button type="submit">Show</button>
    </form>
  );
}

/** A destructive button that asks first, in place (no window.confirm: it blocks the page). */
export function Confirm({ label, question, disabled, onConfirm }: { label: string; question: string; disabled: boolean; onConfirm: () => void }) {
  const [open, setOpen] = useState(false);
  if (!open) {
    return (
      <button class="danger" disabled={disabled} onClick={() => setOpen(true)}>
        {label}
      </button>
    );
  }
  const yes = () => {
    setOpen(false);
    onConfirm();
  };
  return (
    <span role="group" aria-label={question} class="confirm">
      {question}{' '}
      <button class="danger" onClick={yes}>
        Yes, {label.toLowerCase()}
      </button>{' '}
      <button class="link" onClick={() => setOpen(false)}>
        Cancel
      </button>
    </span>
  );
}

/**
 * Runs a change of the team (or of API keys) and reloads the list whatever the answer (a
 * refused role change shows the stored role again); `done` says what happened, the error
 * what the server said.
 */
export function useChange(reload: () => void) {
  const { busy, error, run } = useSubmit();
  const [done, setDone] = useState<string>();
  const change = (fn: () => Promise<unknown>, said: string) =>
    void run(async () => {
      setDone(undefined);
      try {
        await fn();
        setDone(said);
      } finally {
        reload();
      }
    });
  return { busy, error, done, change };
}

function Members({ namespace, list, powers, me, reload }: { namespace: string; list: MemberList; powers: Powers; me: string | undefined; reload: () => void }) {
  const { busy, error, done, change } = useChange(reload);
  const setRole = (email: string, role: string) =>
    change(() => call('signup', 'SetRole', { namespace, email, role }), `${email} is now ${role} of ${namespace}: their earlier tokens and API keys here stopped.`);
  const remove = (email: string, what: string) => change(() => call('signup', 'RemoveMember', { namespace, email }), what);
  return (
    <>
      {done ? <p role="status">{done}</p> : null}
      <Problem error={error} />
      <table class="list" aria-label="members">
        <Head columns={['Member', 'Account', 'Role', 'Since', '']} />
        <tbody>
          {list.members.map((m) => (
            <MemberRow key={m.account} m={m} me={m.email !== undefined && m.email === me} powers={powers} busy={busy} setRole={setRole} remove={(email) => remove(email, `${email} was removed from ${namespace}.`)} />
          ))}
        </tbody>
      </table>
      <h3>Invites</h3>
      {list.invites.length === 0 ? <p class="muted">No live invites.</p> : null}
      <table class="list" aria-label="invites" hidden={list.invites.length === 0}>
        <Head columns={['Email', 'Role', 'Invited', 'Expires', '']} />
        <tbody>
          {list.invites.map((i) => (
            <tr key={i.id} data-invite={i.email}>
              <td>{i.email}</td>
              <td>{i.role}</td>
              <td class="nowrap">{time(i.createdAt)}</td>
              <td class="nowrap">{time(i.expiresAt)}</td>
              <td>
                <Confirm label="Revoke" question={`Revoke the invite of ${i.email}?`} disabled={busy || !powers.manage} onConfirm={() => remove(i.email, `The invite of ${i.email} was revoked.`)} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function Head({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c, i) => (
          <th key={i}>{c}</th>
        ))}
      </tr>
    </thead>
  );
}

function options(roles: readonly Role[]) {
  return roles.map((r) => (
    <option key={r} value={r}>
      {r}
    </option>
  ));
}

interface RowProps {
  m: Member;
  me: boolean;
  powers: Powers;
  busy: boolean;
  setRole: (email: string, role: string) => void;
  remove: (email: string) => void;
}

/** One member: its role as a select (owners only among owners' choices) and Remove. A deleted customer's row has no email to name it by: read only. */
function MemberRow({ m, me, powers, busy, setRole, remove }: RowProps) {
  const email = m.email;
  const may = email !== undefined && powers.manage && (m.role !== 'owner' || powers.owner);
  const choices = ROLES.filter((r) => r !== 'owner' || powers.owner || m.role === 'owner');
  const who = email ?? m.account;
  return (
    <tr data-member={who}>
      <td>
        {email ?? <span class="muted">a deleted customer</span>} {me ? <span class="badge">you</span> : null}
      </td>
      <td class="mono">{m.account}</td>
      <td>
        <select aria-label={`role of ${who}`} value={m.role} disabled={busy || !may} onChange={(e) => email && setRole(email, e.currentTarget.value)}>
          {options(choices)}
        </select>
      </td>
      <td class="nowrap">{time(m.createdAt)}</td>
      <td>
        <Confirm
          label="Remove"
          question={`Remove ${who}${me ? ' (you)' : ''}? Their tokens and API keys here stop at once.`}
          disabled={busy || !may}
          onConfirm={() => email && remove(email)}
        />
      </td>
    </tr>
  );
}

/**
 * InviteMember: an email and a role; the invitee is mailed a link. Shown to developers and
 * viewers too, saying that owners and admins invite: the server's 403 is the answer.
 */
function InviteForm({ namespace, role, onInvited }: { namespace: string; role: Role | 'staff' | undefined; onInvited: () => void }) {
  const [email, setEmail] = useState('');
  const [as, setAs] = useState<Role>('developer');
  const [sent, setSent] = useState<string>();
  const { busy, error, run } = useSubmit();
  const submit = (e: Event) => {
    e.preventDefault();
    setSent(undefined);
    void run(async () => {
      const { invite } = await call<{ invite: TeamInvite }>('signup', 'InviteMember', { namespace, email: email.trim(), role: as });
      setSent(`Invited ${invite.email} as ${invite.role}: we emailed a link to join ${namespace}.`);
      setEmail('');
      onInvited();
    });
  };
  return (
    <form onSubmit={submit} aria-label="invite a member" class="invite">
      <h3>Invite</h3>
      {powersOf(role).manage ? null : <p class="muted">Owners and admins of {namespace} invite members; you are {role}.</p>}
      <EmailInput value={email} set={setEmail} />
      <label>
        Role
        <select name="role" value={as} onChange={(e) => setAs(e.currentTarget.value as Role)}>
          {options(INVITABLE)}
        </select>
      </label>
      {sent ? <p role="status">{sent}</p> : null}
      <Submit busy={busy} label="Invite" working="Inviting…" error={error} />
    </form>
  );
}

/**
 * AcceptInvite: the namespace an invite names and the customer's password (checked; the new
 * account gets it too). Then Open logs in there with that password, which this form keeps in
 * memory only until then (or until the page is left).
 */
function JoinTeam({ email, namespace: initial, onJoined }: { email: string; namespace: string; onJoined: () => void }) {
  const [namespace, setNamespace] = useState(initial);
  const [password, setPassword] = useState('');
  const [joined, setJoined] = useState<{ namespace: string; role: Role }>();
  const { busy, error, run } = useSubmit();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      setJoined(await call<{ namespace: string; role: Role }>('signup', 'AcceptInvite', { namespace: namespace.trim(), password }, { checksPassword: true }));
      onJoined();
    });
  };
  const open = (to: string) =>
    void run(async () => {
      const r = await call<SignupSession>('signup', 'Login', { email, password, namespace: to });
      setPassword('');
      startSignupSession(r, email);
    });
  return (
    <Section title="Join a team">
      {joined ? (
        <p role="status">
          You joined {joined.namespace} as {joined.role}.{' '}
          <button disabled={busy} onClick={() => open(joined.namespace)}>
            Open {joined.namespace}
          </button>
        </p>
      ) : null}
      <form onSubmit={submit} aria-label="accept an invite">
        <p class="muted">Invited into another namespace as {email}? Accept with your password: it becomes the password of that namespace too.</p>
        <label>
          Namespace
          <input name="namespace" maxLength={32} value={namespace} onInput={(e) => setNamespace(e.currentTarget.value)} required />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" maxLength={1024} value={password} onInput={(e) => setPassword(e.currentTarget.value)} required />
        </label>
        <Submit busy={busy} label="Accept invite" working="Accepting…" error={error} />
      </form>
    </Section>
  );
}
