import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { authApi, bearer, Client, createClient, createLogger, MicroError, runtime, TokenSource, type TypedClient } from '@micro/sdk';
import { MicroServer } from '../server.js';

/*
 * Namespace isolation of the runtime, as a property: whatever an account of namespace A
 * sends to the runtime about namespace B's service — as a user, as the namespace's admin,
 * as a service, through an API key; naming B or not; with B's build folder or B's upload
 * as its source — it gets a 403 or 404, or an answer holding nothing of B, and B's
 * service runs on as it was (same build, same instances, same pids).
 *
 * The sandbox is off here: what is tested is the runtime's namespace rule, which is the
 * same with it on (sandbox.test.ts attacks the sandbox itself).
 */

const silent = createLogger({ level: 'silent' });
type Runtime = TypedClient<typeof runtime>;

let home: string;
let work: string;
let server: MicroServer;
let adminRuntime: Runtime;
const actors: Record<string, Runtime> = {};
/** B's build folder on the server's disk, and a key of the shape uploads have in B's blobs */
let bBuild = '';
const bUpload = 'upload:runtime/uploads/0123456789abcdef0123456789abcdef/bsvc.tar.gz';

function clientAs(creds: { id: string; secret: string; namespace?: string } | { token: string }): Client {
  const address = server.address;
  const source = 'token' in creds ? creds.token : new TokenSource(creds, new Client({ address, namespace: 'micro', preferLocal: false }));
  return new Client({ address, namespace: 'micro', preferLocal: false, middleware: [bearer(source)], timeout: 60_000 });
}

async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of stream) out.push(m);
  return out;
}

/** What of B the runtime holds: its service, build and processes. */
async function snapshotOfB(): Promise<string> {
  const { services } = await adminRuntime.Read({ namespace: 'b' });
  return JSON.stringify(services.map((s) => ({ name: s.name, source: s.source, build: s.build, instances: s.instances.map((i) => ({ id: i.id, pid: i.pid, state: i.state })) })));
}

before(async () => {
  home = mkdtempSync(join(tmpdir(), 'micro-runtime-iso-'));
  work = mkdtempSync(join(tmpdir(), 'micro-runtime-iso-src-'));
  server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: false, logger: silent, sandbox: { mode: 'off' } });
  await server.start();
  const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  adminRuntime = createClient(runtime, clientAs(admin));

  // B's service: plain JavaScript, so the build is only linking the SDK
  const src = join(work, 'bsvc');
  mkdirSync(src);
  writeFileSync(join(src, 'package.json'), JSON.stringify({ name: 'bsvc', version: '1.0.0', type: 'module', main: 'main.js' }));
  writeFileSync(
    join(src, 'main.js'),
    `import { defineService, endpoint, run, z } from '@micro/sdk';
const def = defineService({ name: 'bsvc', version: '1.0.0', endpoints: { Call: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }) } });
await run(def, { Call: () => ({ ok: true }) });
`,
  );
  const done = (await drain(adminRuntime.Create({ source: src, namespace: 'b' }))).at(-1);
  assert.equal(done?.step, 'done', JSON.stringify(done));
  const [b] = (await adminRuntime.Read({ name: 'bsvc', namespace: 'b' })).services;
  assert.equal(b?.instances[0]?.state, 'running');
  bBuild = join(home, 'runtime', 'builds', 'b', 'bsvc', b?.build?.id ?? '');

  const auth = createClient(authApi, clientAs(admin));
  const make = async (id: string, scopes: string[]) => ({ id, namespace: 'a', secret: (await auth.CreateAccount({ id, namespace: 'a', scopes })).secret as string });
  const aAdmin = await make('a-admin', ['admin']);
  const aUser = await make('a-user', ['dev']);
  const aService = { ...(await server.serviceCredentials('asvc', 'a')), namespace: 'a' };
  const { key } = await createClient(authApi, clientAs(aAdmin)).CreateKey({ name: 'a-key' });
  const viaKey = await createClient(authApi, new Client({ address: server.address, namespace: 'micro', preferLocal: false })).Token({ apiKey: key });
  for (const [name, creds] of Object.entries({ aAdmin, aUser, aService, aKey: { token: viaKey.token } })) actors[name] = createClient(runtime, clientAs(creds));
});

after(async () => {
  await server?.stop();
  rmSync(home, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

type Op = (rt: Runtime) => Promise<unknown>;
const ns = fc.constantFrom<'b' | undefined>('b', undefined);
const source = fc.constantFrom(() => bBuild, () => `file://${bBuild}`, () => bUpload, () => join(work, 'bsvc'));

const ops: fc.Arbitrary<[string, Op]> = fc.oneof(
  fc.tuple(fc.constant('Read'), ns, fc.constantFrom<'bsvc' | undefined>('bsvc', undefined)).map(([n, namespace, name]) => [`${n} ${name ?? ''} ${namespace ?? ''}`, (rt) => rt.Read({ name, namespace })] as [string, Op]),
  fc.tuple(fc.constant('Delete'), ns).map(([n, namespace]) => [`${n} ${namespace ?? ''}`, (rt) => rt.Delete({ name: 'bsvc', namespace })] as [string, Op]),
  fc.tuple(fc.constant('Update'), ns, fc.option(source, { nil: undefined })).map(
    ([n, namespace, src]) => [`${n} ${namespace ?? ''} ${src?.() ?? ''}`, (rt) => drain(rt.Update({ name: 'bsvc', namespace, source: src?.() }))] as [string, Op],
  ),
  fc.tuple(fc.constant('Logs'), ns, fc.constantFrom<'bsvc' | undefined>('bsvc', undefined)).map(
    ([n, namespace, name]) => [`${n} ${name ?? ''} ${namespace ?? ''}`, (rt) => drain(rt.Logs({ name, namespace, lines: 10 }))] as [string, Op],
  ),
  fc.tuple(fc.constant('Create'), ns, source).map(([n, namespace, src]) => [`${n} ${namespace ?? ''} ${src()}`, (rt) => drain(rt.Create({ source: src(), name: 'bsvc', namespace }))] as [string, Op]),
);

test('an account of namespace A can neither read nor change nor copy anything of namespace B through the runtime', async () => {
  const before = await snapshotOfB();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...Object.keys(actors)), fc.array(ops, { minLength: 1, maxLength: 3 }), async (actor, sequence) => {
      for (const [name, op] of sequence) {
        const outcome = await op(actors[actor] as Runtime).then(
          (value) => ({ value }),
          (err: unknown) => ({ err }),
        );
        if ('err' in outcome) {
          const err = outcome.err;
          assert.ok(err instanceof MicroError, `${actor} ${name}: ${String(err)}`);
          assert.ok(err.code === 403 || err.code === 404 || err.code === 400, `${actor} ${name}: ${err.code} ${err.detail}`);
          assert.doesNotMatch(err.detail, /main\.js|ok: true/, `${actor} ${name}: the error shows B's code`);
        } else {
          // an answer in A's own namespace may come back (its own empty list): nothing of B is in it
          const text = JSON.stringify(outcome.value);
          assert.doesNotMatch(text, /"namespace":"b"|bsvc is running|Call/, `${actor} ${name} read B: ${text.slice(0, 300)}`);
        }
      }
      assert.equal(await snapshotOfB(), before, 'namespace B runs on as it was');
    }),
    { numRuns: 40 },
  );
  // and nothing of B was copied into A
  assert.deepEqual((await adminRuntime.Read({ namespace: 'a' })).services, []);
});
