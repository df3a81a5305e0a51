import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { currentSession, logout, onSession, type Session } from './api';
import { Accounts } from './accounts';
import { Config } from './config';
import { Login } from './login';
import { Runtime } from './runtime';
import { Services } from './services';
import { Store } from './store';
import './style.css';

/** The pages, by the hash of the URL (#/services …): the gateway serves one index.html. */
const PAGES = [
  { path: 'services', title: 'Services', view: Services },
  { path: 'runtime', title: 'Runtime', view: Runtime },
  { path: 'store', title: 'Store', view: Store },
  { path: 'config', title: 'Config', view: Config },
  { path: 'accounts', title: 'Accounts', view: Accounts },
] as const;

function pageOf(hash: string) {
  const path = hash.replace(/^#\/?/, '');
  return PAGES.find((p) => p.path === path) ?? PAGES[0];
}

function App() {
  const [session, setSession] = useState<Session | undefined>(currentSession());
  const [page, setPage] = useState(pageOf(location.hash));
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
        <View key={page.path} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
