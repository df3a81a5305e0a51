import { isMicroError, type Broker, type Logger } from '@micro/sdk';
import { balanceAccount } from '../billing/accounts.js';
import { formatDollars } from '../billing/amounts.js';
import type { BillingSql } from '../billing/sql.js';
import type { Ledger } from '../ledger/index.js';
import type { Mailer } from '../mail/mailer.js';
import { balanceMessage } from '../mail/messages.js';

/**
 * The low- and zero-balance watch: after a posting changed a payer's balance, its level
 * (`ok`, `low`: below the threshold, `zero`) is compared with the level last recorded for
 * the payer; a fall to a lower level publishes an event and emails the owner, once per
 * crossing. The recorded level moves by a conditional UPDATE (from the level read), so of
 * concurrent calls on any node exactly one moves it and announces. A rise (a top-up) moves
 * it silently. A payer never seen is at `zero` (a new balance is zero): its first credit
 * announces nothing.
 */

export type Level = 'ok' | 'low' | 'zero';
const RANK: Record<Level, number> = { ok: 0, low: 1, zero: 2 };

/** `balance.low` and `balance.zero`, published in namespace micro (the broker: at most once; the email is the durable notice). */
export const BALANCE_TOPICS = { low: 'balance.low', zero: 'balance.zero' } as const;

export interface BalanceEvent {
  payer: string;
  state: 'low' | 'zero';
  /** units (10^-6 USD) */
  balance: number;
  threshold: number;
  /** ms since the epoch */
  at: number;
}

export interface WatchDeps {
  ledger: Ledger;
  sql: BillingSql;
  broker: Broker;
  mailer: Mailer;
  /** the email of the payer's owner (a customer), or undefined (a namespace no customer owns) */
  emailOf: (payer: string) => Promise<string | undefined>;
  /** units: below it a balance is low */
  threshold: number;
  /** the dashboard's address, which the email links to */
  siteUrl: string;
  clock: () => number;
  logger?: Logger;
}

export function levelOf(balance: number, threshold: number): Level {
  if (balance <= 0) return 'zero';
  return balance < threshold ? 'low' : 'ok';
}

export class BalanceWatch {
  constructor(private readonly deps: WatchDeps) {}

  /**
   * Looks at the payer's balance. `balanceAfter` is a hint: one at or above the threshold
   * for a payer recorded `ok` needs no more than one read. Never throws.
   */
  async onBalance(payer: string, balanceAfter?: number): Promise<void> {
    try {
      if (balanceAfter !== undefined && levelOf(balanceAfter, this.deps.threshold) === 'ok' && (await this.recorded(payer)) === 'ok') return;
      // the ledger, not the hint: calls may come out of the order of the postings
      const balance = await this.deps.ledger.balance(balanceAccount(payer)).catch((err: unknown) => {
        if (isMicroError(err) && err.code === 404) return 0;
        throw err;
      });
      const level = levelOf(balance, this.deps.threshold);
      await this.deps.sql.run("INSERT INTO @balance_levels (payer, level, updated_at) VALUES (?, 'zero', ?) ON CONFLICT (payer) DO NOTHING", [payer, this.deps.clock()]);
      const before = (await this.recorded(payer)) as Level;
      if (before === level) return;
      const moved = await this.deps.sql.run('UPDATE @balance_levels SET level = ?, updated_at = ? WHERE payer = ? AND level = ?', [level, this.deps.clock(), payer, before]);
      // another call moved it first: that one announces
      if (moved === 0 || RANK[level] <= RANK[before]) return;
      await this.announce({ payer, state: level as 'low' | 'zero', balance, threshold: this.deps.threshold, at: this.deps.clock() });
    } catch (err) {
      this.deps.logger?.error({ err, payer }, 'balance watch: could not look at the balance');
    }
  }

  /** The level last recorded for the payer, if any. */
  async recorded(payer: string): Promise<Level | undefined> {
    const [row] = await this.deps.sql.all<{ level: Level }>('SELECT level FROM @balance_levels WHERE payer = ?', [payer]);
    return row?.level;
  }

  private async announce(event: BalanceEvent): Promise<void> {
    const { logger } = this.deps;
    logger?.info({ payer: event.payer, state: event.state, balance: event.balance }, `balance ${event.state}`);
    await this.deps.broker.publish(BALANCE_TOPICS[event.state], event, { namespace: 'micro' }).catch((err: unknown) => logger?.warn({ err }, 'balance watch: could not publish'));
    const to = await this.deps.emailOf(event.payer).catch(() => undefined);
    if (!to) return;
    try {
      await this.deps.mailer.send(balanceMessage({ to, state: event.state, balance: formatDollars(event.balance), threshold: formatDollars(event.threshold), base: this.deps.siteUrl }));
    } catch (err) {
      logger?.warn({ err, payer: event.payer }, 'balance watch: could not email the owner');
    }
  }
}
