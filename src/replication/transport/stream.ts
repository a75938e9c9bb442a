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
import { createHmac } from 'node:crypto';
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

function frameMac(key: Uint8Array, header: Uint8Array, body: Uint8Array): Buffer {
  // header bytes 0..12 are length and seq; the MAC covers seq then length then the body
  return createHmac('sha256', key).update(header.subarray(4, 12)).update(header.subarray(0, 4)).update(body).digest();
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
