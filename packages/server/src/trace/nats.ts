import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { spanRecord, z, type NatsProfile, type SpanRecord } from '@micro/sdk';
import type { CoreServiceFactory } from '../core.js';
import { onSharedNats } from '../shared-nats.js';
import { traceCoreService, type TraceShare } from './index.js';

/** spans per NATS message: well under the default max_payload (1 MiB) at the schema's limits */
const SPANS_PER_MESSAGE = 100;

const shared = z.object({ node: z.string().max(64), namespace: z.string().min(1).max(200), spans: z.array(spanRecord).max(SPANS_PER_MESSAGE) });

/**
 * Traces shared by the nodes of the nats profile on the subject `<prefix>.trace.spans`:
 * every node publishes what is recorded on it and keeps what the others publish (core
 * NATS, at most once: a node that was away misses those spans). Messages that are not
 * well-formed spans are dropped, each told to `onDropped` (micro server logs a warning).
 */
export function natsTraceShare(nc: NatsConnection, prefix: string, onDropped: (why: string) => void = () => undefined): TraceShare {
  const subject = `${prefix}.trace.spans`;
  const node = randomUUID();
  return {
    publish(namespace, spans) {
      for (let i = 0; i < spans.length; i += SPANS_PER_MESSAGE) {
        nc.publish(subject, JSON.stringify({ node, namespace, spans: spans.slice(i, i + SPANS_PER_MESSAGE) }));
      }
    },
    subscribe(onSpans) {
      const sub = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          let data: unknown;
          try {
            data = msg.json();
          } catch {
            return onDropped(`a message on ${subject} that is not JSON`);
          }
          const result = shared.safeParse(data);
          if (!result.success) return onDropped(`malformed spans on ${subject}: ${result.error.issues[0]?.message ?? 'invalid'}`);
          if (result.data.node !== node) onSpans(result.data.namespace, result.data.spans as SpanRecord[]);
        },
      });
      return async () => {
        sub.unsubscribe();
        await nc.flush().catch(() => undefined);
      };
    },
  };
}

/** The trace core service of the nats profile: the same store on every node (see natsTraceShare). */
export function natsTraceCoreService(profile: NatsProfile, options: { maxWait?: number } = {}): CoreServiceFactory {
  return onSharedNats(profile.natsUrl, options, (nc) => (ctx) => traceCoreService({ share: natsTraceShare(nc, profile.prefix, (why) => ctx.logger.warn(why)) })(ctx));
}
