import { Agent, request } from 'node:http';

/**
 * For the crash tests of metering (`crash.test.ts` here, the CLI's on the nats profile):
 * POSTs of JSON to a gateway on keep-alive connections, with the answer's X-Request-Id
 * (the key of the call's record). A connection that breaks — the server killed with the
 * call in flight — rejects. Left out of the published package.
 */

export interface GatewayAnswer {
  status: number;
  requestId?: string;
  body: Record<string, unknown>;
}

export interface GatewayCaller {
  call(gateway: string, path: string, body: unknown, headers?: Record<string, string>): Promise<GatewayAnswer>;
  /** closes the kept connections */
  close(): void;
}

export function gatewayCaller(): GatewayCaller {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  return {
    call(gateway, path, body, headers = {}) {
      const url = new URL(path, gateway);
      const data = JSON.stringify(body);
      // a kept-alive socket the gateway closed as idle (5 s) while this process was too busy to
      // see it: the request is reset before the gateway reads it, and is sent again once on a
      // fresh socket (node's documented answer to this race: req.reusedSocket and ECONNRESET)
      const send = (retried: boolean): Promise<GatewayAnswer> => new Promise((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, requestId: res.headers['x-request-id'] as string | undefined, body: JSON.parse(text) as Record<string, unknown> });
            } catch (err) {
              reject(err as Error);
            }
          });
          res.on('error', reject);
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (!retried && req.reusedSocket && err.code === 'ECONNRESET') send(true).then(resolve, reject);
          else reject(err);
        });
        req.end(data);
      });
      return send(false);
    },
    close: () => agent.destroy(),
  };
}
