import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest, recordId, text } from '@micro/services-kit';

/**
 * M3O's contact: an address book per account. Each contact has a name and lists of
 * labelled addresses, emails, links, phones and social media accounts; `created_at` and
 * `updated_at` are RFC 3339.
 */

/** Entries of one list of a contact (emails, phones, …). */
export const MAX_ENTRIES = 100;

const labelled = <K extends string>(field: K, max: number) =>
  z.array(z.object({ label: text(256).default(''), [field]: text(max).default('') } as { label: z.ZodDefault<z.ZodString> } & { [P in K]: z.ZodDefault<z.ZodString> })).max(MAX_ENTRIES);

/** `YYYY-MM-DD`, a real day, or empty. */
const birthday = text(10).refine((v) => v === '' || isDay(v), 'must be a date as YYYY-MM-DD');

function isDay(v: string): boolean {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(v) ? Date.parse(`${v}T00:00:00Z`) : Number.NaN;
  // Date.parse takes 2023-02-30 as March 2nd: the day must come back as given
  return Number.isFinite(ms) && new Date(ms).toISOString().startsWith(v);
}

export const fields = {
  name: text(256),
  note: text(16_384),
  birthday,
  addresses: labelled('location', 1_024),
  emails: labelled('address', 320),
  links: labelled('url', 2_048),
  phones: labelled('number', 64),
  social_medias: labelled('username', 256),
};

const optional = {
  name: fields.name.optional(),
  note: fields.note.optional(),
  birthday: fields.birthday.optional(),
  addresses: fields.addresses.optional(),
  emails: fields.emails.optional(),
  links: fields.links.optional(),
  phones: fields.phones.optional(),
  social_medias: fields.social_medias.optional(),
};

const priced = { price: 1, freeQuota: 10_000 };
const ContactInfo = z.object({ id: z.string(), created_at: z.string(), updated_at: z.string(), ...fields });
const one = z.object({ contact: ContactInfo.optional() });
const id = m3oRequest({ id: recordId().optional() });

export const contact = defineService({
  name: 'contact',
  description: 'An address book: contacts with addresses, emails, links, phones and social media',
  public: true,
  endpoints: {
    Create: endpoint({ description: 'Creates a contact (name is needed)', request: m3oRequest(optional), response: one, ...priced }),
    Read: endpoint({ description: 'Reads a contact by id', request: id, response: one, readonly: true, ...priced }),
    Update: endpoint({ description: 'Replaces the fields given of the contact with that id', request: m3oRequest({ id: recordId().optional(), ...optional }), response: one, ...priced }),
    Delete: endpoint({ description: 'Deletes a contact', request: id, response: z.object({}), ...priced }),
    List: endpoint({
      description: 'Contacts, oldest first: limit (default 100, at most 1,000) from offset',
      request: m3oRequest({ limit: z.number().int().min(0).max(1_000).optional(), offset: z.number().int().min(0).max(1_000).optional() }),
      response: z.object({ contacts: z.array(ContactInfo) }),
      readonly: true,
      ...priced,
    }),
  },
});

export type ContactFields = z.output<z.ZodObject<typeof fields>>;
