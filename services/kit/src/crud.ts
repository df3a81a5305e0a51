import { defineService, endpoint, serverStream, z, type Context, type Engines, type Handlers } from '@micro/sdk';
import { m3oRequest, missing, rfc3339 } from './wire.js';
import { Records, recordId, type Stamped } from './records.js';
import { publicService, type ServiceFactory } from './service.js';

/**
 * A service of M3O's "records with events" kind (notes, lists, comments): Create, Read,
 * Update, Delete and List of one record type with `id`, `created`, `updated` (RFC 3339)
 * and fields of its own, and Events, a stream of `{event: create|update|delete, <one>}`
 * for the tenant's changes after it opened (of one record with `id`, else of all).
 *
 * ```ts
 * export const notes = recordService({ name: 'notes', one: 'note', many: 'notes', required: 'title',
 *   fields: { title: text(256), text: text(65_536) }, empty: { title: '', text: '' }, price: 1, freeQuota: 10_000 });
 * ```
 */
export interface RecordServiceSpec<F extends z.ZodRawShape> {
  /** the service's name (`notes`) */
  name: string;
  description: string;
  /** the response field of one record (`note`) */
  one: string;
  /** the response field of List (`notes`) */
  many: string;
  /** the record's own fields, each schema bounding what it takes */
  fields: F;
  /** each field's value when Create is not given it */
  empty: { [K in keyof F]: z.output<F[K]> };
  /** the field Create cannot do without (`Missing <field>` otherwise) */
  required: keyof F & string;
  /** units of 10^-6 USD a call of any endpoint costs beyond the free quota */
  price: number;
  /** calls a month free of charge, per endpoint */
  freeQuota: number;
  /** records one tenant may keep (default 1,000) */
  maxRecords?: number;
}

type Fields = Record<string, unknown>;
type Stored = Stamped & Fields;

/** The definition of a records-with-events service, and its handlers as micro server hosts them. */
export function recordService<F extends z.ZodRawShape>(spec: RecordServiceSpec<F>) {
  const def = recordDefinition(spec);
  const service: ServiceFactory<typeof def> = publicService(def, (engines) => recordHandlers(spec, engines) as unknown as Handlers<typeof def>);
  return { def, service };
}

function recordDefinition<F extends z.ZodRawShape>(spec: RecordServiceSpec<F>) {
  const { one, many } = spec;
  const optional = Object.fromEntries(Object.entries(spec.fields).map(([k, s]) => [k, (s as z.ZodType).optional()]));
  const wire = z.object({ id: z.string(), created: z.string(), updated: z.string(), ...spec.fields }).describe(`a ${one}; created and updated as RFC 3339`);
  const oneOut = z.object({ [one]: wire.optional() });
  const id = m3oRequest({ id: recordId().optional() });
  const priced = { price: spec.price, freeQuota: spec.freeQuota };
  return defineService({
    name: spec.name,
    description: spec.description,
    public: true,
    endpoints: {
      Create: endpoint({ description: `Creates a ${one}`, request: m3oRequest(optional), response: oneOut, ...priced }),
      Read: endpoint({ description: `Reads a ${one} by id`, request: id, response: oneOut, readonly: true, ...priced }),
      Update: endpoint({ description: `Changes the fields given of the ${one} with that id`, request: m3oRequest({ [one]: z.object({ id: recordId().optional(), ...optional }).optional() }), response: oneOut, ...priced }),
      Delete: endpoint({ description: `Deletes a ${one}, answering what it was`, request: id, response: oneOut, ...priced }),
      List: endpoint({ description: `Every ${one}, oldest first`, request: m3oRequest({}), response: z.object({ [many]: z.array(wire) }), readonly: true, ...priced }),
      Events: serverStream({ description: `The changes of the ${many} (of one with id) from now on: {event: create|update|delete, ${one}}`, request: id, response: z.object({ event: z.string(), [one]: wire.optional() }), readonly: true, ...priced }),
    },
  });
}

function recordHandlers<F extends z.ZodRawShape>(spec: RecordServiceSpec<F>, engines: Engines) {
  const { name, one, many } = spec;
  const records = new Records<Stored>(engines, { service: name, noun: one, events: true, ...(spec.maxRecords ? { maxRecords: spec.maxRecords } : {}) });
  const out = (r: Stored) => ({ [one]: wire(r) });
  const needId = (id: string | undefined): string => {
    if (!id) throw missing(name, 'id');
    return id;
  };
  return {
    Create: async (req: Fields, ctx: Context) => {
      if (isEmpty(req[spec.required])) throw missing(name, spec.required);
      const fields = Object.fromEntries(Object.keys(spec.fields).map((k) => [k, req[k] ?? spec.empty[k]]));
      return out(await records.create(ctx, fields));
    },
    Read: async ({ id }: { id?: string }, ctx: Context) => out(await records.read(ctx, needId(id))),
    Update: async (req: Record<string, (Fields & { id?: string }) | undefined>, ctx: Context) => {
      const { id, ...change } = req[one] ?? {};
      if (!id) throw missing(name, `${one}.id`);
      const given = Object.fromEntries(Object.entries(change).filter(([k, v]) => k in spec.fields && v !== undefined));
      return out(await records.update(ctx, id, (r) => ({ ...r, ...given })));
    },
    Delete: async ({ id }: { id?: string }, ctx: Context) => out(await records.delete(ctx, needId(id))),
    List: async (_: unknown, ctx: Context) => ({ [many]: (await records.list(ctx)).map(wire) }),
    async *Events({ id }: { id?: string }, ctx: Context) {
      for await (const { event, record } of records.changes(ctx, id || undefined)) yield { event, ...out(record) };
    },
  };
}

/** A record as M3O sends it: its fields, id, and times as RFC 3339. */
function wire({ created, updated, ...rest }: Stored) {
  return { ...rest, created: rfc3339(created), updated: rfc3339(updated) };
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === '' || (Array.isArray(value) && value.length === 0);
}
