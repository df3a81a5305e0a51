import sharp, { type Sharp } from 'sharp';
import { errors } from '@micro/sdk';
import { MAX_INPUT_PIXELS, MAX_OUTPUT_BYTES, MAX_SIDE } from './definition.js';

/**
 * What the image service does with sharp (libvips), and the bounds that keep a hostile
 * image from costing more than an ordinary one: sharp reads the header first and refuses
 * an image of more than MAX_INPUT_PIXELS before decoding (a few KiB of PNG can say
 * 100,000 × 100,000), reads one frame of an animation or a multi-page TIFF only, refuses
 * formats that are documents rather than pictures (SVG can name other files, PDF runs a
 * renderer), bounds the result's sides and bytes, and stops any one operation after
 * OPERATION_SECONDS.
 */

const SERVICE = 'image';
/** the longest one operation may run in libvips, seconds */
const OPERATION_SECONDS = 20;

/** The formats read and written. */
export type Format = 'jpeg' | 'png' | 'webp' | 'gif' | 'avif' | 'tiff';

const BY_EXTENSION: Record<string, Format> = { png: 'png', jpg: 'jpeg', jpeg: 'jpeg', webp: 'webp', gif: 'gif', avif: 'avif', tif: 'tiff', tiff: 'tiff' };
export const EXTENSIONS = Object.keys(BY_EXTENSION);
const MEDIA_TYPE: Record<Format, string> = { jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif', avif: 'image/avif', tiff: 'image/tiff' };

/** The format name's extension asks for, or a 400 naming `field`. */
export function formatOf(name: string, field = 'name'): Format {
  const dot = name.lastIndexOf('.');
  const format = dot < 0 || dot < name.lastIndexOf('/') ? undefined : BY_EXTENSION[name.slice(dot + 1).toLowerCase()];
  if (!format) throw errors.BadRequest(SERVICE, `${field}: its extension picks the format: one of ${EXTENSIONS.map((e) => `.${e}`).join(', ')}`);
  return format;
}

export function mediaTypeOf(format: Format): string {
  return MEDIA_TYPE[format];
}

/** An input image, checked: its format and its size once oriented. */
export interface Picture {
  bytes: Buffer;
  format: Format;
  width: number;
  height: number;
}

const OPTIONS = { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', pages: 1, sequentialRead: true } as const;

function pipeline(bytes: Buffer): Sharp {
  return sharp(bytes, OPTIONS).autoOrient().timeout({ seconds: OPERATION_SECONDS });
}

function undecodable(err: unknown): Error {
  const why = err instanceof Error ? err.message.split('\n')[0]?.slice(0, 200) : String(err);
  return errors.BadRequest(SERVICE, `the image could not be read: ${why}`);
}

/** Reads the header of `bytes`: a 400 for what is not an image we read, or one of too many pixels. */
export async function inspect(bytes: Buffer): Promise<Picture> {
  if (bytes.length === 0) throw errors.BadRequest(SERVICE, 'the image is empty');
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { ...OPTIONS, limitInputPixels: false }).metadata();
  } catch (err) {
    throw errors.BadRequest(SERVICE, `not an image: ${err instanceof Error ? err.message.slice(0, 200) : 'unreadable'} (send a jpeg, png, webp, gif, avif or tiff)`);
  }
  const format = readable(meta);
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  if (width * height > MAX_INPUT_PIXELS) {
    throw errors.BadRequest(SERVICE, `the image is ${width} × ${height} pixels; the most is ${MAX_INPUT_PIXELS.toLocaleString('en')} pixels`);
  }
  return { bytes, format, width, height };
}

function readable(meta: sharp.Metadata): Format {
  const f = meta.format as string;
  if (f === 'heif' && meta.compression === 'av1') return 'avif';
  if (f === 'jpeg' || f === 'png' || f === 'webp' || f === 'gif' || f === 'tiff') return f;
  throw errors.BadRequest(SERVICE, `the image is ${f}: the formats read are jpeg, png, webp, gif, avif and tiff`);
}

/** Where a crop is taken from. */
const ANCHORS: Record<string, [number, number]> = {
  'top left': [0, 0], top: [0.5, 0], 'top right': [1, 0],
  left: [0, 0.5], center: [0.5, 0.5], centre: [0.5, 0.5], right: [1, 0.5],
  'bottom left': [0, 1], bottom: [0.5, 1], 'bottom right': [1, 1],
};

export interface Crop {
  anchor?: string;
  width?: number;
  height?: number;
}

export interface Resizing {
  /** 0: from height, keeping the aspect ratio */
  width: number;
  /** 0: from width, keeping the aspect ratio */
  height: number;
  crop?: Crop;
}

function side(value: number | undefined, field: string): number {
  const n = value ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > MAX_SIDE) throw errors.BadRequest(SERVICE, `${field}: must be a whole number from 0 to ${MAX_SIDE}`);
  return n;
}

/** The size a resize gives: both sides as asked (stretching, as M3O did), or one from the other keeping the aspect ratio. */
export function resized(picture: Pick<Picture, 'width' | 'height'>, width: number, height: number): { width: number; height: number } {
  const w = side(width, 'width');
  const h = side(height, 'height');
  if (w === 0 && h === 0) return { width: picture.width, height: picture.height };
  const out = {
    width: w || Math.max(1, Math.round((picture.width * h) / picture.height)),
    height: h || Math.max(1, Math.round((picture.height * w) / picture.width)),
  };
  if (out.width > MAX_SIDE || out.height > MAX_SIDE) {
    throw errors.BadRequest(SERVICE, `the result would be ${out.width} × ${out.height} pixels; the most is ${MAX_SIDE} on a side`);
  }
  return out;
}

/** The region a crop takes from an image of `size`: crop's width × height (0: the whole side; at most the image's) at its anchor (default center). */
export function cropRegion(size: { width: number; height: number }, crop: Crop): { left: number; top: number; width: number; height: number } {
  const key = (crop.anchor ?? '').trim().toLowerCase().replace(/[\s_-]+/g, ' ') || 'center';
  const anchor = ANCHORS[key];
  if (!anchor) throw errors.BadRequest(SERVICE, `cropOptions.anchor: must be one of ${Object.keys(ANCHORS).filter((a) => a !== 'centre').join(', ')}`);
  const width = Math.min(side(crop.width, 'cropOptions.width') || size.width, size.width);
  const height = Math.min(side(crop.height, 'cropOptions.height') || size.height, size.height);
  return { width, height, left: Math.round((size.width - width) * anchor[0]), top: Math.round((size.height - height) * anchor[1]) };
}

/** `picture` resized (then cropped), in `format`. */
export async function resize(picture: Picture, how: Resizing, format: Format): Promise<Buffer> {
  const size = resized(picture, how.width, how.height);
  let p = pipeline(picture.bytes);
  if (size.width !== picture.width || size.height !== picture.height) p = p.resize(size.width, size.height, { fit: 'fill' });
  // an extract after a resize in sharp's pipeline crops the resized image
  if (how.crop) p = p.extract(cropRegion(size, how.crop));
  return encode(p, format);
}

/** `picture` in `format` (the same bytes when it is in that format already). */
export async function convert(picture: Picture, format: Format): Promise<Buffer> {
  if (picture.format === format) {
    await decodes(picture);
    return bounded(picture.bytes);
  }
  return encode(pipeline(picture.bytes), format);
}

/** A 400 unless the whole of `picture` decodes (a header followed by garbage does not). */
export async function decodes(picture: Picture): Promise<void> {
  try {
    await pipeline(picture.bytes).stats();
  } catch (err) {
    throw undecodable(err);
  }
}

async function encode(p: Sharp, format: Format): Promise<Buffer> {
  let out: Buffer;
  try {
    // AVIF's default effort takes seconds a megapixel; 2 keeps it near the others
    out = await (format === 'avif' ? p.avif({ effort: 2 }) : p.toFormat(format)).toBuffer();
  } catch (err) {
    throw undecodable(err);
  }
  return bounded(out);
}

function bounded(out: Buffer): Buffer {
  if (out.length > MAX_OUTPUT_BYTES) {
    throw errors.PayloadTooLarge(SERVICE, `the result is ${out.length} bytes; the most is ${MAX_OUTPUT_BYTES}: ask for a smaller size or a format that compresses more (jpg, webp)`);
  }
  return out;
}
