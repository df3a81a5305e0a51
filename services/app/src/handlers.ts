import { errors, type Context, type Engines, type Handlers } from '@micro/sdk';
import { checkRegion, missing, publicService } from '@micro/services-kit';
import { appDef } from './definition.js';
import { appFailure, Apps, checkEnv, checkName, optionsFromEnv, SERVICE, urlOf, type AppOptions, type AppRecord } from './apps.js';

/** A repository the runtime fetches for a stranger: public git over https or ssh (the runtime checks the host's address). */
/** printable ASCII after the scheme: no spaces, controls or look-alike characters */
const REPO = /^(https:\/\/|ssh:\/\/|git@)[!-~]+$/;
const BRANCH = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/;
const DEFAULT_PORT = 8080;

function checkRepo(repo: string | undefined): string {
  if (!repo) throw missing(SERVICE, 'repo');
  // one @ at most, and only the user of an ssh address (git@host:…, ssh://git@host/…): a ref goes in branch
  const bare = repo.replace(/^(ssh:\/\/)?[A-Za-z0-9._-]+@/, '$1');
  if (!REPO.test(repo) || bare.includes('@')) {
    throw errors.BadRequest(SERVICE, `repo ${JSON.stringify(repo.slice(0, 100))} is not a public git repository: give its https:// or ssh:// URL (or git@host:path), and the branch in branch`);
  }
  return repo;
}

function checkBranch(branch: string | undefined): string {
  if (!branch) return '';
  if (!BRANCH.test(branch) || branch.includes('..') || branch.endsWith('/') || branch.endsWith('.lock')) throw errors.BadRequest(SERVICE, `branch ${JSON.stringify(branch.slice(0, 80))} is not a branch, tag or commit name`);
  return branch;
}

function checkPort(port: number | undefined): number {
  if (port === undefined || port === 0) return DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw errors.BadRequest(SERVICE, `port ${port} is not a TCP port: 1 to 65535 (default ${DEFAULT_PORT}); the app is given it as $PORT`);
  return port;
}

function checkPath(path: string | undefined): void {
  if (path && path !== '/' && path !== '.') throw errors.BadRequest(SERVICE, 'path: an app is run from the root of its repository (its package.json); a subfolder cannot be given');
}

export function appHandlers(engines: Engines, options: AppOptions = optionsFromEnv()) {
  const apps = new Apps(engines, options);
  const one = async (name: string | undefined, ctx: Context) => {
    const rec = await apps.mustRead(ctx, checkName(name));
    return { service: apps.view(ctx, rec, (await apps.instances(ctx)).get(rec.name)) };
  };

  const handlers: Handlers<typeof appDef> = {
    async Run(req, ctx) {
      const name = checkName(req.name);
      checkPath(req.path);
      const fields = { name, repo: checkRepo(req.repo), branch: checkBranch(req.branch), port: checkPort(req.port), env_vars: checkEnv(req.env_vars), region: checkRegion(SERVICE, req.region, options.regions) };
      const rec = await apps.run(
        ctx,
        name,
        'use Update to run its latest commit, or Delete it first',
        (was) => (was ? { ...was, ...fields, updated: new Date(options.now()).toISOString() } : apps.newRecord(fields)),
        (r) => apps.deploy(ctx, r, 'create'),
        // the app's own failure is its status; the platform's (no sandbox, a quota, a repo refused) is the answer
        appFailure,
      );
      return { service: apps.view(ctx, rec, (await apps.instances(ctx)).get(name)) };
    },

    async Update(req, ctx) {
      const name = checkName(req.name);
      const env = req.env_vars === undefined ? undefined : checkEnv(req.env_vars);
      await apps.locked(ctx, name, async () => {
        const was = await apps.mustRead(ctx, name);
        const rec: AppRecord = { ...was, env_vars: env ?? was.env_vars, updated: new Date(options.now()).toISOString() };
        // an app the runtime does not have (its first fetch failed) has nothing to roll: it is run again
        const known = (await apps.instances(ctx)).has(name);
        try {
          await apps.deploy(ctx, rec, known ? 'update' : 'create');
        } catch (err) {
          if (appFailure(err) && !known) await apps.write(ctx, { ...rec, error: err.detail });
          throw err;
        }
        await apps.write(ctx, { ...rec, error: undefined });
      });
      return {};
    },

    async Delete(req, ctx) {
      const name = checkName(req.name);
      await apps.locked(ctx, name, async () => {
        await apps.mustRead(ctx, name);
        await apps.stop(ctx, name);
        await apps.remove(ctx, name);
      });
      return {};
    },

    Get: (req, ctx) => one(req.name, ctx),
    Status: (req, ctx) => one(req.name, ctx),

    async List(_req, ctx) {
      const [recs, running] = await Promise.all([apps.records(ctx), apps.instances(ctx)]);
      return { services: recs.map((r) => apps.view(ctx, r, running.get(r.name))) };
    },

    Logs: async (req, ctx) => ({ logs: await apps.logText(ctx, checkName(req.name), req.logs_type) }),
    Reserve: async (req, ctx) => ({ reservation: await apps.reserve(ctx, checkName(req.name)) }),

    Regions: () => ({ regions: options.regions }),

    async Resolve(req, ctx) {
      if (!req.id) throw missing(SERVICE, 'id');
      const rec = (await apps.records(ctx)).find((r) => r.id === req.id);
      if (!rec) throw errors.NotFound(SERVICE, `you have no app with id ${JSON.stringify(req.id.slice(0, 64))}`);
      return { url: urlOf(ctx.tenant, rec.name) };
    },
  };
  return handlers;
}

export const service = publicService(appDef, (engines) => appHandlers(engines));
