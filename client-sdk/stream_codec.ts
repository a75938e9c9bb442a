/**
 * Frames of the stream protocol `proofkv-stream/1` (docs/stream-protocol.md): the request and
 * answer encodings, an incremental reader that cuts a byte stream into frames under a length
 * bound, and the protocol's typed error. Pure: no I/O and no `node:` import (the connection that
 * uses it, `stream_connection.ts`, is node-only).
 *
 * ```
 * request  u32 length | u32 id | u8 op | u8 accept | u16 keyLength key | u16 queryLength query | u16 headersLength headers | value
 * answer   u32 length | u32 id | u16 status | u16 headersLength headers | body
 * ```
 * All integers are big-endian; `length` counts the bytes after itself. Headers are UTF-8 lines
 * `name: value\n`.
 * @module
 */
import { ProofKVClientError } from './errors.js';

/** The protocol name, sent in the handshake's `Upgrade` header. */
export const STREAM_PROTOCOL = 'proofkv-stream/1';

/** The path of the handshake request. */
export const STREAM_PATH = '/v1/stream';

/** Request operations: each one HTTP route. */
export const StreamOp = {
  /** `GET /v1/kv/{key}` */
  GET: 1,
  /** `PUT /v1/kv/{key}` */
  PUT: 2,
  /** `DELETE /v1/kv/{key}` */
  DELETE: 3,
  /** `GET /v1/kv/{key}/proof` */
  PROOF: 4,
  /** A no-op the server answers with 204. */
  PING: 5,
} as const;
/** One of the {@link StreamOp} codes. */
export type StreamOp = (typeof StreamOp)[keyof typeof StreamOp];

/** The answer's encoding, as HTTP's `Accept`. */
export const StreamAccept = {
  /** `application/cbor` */
  CBOR: 0,
  /** `application/json` */
  JSON: 1,
  /** `application/octet-stream`: the raw value (GET only). */
  RAW: 2,
} as const;
/** One of the {@link StreamAccept} codes. */
export type StreamAccept = (typeof StreamAccept)[keyof typeof StreamAccept];

/** Bytes of a request frame before its key (length, id, op, accept, keyLength). */
const REQUEST_HEAD = 4 + 4 + 1 + 1 + 2;
/** Bytes of an answer frame before its headers (length, id, status, headersLength). */
const ANSWER_HEAD = 4 + 4 + 2 + 2;
/** The largest u16 / u32. */
const U16 = 0xffff;
const U32 = 0xffffffff;

/** A request frame's fields. */
export interface StreamRequest {
  /** The client's id, 1 .. 2^32-1, unique among its requests in flight on the connection. */
  id: number;
  op: StreamOp;
  accept: StreamAccept;
  /** The key's raw bytes (1 .. 65535). */
  key: Uint8Array;
  /** The route's query string without `?`, as HTTP would carry it. */
  query: string;
  /** Request headers, `[name, value]`. */
  headers: readonly (readonly [string, string])[];
  /** PUT's value; empty or absent for the other ops. */
  value?: Uint8Array;
}

/** An answer frame's fields. */
export interface StreamAnswer {
  /** The request's id; 0 = a connection error. */
  id: number;
  /** The HTTP status the route answered. */
  status: number;
  /** Answer headers, `[name, value]`, in the order sent. */
  headers: [string, string][];
  /** The HTTP answer's body. */
  body: Uint8Array;
}

/** Stable codes of {@link StreamProtocolError}. */
export const StreamErrorCode = {
  /** A frame's length is over the bound (framing can no longer be trusted). */
  FRAME_TOO_LONG: 'FRAME_TOO_LONG',
  /** The connection ended inside a frame. */
  TRUNCATED_FRAME: 'TRUNCATED_FRAME',
  /** A frame's fields do not fit its length, or its headers or status are not well-formed. */
  MALFORMED_FRAME: 'MALFORMED_FRAME',
  /** An answer for an id that has no request in flight (a replay, a forgery, a server bug). */
  UNKNOWN_ID: 'UNKNOWN_ID',
  /** The server sent a connection error (answer id 0) and closes the connection. */
  CONNECTION_ERROR: 'CONNECTION_ERROR',
  /** The handshake was not answered with `101 Switching Protocols` to `proofkv-stream/1`. */
  HANDSHAKE_FAILED: 'HANDSHAKE_FAILED',
  /** The connection closed (or failed) with requests in flight. */
  CONNECTION_CLOSED: 'CONNECTION_CLOSED',
  /** Requests were in flight and nothing arrived from the node for `answerTimeoutMs` (a silent node, a dead peer). */
  ANSWER_TIMEOUT: 'ANSWER_TIMEOUT',
  /** The client's own bound (requests in flight and queued bytes) is reached. */
  CLIENT_BOUND: 'CLIENT_BOUND',
  /** A request that cannot be framed (key length, id, header text). */
  INVALID_REQUEST: 'INVALID_REQUEST',
} as const;
/** One of the {@link StreamErrorCode} codes. */
export type StreamErrorCode = (typeof StreamErrorCode)[keyof typeof StreamErrorCode];

/**
 * A violation of the stream protocol, or the end of a stream connection. A request the
 * connection fails rejects with a `TypeError` (as `fetch` does on a network error) whose `cause`
 * is this error, so the SDK's failover treats it as a network failure.
 */
export class StreamProtocolError extends ProofKVClientError {
  /** Stable code. */
  readonly code: StreamErrorCode;
  /** The HTTP status of a refused handshake, or of a connection error frame. */
  readonly status?: number;
  /** The problem code of a connection error frame or a refused handshake, when it had one. */
  readonly problemCode?: string;

  constructor(code: StreamErrorCode, message: string, extra: { status?: number; problemCode?: string; cause?: unknown } = {}) {
    super(`${code}: ${message}`, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'StreamProtocolError';
    this.code = code;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.problemCode !== undefined) this.problemCode = extra.problemCode;
  }
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
/** An RFC 9110 field name (a token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value without control characters other than tab (no CR, LF or NUL). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\uffff]*$/;

/** Encodes header pairs as `name: value\n` lines (names must be tokens, values one line). */
export function encodeHeaderLines(headers: readonly (readonly [string, string])[]): Uint8Array {
  let text = '';
  for (const [name, value] of headers) {
    if (!TOKEN.test(name)) throw new StreamProtocolError('INVALID_REQUEST', `header name ${JSON.stringify(name.slice(0, 64))} is not a token`);
    if (!FIELD_VALUE.test(value)) throw new StreamProtocolError('INVALID_REQUEST', `header ${name} has a control character in its value`);
    text += `${name}: ${value.trim()}\n`;
  }
  return utf8.encode(text);
}

/** Decodes `name: value\n` lines; anything else is {@link StreamErrorCode.MALFORMED_FRAME}. */
export function decodeHeaderLines(bytes: Uint8Array): [string, string][] {
  if (bytes.length === 0) return [];
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw new StreamProtocolError('MALFORMED_FRAME', 'headers are not UTF-8');
  }
  const out: [string, string][] = [];
  const lines = text.split('\n');
  // The last line ends with "\n"; a block that does not is accepted as well.
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw new StreamProtocolError('MALFORMED_FRAME', `header line ${JSON.stringify(line.slice(0, 64))} is not "name: value"`);
    out.push([name, value]);
  }
  return out;
}

function checkId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < 1 || id > U32) throw new StreamProtocolError('INVALID_REQUEST', `${what} must be 1 .. 2^32-1, got ${id}`);
}

/** Encodes a request frame (length prefix included). */
export function encodeRequest(r: StreamRequest): Uint8Array {
  checkId(r.id, 'request id');
  const query = utf8.encode(r.query);
  const headers = encodeHeaderLines(r.headers);
  const value = r.value ?? new Uint8Array(0);
  if (r.key.length > U16) throw new StreamProtocolError('INVALID_REQUEST', `key of ${r.key.length} bytes does not fit a frame (at most ${U16})`);
  if (query.length > U16) throw new StreamProtocolError('INVALID_REQUEST', `query of ${query.length} bytes does not fit a frame (at most ${U16})`);
  if (headers.length > U16) throw new StreamProtocolError('INVALID_REQUEST', `headers of ${headers.length} bytes do not fit a frame (at most ${U16})`);
  const total = REQUEST_HEAD + r.key.length + 2 + query.length + 2 + headers.length + value.length;
  if (total - 4 > U32) throw new StreamProtocolError('INVALID_REQUEST', 'frame too long');
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, total - 4);
  dv.setUint32(4, r.id);
  out[8] = r.op;
  out[9] = r.accept;
  let at = 10;
  dv.setUint16(at, r.key.length);
  out.set(r.key, (at += 2));
  at += r.key.length;
  dv.setUint16(at, query.length);
  out.set(query, (at += 2));
  at += query.length;
  dv.setUint16(at, headers.length);
  out.set(headers, (at += 2));
  at += headers.length;
  out.set(value, at);
  return out;
}

/** Reads a u16-prefixed field of `frame` at `at`; {@link StreamErrorCode.MALFORMED_FRAME} past its end. */
function field16(frame: Uint8Array, dv: DataView, at: number, what: string): Uint8Array {
  if (at + 2 > frame.length) throw new StreamProtocolError('MALFORMED_FRAME', `frame ends before the ${what} length`);
  const n = dv.getUint16(at);
  if (at + 2 + n > frame.length) throw new StreamProtocolError('MALFORMED_FRAME', `${what} of ${n} bytes runs past the frame`);
  return frame.subarray(at + 2, at + 2 + n);
}

/**
 * Decodes a request frame's payload (the bytes after the length). For tests and proxies: the
 * client never reads requests.
 */
export function decodeRequest(payload: Uint8Array): StreamRequest {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  if (payload.length < 6) throw new StreamProtocolError('MALFORMED_FRAME', `request frame of ${payload.length} bytes is shorter than its fixed fields`);
  const id = dv.getUint32(0);
  const op = payload[4] as StreamOp;
  const accept = payload[5] as StreamAccept;
  const key = field16(payload, dv, 6, 'key');
  let at = 8 + key.length;
  const query = field16(payload, dv, at, 'query');
  at += 2 + query.length;
  const headers = field16(payload, dv, at, 'headers');
  at += 2 + headers.length;
  let q: string;
  try {
    q = strictUtf8.decode(query);
  } catch {
    throw new StreamProtocolError('MALFORMED_FRAME', 'query is not UTF-8');
  }
  return { id, op, accept, key, query: q, headers: decodeHeaderLines(headers), value: payload.subarray(at) };
}

/** Encodes an answer frame (length prefix included). For tests, proxies and fakes. */
export function encodeAnswer(a: { id: number; status: number; headers?: readonly (readonly [string, string])[]; body?: Uint8Array }): Uint8Array {
  const headers = encodeHeaderLines(a.headers ?? []);
  const body = a.body ?? new Uint8Array(0);
  if (headers.length > U16) throw new StreamProtocolError('INVALID_REQUEST', 'answer headers do not fit a frame');
  const total = ANSWER_HEAD + headers.length + body.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, total - 4);
  dv.setUint32(4, a.id);
  dv.setUint16(8, a.status);
  dv.setUint16(10, headers.length);
  out.set(headers, 12);
  out.set(body, 12 + headers.length);
  return out;
}

/**
 * Decodes an answer frame's payload (the bytes after the length). The status must be an HTTP
 * status a `Response` can carry (200 .. 599; connection errors any 4xx/5xx); the headers must be
 * `name: value` lines. The body is copied (the payload may be a view of a socket buffer).
 */
export function decodeAnswer(payload: Uint8Array): StreamAnswer {
  if (payload.length < ANSWER_HEAD - 4) throw new StreamProtocolError('MALFORMED_FRAME', `answer frame of ${payload.length} bytes is shorter than its fixed fields`);
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const id = dv.getUint32(0);
  const status = dv.getUint16(4);
  if (status < 200 || status > 599) throw new StreamProtocolError('MALFORMED_FRAME', `answer status ${status} is not 200 .. 599`);
  const headers = field16(payload, dv, 6, 'headers');
  return { id, status, headers: decodeHeaderLines(headers), body: payload.slice(8 + headers.length) };
}

/**
 * Cuts a byte stream into frames: `push` the bytes as they arrive, then take complete frames'
 * payloads with `next` until it returns undefined. Holds at most one frame's bytes plus one
 * incoming chunk: a length over `maxPayloadBytes` (or under `minPayloadBytes`) throws
 * {@link StreamErrorCode.FRAME_TOO_LONG} / `MALFORMED_FRAME` before any of that frame is kept.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private size = 0;
  /** The current frame's payload length, once its prefix is read; -1 before. */
  private need = -1;

  constructor(
    /** The largest payload accepted. */
    readonly maxPayloadBytes: number,
    /** The smallest payload a frame of this direction can have. */
    readonly minPayloadBytes = ANSWER_HEAD - 4,
  ) {
    if (!Number.isSafeInteger(maxPayloadBytes) || maxPayloadBytes < minPayloadBytes) throw new RangeError('maxPayloadBytes must be an integer of at least the fixed fields');
  }

  /** Bytes held (a partial frame, or complete frames not taken yet). */
  get buffered(): number {
    return this.size;
  }

  /** True when the reader holds part of a frame (the stream may not end here). */
  get midFrame(): boolean {
    return this.size > 0 || this.need >= 0;
  }

  /** Adds received bytes. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The next complete frame's payload, or undefined when none is complete yet. */
  next(): Uint8Array | undefined {
    if (this.need < 0) {
      if (this.size < 4) return undefined;
      const p = this.take(4);
      const n = ((p[0] << 24) >>> 0) + (p[1] << 16) + (p[2] << 8) + p[3];
      if (n > this.maxPayloadBytes) throw new StreamProtocolError('FRAME_TOO_LONG', `frame of ${n} bytes is over the bound of ${this.maxPayloadBytes}`);
      if (n < this.minPayloadBytes) throw new StreamProtocolError('MALFORMED_FRAME', `frame of ${n} bytes is shorter than its fixed fields (${this.minPayloadBytes})`);
      this.need = n;
    }
    if (this.size < this.need) return undefined;
    const payload = this.take(this.need);
    this.need = -1;
    return payload;
  }

  /** Checks that the stream may end here: {@link StreamErrorCode.TRUNCATED_FRAME} inside a frame. */
  end(): void {
    if (this.midFrame) {
      const held = this.size;
      this.chunks = [];
      this.size = 0;
      this.need = -1;
      throw new StreamProtocolError('TRUNCATED_FRAME', `the connection ended inside a frame (${held} bytes held)`);
    }
  }

  /** Removes and returns the first `n` buffered bytes (a view when one chunk holds them). */
  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.size -= n;
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.size -= n;
    return out;
  }
}
