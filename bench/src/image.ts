/**
 * The image service's Resize: a 2-megapixel JPEG (1732 × 1155, 305 KiB, made here: colour
 * gradients, a wave and a little noise, so it compresses like a photo rather than a flat
 * fill) resized to 400 pixels wide, answered as a JPEG data URL, through the gateway of a
 * `micro server` in this process (local profile) as M3O's client calls it: `POST
 * /v1/image/Resize` with an API key and the image as a base64 data URL (407 KiB of JSON).
 *
 * The peer is sharp alone in this process doing the same work on the same bytes:
 * `sharp(jpeg).resize({ width: 400 }).jpeg().toBuffer()`. The ratio is what the gateway,
 * base64 and JSON both ways, the RPC hop, the header check and the service's bounds cost.
 * Both sides keep INFLIGHT calls outstanding for calls/s (the service works on at most 2
 * images at once a process, see services/image/src/gate.ts; sharp alone is not held back);
 * latencies p50/p99 are of calls made one at a time.
 */
import { Agent, request } from 'node:http';
import sharp from 'sharp';
import { service } from '@micro/service-image';
import { unthrottledPlatform } from './platform.js';
import { bothSides, closedLoopThroughput, percentile, sequentialLatencies, type Benchmark, type Contestant } from './harness.js';

const INFLIGHT = 4;
const ROUND_MS = 3_000;
const LATENCIES = 60;
const WIDTH = 1732;
const HEIGHT = 1155;
const TO_WIDTH = 400;

type Call = () => Promise<unknown>;

/** The picture both sides resize: the same bytes every run (a fixed pseudo-random sequence). */
async function picture(): Promise<Buffer> {
  const raw = Buffer.alloc(WIDTH * HEIGHT * 3);
  let seed = 1;
  const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v)));
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const noise = ((seed >> 16) % 24) - 12;
      const i = (y * WIDTH + x) * 3;
      raw[i] = clamp((x * 255) / WIDTH + noise);
      raw[i + 1] = clamp((y * 255) / HEIGHT + noise);
      raw[i + 2] = clamp(128 + 100 * Math.sin(x / 37) * Math.cos(y / 53) + noise);
    }
  }
  return sharp(raw, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
}

function contestant(resize: Call, close: () => Promise<void>): Contestant {
  return {
    async warmUp() {
      await closedLoopThroughput(resize, INFLIGHT, 1_000);
    },
    async round() {
      const values: Record<string, number> = {};
      values['image.resize'] = await closedLoopThroughput(resize, INFLIGHT, ROUND_MS);
      const lat = await sequentialLatencies(resize, LATENCIES);
      values['image.resize.p50'] = percentile(lat, 50) / 1000;
      values['image.resize.p99'] = percentile(lat, 99) / 1000;
      return values;
    },
    close,
  };
}

/** POST `body` on a keep-alive connection, the answer read whole; rejects unless it is a 200. */
function post(agent: Agent, url: URL, headers: Record<string, string>, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) reject(new Error(`image.Resize: ${res.statusCode} ${text.slice(0, 200)}`));
        else resolve(text);
      });
    });
    req.once('error', reject);
    req.end(body);
  });
}

async function micro(jpeg: Buffer): Promise<Contestant> {
  const p = await unthrottledPlatform([service]);
  const agent = new Agent({ keepAlive: true, maxSockets: INFLIGHT });
  const url = new URL('/v1/image/Resize', p.url);
  const headers = { authorization: `Bearer ${p.a.key}`, 'content-type': 'application/json' };
  const body = JSON.stringify({ base64: `data:image/jpeg;base64,${jpeg.toString('base64')}`, width: TO_WIDTH });
  // before measuring: the answer is the resized JPEG
  const first = JSON.parse(await post(agent, url, headers, body)) as { base64: string };
  const meta = await sharp(Buffer.from(first.base64.replace(/^data:image\/jpeg;base64,/, ''), 'base64')).metadata();
  if (meta.format !== 'jpeg' || meta.width !== TO_WIDTH) throw new Error(`image.Resize answered a ${meta.format} ${meta.width} wide`);
  return contestant(() => post(agent, url, headers, body), async () => {
    agent.destroy();
    await p.close();
  });
}

async function peer(jpeg: Buffer): Promise<Contestant> {
  const resize = () => sharp(jpeg).resize({ width: TO_WIDTH }).jpeg().toBuffer();
  const meta = await sharp(await resize()).metadata();
  if (meta.width !== TO_WIDTH) throw new Error(`sharp answered ${meta.width} wide`);
  return contestant(resize, async () => undefined);
}

export const image: Benchmark = {
  name: 'image',
  title: 'image: a 2-megapixel JPEG resized to 400 wide through the gateway (Resize with an API key)',
  peerName: 'sharp alone in the bench process, the same resize of the same bytes',
  rounds: 3,
  figures: [
    { id: 'image.resize', label: `image.Resize of 2 MP through the gateway, ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher' },
    { id: 'image.resize.p50', label: 'image.Resize latency p50, one at a time', unit: 'ms', better: 'lower' },
    { id: 'image.resize.p99', label: 'image.Resize latency p99, one at a time', unit: 'ms', better: 'lower' },
  ],
  async setup() {
    const jpeg = await picture();
    return bothSides(() => micro(jpeg), () => peer(jpeg));
  },
};
