import { errors, isPlatformAdmin, isPublicService, registryHandlers, type Account, type Context, type Handlers, type Registry, type registryService, type ServiceRecord } from '@micro/sdk';
import { isNamespaceAdmin, namespaceFor } from '../auth/guard.js';

/**
 * The registry service as micro server serves it: who may say that a node serves a
 * service. The gateway and every client send that node the calls — and the identity of
 * the callers — of the service it claims, so a registration is trusted only from:
 *
 * - the service account the runtime made for the service: type `service`, id
 *   `service:<name>`, of the service's namespace (runtime/local.ts, via
 *   accounts.issueServiceSecret);
 * - an admin of the namespace (scope `admin` there) or of `micro`: for services started
 *   by hand with their own credentials.
 *
 * The same holds for heart-beats (a Register again) and Deregister. Reads (GetService,
 * ListServices, Watch) need only an account of the namespace. Every request acts in the
 * caller's namespace unless an admin of `micro` names another; any account may read
 * micro's public services (GetService and ListServices of namespace micro show it those only).
 *
 * A node's address must also be one the namespace may serve from (`addressAllowed`,
 * given by the server: the runtime's sandbox lets tenant services serve only from their
 * namespace's socket folder). Admins of micro are not held to it.
 */
export interface RegistryGuardOptions {
  /** whether nodes of `namespace` may serve from `address` (default: every address); the Kubernetes runtime asks the cluster, so it may answer later */
  addressAllowed?: (namespace: string, address: string) => boolean | Promise<boolean>;
}

/** Whether an account may register, heart-beat and deregister nodes of service `name` of `namespace`. */
export function mayServe(account: Account, namespace: string, name: string): boolean {
  if (isNamespaceAdmin(account, namespace)) return true;
  return account.issuer === namespace && account.type === 'service' && account.id === `service:${name}`;
}

/** A 403 unless the caller may change the nodes of `service` in `namespace`, and (registering) serve from their addresses. */
export async function checkNodes(ctx: Context, namespace: string, service: ServiceRecord, options: RegistryGuardOptions, registering: boolean): Promise<void> {
  const account = ctx.account as Account;
  const name = typeof service?.name === 'string' ? service.name : '';
  if (!mayServe(account, namespace, name)) {
    throw errors.Forbidden(
      'registry',
      `account ${account.id} of namespace ${account.issuer} may not ${registering ? 'register' : 'deregister'} nodes of service ${JSON.stringify(name.slice(0, 255))} in namespace ${namespace}: only its service account (service:${name.slice(0, 255)}) or an admin of ${namespace} may`,
    );
  }
  const allowed = options.addressAllowed;
  if (!registering || !allowed || isPlatformAdmin(account) || !Array.isArray(service.nodes)) return;
  for (const [i, node] of service.nodes.entries()) {
    const address = typeof node?.address === 'string' ? node.address : '';
    if (!(await allowed(namespace, address))) {
      throw errors.Forbidden('registry', `service.nodes[${i}].address: nodes of namespace ${namespace} may not serve from ${JSON.stringify(address.slice(0, 255))}`);
    }
  }
}

/**
 * An account of another namespace reading micro's registry: it sees micro's public
 * services (ServiceDefOptions.public), which serve it, and nothing else of micro.
 */
function strangerInMicro(ctx: Context, asked: string | undefined): boolean {
  const account = ctx.account;
  return asked === 'micro' && account !== undefined && account.issuer !== 'micro' && !isPlatformAdmin(account);
}

/** The registry service with the namespace rule and the rule above applied. */
export function guardedRegistry(registry: Registry, options: RegistryGuardOptions = {}): Handlers<typeof registryService> {
  const h = registryHandlers(registry);
  return {
    Register: async (req, ctx) => {
      const namespace = namespaceFor(ctx, req.namespace ?? req.service.namespace);
      await checkNodes(ctx, namespace, req.service, options, true);
      return h.Register({ ...req, namespace });
    },
    Deregister: async (req, ctx) => {
      const namespace = namespaceFor(ctx, req.namespace ?? req.service.namespace);
      await checkNodes(ctx, namespace, req.service, options, false);
      return h.Deregister({ ...req, namespace });
    },
    GetService: async (req, ctx) => {
      if (!strangerInMicro(ctx, req.namespace)) return h.GetService({ ...req, namespace: namespaceFor(ctx, req.namespace) });
      return { services: (await h.GetService({ ...req, namespace: 'micro' })).services.filter(isPublicService) };
    },
    ListServices: async (req, ctx) => {
      if (!strangerInMicro(ctx, req.namespace)) return h.ListServices({ ...req, namespace: namespaceFor(ctx, req.namespace) });
      return { services: (await h.ListServices({ ...req, namespace: 'micro' })).services.filter(isPublicService) };
    },
    Watch: (req, ctx) => h.Watch({ ...req, namespace: namespaceFor(ctx, req.namespace) }, ctx),
  };
}
