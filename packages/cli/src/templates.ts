/**
 * The files of `micro new <name>`: a service with a request/response endpoint and a
 * server stream, its handlers, a test that calls it in-process, and a README. Kept as
 * strings in a module rather than as files to copy: nothing to locate at run time, and
 * no half-TypeScript template files for this package's tsc and eslint to trip over.
 */

export interface TemplateVars {
  /** the service name, e.g. `greeter` */
  name: string;
  /** the exported definition's identifier, e.g. `greeter` or `userProfile` */
  ident: string;
}

export function scaffoldFiles(v: TemplateVars): Record<string, string> {
  return {
    'package.json': `${JSON.stringify(
      {
        name: v.name,
        version: '0.1.0',
        private: true,
        type: 'module',
        description: `The ${v.name} service`,
        main: 'dist/main.js',
        scripts: {
          build: 'tsc -p .',
          start: 'node dist/main.js',
          pretest: 'tsc -p .',
          test: 'node --test dist/',
        },
        // the runtime (and `micro new`) link the local SDK: it is not fetched from npm
        dependencies: { '@micro/sdk': '0.1.0' },
      },
      null,
      2,
    )}\n`,

    'tsconfig.json': `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          rootDir: 'src',
          outDir: 'dist',
          types: ['node'],
          skipLibCheck: true,
          sourceMap: true,
        },
        include: ['src'],
      },
      null,
      2,
    )}\n`,

    '.gitignore': 'node_modules/\ndist/\n',

    'src/definition.ts': `import { defineService, endpoint, serverStream, z } from '@micro/sdk';

/**
 * The contract of the ${v.name} service: its endpoints with the schemas of their requests
 * and responses. Callers import this file (not the handlers) for a typed client.
 */
export const ${v.ident} = defineService({
  name: '${v.name}',
  version: '0.1.0',
  description: 'Greets whoever calls it',
  endpoints: {
    Call: endpoint({
      description: 'Returns a greeting',
      request: z.object({ name: z.string().min(1).max(256).describe('who to greet') }),
      response: z.object({ message: z.string() }),
      idempotent: true,
      // changes nothing: the API gateway lets GET reach it (other endpoints are POST only)
      readonly: true,
    }),
    Stream: serverStream({
      description: 'Streams a greeting \`count\` times',
      request: z.object({
        name: z.string().min(1).max(256).describe('who to greet'),
        count: z.number().int().min(1).max(1000).describe('how many greetings'),
      }),
      response: z.object({ message: z.string(), index: z.number().int() }),
      readonly: true,
    }),
  },
});
`,

    'src/handlers.ts': `import type { Handlers } from '@micro/sdk';
import type { ${v.ident} } from './definition.js';

export const handlers: Handlers<typeof ${v.ident}> = {
  Call: ({ name }) => ({ message: \`Hello \${name}\` }),

  async *Stream({ name, count }, ctx) {
    // stop when the caller goes away or the call is cancelled
    for (let index = 0; index < count && !ctx.signal.aborted; index++) {
      yield { message: \`Hello \${name}\`, index };
    }
  },
};
`,

    'src/main.ts': `import { run } from '@micro/sdk';
import { ${v.ident} } from './definition.js';
import { handlers } from './handlers.js';

// Starts the service (it logs where it listens) and registers it, so that
// \`micro ${v.name} call --name=Alice\` finds it; stops gracefully on Ctrl-C or SIGTERM.
await run(${v.ident}, handlers);
`,

    'src/handlers.test.ts': `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryRegistry, Service, createClient, isMicroError } from '@micro/sdk';
import { ${v.ident} } from './definition.js';
import { handlers } from './handlers.js';

// The service runs in this process only (no port, a registry of its own): the client
// calls the handlers directly, with the same validation as over the network.
test('${v.name} answers Call and Stream', async (t) => {
  const svc = new Service(${v.ident}, handlers, { address: false, registry: new MemoryRegistry() });
  await svc.start();
  t.after(() => svc.stop());
  const client = createClient(${v.ident});

  assert.deepEqual(await client.Call({ name: 'Alice' }), { message: 'Hello Alice' });

  const messages: { message: string; index: number }[] = [];
  for await (const m of client.Stream({ name: 'Bob', count: 3 })) messages.push(m);
  assert.deepEqual(messages.map((m) => m.index), [0, 1, 2]);

  // an invalid request never reaches the handler: the caller gets a 400 naming the field
  await assert.rejects(client.Call({ name: '' }), (err) => isMicroError(err) && err.code === 400 && /name/.test(err.detail));
});
`,

    'README.md': `# ${v.name}

A service made with \`micro new ${v.name}\`.

- \`src/definition.ts\`: the contract (endpoints and their zod schemas)
- \`src/handlers.ts\`: the code behind each endpoint
- \`src/main.ts\`: starts the service
- \`src/handlers.test.ts\`: a test calling the service in-process

## Run it

With a server running (\`micro server\` in another terminal):

\`\`\`sh
micro run ./${v.name}
micro status ${v.name}
micro logs ${v.name} -f
\`\`\`

## Call it

\`\`\`sh
micro ${v.name} --help                         # endpoints and their fields
micro ${v.name} call --name=Alice               # {"message": "Hello Alice"}
micro ${v.name} stream --name=Bob --count=3     # one message per line
micro call ${v.name} Call '{"name":"Alice"}'
\`\`\`

## Test it

\`\`\`sh
npm test     # compiles with tsc, then runs node --test on dist/
\`\`\`

\`micro new\` linked \`@micro/sdk\`, TypeScript and the Node.js types of your micro
installation into \`node_modules\`; \`micro run\` links them the same way when it builds
the service, so there is nothing to install. Dependencies of your own go in package.json
as usual (\`micro run\` installs them).

## Change it

Add an endpoint to \`src/definition.ts\`; \`tsc\` then asks for its handler in
\`src/handlers.ts\`. Apply the change to the running service with \`micro update ${v.name}\`.
`,
  };
}
