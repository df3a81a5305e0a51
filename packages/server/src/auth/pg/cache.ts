import type { Account } from '@micro/sdk';
import type { KeyRow } from '../keys.js';
import type { StoredRule } from '../rules.js';

/**
 * What the hot path reads of auth, kept in memory: the rules of each namespace (the
 * gateway's check, and ListRules that every service polls) and the API keys the gateway
 * verifies on each call. Trusted only while the node LISTENs (see notifier.ts):
 *
 * - a change made anywhere drops the entries it touches when its NOTIFY arrives
 *   (milliseconds after the commit), and at once on the node that made it;
 * - with the LISTEN down nothing is cached (each read goes to Postgres);
 * - every entry lives at most `ttl` ms in any case: the bound if a connection dies
 *   silently (no FIN) and notifications stop without the node knowing.
 *
 * A read that started before a change and ends after it must not cache the old value:
 * each invalidation bumps `generation`, and a read caches only if it did not move.
 */
export class AuthCache {
  generation = 0;
  private readonly rules = new Map<string, { rules: StoredRule[]; at: number }>();
  private readonly keys = new Map<string, { row: KeyRow | undefined; owner: Account | undefined; at: number }>();
  static readonly MAX_ENTRIES = 10_000;

  constructor(
    private readonly enabled: () => boolean,
    readonly ttl: number,
  ) {}

  getRules(namespace: string): StoredRule[] | undefined {
    return this.fresh(this.rules, namespace)?.rules;
  }

  setRules(namespace: string, rules: StoredRule[], generation: number): void {
    this.put(this.rules, namespace, { rules, at: Date.now() }, generation);
  }

  getKey(keyId: string): { row: KeyRow | undefined; owner: Account | undefined } | undefined {
    return this.fresh(this.keys, keyId);
  }

  setKey(keyId: string, row: KeyRow | undefined, owner: Account | undefined, generation: number): void {
    this.put(this.keys, keyId, { row, owner, at: Date.now() }, generation);
  }

  /** A change of the rules of a namespace. */
  dropRules(namespace: string): void {
    this.generation++;
    this.rules.delete(namespace);
  }

  /** A key revoked. */
  dropKey(keyId: string): void {
    this.generation++;
    this.keys.delete(keyId);
  }

  /** An account deleted (its keys go with it). */
  dropAccount(): void {
    this.generation++;
    this.keys.clear();
  }

  clear(): void {
    this.generation++;
    this.rules.clear();
    this.keys.clear();
  }

  private fresh<V extends { at: number }>(map: Map<string, V>, key: string): V | undefined {
    if (!this.enabled()) return undefined;
    const hit = map.get(key);
    if (!hit) return undefined;
    if (Date.now() - hit.at >= this.ttl) {
      map.delete(key);
      return undefined;
    }
    return hit;
  }

  private put<V>(map: Map<string, V>, key: string, value: V, generation: number): void {
    if (!this.enabled() || generation !== this.generation) return;
    if (map.size >= AuthCache.MAX_ENTRIES) map.clear();
    map.set(key, value);
  }
}
