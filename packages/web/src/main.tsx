import { render, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { currentSession, logout, onSession, type Session } from './api';
import { Accounts } from './accounts';
import { Config } from './config';
import { Events } from './events';
import { Login } from './login';
import { Logs } from './logs';
import { Metrics } from './metrics';
import { Runtime } from './runtime';
import { Services } from './services';
import { Store } from './store';
import { Traces } from './traces';
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

function App() {
  const [session, setSession] = useState<Session | undefined>(currentSession());
  const [{ page, sub }, setPage] = useState(pageOf(location.hash));
  useEffect(() => onSession(setSession), []);
  useEffect(() => {
    const on = () => setPage(pageOf(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  if (!session) return <Login />;
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
          <button class="link" onClick={logout}>
            Log out
          </button>
        </div>
      </nav>
      <main>
        <View key={page.path} sub={sub} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
