import { randomBytes } from 'node:crypto';
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { EngineDelivery, EVENTS_ERROR_ID, EVENTS_LIMITS, MicroError, errors, eventChecks, type Delivery, type EngineConsumer, type Logger } from '@micro/sdk';
import { natsError } from '@micro/sdk/nats';
import type { StoredEvent, TopicStream } from './jetstream.js';
import { storedOf, toEvent } from './jetstream.js';

/*
 * One member of a group on JetStream: a pull subscriber of the group's durable consumer.
 *
 * - What it has at JetStream (held by its user, received ahead and asked for) is never
 *   more than maxInFlight: a member that is full gets nothing, and the group's other
 *   members get the rest. So its user never holds more than maxInFlight either.
 * - It pulls for the reads waiting (`next()`). Once its user settled two deliveries (a
 *   working loop), it also asks ahead, for events already waiting (the pending count of the last
 *   delivery), when less than half its window is received ahead: the next reads then cost
 *   no round trip. A member that only takes asks for nothing more than it takes.
 * - What it received ahead is not its user's yet: no ack wait runs. It is given back after
 *   at most a second (or half the consumer's ack wait), on close, or when the window is
 *   full. Given back unseen, it must not count as an attempt, but JetStream counts every
 *   delivery: the engine remembers it (`host.unseen`) and a member of this node subtracts it.
 *   An event held ahead longer than half the grace is touched (+WPI) when it is handed out,
 *   so that JetStream's ack wait (the member's + the grace) still ends after the engine's.
 * - One pull request at a time, with its own reply subject (`<inbox>.<n>`), so that its
 *   end (408 expired) is told from an older one's.
 * - The ack wait is timed here: at the deadline the delivery is over (a later ack is a
 *   410) and the event is given back at once (a nak), or sent to the dead letters after
 *   its last attempt. JetStream's ack wait (longer) covers a node that died.
 * - Acks, naks and terms are requests: each resolves once JetStream applied it. Their
 *   answers come to the member's own subscription (`<inbox>.a<n>`), timed out together:
 *   nats.js's request() makes two errors with stacks per call, the most of a member's work
 *   in a profile.
 */

/** ms a pull request waits at the server before it is asked again */
const PULL_EXPIRES = 15_000;
/** ms a pull asking ahead waits (its events were there: what it still waits for would be held ahead) */
const AHEAD_EXPIRES = 1_000;
/** ms an event received ahead waits for a read before it is given back */
const AHEAD_HOLD = 1_000;
/** deliveries given back unseen that a node remembers */
const UNSEEN_LIMIT = 100_000;
/** deliveries a user settles before its member asks ahead: a loop that reads on, not a user that takes one */
const AHEAD_AFTER = 2;
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
  /** ms the consumer's ack wait in JetStream exceeds a member's */
  readonly ackGrace: number;
  /** deliveries given back unseen (JetStream counted them), by `<stream>.<durable>.<offset>` */
  readonly unseen: Map<string, number>;
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

/** A delivery received ahead of the reads: not its user's yet. */
interface Ahead {
  reply: string;
  seq: number;
  /** JetStream's count of deliveries, this one included */
  delivered: number;
  msg: Msg;
  at: number;
}

interface Waiter {
  resolve: (r: IteratorResult<Delivery>) => void;
  reject: (err: unknown) => void;
}

interface Settling {
  resolve: () => void;
  reject: (err: unknown) => void;
  what: string;
  at: number;
}

interface Pull {
  no: number;
  /** messages asked for and not come yet */
  remaining: number;
  timer: NodeJS.Timeout;
}

const gone = (detail: string) => new MicroError(EVENTS_ERROR_ID, 410, detail);

/** What the ack subject of a delivered message tells: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`, or with a domain and account hash before the stream (and a token after). */
export function parseAckSubject(reply: string): { attempt: number; seq: number; pending: number } | undefined {
  const t = reply.split('.');
  if (t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  const at = t.length === 9 ? 2 : t.length >= 11 ? 4 : -1;
  if (at < 0) return undefined;
  const attempt = Number(t[at + 2]);
  const seq = Number(t[at + 3]);
  if (!Number.isSafeInteger(attempt) || !Number.isSafeInteger(seq) || attempt < 1 || seq < 1) return undefined;
  // events waiting after this one (for asking ahead only: a bad count asks for none)
  const pending = Number(t[at + 6]);
  return { attempt, seq, pending: Number.isSafeInteger(pending) && pending > 0 ? pending : 0 };
}

export class JetStreamConsumer implements EngineConsumer {
  readonly id = randomBytes(4).toString('hex');
  readonly topic: string;
  private readonly waiters: Waiter[] = [];
  private readonly live = new Map<string, Held>();
  private readonly past = new Map<string, Past>();
  /** deliveries received ahead of the reads, oldest first */
  private readonly ahead: Ahead[] = [];
  private aheadTimer: NodeJS.Timeout | undefined;
  /** ms an event received ahead waits for a read */
  private readonly aheadHold: number;
  /** events waiting in the group after the last delivery (JetStream's pending count) */
  private backlog = 0;
  /** the user settled a delivery since the last pull: the next may ask ahead */
  private working = false;
  /** deliveries the user settled (up to AHEAD_AFTER) */
  private settled = 0;
  /** the pull request waiting at the server, if any */
  private pulling: Pull | undefined;
  private pullNo = 0;
  private readonly inbox = createInbox();
  private sub: Subscription | undefined;
  /** acks, naks and terms waiting for JetStream's answer, oldest first */
  private readonly settling = new Map<number, Settling>();
  private settleNo = 0;
  private settleTimer: NodeJS.Timeout | undefined;
  /** close() waits for the answers to what was sent before it unsubscribes */
  private settled0: (() => void) | undefined;
  private unsubscribed = false;
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
    // well within JetStream's ack wait (this ackWait + the grace at least)
    this.aheadHold = Math.min(AHEAD_HOLD, (settings.ackWait + host.ackGrace) / 2);
  }

  /** deliveries received ahead of the reads, that the user does not hold yet */
  get aheadCount(): number {
    return this.ahead.length;
  }

  start(): void {
    this.sub = this.host.nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => this.onMessage(err, msg) });
  }

  // ---- reading -------------------------------------------------------------------------

  next(): Promise<IteratorResult<Delivery>> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    while (this.ahead.length > 0) {
      const d = this.handOut(this.ahead.shift() as Ahead);
      if (d) {
        this.schedule();
        return Promise.resolve({ value: d, done: false });
      }
    }
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
    const max = this.settings.maxInFlight;
    const room = max - this.live.size - this.ahead.length;
    // reads wait only when nothing was received ahead
    let want = Math.min(this.waiters.length, room);
    let expires = PULL_EXPIRES;
    if (this.working && this.settled >= AHEAD_AFTER && this.backlog > 0 && this.ahead.length <= max / 2 && room > want) {
      // a working loop: ask ahead for events already waiting, in batches of half the window or more
      want = Math.min(room, want + this.backlog);
      expires = AHEAD_EXPIRES;
    }
    this.working = false;
    if (want <= 0) return;
    const no = ++this.pullNo;
    // a request the server lost (it restarted) ends here, and is made again
    const timer = setTimeout(() => {
      this.endPull(no);
      this.schedule();
    }, expires + 5_000);
    timer.unref();
    this.pulling = { no, remaining: want, timer };
    try {
      this.host.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${this.stream.name}.${this.durable}`, JSON.stringify({ batch: want, expires: expires * 1_000_000 }), {
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
      // answers and statuses come on their request's own subject; messages keep the subject they were published on
      const token = msg.subject.slice(this.inbox.length + 1);
      if (token.startsWith('a')) this.onAnswer(Number(token.slice(1)), msg);
      else this.onStatus(Number(token), msg);
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
    this.backlog = info.pending;
    const a: Ahead = { reply, seq: info.seq, delivered: info.attempt, msg, at: Date.now() };
    if (this.closed || this.live.size + this.ahead.length >= this.settings.maxInFlight) {
      // asked for by a member that closed meanwhile, or by a pull of before a reconnect
      void this.giveBack(a);
      return;
    }
    if (this.waiters.length === 0) {
      this.ahead.push(a);
      if (!this.aheadTimer) this.armAhead(this.aheadHold);
      return;
    }
    const d = this.handOut(a);
    if (d) (this.waiters.shift() as Waiter).resolve({ value: d, done: false });
    else this.schedule();
  }

  /** `<stream>.<durable>.<offset>`: where this node remembers what it gave back unseen */
  private unseenKey(seq: number): string {
    return `${this.stream.name}.${this.durable}.${seq}`;
  }

  /** The delivery for the user; none if its last attempt had failed already (then it goes to the dead letters). */
  private handOut(a: Ahead): EngineDelivery | undefined {
    const unseen = this.host.unseen.size > 0 ? (this.host.unseen.get(this.unseenKey(a.seq)) ?? 0) : 0;
    const attempt = Math.max(1, a.delivered - unseen);
    const now = Date.now();
    const stored = storedOf(a.seq, a.msg.data, a.msg.headers, now);
    // unique for every delivery, even when some of JetStream's were not attempts
    const id = `${a.seq}.${a.delivered}`;
    if (attempt > this.settings.maxRetries + 1) {
      // its last attempt failed without a nack: its member went away (a node died) and
      // JetStream's ack wait passed
      const held: Held = { id, reply: a.reply, attempt, deadline: 0, stored, timer: undefined as unknown as NodeJS.Timeout };
      void this.finish(held, attempt - 1, 'not acknowledged within the ack wait: its consumer went away').catch((err: unknown) =>
        this.host.logger.error({ err, topic: this.topic, group: this.group }, 'events: cannot send a dead letter'),
      );
      return undefined;
    }
    if (now - a.at > this.host.ackGrace / 2) {
      // held ahead a while: JetStream's ack wait starts again, so that it ends after this one
      try {
        this.host.nc.publish(a.reply, '+WPI');
      } catch {
        // the connection is gone: the ack fails the same way
      }
    }
    const deadline = now + this.settings.ackWait;
    const timer = setTimeout(() => this.expire(id), this.settings.ackWait);
    this.live.set(id, { id, reply: a.reply, attempt, deadline, stored, timer });
    return new EngineDelivery(this, id, toEvent(this.topic, stored), attempt, deadline);
  }

  /** Gives back what waited too long for a read (an idle user): the group's other members may take it. */
  private armAhead(ms: number): void {
    this.aheadTimer = setTimeout(() => {
      this.aheadTimer = undefined;
      const now = Date.now();
      while (this.ahead.length > 0 && now - (this.ahead[0] as Ahead).at >= this.aheadHold) void this.giveBack(this.ahead.shift() as Ahead);
      const first = this.ahead[0];
      if (first) this.armAhead(Math.max(1, first.at + this.aheadHold - now));
    }, ms);
    this.aheadTimer.unref();
  }

  /** Gives back a delivery its user never saw. JetStream counts it: this node remembers not to. */
  private async giveBack(a: { reply: string; seq: number }): Promise<void> {
    this.remember(a.seq);
    await this.send(a.reply, '-NAK', 'cannot give an event back').catch((err: unknown) =>
      // JetStream's own ack wait hands it out again
      this.host.logger.debug({ err, topic: this.topic, group: this.group }, 'events: cannot give back an event received ahead'),
    );
  }

  private remember(seq: number): void {
    const unseen = this.host.unseen;
    const key = this.unseenKey(seq);
    const n = (unseen.get(key) ?? 0) + 1;
    unseen.delete(key);
    if (unseen.size >= UNSEEN_LIMIT) unseen.delete(unseen.keys().next().value as string);
    unseen.set(key, n);
  }

  /** The event is done for the group: nothing to remember of it. */
  private done(held: Held): void {
    if (this.host.unseen.size > 0) this.host.unseen.delete(this.unseenKey(held.stored.offset));
  }

  // ---- settling ------------------------------------------------------------------------

  /** Sends an ack, nak or term; resolves once JetStream answered (it applied it). */
  private send(reply: string, body: string, what: string): Promise<void> {
    if (this.unsubscribed) return this.request(reply, body, what);
    const no = ++this.settleNo;
    return new Promise<void>((resolve, reject) => {
      try {
        this.host.nc.publish(reply, body, { reply: `${this.inbox}.a${no}` });
      } catch (err) {
        reject(natsError(err, EVENTS_ERROR_ID, what));
        return;
      }
      this.settling.set(no, { resolve, reject, what, at: Date.now() });
      if (!this.settleTimer) this.armSettling(this.host.apiTimeout);
    });
  }

  /** The same with a request of its own: once this member's subscription is gone. */
  private async request(reply: string, body: string, what: string): Promise<void> {
    try {
      await this.host.nc.request(reply, body, { timeout: this.host.apiTimeout });
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, what);
    }
  }

  private onAnswer(no: number, msg: Msg): void {
    const s = this.settling.get(no);
    if (!s) return; // timed out already
    this.settling.delete(no);
    // 503: nothing listens on the ack subject any more (the group was deleted)
    if (msg.headers?.code === 503) s.reject(natsError(new Error('no responders'), EVENTS_ERROR_ID, s.what));
    else s.resolve();
    if (this.settling.size === 0) this.settled0?.();
  }

  /** Fails what JetStream did not answer within apiTimeout (NATS away), as a request would. */
  private armSettling(ms: number): void {
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      const now = Date.now();
      for (const [no, s] of this.settling) {
        if (now - s.at < this.host.apiTimeout) {
          this.armSettling(s.at + this.host.apiTimeout - now);
          return;
        }
        this.settling.delete(no);
        s.reject(natsError(new Error('timeout'), EVENTS_ERROR_ID, s.what));
      }
      this.settled0?.();
    }, ms);
    this.settleTimer.unref();
  }

  /** Every answer waited for has come (or timed out). */
  private allSettled(): Promise<void> {
    if (this.settling.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.settled0 = resolve));
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

  /**
   * The delivery is no longer held. `room` says whether to pull for the room it made now:
   * not before a nak reached JetStream, which applies acks and pull requests in no set
   * order (the event given back must come before the next ones).
   */
  private forget(held: Held, why: Past, room = true): void {
    clearTimeout(held.timer);
    this.live.delete(held.id);
    if (this.past.size >= PAST_LIMIT) this.past.delete(this.past.keys().next().value as string);
    this.past.set(held.id, why);
    if (why === 'acked' || why === 'nacked') {
      // a user who settles reads on: its member may ask ahead
      this.working = true;
      if (this.settled < AHEAD_AFTER) this.settled++;
    }
    if (room) this.madeRoom();
  }

  private madeRoom(): void {
    if (this.waiters.length > 0 || this.working) this.schedule();
  }

  ack(id: string): Promise<void> {
    try {
      const held = this.settleable(id);
      this.forget(held, 'acked');
      this.done(held);
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
      this.forget(held, 'nacked', false);
      return this.failed(held, why, ms).finally(() => this.madeRoom());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** Gives back a delivery its remote user never saw: not an attempt (JetStream counts it; this node remembers not to). */
  release(id: string): Promise<void> {
    try {
      const held = this.settleable(id);
      this.forget(held, 'released', false);
      this.remember(held.stored.offset);
      return this.send(held.reply, '-NAK', `cannot give back delivery ${id}`).finally(() => this.madeRoom());
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
    this.done(held);
    await this.send(held.reply, '+TERM', `cannot end delivery ${held.id}`);
  }

  /** The ack wait passed: the delivery is over and the event handed out again at once. */
  private expire(id: string): void {
    const held = this.live.get(id);
    if (!held) return;
    this.forget(held, 'expired', false);
    this.failed(held, `not acknowledged within the ack wait of ${this.settings.ackWait} ms`, 0)
      .catch((err: unknown) =>
        // JetStream's own ack wait hands it out again
        this.host.logger.warn({ err, topic: this.topic, group: this.group }, 'events: cannot give back an expired delivery'),
      )
      .finally(() => this.madeRoom());
  }

  // ---- the end -------------------------------------------------------------------------

  /** Ends the member: what it holds goes back to the group at once (each counts as a failed attempt); what it received ahead too, uncounted. */
  async close(reason = 'the consumer closed before acknowledging'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // the subscription stays for the answers to what was sent, and to give back what still comes
    this.stop(false);
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
    const ahead = this.ahead.splice(0);
    const held = [...this.live.values()];
    for (const h of held) this.forget(h, 'expired');
    await Promise.all([
      ...ahead.map((a) => this.giveBack(a)),
      ...held.map((h) =>
        this.failed(h, reason, 0).catch((err: unknown) => this.host.logger.warn({ err, topic: this.topic, group: this.group }, 'events: cannot give back a delivery on close')),
      ),
    ]);
    await this.allSettled();
    this.unsubscribe();
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
    for (const s of this.settling.values()) s.reject(err);
    this.settling.clear();
    clearTimeout(this.settleTimer);
    // JetStream hands it out again after its ack wait, counted: this node remembers not to count it
    for (const a of this.ahead.splice(0)) this.remember(a.seq);
    for (const h of [...this.live.values()]) this.forget(h, 'expired');
  }

  private stop(unsubscribe = true): void {
    clearTimeout(this.aheadTimer);
    this.aheadTimer = undefined;
    if (this.pulling) this.endPull(this.pulling.no);
    if (unsubscribe) this.unsubscribe();
    this.host.left(this);
  }

  private unsubscribe(): void {
    this.unsubscribed = true;
    try {
      this.sub?.unsubscribe();
    } catch {
      // the connection is closed already
    }
  }
}
