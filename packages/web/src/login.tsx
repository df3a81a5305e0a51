import { useState } from 'preact/hooks';
import { login } from './api';
import { messageOf, Problem } from './ui';

/** auth.Token with an account id and secret (the admin's is in ~/.micro/server/admin.json). */
export function Login() {
  const [id, setId] = useState('');
  const [secret, setSecret] = useState('');
  const [namespace, setNamespace] = useState('micro');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await login(id.trim(), secret, namespace.trim());
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={submit} aria-label="log in">
        <h1>Micro</h1>
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
        <button type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
        <Problem error={error} />
      </form>
    </main>
  );
}
