import { brokerHandlers, registryHandlers, type Broker, type brokerService, type Handlers, type Registry, type registryService } from '@micro/sdk';
import { namespaceFor } from './auth/guard.js';

/**
 * The registry and broker services with the namespace rule applied: each request acts in
 * the caller's namespace unless an admin of `micro` names another.
 */
export function guardedRegistry(registry: Registry): Handlers<typeof registryService> {
  const h = registryHandlers(registry);
  return {
    Register: (req, ctx) => h.Register({ ...req, namespace: namespaceFor(ctx, req.namespace ?? req.service.namespace) }),
    Deregister: (req, ctx) => h.Deregister({ ...req, namespace: namespaceFor(ctx, req.namespace ?? req.service.namespace) }),
    GetService: (req, ctx) => h.GetService({ ...req, namespace: namespaceFor(ctx, req.namespace) }),
    ListServices: (req, ctx) => h.ListServices({ ...req, namespace: namespaceFor(ctx, req.namespace) }),
    Watch: (req, ctx) => h.Watch({ ...req, namespace: namespaceFor(ctx, req.namespace) }, ctx),
  };
}

export function guardedBroker(broker: Broker): Handlers<typeof brokerService> {
  const h = brokerHandlers(broker);
  return {
    Publish: (req, ctx) => h.Publish({ ...req, namespace: namespaceFor(ctx, req.namespace) }),
    Subscribe: (req, ctx) => h.Subscribe({ ...req, namespace: namespaceFor(ctx, req.namespace) }, ctx),
  };
}
