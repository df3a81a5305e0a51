import { useState } from 'preact/hooks';
import { call, login, startSignupSession, type SignupSession } from './api';
import { Card, Problem, Submit, useSubmit } from './ui';

type Tab = 'email' | 'account';
/** The tab last used in this browser tab (not a secret: which form to show first). */
const TAB_KEY = 'micro.login-tab';

function savedTab(): Tab {
  try {
    return sessionStorage.getItem(TAB_KEY) === 'account' ? 'account' : 'email';
  } catch {
    return 'email';
  }
}

/**
 * The login page: a customer's email and password (signup.Login), or an account id and
 * secret (auth.Token: the admin's is in ~/.micro/server/admin.json). `email` pre-fills the
 * first (after "Switch namespace").
 */
export function Login({ email }: { email?: string }) {
  const [tab, setTab] = useState<Tab>(email ? 'email' : savedTab());
  const choose = (t: Tab) => {
    sessionStorage.setItem(TAB_KEY, t);
    setTab(t);
  };
  return (
    <Card title="Micro">
        <div class="tabs" role="tablist" aria-label="how to log in">
          <button role="tab" aria-selected={tab === 'email'} class={tab === 'email' ? 'tab selected' : 'tab'} onClick={() => choose('email')}>
            Email
          </button>
          <button role="tab" aria-selected={tab === 'account'} class={tab === 'account' ? 'tab selected' : 'tab'} onClick={() => choose('account')}>
            Account id
          </button>
        </div>
        {tab === 'email' ? <EmailLogin email={email ?? ''} /> : <AccountLogin />}
        <p class="muted">
          New here? <a href="#/signup">Sign up</a> with an invite, or <a href="#/waitlist">join the waiting list</a>.
        </p>
    </Card>
  );
}

function AccountLogin() {
  const [id, setId] = useState('');
  const [secret, setSecret] = useState('');
  const [namespace, setNamespace] = useState('micro');
  const { busy, error, run } = useSubmit();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(() => login(id.trim(), secret, namespace.trim()));
  };
  return (
    <form onSubmit={submit} aria-label="log in">
      <label>
        Account id
        <input name="id" autocomplete="username" value={id} onInput={(e) => setId(e.currentTarget.value)} required />
      </label>
      <label>
        Secret
        <input name="secret" type="password" autocomplete="current-password" value={secret} onInput={(e) => setSecret(e.currentTarget.value)} required />
      </label>
      <label>
        Namespace
        <input name="namespace" value={namespace} onInput={(e) => setNamespace(e.currentTarget.value)} />
      </label>
      <Submit busy={busy} label="Log in" working="Logging in…" error={error} />
    </form>
  );
}

/**
 * signup.Login; with several namespaces, a picker: the first answer's token is for the
 * default one, another is a Login again with that namespace (the password stays in this
 * form's memory only until then).
 */
function EmailLogin({ email: initial }: { email: string }) {
  const [email, setEmail] = useState(initial);
  const [password, setPassword] = useState('');
  const [first, setFirst] = useState<SignupSession>();
  const { busy, error, run } = useSubmit();
  const address = email.trim();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const r = await call<SignupSession>('signup', 'Login', { email: address, password });
      if (r.namespaces.length > 1) setFirst(r);
      else startSignupSession(r, address);
    });
  };
  const pick = (namespace: string) =>
    run(async () => {
      const r = first && first.namespace === namespace ? first : await call<SignupSession>('signup', 'Login', { email: address, password, namespace });
      startSignupSession(r, address);
    });
  if (first) {
    return (
      <div role="group" aria-label="pick a namespace">
        <p>
          <strong>{address}</strong> has {first.namespaces.length} namespaces. Open one:
        </p>
        <ul class="namespaces">
          {first.namespaces.map((n) => (
            <li key={n}>
              <button disabled={busy} onClick={() => void pick(n)}>
                {n}
              </button>
            </li>
          ))}
        </ul>
        <button class="link" onClick={() => setFirst(undefined)}>
          Back
        </button>
        <Problem error={error} />
      </div>
    );
  }
  return (
    <form onSubmit={submit} aria-label="log in with email">
      <label>
        Email
        <input name="email" inputmode="email" autocomplete="username" value={email} onInput={(e) => setEmail(e.currentTarget.value)} required />
      </label>
      <label>
        Password
        <input name="password" type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} required />
      </label>
      <Submit busy={busy} label="Log in" working="Logging in…" error={error} />
    </form>
  );
}
