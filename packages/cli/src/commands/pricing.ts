import type { Command } from 'commander';
import { createClient, MicroError, PRICE_LIMITS, type TypedClient } from '@micro/sdk';
import { formatDollars, parseDollars, pricingService, type PriceView } from '@micro/platform/client';
import { connect, type Connection } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, UsageError, type Printer } from '../output.js';

/**
 * `micro platform pricing`: the price of each endpoint, from its definition or set by the
 * platform's staff (admins of micro), through the pricing service.
 *
 *   micro platform pricing [list] [--namespace ns] [--service s] [-o json]
 *   micro platform pricing set <service> <endpoint> --price <units|$dollars> [--free <calls a month>] [--namespace ns]
 *   micro platform pricing clear <service> <endpoint> [--namespace ns]
 */

type Pricing = TypedClient<typeof pricingService>;

export function registerPricingCommands(platform: Command, ctx: CliContext): void {
  const pricing = platform
    .command('pricing')
    .description('prices of endpoints (units of 10^-6 USD a call, free calls a month) and where they come from; `set` and `clear` for admins of micro');
  pricing
    .command('list', { isDefault: true })
    .description('list the priced endpoints (the default)')
    .option('--namespace <namespace>', "whose services (default: the account's and the platform's; admins: micro and every namespace with a price set)")
    .option('--service <service>', 'only this service')
    .option('-o, --output <format>', 'text or json')
    .action((opts: { namespace?: string; service?: string; output?: string }) =>
      withPricing(ctx, opts.output, async (api, out) => {
        const { prices } = await api.List({ ...(opts.namespace ? { namespace: opts.namespace } : {}), ...(opts.service ? { service: opts.service } : {}) });
        if (!out.json && prices.length === 0) return out.info('no endpoint is priced');
        out.table(['NAMESPACE', 'SERVICE', 'ENDPOINT', 'PRICE', 'FREE/MONTH', 'SOURCE', 'VERSIONS'], prices.map(priceRow), prices);
      }),
    );

  pricing
    .command('set <service> <endpoint>')
    .description("set an endpoint's price, which wins over its definition (admins of micro); a service not running yet may be priced")
    .requiredOption('--price <price>', "whole units of 10^-6 USD (100 = $0.0001) or dollars with a $: '$0.0001' (quote the $ in a shell)")
    .option('--free <calls>', 'free calls a month per payer (default 0)')
    .option('--namespace <namespace>', 'the namespace the service runs in (default micro: the platform\'s services)')
    .option('-o, --output <format>', 'text or json')
    .action((service: string, endpoint: string, opts: { price: string; free?: string; namespace?: string; output?: string }) =>
      withPricing(ctx, opts.output, async (api, out) => {
        const price = parsePrice(opts.price);
        const freeQuota = opts.free === undefined ? 0 : parseFreeQuota(opts.free);
        const res = await api.Set({ service, endpoint, price, freeQuota, ...(opts.namespace ? { namespace: opts.namespace } : {}) });
        if (out.json) return out.value(res.price);
        out.info(`${where(res.price)}: ${describePrice(res.price)}${res.price.definition ? ` (its definition: ${describePrice(res.price.definition)})` : ''}`);
        if (res.price.versions.length === 0) out.warn(`note: ${res.price.service} is not running in namespace ${res.price.namespace}; the price applies once it runs`);
      }),
    );

  pricing
    .command('clear <service> <endpoint>')
    .description("remove an admin's price: the endpoint's definition applies again (admins of micro)")
    .option('--namespace <namespace>', 'the namespace the service runs in (default micro)')
    .option('-o, --output <format>', 'text or json')
    .action((service: string, endpoint: string, opts: { namespace?: string; output?: string }) =>
      withPricing(ctx, opts.output, async (api, out) => {
        const res = await api.Clear({ service, endpoint, ...(opts.namespace ? { namespace: opts.namespace } : {}) });
        if (out.json) return out.value(res);
        const name = `${opts.namespace ?? 'micro'}/${service}.${endpoint}`;
        const now = res.price ? `its definition applies: ${describePrice(res.price)}` : 'it is not priced now';
        out.info(res.cleared ? `cleared the price set for ${name}; ${now}` : `no price was set for ${name}; ${now}`);
      }),
    );
}

/**
 * `--price`: whole units (`100`), or dollars with a `$` (`$0.0001`, at most 6 decimals).
 * Anything else, a sign, an exponent or more than 10^15 units is refused, naming the flag.
 */
export function parsePrice(text: string): number {
  const t = text.trim();
  const hint = "whole units of 10^-6 USD (e.g. 100 for $0.0001) or dollars with a $ (e.g. '$0.0001')";
  let units: number;
  if (t.startsWith('$')) {
    try {
      units = parseDollars(t);
    } catch {
      throw new UsageError(`--price must be ${hint}, not ${JSON.stringify(text.slice(0, 40))}: dollars take at most 6 decimals and no sign`);
    }
  } else if (/^\d{1,16}$/.test(t)) {
    units = Number(t);
  } else {
    const dollars = /^\d+\.\d+$/.test(t) ? ` (for dollars write '$${t}')` : '';
    throw new UsageError(`--price must be ${hint}, not ${JSON.stringify(text.slice(0, 40))}${dollars}`);
  }
  if (units > PRICE_LIMITS.price) throw new UsageError(`--price must be at most 10^15 units ($1,000,000,000), not ${units}`);
  return units;
}

/** `--free`: a whole number of calls a month, 0 to 10^12. */
export function parseFreeQuota(text: string): number {
  const t = text.trim();
  const n = /^\d{1,13}$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n > PRICE_LIMITS.freeQuota) throw new UsageError(`--free must be a whole number of calls a month from 0 to 10^12, not ${JSON.stringify(text.slice(0, 40))}`);
  return n;
}

/** `$0.000100 a call beyond 1,000 free calls a month`, `free of charge (counted)` */
export function describePrice(p: { price: number; freeQuota: number }): string {
  const free = p.freeQuota > 0 ? ` beyond ${p.freeQuota.toLocaleString('en-US')} free calls a month` : '';
  return p.price === 0 ? `free of charge (counted)${p.freeQuota > 0 ? `, ${p.freeQuota.toLocaleString('en-US')} calls a month in its quota` : ''}` : `${formatDollars(p.price)} a call${free}`;
}

function where(p: PriceView): string {
  return `${p.namespace}/${p.service}.${p.endpoint}`;
}

export function priceRow(p: PriceView): string[] {
  const source = p.source === 'admin' && p.definition ? `admin (definition ${formatDollars(p.definition.price)}, ${p.definition.freeQuota.toLocaleString('en-US')} free)` : p.source;
  return [p.namespace, p.service, p.endpoint, formatDollars(p.price), p.freeQuota.toLocaleString('en-US'), source, p.versions.join(', ') || 'not running'];
}

async function withPricing(ctx: CliContext, output: string | undefined, run: (api: Pricing, out: Printer) => Promise<void>): Promise<void> {
  const out = ctx.printer(output);
  const conn = connect(ctx.home);
  try {
    await run(createClient(pricingService, conn.platform), out);
  } catch (err) {
    throw pricingError(err, conn);
  }
}

/** What went wrong, and what to do: staff-only changes say how to act as staff. */
function pricingError(err: unknown, conn: Connection): CliError {
  if (!(err instanceof MicroError) || err.id !== 'pricing') return conn.explain(err, 'pricing');
  if (err.code === 403 && /admin of namespace micro/.test(err.detail)) {
    const account = conn.env.credentials ? `account ${conn.env.credentials.id} of namespace ${conn.env.namespace}` : 'this account';
    return new CliError(`forbidden: only the platform's staff set prices, and ${account} is not one — log in as an admin of namespace micro (\`micro login --id <admin> --namespace micro\`)`);
  }
  if ([400, 403, 404, 409].includes(err.code)) return new CliError(err.detail.replace(/^invalid request: /, ''));
  return conn.explain(err, 'pricing');
}
