import { errors, isMicroError, type Engines, type Handlers, type MicroError } from '@micro/sdk';
import { checkRegion, missing, publicService } from '@micro/services-kit';
import { functionDef } from './definition.js';
import { Functions, optionsFromEnv, urlOf, type FunctionOptions, type FuncRecord } from './functions.js';
import { checkEntrypoint, checkEnv, checkName, SERVICE } from './names.js';
import { RUNTIMES, type Runtime } from './project.js';

function checkRuntime(runtime: string | undefined): Runtime {
  if (!runtime) return 'nodejs20';
  if (!(RUNTIMES as readonly string[]).includes(runtime)) throw errors.BadRequest(SERVICE, `runtime ${JSON.stringify(runtime.slice(0, 64))} is not one of ${RUNTIMES.join(', ')}`);
  return runtime as Runtime;
}

/** What a call answers: the function's object, or any other JSON value as `{result}` (M3O's response is an object). */
function asObject(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : { result: value };
}

export function functionHandlers(engines: Engines, options: FunctionOptions = optionsFromEnv()) {
  const fns = new Functions(engines, options);
  const handlers: Handlers<typeof functionDef> = {
    async Deploy(req, ctx) {
      const name = checkName(req.name);
      if (req.repo) throw errors.BadRequest(SERVICE, 'repo: deploying from a git repository is not supported here; send the function\'s code as source');
      if (!req.source) throw missing(SERVICE, 'source');
      const fields = { name, source: req.source, runtime: checkRuntime(req.runtime), entrypoint: checkEntrypoint(req.entrypoint), env_vars: checkEnv(req.env_vars), region: checkRegion(SERVICE, req.region, options.regions) };
      const rec = await fns.run(
        ctx,
        name,
        'use Update to change its source, or Delete it first',
        (was) => (was ? { ...was, ...fields, updated: new Date(options.now()).toISOString() } : fns.newRecord(fields)),
        (r) => fns.start(ctx, r, 'create'),
        // a build or a start that fails is the function's status; anything else (no sandbox, a quota) is the answer
        (err): err is MicroError => isMicroError(err) && err.code === 400,
      );
      return { function: fns.view(rec, (await fns.instances(ctx)).get(name)) };
    },

    async Call(req, ctx) {
      const name = checkName(req.name);
      return { response: asObject(await fns.call(ctx, name, req.request ?? {})) };
    },

    async Update(req, ctx) {
      const name = checkName(req.name);
      await fns.locked(ctx, name, async () => {
        const was = await fns.mustRead(ctx, name);
        const rec: FuncRecord = { ...was, source: req.source ?? was.source, updated: new Date(options.now()).toISOString() };
        const svc = (await fns.instances(ctx)).get(name);
        try {
          await fns.start(ctx, rec, svc ? 'update' : 'create');
        } catch (err) {
          // the old instance keeps running (the runtime's rolling update); a fresh start that failed goes
          if (!svc) await fns.stop(ctx, name).catch(() => undefined);
          throw err;
        }
        await fns.write(ctx, { ...rec, idle: false, error: undefined });
      });
      return {};
    },

    async Describe(req, ctx) {
      const rec = await fns.mustRead(ctx, checkName(req.name));
      return { function: fns.view(rec, (await fns.instances(ctx)).get(rec.name)) };
    },

    async List(_req, ctx) {
      const [recs, running] = await Promise.all([fns.records(ctx), fns.instances(ctx)]);
      return { functions: recs.map((r) => fns.view(r, running.get(r.name))) };
    },

    async Delete(req, ctx) {
      const name = checkName(req.name);
      await fns.locked(ctx, name, async () => {
        await fns.mustRead(ctx, name);
        await fns.stop(ctx, name);
        await fns.remove(ctx, name);
      });
      fns.forget(ctx, name);
      return {};
    },

    Logs: async (req, ctx) => ({ logs: await fns.logText(ctx, checkName(req.name), req.logs_type) }),
    Reserve: async (req, ctx) => ({ reservation: await fns.reserve(ctx, checkName(req.name)) }),

    Regions: () => ({ regions: options.regions }),
    Runtimes: () => ({ runtimes: [...RUNTIMES] }),

    async Proxy(req, ctx) {
      if (!req.id) throw missing(SERVICE, 'id');
      const rec = (await fns.records(ctx)).find((r) => r.id === req.id);
      if (!rec) throw errors.NotFound(SERVICE, `you have no function with id ${JSON.stringify(req.id.slice(0, 64))}`);
      return { url: urlOf(rec.name) };
    },
  };
  return handlers;
}

export const service = publicService(functionDef, (engines) => functionHandlers(engines));
