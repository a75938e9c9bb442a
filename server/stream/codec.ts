/**
 * The frames of the stream protocol `proofkv-stream/1` (docs/stream-protocol.md): a pure decoder of
 * request frames with its bounds and typed errors, and the encoder of answer frames. No I/O.
 *
 * Request frame (integers big-endian): `u32 length` (bytes after it), `u32 id`, `u8 op`,
 * `u8 accept`, `u16 keyLength` + key, `u16 queryLength` + query, `u16 headersLength` + headers,
 * then the value (the rest). Answer frame: `u32 length`, `u32 id`, `u16 status`,
 * `u16 headersLength` + headers, then the body (the rest).
 * @module
 */
import type { ResponseType } from '../codec.js';

/** The protocol name of the `Upgrade` header. */
export const STREAM_PROTOCOL = 'proofkv-stream/1';
/** The path of the handshake. */
export const STREAM_PATH = '/v1/stream';

/** Operations of a request frame. */
export const StreamOp = { get: 1, put: 2, delete: 3, proof: 4, ping: 5 } as const;
/** An operation code. */
export type StreamOpName = keyof typeof StreamOp;

/** Answer encodings of a request frame's `accept` byte. */
export const STREAM_ACCEPT: readonly ResponseType[] = ['cbor', 'json', 'octet'];

/** Bytes of a request frame's fixed fields after `length`: id, op, accept and the three u16 lengths. */
export const REQUEST_FIXED_BYTES = 4 + 1 + 1 + 2 + 2 + 2;
/** Bytes of an answer frame before its headers: length, id, status, headersLength. */
export const ANSWER_HEAD_BYTES = 4 + 4 + 2 + 2;

/** The largest request frame (its `length`) a node with these limits accepts: key + value + 64 KiB. */
export function maxFrameBytes(maxKeySize: number, maxValueSize: number): number {
  return maxKeySize + maxValueSize + 64 * 1024;
}

/** A decoded request frame. Fields that fail validation are left to the connection (it answers them). */
export interface RequestFrame {
  id: number;
  /** The raw op byte (see {@link StreamOp}). */
  op: number;
  /** The raw accept byte (index into {@link STREAM_ACCEPT}). */
  accept: number;
  key: Uint8Array;
  /** The query string, UTF-8 bytes, without `?`. */
  query: Uint8Array;
  /** The header lines, UTF-8 bytes. */
  headers: Uint8Array;
  value: Uint8Array;
}

/**
 * A violation of the protocol. `fatal`: framing can no longer be trusted (a length over the bound
 * or too short for the fixed fields, id 0, a frame cut by the connection's end): the connection
 * answers with id 0 and closes. Otherwise the frame was well delimited and only request `id` is
 * refused (`400 STREAM_PROTOCOL`).
 */
export class StreamProtocolError extends Error {
  constructor(
    message: string,
    readonly fatal: boolean,
    /** The request's id (0 when fatal). */
    readonly id = 0,
  ) {
    super(message);
    this.name = 'StreamProtocolError';
  }
}

/**
 * The `length` field at `buf[off..off+4)`, checked against the bound: the frame's total size
 * (with its length field) when the whole frame is in `buf`, else undefined (wait for more bytes).
 * Throws a fatal {@link StreamProtocolError} for a length over `maxFrame` or under the fixed fields.
 */
export function frameSize(buf: Uint8Array, off: number, maxFrame: number): number | undefined {
  if (buf.length - off < 4) return undefined;
  const len = ((buf[off] << 24) >>> 0) + (buf[off + 1] << 16) + (buf[off + 2] << 8) + buf[off + 3];
  if (len > maxFrame) throw new StreamProtocolError(`frame length ${len} exceeds the bound ${maxFrame}`, true);
  if (len < REQUEST_FIXED_BYTES) throw new StreamProtocolError(`frame length ${len} is shorter than a request's fixed fields (${REQUEST_FIXED_BYTES})`, true);
  return buf.length - off >= 4 + len ? 4 + len : undefined;
}

/**
 * Decodes the whole frame at `buf[off..off+size)` (`size` from {@link frameSize}). Throws a fatal
 * {@link StreamProtocolError} for id 0, a non-fatal one (with the id) when the key, query and
 * header lengths overrun the frame. The fields are views into `buf`.
 */
export function decodeRequest(buf: Uint8Array, off: number, size: number): RequestFrame {
  const end = off + size;
  let p = off + 4;
  const u16 = (): number => {
    const v = (buf[p] << 8) | buf[p + 1];
    p += 2;
    return v;
  };
  const id = ((buf[p] << 24) >>> 0) + (buf[p + 1] << 16) + (buf[p + 2] << 8) + buf[p + 3];
  p += 4;
  if (id === 0) throw new StreamProtocolError('request id 0 is reserved for connection errors', true);
  const op = buf[p++];
  const accept = buf[p++];
  const part = (what: string): Uint8Array => {
    if (end - p < 2) throw new StreamProtocolError(`the ${what} length overruns the frame`, false, id);
    const n = u16();
    if (end - p < n) throw new StreamProtocolError(`the ${what} (${n} bytes) overruns the frame`, false, id);
    const v = buf.subarray(p, p + n);
    p += n;
    return v;
  };
  const key = part('key');
  const query = part('query');
  const headers = part('headers');
  return { id, op, accept, key, query, headers, value: buf.subarray(p, end) };
}

/**
 * Parses header lines `name: value\n` (a final line may lack its `\n`; `\r\n` is accepted) into
 * lower-case names; a repeated name's values are joined with `, ` as node's HTTP parser joins
 * them. Returns undefined for a line without a colon or an empty name, or bytes that are not UTF-8.
 */
export function parseHeaderLines(bytes: Uint8Array): Map<string, string> | undefined {
  const out = new Map<string, string>();
  if (bytes.length === 0) return out;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return undefined;
  }
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') continue;
    const c = line.indexOf(':');
    if (c <= 0) return undefined;
    const name = line.slice(0, c).trim().toLowerCase();
    if (name === '') return undefined;
    const value = line.slice(c + 1).trim();
    const prev = out.get(name);
    out.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Encodes an answer frame: `headers` as `name: value\n` lines (in the given order), then `body`.
 * Throws `RangeError` when the header lines exceed 65535 bytes (no route sets that many).
 */
export function encodeAnswer(id: number, status: number, headers: ReadonlyArray<readonly [string, string]>, body?: string | Uint8Array): Buffer {
  let h = '';
  for (const [k, v] of headers) h += `${k}: ${v}\n`;
  const hBytes = h === '' ? 0 : Buffer.byteLength(h);
  if (hBytes > 0xffff) throw new RangeError(`answer headers of ${hBytes} bytes exceed 65535`);
  const bBytes = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  const out = Buffer.allocUnsafe(ANSWER_HEAD_BYTES + hBytes + bBytes);
  out.writeUInt32BE(out.length - 4, 0);
  out.writeUInt32BE(id, 4);
  out.writeUInt16BE(status, 8);
  out.writeUInt16BE(hBytes, 10);
  let p = ANSWER_HEAD_BYTES;
  if (hBytes > 0) p += out.write(h, p, 'utf8');
  if (typeof body === 'string') out.write(body, p, 'utf8');
  else if (body !== undefined) out.set(body, p);
  return out;
}

/** The UTF-8 text of `b` (`undefined` when it is not UTF-8). */
export function utf8Text(b: Uint8Array): string | undefined {
  if (b.length === 0) return '';
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}
