import { useState } from 'preact/hooks';
import { call } from './api';
import { Json, messageOf, Problem, Section, useLoad } from './ui';

/** store.Databases / Tables / List / Read: browse the records of the namespace. */
export function Store() {
  const [database, setDatabase] = useState<string>();
  const [table, setTable] = useState<string>();
  const [record, setRecord] = useState<{ key: string; value?: unknown; error?: string }>();
  const dbs = useLoad(() => call<{ databases: string[] }>('store', 'Databases', {}));
  const tables = useLoad(async () => (database ? call<{ tables: string[] }>('store', 'Tables', { database }) : { tables: [] }), [database]);
  const keys = useLoad(async () => (database && table ? call<{ keys: string[]; more?: boolean }>('store', 'List', { database, table, limit: 200 }) : { keys: [] as string[], more: false }), [database, table]);
  const read = async (key: string) => {
    try {
      const r = await call<{ records: unknown[] }>('store', 'Read', { key, database, table });
      setRecord({ key, value: r.records[0] });
    } catch (err) {
      setRecord({ key, error: messageOf(err) });
    }
  };
  return (
    <Section title="Store" actions={<button onClick={dbs.reload}>Refresh</button>}>
      <Problem error={dbs.error ?? tables.error ?? keys.error} />
      <div class="columns">
        <Pick title="Databases" items={dbs.value?.databases ?? []} selected={database} onPick={(d) => (setDatabase(d), setTable(undefined), setRecord(undefined))} />
        <Pick title="Tables" items={tables.value?.tables ?? []} selected={table} onPick={(t) => (setTable(t), setRecord(undefined))} />
        <Pick title={keys.value?.more ? 'Keys (first 200)' : 'Keys'} items={keys.value?.keys ?? []} selected={record?.key} onPick={(k) => void read(k)} />
        <div class="record">
          <h3>Record</h3>
          {record ? (
            <>
              <div class="muted">{record.key}</div>
              <Problem error={record.error} />
              {record.error ? null : <Json value={record.value} />}
            </>
          ) : (
            <p class="muted">Pick a key.</p>
          )}
        </div>
      </div>
    </Section>
  );
}

function Pick({ title, items, selected, onPick }: { title: string; items: string[]; selected: string | undefined; onPick: (v: string) => void }) {
  return (
    <div class="pick">
      <h3>{title}</h3>
      {items.length === 0 ? <p class="muted">none</p> : null}
      <ul>
        {items.map((i) => (
          <li key={i}>
            <button class={i === selected ? 'link selected' : 'link'} onClick={() => onPick(i)}>
              {i}
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
