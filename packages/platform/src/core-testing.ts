import { createLogger, MemoryRegistry, RpcServer, Service } from '@micro/sdk';
import { authenticate, type AuthTokens, type CoreService } from '@micro/server/engine';

const silent = createLogger({ level: 'silent' });

/**
 * For the platform's tests: core services served as micro server serves them, in namespace
 * micro behind its guard (tokens checked, each service's public endpoints open, team roles
 * applied), on one TCP RPC address. `close` stops the services, not their engines.
 */
export async function hostCoreServices(cores: CoreService[], tokens: Pick<AuthTokens, 'verify'>): Promise<{ address: string; close(): Promise<void> }> {
  const rpc = new RpcServer({ logger: silent });
  const address = await rpc.listen('tcp://127.0.0.1:0');
  const services = cores.map(
    (cs) =>
      new Service(cs.def, cs.handlers, {
        server: rpc,
        namespace: 'micro',
        registry: new MemoryRegistry(),
        logger: silent,
        registerTTL: 0,
        auth: false,
        middleware: [authenticate(tokens, new Set(['Debug.Health', ...(cs.publicEndpoints ?? [])]), cs.def)],
      }),
  );
  for (const s of services) await s.start();
  return {
    address,
    async close() {
      for (const s of services) await s.stop();
      await rpc.close();
    },
  };
}
