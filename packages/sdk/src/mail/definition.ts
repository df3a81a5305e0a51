import { z } from 'zod';
import { NAMESPACE_NAME } from '../auth/definition.js';
import { defineService, endpoint } from '../service/definition.js';

/** Bounds of the mail service's Send (the platform's mail checks say the same and more). */
export const MAIL_LIMITS = Object.freeze({ address: 254, subject: 200, body: 100_000, fromName: 100 });

/**
 * The platform's email sending as a core service (namespace micro, hosted by micro server
 * with the platform layer): what the value-add services (user: verification, password
 * reset and magic-link emails) send their customers' mail through. Only accounts of micro
 * may call it (the hosted services' own identity); each message is sent on behalf of one
 * tenant, whose rate it counts against, from the platform's sending address under the
 * display name the tenant chose.
 */
export const mailService = defineService({
  name: 'mail',
  version: '1.0.0',
  description: "The platform's email sending (SMTP or the outbox), for micro's own services",
  endpoints: {
    Send: endpoint({
      description: 'Sends one message on behalf of a tenant (accounts of micro only; rate-limited per tenant)',
      request: z
        .object({
          tenant: z.string().min(1).max(63).regex(NAMESPACE_NAME).describe('the namespace the message is sent for: its rate is counted'),
          to: z.string().min(3).max(MAIL_LIMITS.address).describe('one address'),
          subject: z.string().min(1).max(MAIL_LIMITS.subject),
          text: z.string().min(1).max(MAIL_LIMITS.body).describe('the plain-text body'),
          html: z.string().min(1).max(MAIL_LIMITS.body).optional(),
          fromName: z.string().min(1).max(MAIL_LIMITS.fromName).optional().describe("the sender's display name; the address is the platform's"),
          replyTo: z.string().min(3).max(MAIL_LIMITS.address).optional().describe('one address answers go to'),
        })
        .strict(),
      response: z.object({}),
    }),
  },
});

export type MailService = typeof mailService;
