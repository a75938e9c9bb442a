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
 * (with its length field), whether or not all of it is in `buf` yet; undefined when the length
 * field itself is not. Throws a fatal {@link StreamProtocolError} for a length over `maxFrame` or
 * under the fixed fields.
 */
export function frameSize(buf: Uint8Array, off: number, maxFrame: number): number | undefined {
  if (buf.length - off < 4) return undefined;
  const len = ((buf[off] << 24) >>> 0) + (buf[off + 1] << 16) + (buf[off + 2] << 8) + buf[off + 3];
  if (len > maxFrame) throw new StreamProtocolError(`frame length ${len} exceeds the bound ${maxFrame}`, true);
  if (len < REQUEST_FIXED_BYTES) throw new StreamProtocolError(`frame length ${len} is shorter than a request's fixed fields (${REQUEST_FIXED_BYTES})`, true);
  return 4 + len;
}

/**
 * Decodes the whole frame at `buf[off..off+size)` (`size` from {@link frameSize}). Throws a fatal
 * {@link StreamProtocolError} for id 0, a non-fatal one (with the id) when the key, query and
 * header lengths overrun the frame. The fields are views into `buf`.
 */
export function decodeRequest(buf: Uint8Array, off: number, size: number): RequestFrame {
  // No closures here: this runs once per request, and a closure per call is an allocation (and,
  // under a loader that keeps function names, a property definition).
  const end = off + size;
  const id = ((buf[off + 4] << 24) >>> 0) + (buf[off + 5] << 16) + (buf[off + 6] << 8) + buf[off + 7];
  if (id === 0) throw new StreamProtocolError('request id 0 is reserved for connection errors', true);
  const op = buf[off + 8];
  const accept = buf[off + 9];
  let p = off + 10;
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) {
    if (end - p < 2) throw new StreamProtocolError(`the ${PART_NAMES[i]} length overruns the frame`, false, id);
    const n = (buf[p] << 8) | buf[p + 1];
    p += 2;
    if (end - p < n) throw new StreamProtocolError(`the ${PART_NAMES[i]} (${n} bytes) overruns the frame`, false, id);
    parts.push(buf.subarray(p, p + n));
    p += n;
  }
  return { id, op, accept, key: parts[0], query: parts[1], headers: parts[2], value: buf.subarray(p, end) };
}

/** The variable-length fields before the value, in frame order (for error messages). */
const PART_NAMES = ['key', 'query', 'headers'] as const;

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
 * An answer frame measured but not yet written ({@link answerFrame}): a connection sums the sizes
 * of the answers of one event-loop turn and writes them all into one buffer
 * ({@link writeAnswerFrame}), so that each answer's bytes (a GET's value included) are copied once.
 */
export interface AnswerFrame {
  id: number;
  status: number;
  /** The header lines, `name: value\n` each. */
  head: string;
  headBytes: number;
  body: string | Uint8Array | undefined;
  bodyBytes: number;
  /** The whole frame's bytes, its length field included. */
  size: number;
}

/**
 * Measures an answer frame of header lines `head` (`name: value\n` each, as {@link headerLines}
 * builds them) and `body`. Throws `RangeError` when the header lines exceed 65535 bytes (no route
 * sets that many).
 */
export function answerFrame(id: number, status: number, head: string, body?: string | Uint8Array): AnswerFrame {
  const headBytes = head === '' ? 0 : Buffer.byteLength(head);
  if (headBytes > 0xffff) throw new RangeError(`answer headers of ${headBytes} bytes exceed 65535`);
  const bodyBytes = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  return { id, status, head, headBytes, body, bodyBytes, size: ANSWER_HEAD_BYTES + headBytes + bodyBytes };
}

/** Writes `a` into `out` at `at` (`out` has room for `a.size` bytes there); returns the offset after it. */
export function writeAnswerFrame(a: AnswerFrame, out: Buffer, at: number): number {
  out.writeUInt32BE(a.size - 4, at);
  out.writeUInt32BE(a.id, at + 4);
  out.writeUInt16BE(a.status, at + 8);
  out.writeUInt16BE(a.headBytes, at + 10);
  let p = at + ANSWER_HEAD_BYTES;
  if (a.headBytes > 0) p += out.write(a.head, p, a.headBytes, 'utf8');
  if (typeof a.body === 'string') out.write(a.body, p, a.bodyBytes, 'utf8');
  else if (a.body !== undefined) out.set(a.body, p);
  return at + a.size;
}

/** Header lines `name: value\n` of `headers`, in the given order. */
export function headerLines(headers: ReadonlyArray<readonly [string, string]>): string {
  let h = '';
  for (const [k, v] of headers) h += `${k}: ${v}\n`;
  return h;
}

/**
 * Encodes an answer frame: `headers` as `name: value\n` lines (in the given order), then `body`.
 * Throws `RangeError` when the header lines exceed 65535 bytes (no route sets that many).
 */
export function encodeAnswer(id: number, status: number, headers: ReadonlyArray<readonly [string, string]>, body?: string | Uint8Array): Buffer {
  const a = answerFrame(id, status, headerLines(headers), body);
  const out = Buffer.allocUnsafe(a.size);
  writeAnswerFrame(a, out, 0);
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
