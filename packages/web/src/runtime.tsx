import { useState } from 'preact/hooks';
import { call, stream } from './api';
import { messageOf, Problem, Section, useLoad } from './ui';

interface RuntimeService {
  name: string;
  namespace: string;
  version: string;
  source: string;
  state: string;
  instances: { id: string; pid?: number; state: string; restarts: number; lastError?: string }[];
  desiredInstances: number;
  updatedAt: string;
  node?: string;
}

/** runtime.Read (micro status), with Update (a streamed rebuild) and Delete (micro kill). */
export function Runtime() {
  const list = useLoad(() => call<{ services: RuntimeService[] }>('runtime', 'Read', {}));
  const [progress, setProgress] = useState<{ name: string; lines: string[]; error?: string; done?: boolean }>();
  const [error, setError] = useState<string>();
  const update = async (s: RuntimeService) => {
    const lines: string[] = [];
    setProgress({ name: s.name, lines });
    try {
      await stream('runtime', 'Update', { name: s.name, namespace: s.namespace }, (m) => {
        const p = m as { step: string; message: string };
        lines.push(`${p.step}: ${p.message}`);
        setProgress({ name: s.name, lines: [...lines] });
      });
      setProgress({ name: s.name, lines: [...lines], done: true });
    } catch (err) {
      setProgress({ name: s.name, lines: [...lines], error: messageOf(err) });
    }
    list.reload();
  };
  const kill = async (s: RuntimeService) => {
    if (!confirm(`Stop ${s.name} and forget it (micro kill)?`)) return;
    setError(undefined);
    try {
      await call('runtime', 'Delete', { name: s.name, namespace: s.namespace });
    } catch (err) {
      setError(messageOf(err));
    }
    list.reload();
  };
  const services = list.value?.services ?? [];
  return (
    <Section title="Runtime" actions={<button onClick={list.reload}>Refresh</button>}>
      <Problem error={list.error ?? error} />
      {list.value && services.length === 0 ? <p class="muted">Nothing runs yet: start a service with `micro run ./folder`.</p> : null}
      {services.length > 0 ? (
        <table class="list">
          <thead>
            <tr>
              <th>Name</th>
              <th>Namespace</th>
              <th>Version</th>
              <th>State</th>
              <th>Instances</th>
              <th>Source</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {services.map((s) => (
              <tr key={`${s.namespace}/${s.name}`}>
                <td>{s.name}</td>
                <td>{s.namespace}</td>
                <td>{s.version}</td>
                <td>
                  <span class={`state state-${s.state}`}>{s.state}</span>
                </td>
                <td title={s.instances.map((i) => `${i.id} ${i.state}${i.pid ? ` pid ${i.pid}` : ''} restarts ${i.restarts}${i.lastError ? `: ${i.lastError}` : ''}`).join('\n')}>
                  {s.instances.filter((i) => i.state === 'running').length}/{s.desiredInstances}
                </td>
                <td class="muted">{s.source}</td>
                <td class="actions">
                  <button onClick={() => void update(s)} disabled={progress !== undefined && !progress.done && !progress.error}>
                    Update
                  </button>
                  <button class="danger" onClick={() => void kill(s)}>
                    Kill
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {progress ? (
        <div class="progress" aria-label="update progress">
          <h3>Update {progress.name}</h3>
          <pre>{progress.lines.join('\n') || 'starting…'}</pre>
          <Problem error={progress.error} />
          {progress.done ? <p>Done.</p> : null}
        </div>
      ) : null}
    </Section>
  );
}
