import { randomBytes } from 'node:crypto';
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { EVENTS_ERROR_ID, EVENTS_LIMITS, MicroError, errors, eventChecks, type Delivery, type EngineConsumer, type Event, type Logger } from '@micro/sdk';
import { natsError } from '@micro/sdk/nats';
import type { StoredEvent, TopicStream } from './jetstream.js';
import { storedOf, toEvent } from './jetstream.js';

/*
 * One member of a group on JetStream: a pull subscriber of the group's durable consumer.
 *
 * - It pulls only for reads waiting (`next()`), never more than maxInFlight minus what it
 *   holds: a member that is full gets nothing, and the group's other members get the rest.
 *   One pull request at a time (for every read waiting when it is made), with its own reply
 *   subject (`<inbox>.<n>`), so that its end (408 expired) is told from an older one's.
 * - The ack wait is timed here: at the deadline the delivery is over (a later ack is a
 *   410) and the event is given back at once (a nak), or sent to the dead letters after
 *   its last attempt. JetStream's ack wait (longer) covers a node that died.
 * - Acks, naks and terms are requests: each resolves once JetStream applied it.
 */

/** ms a pull request waits at the server before it is asked again */
const PULL_EXPIRES = 15_000;
/** recent settled deliveries remembered, for clear errors on late settles */
const PAST_LIMIT = 10_000;

export interface Settings {
  ackWait: number;
  maxRetries: number;
  maxInFlight: number;
  deadLetter: string;
}

/** What a member needs of its engine. */
export interface ConsumerHost {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  readonly apiTimeout: number;
  deadLetter(member: JetStreamConsumer, held: Held, attempts: number, reason: string): Promise<void>;
  left(member: JetStreamConsumer): void;
}

/** A delivery this member holds. */
export interface Held {
  id: string;
  /** the ack subject of the message */
  reply: string;
  attempt: number;
  deadline: number;
  stored: StoredEvent;
  timer: NodeJS.Timeout;
}

type Past = 'acked' | 'nacked' | 'released' | 'expired';

interface Waiter {
  resolve: (r: IteratorResult<Delivery>) => void;
  reject: (err: unknown) => void;
}

interface Pull {
  no: number;
  /** messages asked for and not come yet */
  remaining: number;
  timer: NodeJS.Timeout;
}

const gone = (detail: string) => new MicroError(EVENTS_ERROR_ID, 410, detail);

/** What the ack subject of a delivered message tells: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`, or with a domain and account hash before the stream (and a token after). */
export function parseAckSubject(reply: string): { attempt: number; seq: number } | undefined {
  const t = reply.split('.');
  if (t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  const at = t.length === 9 ? 2 : t.length >= 11 ? 4 : -1;
  if (at < 0) return undefined;
  const attempt = Number(t[at + 2]);
  const seq = Number(t[at + 3]);
  if (!Number.isSafeInteger(attempt) || !Number.isSafeInteger(seq) || attempt < 1 || seq < 1) return undefined;
  return { attempt, seq };
}

export class JetStreamConsumer implements EngineConsumer {
  readonly id = randomBytes(4).toString('hex');
  readonly topic: string;
  private readonly waiters: Waiter[] = [];
  private readonly live = new Map<string, Held>();
  private readonly past = new Map<string, Past>();
  /** the pull request waiting at the server, if any */
  private pulling: Pull | undefined;
  private pullNo = 0;
  private readonly inbox = createInbox();
  private sub: Subscription | undefined;
  private scheduled = false;
  private closed = false;
  private failure: unknown;

  constructor(
    private readonly host: ConsumerHost,
    readonly stream: TopicStream,
    readonly group: string,
    private readonly durable: string,
    readonly settings: Settings,
  ) {
    this.topic = stream.topic;
  }

  start(): void {
    this.sub = this.host.nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => this.onMessage(err, msg) });
  }

  // ---- reading -------------------------------------------------------------------------

  next(): Promise<IteratorResult<Delivery>> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  async return(): Promise<IteratorResult<Delivery>> {
    await this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Pulls on the next turn: reads asked for together make one request. */
  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pull();
    });
  }

  private pull(): void {
    if (this.closed || this.pulling) return;
    const want = Math.min(this.waiters.length, this.settings.maxInFlight - this.live.size);
    if (want <= 0) return;
    const no = ++this.pullNo;
    // a request the server lost (it restarted) ends here, and is made again
    const timer = setTimeout(() => {
      this.endPull(no);
      this.schedule();
    }, PULL_EXPIRES + 5_000);
    timer.unref();
    this.pulling = { no, remaining: want, timer };
    try {
      this.host.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${this.stream.name}.${this.durable}`, JSON.stringify({ batch: want, expires: PULL_EXPIRES * 1_000_000 }), {
        reply: `${this.inbox}.${no}`,
      });
    } catch (err) {
      this.endPull(no);
      this.fail(natsError(err, EVENTS_ERROR_ID, `cannot consume topic ${this.topic}`));
    }
  }

  private endPull(no: number): void {
    if (this.pulling?.no !== no) return;
    clearTimeout(this.pulling.timer);
    this.pulling = undefined;
  }

  /** @internal after a reconnect: the request waiting at the server may be gone */
  reconnected(): void {
    if (this.pulling) this.endPull(this.pulling.no);
    this.schedule();
  }

  private onMessage(err: Error | null, msg: Msg): void {
    if (err) {
      this.fail(natsError(err, EVENTS_ERROR_ID, `cannot consume topic ${this.topic}`));
      return;
    }
    if (!msg.reply?.startsWith('$JS.ACK.')) {
      // a status comes on the request's own subject; messages keep the subject they were published on
      this.onStatus(Number(msg.subject.slice(this.inbox.length + 1)), msg);
      return;
    }
    const p = this.pulling;
    if (p && --p.remaining <= 0) {
      this.endPull(p.no);
      this.schedule();
    }
    this.onDelivery(msg);
  }

  /** A pull request ended (408 expired, 404 nothing now), or the group is gone (409). */
  private onStatus(no: number, msg: Msg): void {
    const code = msg.headers?.code ?? 0;
    if (code === 100) return; // a heartbeat
    if (this.pulling?.no !== no) return; // of a request this member gave up already
    this.endPull(no);
    if (code === 404 || code === 408) {
      this.schedule();
      return;
    }
    const why = msg.headers?.description ?? '';
    if (/deleted/i.test(why)) {
      this.fail(gone(`group ${this.group} of topic ${this.topic} was deleted`));
      return;
    }
    // too many requests waiting, or JetStream busy: ask again a little later
    this.host.logger.debug({ code, why, topic: this.topic, group: this.group }, 'events: pull refused; asking again');
    setTimeout(() => this.schedule(), 250).unref();
  }

  private onDelivery(msg: Msg): void {
    const reply = msg.reply as string;
    const info = parseAckSubject(reply);
    if (!info) return;
    if (this.closed || this.waiters.length === 0) {
      // asked for by a read that is gone: back to the group (it counts as an attempt)
      void this.send(reply, '-NAK', 'cannot give an event back').catch(() => undefined);
      return;
    }
    const stored = storedOf(info.seq, msg.data, msg.headers, Date.now());
    if (info.attempt > this.settings.maxRetries + 1) {
      // its last attempt failed without a nack: its member went away (a node died) and
      // JetStream's ack wait passed
      const held: Held = { id: `${info.seq}.${info.attempt}`, reply, attempt: info.attempt, deadline: 0, stored, timer: undefined as unknown as NodeJS.Timeout };
      void this.finish(held, info.attempt - 1, 'not acknowledged within the ack wait: its consumer went away').catch((err: unknown) =>
        this.host.logger.error({ err, topic: this.topic, group: this.group }, 'events: cannot send a dead letter'),
      );
      this.schedule();
      return;
    }
    const id = `${info.seq}.${info.attempt}`;
    const deadline = Date.now() + this.settings.ackWait;
    const timer = setTimeout(() => this.expire(id), this.settings.ackWait);
    const held: Held = { id, reply, attempt: info.attempt, deadline, stored, timer };
    this.live.set(id, held);
    const waiter = this.waiters.shift() as Waiter;
    waiter.resolve({ value: new JetStreamDelivery(this, id, toEvent(this.topic, stored), info.attempt, deadline), done: false });
  }

  // ---- settling ------------------------------------------------------------------------

  private async send(reply: string, body: string, what: string): Promise<void> {
    try {
      await this.host.nc.request(reply, body, { timeout: this.host.apiTimeout });
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, what);
    }
  }

  /** The held delivery, or the error that says why it cannot be settled. */
  private settleable(id: string): Held {
    const where = `topic ${this.topic}, group ${this.group}`;
    if (typeof id !== 'string' || id.length === 0 || id.length > 64) throw errors.NotFound(EVENTS_ERROR_ID, `no delivery ${eventChecks.shown(id)} for this consumer of ${where}`);
    const held = this.live.get(id);
    if (!held) {
      const past = this.past.get(id);
      if (past === 'acked' || past === 'nacked') throw errors.Conflict(EVENTS_ERROR_ID, `delivery ${id} of ${where} was already ${past}`);
      if (past === 'released') throw errors.Conflict(EVENTS_ERROR_ID, `delivery ${id} of ${where} was given back to the group`);
      if (past === 'expired') throw gone(`delivery ${id} of ${where} is over: its ack wait expired or its consumer left, and the event is handed out again`);
      if (this.closed) throw gone(`this consumer of ${where} is closed; its deliveries went back to the group`);
      throw errors.NotFound(EVENTS_ERROR_ID, `no delivery ${eventChecks.shown(id)} for this consumer of ${where}`);
    }
    if (held.deadline <= Date.now()) {
      this.expire(id);
      throw gone(`delivery ${id} of ${where} is over: its ack wait of ${this.settings.ackWait} ms expired and the event is handed out again`);
    }
    return held;
  }

  private forget(held: Held, why: Past): void {
    clearTimeout(held.timer);
    this.live.delete(held.id);
    if (this.past.size >= PAST_LIMIT) this.past.delete(this.past.keys().next().value as string);
    this.past.set(held.id, why);
    // room for another delivery
    if (this.waiters.length > 0) this.schedule();
  }

  ack(id: string): Promise<void> {
    try {
      const held = this.settleable(id);
      this.forget(held, 'acked');
      return this.send(held.reply, '+ACK', `cannot acknowledge delivery ${id}`);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  nack(id: string, delay?: unknown, reason?: unknown): Promise<void> {
    try {
      const ms = eventChecks.checkInt(delay, 'delay', 0, EVENTS_LIMITS.nackDelayMax, 0);
      const why = eventChecks.checkReason(reason) ?? 'nacked';
      const held = this.settleable(id);
      this.forget(held, 'nacked');
      return this.failed(held, why, ms);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** Gives back a delivery its remote user never saw. JetStream counts it as an attempt all the same. */
  release(id: string): Promise<void> {
    try {
      const held = this.settleable(id);
      this.forget(held, 'released');
      return this.send(held.reply, '-NAK', `cannot give back delivery ${id}`);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** A failed attempt: handed out again (after `delay`), or a dead letter after the last one. */
  private async failed(held: Held, reason: string, delay: number): Promise<void> {
    if (held.attempt > this.settings.maxRetries) {
      await this.finish(held, held.attempt, reason);
      return;
    }
    await this.send(held.reply, delay > 0 ? `-NAK ${JSON.stringify({ delay: delay * 1_000_000 })}` : '-NAK', `cannot give back delivery ${held.id}`);
  }

  /** The dead letter, then the event is done for the group (+TERM). */
  private async finish(held: Held, attempts: number, reason: string): Promise<void> {
    await this.host.deadLetter(this, held, attempts, reason);
    await this.send(held.reply, '+TERM', `cannot end delivery ${held.id}`);
  }

  /** The ack wait passed: the delivery is over and the event handed out again at once. */
  private expire(id: string): void {
    const held = this.live.get(id);
    if (!held) return;
    this.forget(held, 'expired');
    this.failed(held, `not acknowledged within the ack wait of ${this.settings.ackWait} ms`, 0).catch((err: unknown) =>
      // JetStream's own ack wait hands it out again
      this.host.logger.warn({ err, topic: this.topic, group: this.group }, 'events: cannot give back an expired delivery'),
    );
  }

  // ---- the end -------------------------------------------------------------------------

  /** Ends the member: what it holds goes back to the group at once (each counts as a failed attempt). */
  async close(reason = 'the consumer closed before acknowledging'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stop();
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
    const held = [...this.live.values()];
    for (const h of held) this.forget(h, 'expired');
    await Promise.all(
      held.map((h) =>
        this.failed(h, reason, 0).catch((err: unknown) => this.host.logger.warn({ err, topic: this.topic, group: this.group }, 'events: cannot give back a delivery on close')),
      ),
    );
  }

  /** @internal the connection is gone for good */
  lost(err: MicroError): void {
    this.fail(err);
  }

  /** Ends with an error: reads reject with it; what it held comes again after JetStream's ack wait. */
  private fail(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = err;
    this.stop();
    for (const w of this.waiters.splice(0)) w.reject(err);
    for (const h of [...this.live.values()]) this.forget(h, 'expired');
  }

  private stop(): void {
    if (this.pulling) this.endPull(this.pulling.no);
    try {
      this.sub?.unsubscribe();
    } catch {
      // the connection is closed already
    }
    this.host.left(this);
  }
}

class JetStreamDelivery implements Delivery {
  constructor(
    private readonly member: JetStreamConsumer,
    readonly id: string,
    readonly event: Event,
    readonly attempt: number,
    readonly deadline: number,
  ) {}

  ack(): Promise<void> {
    return this.member.ack(this.id);
  }

  nack(delay?: number, reason?: string): Promise<void> {
    return this.member.nack(this.id, delay, reason);
  }
}
