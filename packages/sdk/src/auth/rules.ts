import type { Account } from '../context/context.js';

/**
 * Access rules and their evaluation — the one implementation used by every service
 * (where calls are served) and by the auth service (to check rules as they are made).
 *
 * A rule says who may reach which resource:
 *
 * - `resource` is `type:name:endpoint`, e.g. `service:helloworld:Call`; each of the three
 *   segments may contain `*`, which matches any run of characters (`service:*:*`,
 *   `service:billing:Invoice.*`).
 * - `scope` is who it applies to: `''` everyone, with or without a token (a public
 *   rule); `'*'` any authenticated account; any other value the accounts that have that
 *   scope.
 * - `access` is `granted` or `denied`; `priority` orders the rules.
 *
 * Evaluation: of the rules that match the resource and apply to the caller, the one of
 * highest priority decides; at equal priority `denied` wins over `granted` (so the order
 * in which rules were made never matters); no rule at all means denied.
 */

export type Access = 'granted' | 'denied';

export interface Rule {
  id: string;
  resource: string;
  scope: string;
  access: Access;
  priority: number;
  /** the namespace the rule belongs to (set by the auth service) */
  namespace?: string;
}

export interface Resource {
  type: string;
  name: string;
  endpoint: string;
}

/** A segment of a resource (pattern): letters, digits, `.`, `_`, `-` and `*`. */
export const RESOURCE_SEGMENT = /^[A-Za-z0-9._*-]+$/;
/** `type:name:endpoint`; each segment as RESOURCE_SEGMENT */
export const RESOURCE_PATTERN = /^[A-Za-z0-9._*-]+:[A-Za-z0-9._*-]+:[A-Za-z0-9._*-]+$/;

/** The three segments of a resource, or undefined when it is not `type:name:endpoint`. */
export function parseResource(resource: string): Resource | undefined {
  if (resource.length > 255 || !RESOURCE_PATTERN.test(resource)) return undefined;
  const [type, name, endpoint] = resource.split(':') as [string, string, string];
  return { type, name, endpoint };
}

/** The resource of an endpoint of a service. */
export function serviceResource(service: string, endpoint: string): string {
  return `service:${service}:${endpoint}`;
}

/** A matcher for one segment pattern: exact text, `*` alone, or a glob. */
function segmentMatcher(pattern: string): (value: string) => boolean {
  if (pattern === '*') return () => true;
  if (!pattern.includes('*')) return (value) => value === pattern;
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('.*')}$`);
  return (value) => re.test(value);
}

/** Does the rule apply to this caller (undefined: no credentials)? */
export function scopeApplies(scope: string, account: Account | undefined): boolean {
  if (scope === '') return true;
  if (!account) return false;
  return scope === '*' || account.scopes.includes(scope);
}

/** The order of evaluation: higher priority first, `denied` before `granted` at equal priority, then by id. */
export function compareRules(a: Rule, b: Rule): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.access !== b.access) return a.access === 'denied' ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export interface Decision {
  access: Access;
  /** the rule that decided; undefined when no rule matched (denied by default) */
  rule: Rule | undefined;
}

interface CompiledRule {
  rule: Rule;
  type: (v: string) => boolean;
  name: (v: string) => boolean;
  endpoint: (v: string) => boolean;
}

const MEMO_LIMIT = 4096;

/**
 * A rule set compiled once: sorted, each pattern turned into a matcher. `evaluate` first
 * narrows the rules to those matching the resource (memoised per resource: a service has
 * few endpoints), then takes the first that applies to the caller.
 */
export class RuleSet {
  readonly rules: readonly Rule[];
  private readonly compiled: CompiledRule[];
  private readonly byResource = new Map<string, CompiledRule[]>();

  constructor(rules: readonly Rule[]) {
    this.rules = [...rules].sort(compareRules);
    this.compiled = [];
    for (const rule of this.rules) {
      const parsed = parseResource(rule.resource);
      // a malformed rule (never accepted by the auth service) matches nothing
      if (!parsed) continue;
      this.compiled.push({ rule, type: segmentMatcher(parsed.type), name: segmentMatcher(parsed.name), endpoint: segmentMatcher(parsed.endpoint) });
    }
  }

  /** The rules that match a resource, in evaluation order. */
  matching(resource: string): readonly Rule[] {
    return this.candidates(resource).map((c) => c.rule);
  }

  private candidates(resource: string): CompiledRule[] {
    let list = this.byResource.get(resource);
    if (!list) {
      const parsed = parseResource(resource);
      list = parsed ? this.compiled.filter((c) => c.type(parsed.type) && c.name(parsed.name) && c.endpoint(parsed.endpoint)) : [];
      if (this.byResource.size >= MEMO_LIMIT) this.byResource.clear();
      this.byResource.set(resource, list);
    }
    return list;
  }

  evaluate(resource: string, account: Account | undefined): Decision {
    for (const c of this.candidates(resource)) {
      if (scopeApplies(c.rule.scope, account)) return { access: c.rule.access, rule: c.rule };
    }
    return { access: 'denied', rule: undefined };
  }
}

/**
 * The rule of `existing` that a new rule contradicts: the same resource, scope and
 * priority with the other access. Such a pair would leave the outcome to a tie-break
 * nobody wrote down, so the auth service refuses it (409).
 */
export function conflictingRule(existing: readonly Rule[], candidate: Rule): Rule | undefined {
  return existing.find((r) => r.id !== candidate.id && r.resource === candidate.resource && r.scope === candidate.scope && r.priority === candidate.priority && r.access !== candidate.access);
}

/** The rule every namespace starts with: any authenticated account of the namespace may call its services. */
export const DEFAULT_RULE: Rule = { id: 'default', resource: 'service:*:*', scope: '*', access: 'granted', priority: 0 };

/** An account of namespace `micro` with scope `admin` administers the whole platform. */
export function isPlatformAdmin(account: Account | undefined): boolean {
  return !!account && account.issuer === 'micro' && account.scopes.includes('admin');
}
