import { compareRules, conflictingRule, errors, type Rule } from '@micro/sdk';
import type { Db } from './db.js';

/**
 * The access rules of each namespace (their meaning and evaluation: sdk auth/rules.ts).
 * Kept in evaluation order when listed. A rule that contradicts another one (same
 * resource, scope and priority, other access) is refused with a 409 naming it.
 */

export interface RuleRow {
  namespace: string;
  id: string;
  resource: string;
  scope: string;
  access: 'granted' | 'denied';
  priority: number;
}

export const MAX_RULES_PER_NAMESPACE = 1000;

export type StoredRule = Rule & { namespace: string };

export class RuleStore {
  private readonly st;

  constructor(private readonly db: Db) {
    this.st = {
      list: db.prepare<[string], RuleRow>('SELECT namespace, id, resource, scope, access, priority FROM rules WHERE namespace = ?'),
      insert: db.prepare('INSERT INTO rules (namespace, id, resource, scope, access, priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      insertIgnore: db.prepare('INSERT OR IGNORE INTO rules (namespace, id, resource, scope, access, priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      delete: db.prepare('DELETE FROM rules WHERE namespace = ? AND id = ?'),
    };
  }

  /** The rules of a namespace in evaluation order. */
  list(namespace: string): StoredRule[] {
    return this.st.list.all(namespace).map(toRule).sort(compareRules);
  }

  create(namespace: string, rule: Rule): StoredRule {
    const stored: StoredRule = { id: rule.id, resource: rule.resource, scope: rule.scope, access: rule.access, priority: rule.priority, namespace };
    this.db.transaction(() => {
      checkNewRule(this.list(namespace), namespace, stored);
      this.st.insert.run(namespace, rule.id, rule.resource, rule.scope, rule.access, rule.priority, Date.now());
    })();
    return stored;
  }

  /** The default rule of a namespace seen for the first time (inside the caller's transaction). */
  insertDefault(namespace: string, rule: Rule): void {
    this.st.insertIgnore.run(namespace, rule.id, rule.resource, rule.scope, rule.access, rule.priority, Date.now());
  }

  delete(namespace: string, id: string): void {
    if (this.st.delete.run(namespace, id).changes === 0) throw errors.NotFound('auth', `no rule ${id} in namespace ${namespace}`);
  }
}

/** The checks of a new rule against the rules of its namespace: a 409 or 429 that says why. */
export function checkNewRule(existing: readonly StoredRule[], namespace: string, rule: StoredRule): void {
  if (existing.some((r) => r.id === rule.id)) throw errors.Conflict('auth', `rule ${rule.id} exists in namespace ${namespace} — delete it first, or pick another id`);
  const clash = conflictingRule(existing, rule);
  if (clash) {
    throw errors.Conflict(
      'auth',
      `rule ${rule.id} conflicts with rule ${clash.id}: both apply to ${rule.resource} for scope ${JSON.stringify(rule.scope)} at priority ${rule.priority}, one ${clash.access}, one ${rule.access} — give one of them another priority`,
    );
  }
  if (existing.length >= MAX_RULES_PER_NAMESPACE) throw errors.TooManyRequests('auth', `namespace ${namespace} has ${MAX_RULES_PER_NAMESPACE} rules, the most it may have`);
}

export function toRule(row: RuleRow): StoredRule {
  return { id: row.id, resource: row.resource, scope: row.scope, access: row.access, priority: row.priority, namespace: row.namespace };
}
