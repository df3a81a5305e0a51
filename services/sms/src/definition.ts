import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest } from '@micro/services-kit';

/** Twilio takes at most 1,600 characters a message (it splits them into segments); the sender's name is at most 20. */
export const SMS_LIMITS = Object.freeze({ message: 1600, from: 20, to: 32, perHour: 100 });

// $0.01 a message beyond 10 free a month (units of 10^-6 USD); only a message the provider
// took is charged: a refused or failed one is an error, which the gateway does not meter
const send = { price: 10_000, freeQuota: 10 };

export const sms = defineService({
  name: 'sms',
  version: '1.0.0',
  public: true,
  description: "Text messages to phone numbers (E.164) through the platform's SMS account",
  endpoints: {
    Send: endpoint({
      ...send,
      description: `Sends \`message\` (at most ${SMS_LIMITS.message} characters) to \`to\`, a phone number in E.164 form (+447700900123), signed with the name \`from\``,
      request: m3oRequest({
        from: z.string().max(SMS_LIMITS.from).optional(),
        to: z.string().max(SMS_LIMITS.to).optional(),
        message: z.string().max(SMS_LIMITS.message).optional(),
      }),
      response: z.object({ status: z.string(), info: z.string() }),
    }),
  },
});
