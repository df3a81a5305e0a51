import type { NamespaceSource } from '@micro/server/engine';
import type { SignupStorage } from './storage.js';

/** Names read per query while the runtime's reconcile pages through the active namespaces. */
const PAGE = 100;

/**
 * The platform's namespaces as the runtime's reconcile asks for them (NamespaceSource):
 * every active one (signup finished), and whether one was deleted (its customer deleted:
 * the name stays taken, so this stays known). Pending ones (a signup under way) are neither.
 */
export function signupNamespaces(storage: Pick<SignupStorage, 'listNamespaces' | 'namespaceStatus'>): NamespaceSource {
  return {
    async *active() {
      for (let after: string | undefined = ''; after !== undefined; ) {
        const { items, next } = await storage.listNamespaces('active', PAGE, after);
        yield* items;
        after = next;
      }
    },
    deleted: async (namespace) => (await storage.namespaceStatus(namespace)) === 'deleted',
  };
}
