import { Decoder, Encoder } from '@msgpack/msgpack';
import { BadRequest } from '../errors/errors.js';

/**
 * A codec turns values into bytes and back. JSON is the default (every client in every
 * language speaks it); msgpack is the compact option. Each frame names its codec, so a
 * server answers in the codec it was asked in.
 */
export interface Codec {
  readonly name: CodecName;
  /** the one-byte id carried in each frame */
  readonly id: number;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

export type CodecName = 'json' | 'msgpack';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export const jsonCodec: Codec = {
  name: 'json',
  id: 0,
  encode(value) {
    // undefined (a handler that returns nothing) travels as JSON null
    return Buffer.from(value === undefined ? 'null' : JSON.stringify(value), 'utf8');
  },
  decode(bytes) {
    if (bytes.length === 0) return undefined;
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw BadRequest('micro.codec', 'body is not valid UTF-8');
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw BadRequest('micro.codec', `body is not valid JSON: ${(err as Error).message}`);
    }
  },
};

const msgpackEncoder = new Encoder({ ignoreUndefined: true });
// bounded so that a hostile frame cannot ask for huge allocations
const msgpackDecoder = new Decoder({
  maxStrLength: 64 * 1024 * 1024,
  maxBinLength: 64 * 1024 * 1024,
  maxArrayLength: 1_000_000,
  maxMapLength: 1_000_000,
  maxExtLength: 1024,
});

export const msgpackCodec: Codec = {
  name: 'msgpack',
  id: 1,
  encode(value) {
    return msgpackEncoder.encode(value === undefined ? null : value);
  },
  decode(bytes) {
    if (bytes.length === 0) return undefined;
    try {
      return msgpackDecoder.decode(bytes);
    } catch (err) {
      throw BadRequest('micro.codec', `body is not valid msgpack: ${(err as Error).message}`);
    }
  },
};

const byId: Codec[] = [jsonCodec, msgpackCodec];
const byName: Record<CodecName, Codec> = { json: jsonCodec, msgpack: msgpackCodec };

export function codecById(id: number): Codec | undefined {
  return byId[id];
}

export function codecByName(name: CodecName): Codec {
  const codec = byName[name];
  if (!codec) throw BadRequest('micro.codec', `unknown codec "${String(name)}": use json or msgpack`);
  return codec;
}
