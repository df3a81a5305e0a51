/**
 * What an engine of the signup service keeps: invites, the waiting list, one-time codes
 * (keyed hashes only), send counters, customers, their namespaces and memberships. Both
 * engines (SQLite: sqlite.ts, PostgreSQL: postgres.ts) are one implementation over a
 * small SQL driver (sql.ts) and pass one contract (contract.ts).
 *
 * Every method is atomic; what must hold across nodes (one customer per email, one owner
 * per namespace name, at most `maxAttempts` checks of a code, at most `max` sends per
 * window) is decided by the database, never by a read followed by a write.
 */

export type CustomerStatus = 'unverified' | 'verified' | 'active' | 'suspended' | 'deleted';
/** A member's role in a namespace (README: what each may do); `owner`s and `admin`s have scope admin there. */
export type Role = 'owner' | 'admin' | 'developer' | 'viewer';
export const ROLES: readonly Role[] = ['owner', 'admin', 'developer', 'viewer'];

export interface Customer {
  id: string;
  /** absent once deleted: the address is free again */
  email?: string;
  status: CustomerStatus;
  createdAt: number;
  updatedAt: number;
}

export interface Membership {
  namespace: string;
  /** the customer's account in that namespace (see README: the email) */
  account: string;
  role: Role;
  createdAt: number;
}

export interface Invite {
  id: string;
  email: string;
  /** an existing namespace the invitee joins as a member */
  namespace?: string;
  /** the role in `namespace` (default developer: invites made before roles) */
  role?: Role;
  createdAt: number;
  expiresAt: number;
  usedAt?: number;
  revokedAt?: number;
}

export interface WaitlistEntry {
  email: string;
  createdAt: number;
  invitedAt?: number;
}

export interface Page<T> {
  items: T[];
  /** the cursor of the next page, when there is one */
  next?: string;
}

/** A one-time code as stored: its keyed hash and how many checks it had. */
export interface StoredCode {
  hash: string;
  expiresAt: number;
  attempts: number;
}

/** What `claim` reserves in one transaction: the customer, its namespace or the one it joins. */
export interface Claim {
  customer: { id: string; email: string };
  /** a new namespace the customer owns */
  owns?: string;
  /** an existing (active) namespace the customer joins as a member */
  joins?: string;
  /** the role in `joins` (default developer) */
  role?: Role;
  account: string;
  now: number;
  /** a claim left unfinished (unverified, verified) updated before this is stale: taken over */
  staleBefore: number;
}

/** A stale claim `claim` took over: the accounts it may have made, for the caller to remove. */
export interface TakenOver {
  customer: string;
  memberships: Membership[];
}

export interface SignupStorage {
  // --- invites
  createInvite(invite: Invite): Promise<void>;
  /** The invite, or undefined. */
  getInvite(id: string): Promise<Invite | undefined>;
  /** Marks it revoked; false when it does not exist or was used or revoked already. */
  revokeInvite(id: string, now: number): Promise<boolean>;
  listInvites(limit: number, after?: string): Promise<Page<Invite>>;
  /** The newest invite of `email` that is neither used, revoked nor expired. */
  liveInvite(email: string, now: number): Promise<Invite | undefined>;
  countInvites(now: number): Promise<number>;

  // --- the waiting list
  /** Adds `email` (once: joining twice changes nothing); false when the list holds `max` entries. */
  joinWaitlist(email: string, now: number, max: number): Promise<boolean>;
  /** Oldest first. */
  listWaitlist(limit: number, after?: string): Promise<Page<WaitlistEntry>>;
  /** The `count` oldest not yet invited, marked invited at `now` (atomically: two callers never take the same). */
  takeWaitlist(count: number, now: number): Promise<string[]>;
  /** Puts entries taken by `takeWaitlist` back (their invite could not be made). */
  untakeWaitlist(emails: string[]): Promise<void>;

  // --- sends and codes
  /** Counts one send of `key`; false (not counted) when `max` were counted in the window that holds `now`. */
  countSend(key: string, now: number, windowMs: number, max: number): Promise<boolean>;
  /** Replaces the code of `email` (a new code kills the old one). */
  putCode(email: string, hash: string, expiresAt: number): Promise<void>;
  /**
   * Counts one check of the code of `email` and returns it, unless there is none, it
   * expired, or `maxAttempts` checks were counted already (then undefined): the count
   * is taken before the caller compares, so parallel guesses cannot exceed it.
   */
  checkCode(email: string, now: number, maxAttempts: number): Promise<StoredCode | undefined>;

  // --- customers
  /**
   * Reserves a customer (status unverified), its membership and the namespace it owns
   * (status pending) or joins: a 409 when the email has a customer (other than a stale
   * claim, which is removed and returned), or the namespace exists; a 404 when the
   * namespace to join is not active.
   */
  claim(claim: Claim): Promise<TakenOver | undefined>;
  /** Marks a claim verified (its accounts exist); false when it is no longer this claim. */
  markVerified(customer: string, now: number): Promise<boolean>;
  /**
   * Ends a signup in one transaction: the customer active, its pending namespace active,
   * the code of its email gone (no replay), its live invites used. False when the claim
   * is gone (taken over).
   */
  finish(customer: string, email: string, now: number): Promise<boolean>;
  /** Removes an unfinished claim (customer, memberships, pending namespace): compensation. */
  release(customer: string): Promise<void>;
  getCustomer(by: { id: string } | { email: string }): Promise<Customer | undefined>;
  listCustomers(limit: number, after?: string, status?: CustomerStatus): Promise<Page<Customer>>;
  memberships(customer: string): Promise<Membership[]>;
  /** Sets the status of a customer that is not deleted; false otherwise. */
  setStatus(customer: string, status: 'active' | 'suspended', now: number): Promise<boolean>;
  /**
   * Deletes a customer: status deleted, email cleared, memberships gone, and the
   * namespaces it owned with no other member marked deleted (the names stay taken).
   * Returns those namespaces.
   */
  deleteCustomer(customer: string, now: number): Promise<string[]>;
  /** Whether a namespace name is known here (any status: deleted names stay taken). */
  namespaceStatus(name: string): Promise<'pending' | 'active' | 'deleted' | undefined>;
  /** The names of the namespaces of a status, by name (the runtime's reconcile pages through the active ones). */
  listNamespaces(status: 'pending' | 'active' | 'deleted', limit: number, after?: string): Promise<Page<string>>;

  // --- teams (the members of a namespace)
  /** The members of a namespace with their emails, oldest first. */
  members(namespace: string): Promise<Member[]>;
  /** The member whose account in `namespace` is `account`, or undefined. */
  memberByAccount(namespace: string, account: string): Promise<Member | undefined>;
  /** The live invites into a namespace, oldest first. */
  teamInvites(namespace: string, now: number): Promise<Invite[]>;
  /** The live invite of `email` into `namespace`, or undefined. */
  liveTeamInvite(email: string, namespace: string, now: number): Promise<Invite | undefined>;
  /** Revokes the live invites of `email` into `namespace`; how many there were. */
  revokeTeamInvites(email: string, namespace: string, now: number): Promise<number>;
  /**
   * Adds an invite into a namespace when its seats (members + live invites at
   * `invite.createdAt`) are below `maxSeats` (null: no limit), counted and inserted in one
   * transaction under the namespace's lock: of concurrent invites with room for k exactly
   * k are made, on every node. Returns the seats taken before; `created` false: refused.
   * 404 when the namespace is not active.
   */
  createTeamInvite(invite: Invite & { namespace: string }, maxSeats: number | null): Promise<{ created: boolean; seats: number }>;
  /** Members + live invites of a namespace at `now` (what the members quota counts). */
  seats(namespace: string, now: number): Promise<number>;
  /**
   * An existing customer joins a namespace by a live invite, in one transaction: the
   * invite used, the membership made. 404 when the invite is no longer live or the
   * namespace not active; 409 when the customer is a member already; 429 at `maxMembers`.
   */
  join(j: { invite: string; customer: string; namespace: string; account: string; role: Role; now: number; maxMembers: number }): Promise<void>;
  /**
   * Changes a member's role; the previous one. 404 for no such member; 403 when the member
   * is an owner and `mayTouchOwner` is false; 409 when it would leave the namespace
   * without an owner. Changes of one namespace are serialised (its row is locked).
   */
  setRole(namespace: string, customer: string, role: Role, mayTouchOwner: boolean): Promise<Role>;
  /** Removes a member, with the checks of setRole; the membership removed. */
  removeMember(namespace: string, customer: string, mayTouchOwner: boolean): Promise<Membership>;

  close(): Promise<void>;
}

/** A member of a namespace as ListMembers shows it. */
export interface Member extends Membership {
  customer: string;
  email?: string;
}
