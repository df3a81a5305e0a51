import { createLogger } from '@micro/sdk';
import { connectJetStreamEvents } from './jetstream.js';

/*
 * A test fixture, not a program: a consumer of the events on JetStream in a process of
 * its own, for the test that kills it with SIGKILL mid-stream (jetstream-crash.test.ts).
 * It acknowledges every event but every fifth, which it holds; it says what it does on
 * stdout (a pipe: written at once), each line before doing it:
 *
 *   node jetstream-crash-host.js <NATS URL> <prefix> <ack wait ms>
 *     ready                  the consumer is in place
 *     got <offset> <attempt>
 *     ack <offset>           about to send the ack
 *     acked <offset>         JetStream confirmed it
 */

const [url, prefix, ackWait] = process.argv.slice(2);
if (!url || !prefix || !ackWait) {
  process.stderr.write('usage: jetstream-crash-host.js <NATS URL> <prefix> <ack wait ms>\n');
  process.exit(2);
}
const { events } = await connectJetStreamEvents(url, { prefix, logger: createLogger({ level: 'silent' }), maxWait: 5_000 });
const consumer = await events.consume('crash', { group: 'g', offset: 'earliest', ackWait: Number(ackWait), maxRetries: 1000, maxInFlight: 1000 });
process.stdout.write('ready\n');
for await (const d of consumer) {
  process.stdout.write(`got ${d.event.offset} ${d.attempt}\n`);
  if ((d.event.payload as { i: number }).i % 5 === 0) continue;
  process.stdout.write(`ack ${d.event.offset}\n`);
  d.ack().then(
    () => process.stdout.write(`acked ${d.event.offset}\n`),
    () => undefined,
  );
}
