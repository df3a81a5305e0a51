import { createClient, run } from '@micro/sdk';
import { helloworld } from './definition.js';
import { handlers } from './handlers.js';

// Starts helloworld, listening on MICRO_SERVICE_ADDRESS (default: a free port on
// 127.0.0.1) and registered so that other processes on this machine find it.
const svc = await run(helloworld, handlers);

// One call through the network path, to show the service answering.
const client = createClient(helloworld, { address: svc.address! });
const { message } = await client.Call({ name: 'World' });
const streamed: string[] = [];
for await (const res of client.Stream({ name: 'Stream', messages: 3 })) streamed.push(res.message);

console.log(`
helloworld is running at ${svc.address} (namespace ${svc.namespace}, node ${svc.nodeId})
  Call   {"name":"World"}              -> ${JSON.stringify({ message })}
  Stream {"name":"Stream","messages":3} -> ${streamed.length} messages: ${JSON.stringify(streamed[0])} ...

Call it from another process:   node examples/greeter-client/dist/main.js Alice
Stop it with Ctrl-C.
`);
