import { useState } from 'preact/hooks';
import { call, startSignupSession, type SignupSession } from './api';
import { Card, Problem, Submit, useSubmit } from './ui';

/** What the links of the emails carry: `…/signup/verify?email=…&code=…`, `…/signup?email=…&namespace=…`. */
export interface SignupLink {
  email?: string;
  code?: string;
  namespace?: string;
}

/** An email input that lets the server's rule speak (its 400 names what is wrong). */
export function EmailInput({ value, set }: { value: string; set: (v: string) => void }) {
  return (
    <label>
      Email
      <input name="email" inputmode="email" autocomplete="email" maxLength={254} value={value} onInput={(e) => set(e.currentTarget.value)} required />
    </label>
  );
}

/**
 * Signup in two steps: the email (signup.SendCode mails a code), then the code, a password
 * and an optional namespace name (signup.CompleteSignup), which logs the new customer in.
 * The emailed link opens the second step with the email and code filled in.
 */
export function Signup({ link }: { link: SignupLink }) {
  const [email, setEmail] = useState(link.email ?? '');
  const [step, setStep] = useState<'email' | 'code'>(link.email && link.code ? 'code' : 'email');
  const [sent, setSent] = useState(false);
  const { busy, error, run } = useSubmit();
  const send = (e?: Event) => {
    e?.preventDefault();
    void run(async () => {
      await call('signup', 'SendCode', { email: email.trim() });
      setSent(true);
      setStep('code');
    });
  };
  return (
    <Card title="Sign up">
      {step === 'email' ? (
        <form onSubmit={send} aria-label="sign up">
          <p class="muted">Signup is by invite: we email a code to the invited address.</p>
          <EmailInput value={email} set={setEmail} />
          <Submit busy={busy} label="Send code" working="Sending…" error={error} />
        </form>
      ) : (
        <>
          {sent ? <p role="status">We emailed a code to {email.trim()}. It is valid for 15 minutes.</p> : null}
          <CompleteSignup email={email.trim()} code={link.code ?? ''} namespace={link.namespace ?? ''} />
          <p class="muted">
            <button class="link" disabled={busy} onClick={() => send()}>
              Send a new code
            </button>{' '}
            ·{' '}
            <button class="link" onClick={() => setStep('email')}>
              Use another email
            </button>
          </p>
          <Problem error={error} />
        </>
      )}
      <p class="muted">
        Have an account? <a href="#/login">Log in</a>. No invite? <a href="#/waitlist">Join the waiting list</a>.
      </p>
    </Card>
  );
}

function CompleteSignup(props: { email: string; code: string; namespace: string }) {
  const [code, setCode] = useState(props.code);
  const [password, setPassword] = useState('');
  const [namespace, setNamespace] = useState(props.namespace);
  const { busy, error, run } = useSubmit();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const request = { email: props.email, code: code.trim(), password, ...(namespace.trim() ? { namespace: namespace.trim() } : {}) };
      const r = await call<SignupSession>('signup', 'CompleteSignup', request);
      startSignupSession(r, props.email);
      location.hash = '#/quotas';
    });
  };
  return (
    <form onSubmit={submit} aria-label="complete signup">
      <p>
        Signing up as <strong>{props.email}</strong>
      </p>
      <label>
        Code
        <input name="code" inputmode="numeric" autocomplete="one-time-code" maxLength={16} value={code} onInput={(e) => setCode(e.currentTarget.value)} required />
      </label>
      <label>
        Password <span class="muted">(at least 8 characters)</span>
        <input name="password" type="password" autocomplete="new-password" maxLength={1024} value={password} onInput={(e) => setPassword(e.currentTarget.value)} required />
      </label>
      <label>
        Namespace <span class="muted">(optional: a-z, 0-9 and -, 3 to 32; default a generated name)</span>
        <input name="namespace" maxLength={32} value={namespace} onInput={(e) => setNamespace(e.currentTarget.value)} />
      </label>
      <Submit busy={busy} label="Sign up" working="Signing up…" error={error} />
    </form>
  );
}

/** signup.JoinWaitlist: public; joining twice changes nothing. */
export function Waitlist() {
  const [email, setEmail] = useState('');
  const [joined, setJoined] = useState<string>();
  const { busy, error, run } = useSubmit();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      await call('signup', 'JoinWaitlist', { email: email.trim() });
      setJoined(email.trim());
    });
  };
  return (
    <Card title="Join the waiting list">
      {joined ? (
        <p role="status">{joined} is on the waiting list. We will email an invite when there is room.</p>
      ) : (
        <form onSubmit={submit} aria-label="join the waiting list">
          <EmailInput value={email} set={setEmail} />
          <Submit busy={busy} label="Join" working="Joining…" error={error} />
        </form>
      )}
      <p class="muted">
        Invited? <a href="#/signup">Sign up</a>. Have an account? <a href="#/login">Log in</a>.
      </p>
    </Card>
  );
}
