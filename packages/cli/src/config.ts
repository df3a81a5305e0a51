
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { microHome, privateDir, processAlive, readJson, writeJsonDurable, type Credentials } from '@micro/sdk';
import { CliError, UsageError } from './output.js';

/**
 * What the CLI keeps in MICRO_HOME:
 *
 * - `config.json`              {current, envs: {name: {address}}}: the environments
 * - `credentials/<env>.json`   {id, secret, namespace} of `micro login`, 0600 in a 0700 folder
 *
 * and what it reads of the server's files (written by `micro server`):
 *
 * - `server/server.json`       {address, pid, startedAt}: where the local server listens
 * - `server/admin.json`        the admin account made on first start, 0600
 *
 * The environment `local` is built in: it has no fixed address but follows the server of
 * this home, so `micro server --address tcp://127.0.0.1:0` works with every command, and
 * it acts as the admin when nobody logged in.
 */

export const LOCAL_ENV = 'local';

/** Environment names become file names: keep them short and plain. */
const ENV_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i;

export interface EnvEntry {
  address: string;
}

export interface CliConfig {
  current: string;
  envs: Record<string, EnvEntry>;
}

export interface ServerInfo {
  address: string;
  pid?: number;
  startedAt?: string;
}

/** An environment as a command uses it: where to call and as whom. */
export interface ResolvedEnv {
  name: string;
  /** undefined for `local` when no server runs for this home */
  address: string | undefined;
  credentials: Credentials | undefined;
  /** where the credentials came from: `micro login`, the local admin account, or none */
  credentialSource: 'login' | 'admin' | 'none';
  namespace: string;
}

export class Home {
  constructor(readonly dir: string = microHome()) {}

  get configPath(): string {
    return join(this.dir, 'config.json');
  }

  get serverDir(): string {
    return join(this.dir, 'server');
  }

  credentialsPath(env: string): string {
    checkEnvName(env);
    return join(this.dir, 'credentials', `${env}.json`);
  }

  // ---- environments --------------------------------------------------------------------

  readConfig(): CliConfig {
    const raw = this.readFile<Partial<CliConfig>>(this.configPath);
    const envs: Record<string, EnvEntry> = Object.create(null) as Record<string, EnvEntry>;
    // copy only well-formed entries: a hand-edited file must not make every command crash
    if (raw?.envs && typeof raw.envs === 'object') {
      for (const [name, entry] of Object.entries(raw.envs)) {
        if (ENV_NAME.test(name) && name !== LOCAL_ENV && entry && typeof entry.address === 'string') envs[name] = { address: entry.address };
      }
    }
    const current = typeof raw?.current === 'string' && (raw.current === LOCAL_ENV || Object.hasOwn(envs, raw.current)) ? raw.current : LOCAL_ENV;
    return { current, envs };
  }

  writeConfig(config: CliConfig): void {
    writeJsonDurable(this.configPath, { current: config.current, envs: { ...config.envs } });
  }

  /** Every environment, `local` first, with its configured address (none for local). */
  listEnvs(): { name: string; address: string | undefined; current: boolean }[] {
    const config = this.readConfig();
    const names = [LOCAL_ENV, ...Object.keys(config.envs).sort()];
    return names.map((name) => ({ name, address: name === LOCAL_ENV ? undefined : config.envs[name]?.address, current: name === config.current }));
  }

  addEnv(name: string, address: string): EnvEntry {
    checkEnvName(name);
    if (name === LOCAL_ENV) throw new UsageError(`"${LOCAL_ENV}" is built in: it always follows the server of this MICRO_HOME — pick another name`);
    const config = this.readConfig();
    if (Object.hasOwn(config.envs, name)) throw new CliError(`environment ${name} exists (${config.envs[name]?.address}) — remove it first with \`micro env rm ${name}\``);
    const entry = { address: normalizeAddress(address) };
    config.envs[name] = entry;
    this.writeConfig(config);
    return entry;
  }

  setCurrent(name: string): void {
    const config = this.readConfig();
    if (name !== LOCAL_ENV && !Object.hasOwn(config.envs, name)) throw unknownEnv(name, config);
    config.current = name;
    this.writeConfig(config);
  }

  removeEnv(name: string): { wasCurrent: boolean } {
    if (name === LOCAL_ENV) throw new UsageError(`"${LOCAL_ENV}" is built in and cannot be removed`);
    const config = this.readConfig();
    if (!Object.hasOwn(config.envs, name)) throw unknownEnv(name, config);
    delete config.envs[name];
    const wasCurrent = config.current === name;
    if (wasCurrent) config.current = LOCAL_ENV;
    this.writeConfig(config);
    this.deleteCredentials(name);
    return { wasCurrent };
  }

  /** The environment a command talks to: MICRO_ENV when set, else the current one. */
  currentEnvName(): string {
    const override = process.env.MICRO_ENV;
    if (override) {
      const config = this.readConfig();
      if (override !== LOCAL_ENV && !Object.hasOwn(config.envs, override)) throw unknownEnv(override, config, 'MICRO_ENV');
      return override;
    }
    return this.readConfig().current;
  }

  resolve(name = this.currentEnvName()): ResolvedEnv {
    let address: string | undefined;
    if (name === LOCAL_ENV) address = this.serverInfo()?.address;
    else {
      const config = this.readConfig();
      const entry = Object.hasOwn(config.envs, name) ? config.envs[name] : undefined;
      if (!entry) throw unknownEnv(name, config);
      address = entry.address;
    }
    let credentials = this.readCredentials(name);
    let credentialSource: ResolvedEnv['credentialSource'] = credentials ? 'login' : 'none';
    if (!credentials && name === LOCAL_ENV) {
      credentials = this.adminCredentials();
      if (credentials) credentialSource = 'admin';
    }
    return { name, address, credentials, credentialSource, namespace: credentials?.namespace || 'micro' };
  }

  // ---- credentials ---------------------------------------------------------------------

  readCredentials(env: string): Credentials | undefined {
    return parseCredentials(this.readFile<unknown>(this.credentialsPath(env)));
  }

  writeCredentials(env: string, credentials: Credentials): string {
    const path = this.credentialsPath(env);
    privateDir(join(this.dir, 'credentials'));
    const value: Credentials = { id: credentials.id, secret: credentials.secret, namespace: credentials.namespace || 'micro' };
    writeJsonDurable(path, value);
    return path;
  }

  /** True when there was something to delete. */
  deleteCredentials(env: string): boolean {
    const path = this.credentialsPath(env);
    if (!existsSync(path)) return false;
    rmSync(path, { force: true });
    return true;
  }

  // ---- the local server's files ----------------------------------------------------------

  /** Where the server of this home listens, when one runs (its pid is alive). */
  serverInfo(): ServerInfo | undefined {
    const info = this.readFile<Partial<ServerInfo>>(join(this.serverDir, 'server.json'));
    if (!info || typeof info.address !== 'string') return undefined;
    // a server killed with -9 leaves its file behind: do not send people to a dead address
    if (typeof info.pid === 'number' && !processAlive(info.pid)) return undefined;
    return { address: info.address, pid: info.pid, startedAt: info.startedAt };
  }

  adminCredentials(): Credentials | undefined {
    return parseCredentials(this.readFile<unknown>(join(this.serverDir, 'admin.json')));
  }

  private readFile<T>(path: string): T | undefined {
    try {
      return readJson<T>(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES') throw new CliError(`cannot read ${path}: permission denied — check the owner of MICRO_HOME (${this.dir})`);
      throw new CliError(`${path} is not valid JSON — fix or delete it`);
    }
  }
}

function parseCredentials(raw: unknown): Credentials | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const c = raw as Partial<Credentials>;
  if (typeof c.id !== 'string' || typeof c.secret !== 'string' || !c.id || !c.secret) return undefined;
  return { id: c.id, secret: c.secret, namespace: typeof c.namespace === 'string' && c.namespace ? c.namespace : 'micro' };
}

export function checkEnvName(name: string): void {
  if (!ENV_NAME.test(name)) throw new UsageError(`invalid environment name "${name}": use letters, digits, ".", "-" or "_" (at most 63)`);
}

function unknownEnv(name: string, config: CliConfig, from?: string): CliError {
  const known = [LOCAL_ENV, ...Object.keys(config.envs)].join(', ');
  return new CliError(`unknown environment "${name}"${from ? ` (from ${from})` : ''} — known: ${known}; add one with \`micro env add ${ENV_NAME.test(name) ? name : 'NAME'} ADDRESS\``);
}

/**
 * Accepts `host:port`, `tcp://host:port` or `unix:///path` and returns the form the
 * transport takes; anything else is refused here, not at the first call.
 */
export function normalizeAddress(address: string): string {
  const a = address.trim();
  if (a.startsWith('unix://')) {
    if (a.length > 'unix://'.length && a.charAt('unix://'.length) === '/') return a;
  } else {
    const rest = a.startsWith('tcp://') ? a.slice('tcp://'.length) : a;
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(rest);
    if (m && Number(m[2]) <= 65535) return `tcp://${rest}`;
  }
  throw new UsageError(`invalid address "${address}": use host:port, tcp://host:port or unix:///path/to.sock`);
}

/** host:port of an address, for messages. */
export function displayAddress(address: string): string {
  return address.startsWith('tcp://') ? address.slice('tcp://'.length) : address;
}

