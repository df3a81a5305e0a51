import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest } from '@micro/services-kit';

/** the longest username, characters (it is hashed; only stored avatars carry it in their name) */
export const MAX_USERNAME = 128;
/** the side of an avatar, pixels */
export const SIZE = 256;

/** Avatars drawn from a username (M3O's avatar API). */
export const avatar = defineService({
  name: 'avatar',
  version: '1.0.0',
  public: true,
  endpoints: {
    Generate: endpoint({
      request: m3oRequest({
        format: z.string().max(64).optional(),
        gender: z.string().max(64).optional(),
        upload: z.boolean().optional(),
        username: z.string().max(4096).optional(),
      }),
      response: z.object({ base64: z.string(), url: z.string() }),
      price: 50,
      freeQuota: 1_000,
      idempotent: true,
      description: 'A face drawn from username (the same every time; a random one without), png or jpeg (default), male (default) or female; as a data URL, or stored as a public image and its url (upload)',
    }),
  },
});
