/**
 * Several frames in one NATS message. Under load most of the cost of a call over NATS is
 * per message, on both sides and in nats-server (a PUB line built and parsed, a subject
 * matched, a message object made and dispatched), so the frames written to one subject in
 * one turn of the event loop travel together, as the TCP transport's FrameWriter puts
 * them in one write.
 *
 * A NATS payload is therefore either
 * - one frame of frame.ts without its length prefix: it starts with its type byte, never 0;
 * - or a batch: two or more frames each with its 4-byte length prefix, as on TCP. It
 *   starts with 0, the high byte of the first length (batches stay far below 16 MiB).
 *
 * A single frame always goes alone, so a caller making one call at a time, or written in
 * another language, sees only single frames, and an instance sends batches only to a
 * caller that sent it one.
 */

/** A batch is sent once it holds this many frames, without waiting for the end of the turn. */
export const BATCH_FRAMES = 64;
/** ...or this many bytes; a frame this large or larger always goes alone. */
export const BATCH_BYTES = 64 * 1024;

/** Whether a NATS payload is a batch of length-prefixed frames rather than one frame. */
export function isBatch(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === 0;
}

/**
 * Calls `onFrame` with each frame of a batch (without its length prefix, a view into
 * `buf`). Returns false at the first length that does not fit the batch or is shorter
 * than a frame header: what follows cannot be framed and is dropped.
 */
export function forEachFrame(buf: Buffer, onFrame: (frame: Buffer) => void): boolean {
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < 4) return false;
    const len = buf.readUInt32BE(off);
    if (len < 6 || len > buf.length - off - 4) return false;
    onFrame(buf.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return true;
}

/**
 * The frames going to one subject in this turn (length-prefixed, as encodeFrame makes
 * them), and the distinct call ids they carry in order.
 */
export class Batch {
  frames: Buffer[] = [];
  ids: number[] = [];
  bytes = 0;

  constructor(readonly subject: string) {}

  push(frame: Buffer, id: number): void {
    this.frames.push(frame);
    this.bytes += frame.length;
    if (this.ids[this.ids.length - 1] !== id) this.ids.push(id);
  }

  /** Takes the frames out: the batch is empty again. */
  take(): { frames: Buffer[]; ids: number[]; bytes: number } {
    const taken = { frames: this.frames, ids: this.ids, bytes: this.bytes };
    this.frames = [];
    this.ids = [];
    this.bytes = 0;
    return taken;
  }
}
