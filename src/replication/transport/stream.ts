/**
 * The frames of a peer message stream: one long-lived connection per ordered pair of members
 * (sender → recipient), opened by an authenticated HTTP/1.1 `Upgrade` on the peer listener
 * (`http.ts`), then carrying length-prefixed, individually authenticated batches one way. Pure:
 * bytes in, bytes (or a refusal) out.
 *
 * ```
 * frame := length:u32 | seq:u64 | mac:32 bytes | body (length bytes: a batch, codec.ts)
 * mac   := HMAC-SHA256(streamKey, seq:u64 | length:u32 | body)
 * ```
 * (integers big-endian). `streamKey` (auth.ts) is derived from the cluster secret, the handshake
 * request's MAC and the recipient's fresh nonce, so it is new for every stream; `seq` is 1 for the
 * stream's first frame and rises by exactly one per frame. A recipient refuses — and closes the
 * stream after — a frame whose `seq` is not the next one (`replay`: replayed, reordered or
 * dropped frames), whose length is over its bound (`too-large`, before the body is buffered) or
 * whose MAC does not match (`bad-mac`: a flipped bit, a frame of another stream). A batch of no
 * messages is a keep-alive.
 * @module
 */
import * as crypto from 'node:crypto';
import { macEquals } from './auth.js';
import { batchSize, writeBatch } from './codec.js';

/** Path of the stream route (an HTTP/1.1 `GET` with `Upgrade`). */
export const STREAM_PATH = '/raft/v1/stream';
/** The `Upgrade` token of a message stream. */
export const STREAM_PROTOCOL = 'proofkv-peer-stream/1';
/** Bytes of a frame before its body: length, seq and MAC. */
export const FRAME_HEADER_BYTES = 4 + 8 + 32;
/** Bytes of the recipient's nonce in a stream's `101` answer. */
export const STREAM_NONCE_BYTES = 16;

/** SHA-256's block size: HMAC's key pads are this long (RFC 2104). */
const HMAC_BLOCK = 64;
/** Largest body whose MAC is computed by {@link frameMacOneShot} (the scratch buffer's bound). */
const ONE_SHOT_MAX_BODY = 64 * 1024;

/** Each stream key's HMAC pads, `key ⊕ ipad` and `key ⊕ opad` (RFC 2104), made once per key. */
const padsByKey = new WeakMap<Uint8Array, { inner: Buffer; outer: Buffer }>();
/** `key ⊕ ipad || seq || length || body`, reused (at most `HMAC_BLOCK + 12 + ONE_SHOT_MAX_BODY` bytes). */
let innerScratch = Buffer.allocUnsafe(4096);

function padsOf(key: Uint8Array): { inner: Buffer; outer: Buffer } {
  let p = padsByKey.get(key);
  if (p === undefined) {
    const k = key.length > HMAC_BLOCK ? crypto.createHash('sha256').update(key).digest() : key;
    const inner = Buffer.alloc(HMAC_BLOCK, 0x36);
    // the outer message is `key ⊕ opad || inner digest`: the pad with room for the digest
    const outer = Buffer.alloc(HMAC_BLOCK + 32, 0x5c);
    for (let i = 0; i < k.length; i++) {
      inner[i] ^= k[i];
      outer[i] ^= k[i];
    }
    padsByKey.set(key, (p = { inner, outer }));
  }
  return p;
}

/**
 * HMAC-SHA256 as two one-shot `crypto.hash` calls over the key's pads made once per stream: the
 * same digest as `createHmac` (test/replication/transport_stream.test.ts), at about half its cost
 * for a frame of a few hundred bytes (`createHmac` builds an OpenSSL context per call, measured
 * 4.7 against 2.2–2.4 µs on Node 20). The body is copied behind the pad, so bodies over
 * {@link ONE_SHOT_MAX_BODY} take `createHmac`, which streams.
 */
function frameMacOneShot(key: Uint8Array, header: Uint8Array, body: Uint8Array): Buffer {
  const { inner, outer } = padsOf(key);
  const n = HMAC_BLOCK + 12 + body.length;
  if (innerScratch.length < n) innerScratch = Buffer.allocUnsafe(Math.min(HMAC_BLOCK + 12 + ONE_SHOT_MAX_BODY, Math.max(n, 2 * innerScratch.length)));
  const m = innerScratch;
  inner.copy(m, 0);
  for (let i = 0; i < 8; i++) m[HMAC_BLOCK + i] = header[4 + i];
  for (let i = 0; i < 4; i++) m[HMAC_BLOCK + 8 + i] = header[i];
  m.set(body, HMAC_BLOCK + 12);
  outer.write(crypto.hash('sha256', m.subarray(0, n), 'binary'), HMAC_BLOCK, 'latin1');
  return crypto.hash('sha256', outer, 'buffer');
}

/** `crypto.hash` (Node ≥ 20.12); older Node computes every MAC with `createHmac`. */
const hasOneShot = typeof crypto.hash === 'function';

function frameMac(key: Uint8Array, header: Uint8Array, body: Uint8Array): Buffer {
  // header bytes 0..12 are length and seq; the MAC covers seq then length then the body
  if (hasOneShot && body.length <= ONE_SHOT_MAX_BODY) return frameMacOneShot(key, header, body);
  return crypto.createHmac('sha256', key).update(header.subarray(4, 12)).update(header.subarray(0, 4)).update(body).digest();
}

function putU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 0x1_0000_0000), at);
  b.writeUInt32BE(v >>> 0, at + 4);
}

/** The frame of `body` (a batch) as the `seq`-th of the stream keyed `key`. */
export function encodeFrame(key: Uint8Array, seq: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  out.set(body, FRAME_HEADER_BYTES);
  return sealFrame(out, key, seq);
}

/**
 * The frame of the batch of already-encoded messages `encoded` (codec.ts), as the `seq`-th of the
 * stream keyed `key`: {@link encodeFrame} of their `encodeBatch`, with the batch written in
 * place instead of copied.
 */
export function encodeBatchFrame(key: Uint8Array, seq: number, encoded: readonly Uint8Array[]): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + batchSize(encoded));
  writeBatch(encoded, out, FRAME_HEADER_BYTES);
  return sealFrame(out, key, seq);
}

/** Writes the header of the frame `out` (its body in place after it): length, `seq` and MAC. */
function sealFrame(out: Buffer, key: Uint8Array, seq: number): Buffer {
  out.writeUInt32BE(out.length - FRAME_HEADER_BYTES, 0);
  putU64(out, 4, seq);
  frameMac(key, out, out.subarray(FRAME_HEADER_BYTES)).copy(out, 12);
  return out;
}

/** Why a {@link FrameReader} refused a frame (the stream is then closed). */
export type FrameRefusal = 'too-large' | 'replay' | 'bad-mac';

/** What {@link FrameReader.push} found: the bodies of the whole, authentic frames, and a refusal that ends the stream. */
export interface FrameRead {
  bodies: Uint8Array[];
  refused?: FrameRefusal;
}

/**
 * The recipient's side of one stream: cuts the bytes received into frames and checks each
 * (length bound, next `seq`, MAC) before handing out its body. Buffers at most one frame (header
 * and `maxBodyBytes`) besides the chunk being read. After a refusal it refuses everything.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private next = 1;
  private failed?: FrameRefusal;

  constructor(private readonly key: Uint8Array, readonly maxBodyBytes: number) {}

  /** Frames checked so far (the next one expected is `frames + 1`). */
  get frames(): number {
    return this.next - 1;
  }

  /** Feeds bytes received; returns the bodies of the frames they complete, in order. */
  push(chunk: Uint8Array): FrameRead {
    const bodies: Uint8Array[] = [];
    if (this.failed !== undefined) return { bodies, refused: this.failed };
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.buffered += chunk.length;
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const head = this.peek(FRAME_HEADER_BYTES);
      const length = head.readUInt32BE(0);
      if (length > this.maxBodyBytes) return this.fail('too-large', bodies);
      const seq = head.readUInt32BE(4) * 0x1_0000_0000 + head.readUInt32BE(8);
      if (seq !== this.next) return this.fail('replay', bodies);
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      const frame = this.take(FRAME_HEADER_BYTES + length);
      const body = frame.subarray(FRAME_HEADER_BYTES);
      if (!macEquals(frameMac(this.key, frame, body), frame.subarray(12, FRAME_HEADER_BYTES))) return this.fail('bad-mac', bodies);
      this.next++;
      bodies.push(new Uint8Array(body.buffer, body.byteOffset, body.length));
    }
    return { bodies };
  }

  private fail(reason: FrameRefusal, bodies: Uint8Array[]): FrameRead {
    this.failed = reason;
    this.chunks = [];
    this.buffered = 0;
    return { bodies, refused: reason };
  }

  /** The first `n` buffered bytes (joined when they span chunks), left buffered. */
  private peek(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0];
  }

  /** Removes and returns the first `n` buffered bytes (a view: the batch decoder copies what it keeps). */
  private take(n: number): Buffer {
    const joined = this.peek(n);
    const out = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.chunks[0] = rest;
    if (rest.length === 0) this.chunks.shift();
    this.buffered -= n;
    return out;
  }
}
