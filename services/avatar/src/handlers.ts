import { createHash, randomBytes, randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { errors, type Engines } from '@micro/sdk';
import { publicService, TenantImages } from '@micro/services-kit';
import { avatar, MAX_USERNAME, SIZE } from './definition.js';
import { faceSvg, type Gender } from './face.js';

const SERVICE = 'avatar';
/** a username that can stand in a stored avatar's name as it is */
const PLAIN = /^(?!\.+$)[A-Za-z0-9_.@+-]{1,128}$/;

type Format = 'png' | 'jpeg';

function formatOf(value: string | undefined): Format {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'jpeg' || v === 'jpg') return 'jpeg';
  if (v === 'png') return 'png';
  throw errors.BadRequest(SERVICE, 'format: must be png or jpeg (the default)');
}

function genderOf(value: string | undefined): Gender {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'male') return 'male';
  if (v === 'female') return 'female';
  throw errors.BadRequest(SERVICE, 'gender: must be male (the default) or female');
}

/** Where an uploaded avatar is stored: avatars/<username>.<format>, the username's hash standing in for one with other characters; a random name without one. */
function storedName(username: string, seed: Buffer, format: Format): string {
  const base = username === '' ? randomUUID() : PLAIN.test(username) ? username : seed.toString('hex').slice(0, 32);
  return `avatars/${base}.${format}`;
}

export const service = publicService(avatar, (engines: Engines) => ({
  Generate: async (req, ctx) => {
    const format = formatOf(req.format);
    const gender = genderOf(req.gender);
    const username = req.username ?? '';
    if (username.length > MAX_USERNAME) throw errors.BadRequest(SERVICE, `username: at most ${MAX_USERNAME} characters`);
    const seed = username === '' ? randomBytes(32) : createHash('sha256').update(username).digest();
    // the SVG is ours alone (see face.ts): rendering it is a bounded, fixed cost
    const svg = sharp(Buffer.from(faceSvg(seed, gender, SIZE)));
    const bytes = await (format === 'png' ? svg.png() : svg.flatten().jpeg({ quality: 90 })).toBuffer();
    if (req.upload) return { base64: '', url: await new TenantImages(engines, ctx).put(storedName(username, seed, format), bytes, SERVICE) };
    return { base64: `data:image/${format};base64,${bytes.toString('base64')}`, url: '' };
  },
}));
