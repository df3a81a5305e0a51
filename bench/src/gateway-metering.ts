/**
 * What metering costs on the gateway's hot path: the same `micro server` with the
 * platform's core services (servers/micro-gateway-platform.ts), twice, each in a child
 * process on the servers' CPU, loaded by http-load.ts (50 keep-alive connections, each
 * with one `POST /v1/greeter/Hello {"name":"x"}` in flight, for 3 s), every call made
 * with an API key of tenant namespace `bench` (a large credit, its rate and monthly
 * quotas raised by the staff):
 *
 * - `metered` (the "micro" column): greeter.Hello priced PRICE unit a call in its
 *   definition, no free quota: every call is held against the payer's credit, recorded
 *   durably (group commit) before its 200, and posted to the ledger by the meter's outbox;
 * - `unmetered` (the peer): the same greeter, Hello not priced.
 *
 * A round lasts until the ledger has the charge of every call the round served (the
 * payer's balance, read through the balance service, is what the calls served so far
 * leave): requests/s = calls served / (load + the wait for the ledger), so posting that
 * falls behind the calls counts against the metered side instead of spilling into the
 * next round (of either side: both servers share the servers' CPU). The unmetered side
 * makes the same read.
 *
 * Before it is measured, each side must answer `{"name":"x"}` with
 * `{"message":"Hello x"}` and refuse `{"name":42}` with a 4xx; then the books are checked
 * (a benchmark that passes with metering silently off would be worthless):
 * - metered: usage.Read counts exactly the successful calls served (and the refused one
 *   as failed), charged = served × PRICE, and the payer's balance fell by exactly that;
 * - unmetered: nothing recorded, the balance unchanged.
 * After every round the balance must again be exactly what the calls served leave.
 */
import { fileURLToPath } from 'node:url';
import { EXPECTED, INVALID, REQUEST } from './greeter.js';
import { startChild, type BenchEnv, type Benchmark, type ChildServer, type Contestant, type FigureSpec } from './harness.js';
import { HttpLoad, jsonPost } from './http-load.js';

const CONNECTIONS = 50;
const ROUND_MS = 3_000;
const WARMUP_MS = 1_000;
/** units of 10^-6 USD a call of the priced Hello */
const PRICE = 1;
/** how long the ledger may take to have every charge of a round */
const LEDGER_WAIT_MS = 60_000;
const PATH = '/v1/greeter/Hello';
const BODY = JSON.stringify({ message: EXPECTED });
const NAME = 'gateway-metering';

const script = fileURLToPath(new URL('./servers/micro-gateway-platform.js', import.meta.url));

interface Info {
  url: string;
  key: string;
  admin: string;
  namespace: string;
}

interface UsageTotals {
  calls: number;
  ok: number;
  failed: number;
  free: number;
  charged: number;
}

/** The staff's reads of the server's balance and usage services, through its gateway. */
function staff(info: Info) {
  const read = async <T>(path: string, body: unknown): Promise<T> => {
    const res = await fetch(new URL(path, info.url), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${info.admin}` }, body: JSON.stringify(body) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${path} answered ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  };
  return {
    balance: async () => (await read<{ balance: number }>('/v1/balance/Read', { namespace: info.namespace })).balance,
    usage: async () => (await read<{ totals: UsageTotals }>('/v1/usage/Read', { namespace: info.namespace, service: 'greeter' })).totals,
  };
}

async function contestant(side: string, price: number, env: BenchEnv): Promise<Contestant> {
  const server: ChildServer<Info> = await startChild<Info>(script, { cpus: env.serverCpus, args: price > 0 ? ['--price', String(price)] : [], timeoutMs: 30_000 });
  const { url } = server.info;
  const { hostname, port } = new URL(url);
  const auth = { authorization: `Bearer ${server.info.key}` };
  const ok = jsonPost(hostname, Number(port), PATH, REQUEST, auth);
  const bad = jsonPost(hostname, Number(port), PATH, INVALID, auth);
  const books = staff(server.info);
  let load: HttpLoad;
  let start: number;
  try {
    start = await books.balance();
    load = await HttpLoad.open(url, CONNECTIONS);
  } catch (err) {
    await server.stop();
    throw err;
  }
  /** successful calls served so far */
  let served = 0;

  /** Waits until the payer's balance is what the calls served leave; any other end is an error. */
  async function ledgerCaughtUp(): Promise<void> {
    const expected = start - served * price;
    const until = performance.now() + LEDGER_WAIT_MS;
    for (;;) {
      const balance = await books.balance();
      if (balance === expected) return;
      if (balance < expected) throw new Error(`${side}: the payer's balance is ${balance}, below the ${expected} that ${served} calls at ${price} leave: charged more than served`);
      if (performance.now() > until) throw new Error(`${side}: the payer's balance is ${balance}, not the ${expected} that ${served} calls at ${price} leave, ${LEDGER_WAIT_MS} ms after the load: metering does not charge what it serves`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  return {
    async warmUp() {
      const res = await load.once(ok);
      if (res.status !== 200 || res.body !== BODY) throw new Error(`${side} answered ${res.status} ${res.body.slice(0, 300)} instead of 200 ${BODY}`);
      served++;
      const refused = await load.once(bad);
      if (refused.status < 400 || refused.status >= 500) throw new Error(`${side} answered ${refused.status} ${refused.body.slice(0, 300)} to an invalid request: it does not validate`);
      served += (await load.run(ok, BODY, WARMUP_MS)).count;
      await ledgerCaughtUp();
      // the records say the same as the ledger: every call served, and only those, charged
      const totals = await books.usage();
      const want: UsageTotals = price > 0 ? { calls: served + 1, ok: served, failed: 1, free: 0, charged: served * price } : { calls: 0, ok: 0, failed: 0, free: 0, charged: 0 };
      for (const k of Object.keys(want) as (keyof UsageTotals)[]) {
        if (totals[k] !== want[k]) throw new Error(`${side}: usage.Read says ${JSON.stringify(totals)} after ${served} calls served and 1 refused, not ${JSON.stringify(want)}`);
      }
    },
    async round() {
      const t0 = performance.now();
      const r = await load.run(ok, BODY, ROUND_MS);
      served += r.count;
      await ledgerCaughtUp();
      const seconds = (performance.now() - t0) / 1000;
      return { [`${NAME}.rate`]: r.count / seconds, [`${NAME}.p50`]: r.p50, [`${NAME}.p99`]: r.p99 };
    },
    async close() {
      load.close();
      await server.stop();
    },
  };
}

const FIGURES: FigureSpec[] = [
  { id: `${NAME}.rate`, label: `priced call (held, recorded, posted to the ledger) vs unpriced, API key: requests/s, ${CONNECTIONS} connections`, unit: 'calls/s', better: 'higher', target: 0.9 },
  { id: `${NAME}.p50`, label: 'priced vs unpriced call: latency p50 under that load', unit: 'µs', better: 'lower' },
  { id: `${NAME}.p99`, label: 'priced vs unpriced call: latency p99 under that load', unit: 'µs', better: 'lower' },
];

export const gatewayMetering: Benchmark = {
  name: NAME,
  title: 'HTTP gateway with the platform: a priced endpoint (metered) vs the same unpriced',
  peerName: 'micro, the same endpoint not priced',
  figures: FIGURES,
  usesChildren: true,
  async setup(env) {
    const metered = await contestant('metered', PRICE, env);
    try {
      return { micro: metered, peer: await contestant('unmetered', 0, env) };
    } catch (err) {
      await metered.close();
      throw err;
    }
  },
};
