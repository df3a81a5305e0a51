import { defineService, endpoint, MAIL_LIMITS, z } from '@micro/sdk';
import { m3oRequest } from '@micro/services-kit';

// `to` is one address, but taken long enough that a list of hundreds is answered with what to do instead
export const EMAIL_LIMITS = Object.freeze({ ...MAIL_LIMITS, parse: 1000, to: 20_000 });

// Send: $0.001 a message beyond 100 free a month (units of 10^-6 USD); only a message that
// left is charged, a refused or failed one is an error and the gateway does not meter it
const send = { price: 1000, freeQuota: 100 };
// Parse and Validate: $0.0001 a call beyond 10,000 free a month
const check = { price: 100, freeQuota: 10_000 };

const address = z.string().max(EMAIL_LIMITS.parse).optional();

export const email = defineService({
  name: 'email',
  version: '1.0.0',
  public: true,
  description: "Email from the platform's sending address under your name; parse and validate addresses",
  endpoints: {
    Send: endpoint({
      ...send,
      description: "Sends one message to one address from the platform's address under the display name `from`; `text_body`, `html_body` or both; replies go to `reply_to` when given",
      request: m3oRequest({
        from: z.string().max(EMAIL_LIMITS.fromName).optional(),
        to: z.string().max(EMAIL_LIMITS.to).optional(),
        subject: z.string().max(EMAIL_LIMITS.subject).optional(),
        text_body: z.string().max(EMAIL_LIMITS.body).optional(),
        html_body: z.string().max(EMAIL_LIMITS.body).optional(),
        reply_to: z.string().max(EMAIL_LIMITS.address).optional(),
      }),
      response: z.object({}),
    }),
    Parse: endpoint({
      ...check,
      description: 'Splits an RFC 5322 address (`Alice Smith <alice@example.com>`) into its address and display name',
      request: m3oRequest({ address }),
      response: z.object({ address: z.string(), name: z.string() }),
    }),
    Validate: endpoint({
      ...check,
      description: "Whether Send takes the address: one bare ASCII address like name@example.com (syntax only; no DNS lookup)",
      request: m3oRequest({ address }),
      response: z.object({ is_valid: z.boolean() }),
    }),
  },
});
