import { defineService, endpoint, z } from '@micro/sdk';
import { i64, m3oRequest } from '@micro/services-kit';

export const OTP_LIMITS = Object.freeze({ id: 256, size: { min: 4, max: 8, default: 6 }, expiry: { min: 10, max: 86_400, default: 60 }, tries: 5 });

// $0.0001 a call beyond 10,000 free a month (units of 10^-6 USD)
const call = { price: 100, freeQuota: 10_000 };

export const otp = defineService({
  name: 'otp',
  version: '1.0.0',
  public: true,
  description: 'Time-based one-time passwords (RFC 6238) for any id: generate a code, validate it',
  endpoints: {
    Generate: endpoint({
      ...call,
      description: `The current code of an id: \`size\` digits (${OTP_LIMITS.size.min} to ${OTP_LIMITS.size.max}, default ${OTP_LIMITS.size.default}), valid for steps of \`expiry\` seconds (${OTP_LIMITS.expiry.min} to ${OTP_LIMITS.expiry.max}, default ${OTP_LIMITS.expiry.default})`,
      request: m3oRequest({ id: z.string().max(OTP_LIMITS.id).optional(), size: i64().optional(), expiry: i64().optional() }),
      response: z.object({ code: z.string() }),
    }),
    Validate: endpoint({
      ...call,
      description: `Whether a code is the id's current (or previous step's) code, once; after ${OTP_LIMITS.tries} wrong codes the id needs a new Generate`,
      request: m3oRequest({ id: z.string().max(OTP_LIMITS.id).optional(), code: z.string().max(16).optional() }),
      response: z.object({ success: z.boolean() }),
    }),
  },
});
