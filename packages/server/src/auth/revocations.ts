import { errors, isPlatformAdmin, RevocationList, type Account, type Revocation } from '@micro/sdk';
import type { Db } from './db.js';
import type { RevocationStorage } from './storage.js';

/**
 * The revocation list of one node (local profile): entries in `<home>/data/auth.db`, so a
 * restart does not bring a revoked token back, and in memory (`list`), which every
 * verifier of the process reads (Tokens.verify: the gateway, the core services) and which
 * the `auth.Revocations` stream hands to services in other processes.
 *
 * The table is made here when missing (an additive change: the schema version stays).
 * Rows live as long as the list keeps them (see RevocationList.keepFor); the expired
 * ones go on each add.
 */
export class SqliteRevocations implements RevocationStorage {
  readonly list = new RevocationList();
  private readonly st;

  constructor(db: Db) {
    db.exec('CREATE TABLE IF NOT EXISTS revocations (kind TEXT NOT NULL, id TEXT NOT NULL, before INTEGER NOT NULL, PRIMARY KEY (kind, id))');
    this.st = {
      upsert: db.prepare('INSERT INTO revocations (kind, id, before) VALUES (?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET before = MAX(before, excluded.before)'),
      all: db.prepare<[], Revocation>('SELECT kind, id, before FROM revocations'),
      prune: db.prepare('DELETE FROM revocations WHERE before <= ?'),
    };
  }

  /** Reads the stored entries into the list (once the list knows how long entries are kept). */
  load(): void {
    this.st.prune.run(this.horizon());
    for (const r of this.st.all.all()) this.list.add(r);
  }

  add(r: Revocation): void {
    this.st.prune.run(this.horizon());
    this.st.upsert.run(r.kind, r.id, r.before);
    this.list.add(r);
  }

  private horizon(): number {
    return Math.floor(Date.now() / 1000) - this.list.keepFor;
  }
}

/** epoch seconds for an entry made now: tokens issued up to this second are dead */
export function revokeNow(kind: Revocation['kind'], id: string): Revocation {
  return { kind, id, before: Math.floor(Date.now() / 1000) };
}

/**
 * What of the list a caller may see: an admin of `micro` every entry; another account the
 * `account` entries of its own namespace and of `micro` (the accounts that may call its
 * services) — not the account ids of other namespaces — and the session and token entries
 * (random ids that name nobody).
 */
export function visibleTo(account: Account): (r: Revocation) => boolean {
  if (isPlatformAdmin(account)) return () => true;
  const own = `${account.issuer}/`;
  return (r) => r.kind !== 'account' || r.id.startsWith(own) || r.id.startsWith('micro/');
}

const MAX_PENDING = 10_000;

export interface RevocationFeedOptions {
  /** ms between empty messages, by which a follower knows it is current (default 1,000) */
  heartbeat?: number;
}

/**
 * The `auth.Revocations` stream of one caller: the entries in force, then each new one as
 * it is added (batched per turn of the event loop), and an empty message every heartbeat.
 * Ends when the caller goes (ctx.signal).
 */
export async function* revocationFeed(
  list: RevocationList,
  maxTokenTtl: number,
  account: Account,
  signal: AbortSignal,
  options: RevocationFeedOptions = {},
): AsyncGenerator<{ entries: Revocation[]; maxTokenTtl: number }> {
  const visible = visibleTo(account);
  const heartbeat = options.heartbeat ?? 1_000;
  let pending: Revocation[] = [];
  let overflow = false;
  let wake: (() => void) | undefined;
  const unsubscribe = list.subscribe((r) => {
    if (!visible(r)) return;
    // a follower that does not read: it starts again from the whole list
    if (pending.length >= MAX_PENDING) overflow = true;
    else pending.push(r);
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort);
  let sent = false;
  try {
    for (;;) {
      if (signal.aborted) return;
      if (overflow) throw errors.ServiceUnavailable('auth', 'the revocation stream fell behind: follow it again');
      // nothing, not even a heartbeat, while the list may be missing entries: followers then fail closed too
      if (!list.stale()) {
        const entries = sent ? pending : list.entries().filter(visible);
        pending = [];
        sent = true;
        yield { entries, maxTokenTtl };
      }
      if (pending.length === 0 || list.stale()) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, heartbeat);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  } finally {
    unsubscribe();
    signal.removeEventListener('abort', onAbort);
  }
}
