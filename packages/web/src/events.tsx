import { useState } from 'preact/hooks';
import { call } from './api';
import { bytes, Json, Problem, Section, time, useLoad, usePoll } from './ui';

interface TopicInfo {
  name: string;
  count: number;
  bytes: number;
  first: number;
  last: number;
  lastTimestamp?: number;
  retention?: { maxAge?: number; maxEvents?: number; maxBytes?: number };
}
interface GroupInfo {
  name: string;
  committed: number;
  pending: number;
  inflight: number;
  members: number;
}
interface EventRecord {
  id: string;
  topic: string;
  offset: number;
  timestamp: number;
  payload: unknown;
  metadata?: Record<string, string>;
}

const EVERY_MS = 5_000;
/** How many of the newest events of a topic the page reads. */
const RECENT = 20;

/** events.Topics and stats.Read's consumer groups (the lag), refreshed; a topic's groups and newest events on a click. */
export function Events() {
  const topics = usePoll(() => call<{ topics: TopicInfo[] }>('events', 'Topics', {}), EVERY_MS);
  const lag = usePoll(() => call<{ groups: { topic: string; group: string; pending: number; inflight: number }[] }>('stats', 'Read', {}), EVERY_MS);
  const [open, setOpen] = useState<string>();
  const list = [...(topics.value?.topics ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  const groups = [...(lag.value?.groups ?? [])].sort((a, b) => a.topic.localeCompare(b.topic) || a.group.localeCompare(b.group));
  return (
    <>
      <Section
        title="Topics"
        actions={
          <button
            onClick={() => {
              topics.reload();
              lag.reload();
            }}
          >
            Refresh
          </button>
        }
      >
        <Problem error={topics.error} />
        <p class="muted">Durable event streams of the namespace, refreshed every {EVERY_MS / 1000} s. Click a topic for its groups and newest events.</p>
        {topics.value && list.length === 0 ? <p class="muted">No topics yet: publish an event (`micro events publish`).</p> : null}
        {list.length > 0 ? (
          <table class="list" aria-label="topics">
            <thead>
              <tr>
                <th>Topic</th>
                <th class="num">Events held</th>
                <th class="num">Size</th>
                <th class="num">Offsets</th>
                <th>Last event</th>
              </tr>
            </thead>
            <tbody>
              {list.map((t) => (
                <tr key={t.name} class="clickable" onClick={() => setOpen(open === t.name ? undefined : t.name)}>
                  <td>
                    <button class={open === t.name ? 'link selected' : 'link'} aria-expanded={open === t.name}>
                      {t.name}
                    </button>
                  </td>
                  <td class="num">{t.count.toLocaleString('en')}</td>
                  <td class="num">{bytes(t.bytes)}</td>
                  <td class="num">{t.count > 0 ? `${t.first}–${t.last}` : '—'}</td>
                  <td class="nowrap">{t.lastTimestamp ? time(t.lastTimestamp) : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Section>
      {open ? <TopicDetail key={open} topic={open} info={list.find((t) => t.name === open)} /> : null}
      <Section title="Consumer groups">
        <Problem error={lag.error} />
        <p class="muted">Every group of every topic: pending is the lag (events the group has not done yet), in flight those delivered and not yet acknowledged.</p>
        {lag.value && groups.length === 0 ? <p class="muted">No consumer groups yet.</p> : null}
        {groups.length > 0 ? <GroupTable rows={groups.map((g) => ({ topic: g.topic, name: g.group, pending: g.pending, inflight: g.inflight }))} /> : null}
      </Section>
    </>
  );
}

function GroupTable({ rows }: { rows: { topic?: string; name: string; pending: number; inflight: number; committed?: number; members?: number }[] }) {
  const detail = rows.some((r) => r.committed !== undefined);
  return (
    <table class="list" aria-label="consumer groups">
      <thead>
        <tr>
          {detail ? null : <th>Topic</th>}
          <th>Group</th>
          <th class="num">Pending (lag)</th>
          <th class="num">In flight</th>
          {detail ? <th class="num">Committed offset</th> : null}
          {detail ? <th class="num">Consumers</th> : null}
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={`${r.topic ?? ''}/${r.name}`}>
            {detail ? null : <td>{r.topic}</td>}
            <td>{r.name}</td>
            <td class="num">{r.pending > 0 ? <span class="state state-lag">{r.pending.toLocaleString('en')}</span> : 0}</td>
            <td class="num">{r.inflight.toLocaleString('en')}</td>
            {detail ? <td class="num">{r.committed}</td> : null}
            {detail ? <td class="num">{r.members}</td> : null}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** events.Groups of a topic, and events.Read of its newest events. */
function TopicDetail({ topic, info }: { topic: string; info: TopicInfo | undefined }) {
  const groups = usePoll(() => call<{ groups: GroupInfo[] }>('events', 'Groups', { topic }), EVERY_MS, [topic]);
  const last = info?.last ?? 0;
  const first = info?.first ?? 1;
  const recent = useLoad(
    () => call<{ events: EventRecord[] }>('events', 'Read', { topic, offset: Math.max(first, last - RECENT + 1, 1), limit: RECENT }),
    [topic, last],
  );
  const events = [...(recent.value?.events ?? [])].reverse();
  return (
    <Section title={`Topic ${topic}`} actions={<button onClick={recent.reload}>Read again</button>}>
      <h3>Groups</h3>
      <Problem error={groups.error} />
      {groups.value && groups.value.groups.length === 0 ? <p class="muted">No group consumes this topic.</p> : null}
      {groups.value && groups.value.groups.length > 0 ? <GroupTable rows={groups.value.groups} /> : null}
      <h3>Newest events</h3>
      <Problem error={recent.error} />
      <p class="muted">The newest {RECENT} events held, newest first (`micro events read` pages through the rest).</p>
      {recent.value && events.length === 0 ? <p class="muted">No events held.</p> : null}
      {events.length > 0 ? (
        <table class="list" aria-label="events">
          <thead>
            <tr>
              <th class="num">Offset</th>
              <th>Stored</th>
              <th>Id</th>
              <th>Payload</th>
              <th>Metadata</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.offset}>
                <td class="num">{e.offset}</td>
                <td class="nowrap">{time(e.timestamp)}</td>
                <td class="mono muted">{e.id}</td>
                <td class="payload">
                  <Json value={e.payload} />
                </td>
                <td class="mono muted">
                  {Object.entries(e.metadata ?? {})
                    .map(([k, v]) => `${k}=${v}`)
                    .join('\n')}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}
