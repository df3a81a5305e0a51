import { createClient, isMicroError } from '@micro/sdk';
// only the definition: the client does not load the service's handlers
import { helloworld } from '@micro/example-helloworld';

// Finds helloworld through the registry (by default shared by the processes of this
// machine via MICRO_HOME) and calls it over the network.
const name = process.argv[2] ?? 'Alice';
const client = createClient(helloworld, { timeout: 5_000 });

try {
  const { message } = await client.Call({ name });
  console.log(message);
  for await (const { message: m } of client.Stream({ name, messages: 2 })) console.log(`stream: ${m}`);
} catch (err) {
  if (isMicroError(err) && err.code === 404) {
    console.error(`${err.detail}\nstart it first in another terminal: npm start`);
  } else {
    console.error(isMicroError(err) ? `${err.code} ${err.status}: ${err.detail}` : err);
  }
  process.exitCode = 1;
}
