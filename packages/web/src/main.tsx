import { render, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { currentSession, logout, onSession, type Session } from './api';
import { Accounts } from './accounts';
import { Billing } from './billing';
import { Config } from './config';
import { Events } from './events';
import { Invoices } from './invoices';
import { Keys } from './keys';
import { Login } from './login';
import { Logs } from './logs';
import { Metrics } from './metrics';
import { Plan } from './plan';
import { Quotas } from './quotas';
import { Runtime } from './runtime';
import { Services } from './services';
import { Signup, Waitlist, type SignupLink } from './signup';
import { Store } from './store';
import { Team } from './team';
import { Traces } from './traces';
import { Usage } from './usage';
import './style.css';

interface Page {
  path: string;
  title: string;
  /** `sub` is what follows the page's path in the hash: `#/traces/<id>` → `<id>` */
  view: (props: { sub: string }) => ComponentChildren;
}

/** The pages, by the hash of the URL (#/services …): the gateway serves one index.html. */
const PAGES: readonly Page[] = [
  { path: 'services', title: 'Services', view: Services },
  { path: 'runtime', title: 'Runtime', view: Runtime },
  { path: 'logs', title: 'Logs', view: Logs },
  { path: 'metrics', title: 'Metrics', view: Metrics },
  { path: 'traces', title: 'Traces', view: Traces },
  { path: 'events', title: 'Events', view: Events },
  { path: 'store', title: 'Store', view: Store },
  { path: 'config', title: 'Config', view: Config },
  { path: 'accounts', title: 'Accounts', view: Accounts },
  { path: 'keys', title: 'API keys', view: Keys },
  { path: 'quotas', title: 'Quotas', view: Quotas },
  { path: 'usage', title: 'Usage', view: Usage },
  { path: 'team', title: 'Team', view: Team },
  { path: 'invoices', title: 'Invoices', view: Invoices },
  { path: 'billing', title: 'Billing', view: Billing },
  { path: 'plan', title: 'Plan', view: Plan },
];

/** `#/traces/abc` → the traces page and `abc`; an unknown path → the first page. */
function pageOf(hash: string): { page: Page; sub: string } {
  const path = hash.replace(/^#\/?/, '');
  const slash = path.indexOf('/');
  const head = slash < 0 ? path : path.slice(0, slash);
  const page = PAGES.find((p) => p.path === head);
  if (!page) return { page: PAGES[0] as Page, sub: '' };
  let sub = slash < 0 ? '' : path.slice(slash + 1);
  try {
    sub = decodeURIComponent(sub);
  } catch {
    // a malformed escape: the page sees it as typed
  }
  return { page, sub };
}

/**
 * The links of the signup emails, `/dashboard/signup/verify?email=…&code=…` and
 * `/dashboard/signup?email=…&namespace=…` (the gateway serves index.html there): what they
 * carry, once. The address becomes `/dashboard/#/signup` at once, so the code stays in
 * neither the address bar nor the history (`#/team/<namespace>` for a team invite followed
 * while logged in as a customer).
 */
function takeSignupLink(): SignupLink | undefined {
  if (!/\/signup(\/verify)?\/?$/.test(location.pathname)) return undefined;
  const q = new URLSearchParams(location.search);
  const link: SignupLink = {};
  for (const key of ['email', 'code', 'namespace'] as const) {
    const v = q.get(key);
    if (v) link[key] = v.slice(0, 320);
  }
  // a logged-in customer following a team invite's link accepts it on the team page
  const session = currentSession();
  if (session?.email && link.namespace && !link.code) {
    history.replaceState(null, '', `${import.meta.env.BASE_URL}#/team/${encodeURIComponent(link.namespace)}`);
    return undefined;
  }
  history.replaceState(null, '', `${import.meta.env.BASE_URL}#/signup`);
  return link;
}

const emailed = takeSignupLink();

/** What someone without a session sees, by the hash: signup, the waiting list, else the login page. */
function Public({ hash, email }: { hash: string; email?: string | undefined }) {
  const path = hash.replace(/^#\/?/, '');
  if (path === 'signup') return <Signup link={emailed ?? {}} />;
  if (path === 'waitlist') return <Waitlist />;
  return <Login {...(email ? { email } : {})} />;
}

function App() {
  const [session, setSession] = useState<Session | undefined>(currentSession());
  const [hash, setHash] = useState(location.hash);
  // the email of the session that asked to switch namespace: the login form starts with it
  const [switching, setSwitching] = useState<string>();
  useEffect(() => onSession(setSession), []);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  if (!session) return <Public hash={hash} email={switching} />;
  const { page, sub } = pageOf(hash);
  const switchNamespace = () => {
    setSwitching(session.email);
    logout();
  };
  const View = page.view;
  return (
    <div class="shell">
      <nav>
        <div class="brand">Micro</div>
        {PAGES.map((p) => (
          <a key={p.path} href={`#/${p.path}`} class={p === page ? 'active' : ''}>
            {p.title}
          </a>
        ))}
        <div class="who">
          <div>{session.account.id}</div>
          <div class="muted">{session.account.issuer ?? ''}</div>
          {(session.namespaces?.length ?? 0) > 1 ? (
            <button class="link" onClick={switchNamespace}>
              Switch namespace
            </button>
          ) : null}
          <button class="link" onClick={logout}>
            Log out
          </button>
        </div>
      </nav>
      <main>
        {/* keyed by the namespace too: opening another namespace starts its pages afresh */}
        <View key={`${page.path} ${session.account.issuer ?? ''}`} sub={sub} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
