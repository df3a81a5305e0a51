import { call } from './api';
import { Problem, Section, useLoad } from './ui';

interface AccountInfo {
  id: string;
  type: string;
  scopes?: string[];
  createdAt: number;
}
interface Rule {
  id: string;
  resource: string;
  scope: string;
  access: string;
  priority: number;
}

/** auth.ListAccounts and auth.ListRules of the namespace. */
export function Accounts() {
  const accounts = useLoad(() => call<{ accounts: AccountInfo[]; next?: string }>('auth', 'ListAccounts', { limit: 1000 }));
  const rules = useLoad(() => call<{ rules: Rule[] }>('auth', 'ListRules', {}));
  return (
    <>
      <Section title="Accounts" actions={<button onClick={accounts.reload}>Refresh</button>}>
        <Problem error={accounts.error} />
        <table class="list">
          <thead>
            <tr>
              <th>Id</th>
              <th>Type</th>
              <th>Scopes</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {(accounts.value?.accounts ?? []).map((a) => (
              <tr key={a.id}>
                <td>{a.id}</td>
                <td>{a.type}</td>
                <td>{(a.scopes ?? []).join(', ')}</td>
                <td>{new Date(a.createdAt).toISOString().replace('T', ' ').slice(0, 19)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {accounts.value?.next ? <p class="muted">Only the first 1000 accounts are shown.</p> : null}
      </Section>
      <Section title="Rules" actions={<button onClick={rules.reload}>Refresh</button>}>
        <Problem error={rules.error} />
        {rules.value && rules.value.rules.length === 0 ? <p class="muted">No rules: the defaults apply.</p> : null}
        {rules.value && rules.value.rules.length > 0 ? (
          <table class="list">
            <thead>
              <tr>
                <th>Id</th>
                <th>Resource</th>
                <th>Scope</th>
                <th>Access</th>
                <th>Priority</th>
              </tr>
            </thead>
            <tbody>
              {rules.value.rules.map((r) => (
                <tr key={r.id}>
                  <td>{r.id}</td>
                  <td>{r.resource}</td>
                  <td>{r.scope || '(anyone)'}</td>
                  <td>{r.access}</td>
                  <td>{r.priority}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Section>
    </>
  );
}
