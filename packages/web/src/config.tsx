import { call } from './api';
import { Json, Problem, Section, useLoad } from './ui';

/** config.Get of the whole document: the service masks the secrets (the dashboard never asks for them in clear). */
export function Config() {
  const doc = useLoad(() => call<{ found: boolean; value?: unknown }>('config', 'Get', {}));
  return (
    <Section title="Config" actions={<button onClick={doc.reload}>Refresh</button>}>
      <Problem error={doc.error} />
      {doc.value && !doc.value.found ? <p class="muted">No config in this namespace yet: set some with `micro config set`.</p> : null}
      {doc.value?.found ? <Json value={doc.value.value} /> : null}
    </Section>
  );
}
