import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { CallError } from './api';

/** Runs `fn` with busy and error state: the error's detail is shown, nothing is thrown. */
export function useSubmit(): { busy: boolean; error?: string; run: (fn: () => Promise<unknown>) => Promise<void> } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}

/** What a load gives: the value, the error, and reload. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): { value?: T; error?: string; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ value?: T; error?: string; loading: boolean }>({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (value) => live && setState({ value, loading: false }),
      (err: unknown) => live && setState({ error: messageOf(err), loading: false }),
    );
    return () => {
      live = false;
    };
  }, [n, ...deps]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { ...state, reload };
}

/**
 * useLoad, again every `everyMs` while the page is open (the next load starts when the last
 * one ended: a slow server is never asked twice at once). The last value stays while a
 * load runs; an error shows until a load succeeds.
 */
export function usePoll<T>(load: () => Promise<T>, everyMs: number, deps: unknown[] = []): { value?: T; error?: string; at?: number; reload: () => void } {
  const [state, setState] = useState<{ value?: T; error?: string; at?: number }>({});
  const [n, setN] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = () => {
      loadRef.current().then(
        (value) => live && setState({ value, at: Date.now() }),
        (err: unknown) => live && setState((s) => ({ ...s, error: messageOf(err) })),
      ).finally(() => {
        if (live) timer = setTimeout(tick, everyMs);
      });
    };
    tick();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [n, everyMs, ...deps]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { ...state, reload };
}

/** 1234567 → "1.2 MB" */
export function bytes(n: number | undefined): string {
  if (n === undefined) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i] as string}`;
}

/** milliseconds, to a readable precision: 0.042 ms, 3.1 ms, 120 ms, 2.3 s */
export function ms(n: number): string {
  if (n === 0) return '0 ms';
  if (n >= 10_000) return `${(n / 1000).toFixed(1)} s`;
  if (n >= 100) return `${Math.round(n)} ms`;
  if (n >= 1) return `${n.toFixed(1)} ms`;
  return `${n.toFixed(3)} ms`;
}

/** epoch ms → "2026-11-26 16:30:01.123" (local time) */
export function time(t: number | string): string {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (x: number, w = 2) => String(x).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function messageOf(err: unknown): string {
  if (err instanceof CallError) return `${err.error.code} ${err.error.status}: ${err.error.detail}`;
  return err instanceof Error ? err.message : String(err);
}

export function Problem({ error }: { error?: string | undefined }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

export function Json({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section>
      <header class="section-head">
        <h2>{title}</h2>
        <div>{actions}</div>
      </header>
      {children}
    </section>
  );
}

/** A page of its own for someone without a session: the login page's frame. */
export function Card({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <main class="login">
      <div class="card">
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}

/** A form's submit button (its label while `busy`) and the error of the last try. */
export function Submit({ busy, label, working, error }: { busy: boolean; label: string; working: string; error?: string | undefined }) {
  return (
    <>
      <button type="submit" disabled={busy}>
        {busy ? working : label}
      </button>
      <Problem error={error} />
    </>
  );
}
