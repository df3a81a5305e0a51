import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPlatform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

// Events as server-sent events too (POST with Accept: text/event-stream), for clients without WebSockets
test('notes.Events over server-sent events sees a create', async (t) => {
  const p = (await startPlatform(t, { services: [service] }))!;
  t.after(() => p.close());
  const ctl = new AbortController();
  const res = await fetch(`${p.url}/v1/notes/Events`, { method: 'POST', headers: { authorization: `Bearer ${p.a.key}`, 'content-type': 'application/json', accept: 'text/event-stream' }, body: '{}', signal: ctl.signal });
  assert.equal(res.status, 200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  const created = setTimeout(() => void p.call(p.a.key, 'notes', 'Create', { title: 'over sse', text: 'x' }), 300);
  const giveUp = setTimeout(() => ctl.abort(), 10_000);
  try {
    while (!text.includes('\n\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
  } finally {
    clearTimeout(created);
    clearTimeout(giveUp);
    ctl.abort();
  }
  const event = JSON.parse(text.slice(text.indexOf('data: ') + 6).trim()) as { event: string; note: { title: string } };
  assert.equal(event.event, 'create');
  assert.equal(event.note.title, 'over sse');
});
