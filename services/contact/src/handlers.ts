import type { Context } from '@micro/sdk';
import { missing, publicService, Records, rfc3339, type Stamped } from '@micro/services-kit';
import { contact, fields, type ContactFields } from './definition.js';

type Stored = Stamped & ContactFields;

const EMPTY: ContactFields = { name: '', note: '', birthday: '', addresses: [], emails: [], links: [], phones: [], social_medias: [] };

/** A contact as M3O sends it. */
function wire({ created, updated, ...rest }: Stored) {
  return { ...rest, created_at: rfc3339(created), updated_at: rfc3339(updated) };
}

/** The fields of a request that it gives (Update replaces those, keeps the others). */
function given(req: Partial<ContactFields>): Partial<ContactFields> {
  return Object.fromEntries(Object.entries(req).filter(([k, v]) => k in fields && v !== undefined));
}

function needId(id: string | undefined): string {
  if (!id) throw missing('contact', 'id');
  return id;
}

export const service = publicService(contact, (engines) => {
  const records = new Records<Stored>(engines, { service: 'contact', noun: 'contact' });
  return {
    Create: async (req, ctx: Context) => {
      if (!req.name) throw missing('contact', 'name');
      return { contact: wire(await records.create(ctx, { ...EMPTY, ...given(req) })) };
    },
    Read: async ({ id }, ctx) => ({ contact: wire(await records.read(ctx, needId(id))) }),
    Update: async ({ id, ...req }, ctx) => {
      const change = given(req);
      if (change.name === '') throw missing('contact', 'name');
      return { contact: wire(await records.update(ctx, needId(id), (c) => ({ ...c, ...change }))) };
    },
    Delete: async ({ id }, ctx) => {
      await records.delete(ctx, needId(id));
      return {};
    },
    List: async ({ limit, offset }, ctx) => {
      const all = await records.list(ctx);
      const from = offset ?? 0;
      return { contacts: all.slice(from, from + (limit || 100)).map(wire) };
    },
  };
});
