import type { SignupStorage } from '../signup/storage.js';

/**
 * Who a payer pays seats for: every member of the namespaces it pays for (those it owns
 * and is the payer of: `hub.payerOf`, the first owner), each customer once however many
 * of those namespaces it is in, the payer itself always (even with no namespace left).
 */
export interface Seating {
  /** the namespaces the payer pays for, by name */
  namespaces: string[];
  /** member (customer id) → when it joined the first of them (ms); the payer: 0, there from the start */
  members: Map<string, number>;
}

export async function seatingOf(signup: Pick<SignupStorage, 'memberships' | 'members'>, payerOf: (namespace: string) => Promise<string>, payer: string): Promise<Seating> {
  const members = new Map<string, number>([[payer, 0]]);
  const namespaces: string[] = [];
  for (const m of await signup.memberships(payer)) {
    if (m.role !== 'owner' || (await payerOf(m.namespace)) !== payer) continue;
    namespaces.push(m.namespace);
    for (const member of await signup.members(m.namespace)) {
      if (member.customer === payer) continue;
      const known = members.get(member.customer);
      members.set(member.customer, known === undefined ? member.createdAt : Math.min(known, member.createdAt));
    }
  }
  return { namespaces: namespaces.sort(), members };
}
