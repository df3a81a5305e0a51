import { defineService, endpoint, ENDPOINT_NAME, NAMESPACE_NAME, PRICE_LIMITS, priceProblem, SERVICE_NAME, z } from '@micro/sdk';

/**
 * The pricing service of the platform (namespace micro): the price of each endpoint and
 * where it comes from. A service's definition may price its endpoints
 * (`endpoint({ price, freeQuota })`, published in the registry); admins of micro set,
 * change and clear a price per endpoint here, which wins. Tenants list the prices of what
 * they can call: their own namespace's services and the platform's (namespace micro).
 */

export const PRICING_LIMITS = { settings: 10_000 };

/** `price`/`freeQuota` as the SDK checks them, with the same sentence when they are wrong */
function amount(kind: 'price' | 'freeQuota') {
  const error = (issue: { input?: unknown }) => (issue.input === undefined ? 'is required: ' : '') + (priceProblem(kind, issue.input, '') ?? '').trim();
  return z.number({ error }).int({ error, abort: true }).min(0, { error, abort: true }).max(PRICE_LIMITS[kind], { error, abort: true });
}

const Units = amount('price').describe('units (10^-6 USD) a successful call beyond the free quota: 100 = $0.0001; 0 to 10^15');
const FreeQuota = amount('freeQuota').describe('successful calls a month each payer makes free of charge; 0 to 10^12');
const Namespace = z
  .string()
  .min(1)
  .max(63)
  .regex(NAMESPACE_NAME, { error: 'must be a namespace name: letters, digits, ".", "_" and "-", starting with a letter or digit' })
  .describe('the namespace the service is served from (default micro: the platform\'s services)');
const Service = z.string().min(1).max(128).regex(SERVICE_NAME, { error: 'must be a service name: lower-case letters, digits, ".", "-" or "_", starting with a letter' });
const Endpoint = z.string().min(1).max(128).regex(ENDPOINT_NAME, { error: 'must be an endpoint name: Name or Handler.Method' });

const Price = z.object({
  namespace: z.string(),
  service: z.string(),
  endpoint: z.string(),
  price: z.number().int().describe('units a successful call beyond the free quota: what is charged now'),
  freeQuota: z.number().int(),
  source: z.enum(['definition', 'admin']).describe("admin: set by an admin of micro, which wins over the service's definition"),
  definition: z.object({ price: z.number().int(), freeQuota: z.number().int() }).optional().describe("what the running versions' definition says (absent: it prices nothing)"),
  versions: z.array(z.string()).describe('the registered versions with this endpoint (empty: not running now; an admin price applies once it runs)'),
  setBy: z.string().optional().describe('the admin who set it (shown to admins of micro)'),
  setAt: z.number().int().optional().describe('epoch ms'),
});

const Target = { namespace: Namespace.optional(), service: Service, endpoint: Endpoint };

export const pricingService = defineService({
  name: 'pricing',
  version: '1.0.0',
  description: 'Prices of endpoints: from their definition, or set by the platform\'s admins',
  endpoints: {
    List: endpoint({
      description: "Every priced endpoint with its price, free quota and where they come from: a tenant's own namespace and the platform's (micro); admins any namespace (default: micro and every namespace with an admin price)",
      idempotent: true,
      readonly: true,
      request: z.object({ namespace: Namespace.optional().describe("whose services: default the caller's (admins: see the description)"), service: Service.optional() }).strict(),
      response: z.object({ prices: z.array(Price) }),
    }),
    Set: endpoint({
      description: `Sets the price and free quota of an endpoint, which win over its definition (admins of micro). An endpoint of a service not running yet may be priced; one that a running service does not have is a 404. At most ${PRICING_LIMITS.settings} prices are set`,
      idempotent: true,
      request: z.object({ ...Target, price: Units, freeQuota: FreeQuota.optional().describe('default 0') }).strict(),
      response: z.object({ price: Price }),
    }),
    Clear: endpoint({
      description: "Removes an admin's price: the endpoint's definition applies again (admins of micro)",
      idempotent: true,
      request: z.object(Target).strict(),
      response: z.object({ cleared: z.boolean().describe('false: no admin price was set'), price: Price.optional().describe('what applies now (absent: the endpoint is not priced)') }),
    }),
  },
});

export type PriceView = z.infer<typeof Price>;
