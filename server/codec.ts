/**
 * Wire encodings: base64url (RFC 4648 §5, no padding) for bytes in JSON, CBOR (cbor-x, byte
 * strings for bytes), content negotiation of responses by `Accept`, and strict decoding of
 * request bodies by `Content-Type`.
 *
 * Responses are built as plain objects holding `Uint8Array`s and numbers; {@link toJsonWire} and
 * {@link toCborWire} turn them into the two wire forms.
 * @module
 */
import { Encoder } from 'cbor-x';
import type { Request, Response } from 'express';
import { fromBase64Url as strictFromBase64Url } from '../proofs/bytes.js';
import { scanCbor, type CborLimits } from '../proofs/cbor_scan.js';
import { DecodeError } from '../proofs/errors.js';
import { HttpError } from './errors.js';
import type { Answer } from './answer.js';
export type { Answer } from './answer.js';

/** Encodes bytes as base64url without padding. */
export function toBase64Url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/**
 * Decodes strict base64url without padding (the one decoder of `proofs/bytes.ts`); throws
 * `HttpError(code)` naming `what` when `s` has a character outside the alphabet (padding
 * included), an impossible length, or non-zero trailing bits.
 */
export function fromBase64Url(s: string, what: string, code: 'INVALID_ARGUMENT' | 'BAD_REQUEST' = 'INVALID_ARGUMENT'): Uint8Array {
  try {
    return strictFromBase64Url(s);
  } catch (e) {
    throw new HttpError(code, `${what} is not valid base64url (RFC 4648 §5, no padding): ${(e as Error).message}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The UTF-8 text of `b`, or undefined when `b` is not valid UTF-8. */
export function utf8OrUndefined(b: Uint8Array): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}

// Same options as the proof codecs: plain byte strings, no records or tags.
const cbor = new Encoder({
  mapsAsObjects: true,
  useRecords: false,
  structuredClone: false,
  tagUint8Array: false,
  useTag259ForMaps: false,
  variableMapSize: true,
} as ConstructorParameters<typeof Encoder>[0]);

/** A response body before encoding: objects, arrays, strings, numbers, booleans and bytes. */
export type Wire = string | number | boolean | null | undefined | Uint8Array | Wire[] | { [k: string]: Wire };

/** The JSON form of `v`: bytes become base64url strings, `undefined` fields are dropped. */
export function toJsonWire(v: Wire): unknown {
  if (v instanceof Uint8Array) return toBase64Url(v);
  if (Array.isArray(v)) return v.map(toJsonWire);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toJsonWire(x);
    return out;
  }
  return v;
}

/**
 * The CBOR data-model form of `v`: bytes stay byte strings, `undefined` fields are dropped, and
 * integers above 2^32 - 1 become bigints (cbor-x would write those numbers as floats).
 */
export function toCborWire(v: Wire): unknown {
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(toCborWire);
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0xffffffff ? BigInt(v) : v;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toCborWire(x);
    return out;
  }
  return v;
}

/** Encodes a CBOR data-model value. */
export function encodeCbor(v: unknown): Uint8Array {
  return cbor.encode(v);
}

/** Response media types a route can produce. */
export type ResponseType = 'json' | 'cbor' | 'octet';

/**
 * The response type `Accept` asks for: CBOR when `application/cbor` is preferred, the raw value
 * when `allowOctet` and `application/octet-stream` is preferred, JSON otherwise (also for a
 * missing, `*\/*` or unsatisfiable `Accept`).
 */
export function negotiate(req: Request, allowOctet = false): ResponseType {
  const offers = allowOctet ? ['application/json', 'application/cbor', 'application/octet-stream'] : ['application/json', 'application/cbor'];
  const best = req.accepts(offers);
  if (best === 'application/cbor') return 'cbor';
  if (best === 'application/octet-stream') return 'octet';
  return 'json';
}


/** The answer holding `body` with status `status` in encoding `kind` (`octet` is not an encoding of a body: JSON). */
export function answerOf(kind: ResponseType, body: Wire, status = 200): Answer {
  if (kind === 'cbor') return { status, headers: { Vary: 'Accept', 'Content-Type': 'application/cbor' }, body: Buffer.from(encodeCbor(toCborWire(body))) };
  return jsonAnswer(JSON.stringify(toJsonWire(body)), status);
}

/** The JSON answer whose body is the JSON text `text` (what {@link answerOf} `('json', …)` sends for the value it encodes). */
export function jsonAnswer(text: string, status = 200): Answer {
  return { status, headers: { Vary: 'Accept', 'Content-Type': 'application/json; charset=utf-8' }, body: text };
}

/** Sends `a` on an HTTP response. */
export function sendAnswer(res: Response, a: Answer): void {
  res.status(a.status);
  for (const k in a.headers) res.setHeader(k, a.headers[k]);
  res.end(a.body);
}

/** Sends `body` with status `status` in the negotiated encoding. */
export function send(req: Request, res: Response, body: Wire, status = 200): void {
  sendAnswer(res, answerOf(negotiate(req), body, status));
}

/** Request body media types. */
export type BodyType = 'json' | 'cbor' | 'octet';

/**
 * The media type of the request body, from `Content-Type` (parameters ignored). Throws
 * `415 UNSUPPORTED_MEDIA_TYPE` for anything but the accepted types.
 */
export function bodyType(req: Request, accepted: readonly BodyType[]): BodyType {
  return bodyTypeOf(req.headers['content-type'], accepted);
}

/** {@link bodyType} of a `Content-Type` header value. */
export function bodyTypeOf(raw: string | string[] | undefined, accepted: readonly BodyType[]): BodyType {
  const mt = typeof raw === 'string' ? raw.split(';')[0].trim().toLowerCase() : '';
  const t: BodyType | undefined =
    mt === 'application/json' ? 'json' : mt === 'application/cbor' ? 'cbor' : mt === 'application/octet-stream' ? 'octet' : undefined;
  if (t === undefined || !accepted.includes(t)) {
    const list = accepted.map((a) => (a === 'octet' ? 'application/octet-stream' : `application/${a}`)).join(', ');
    throw new HttpError('UNSUPPORTED_MEDIA_TYPE', `Content-Type ${mt === '' ? '(none)' : mt} is not accepted here; use ${list}`);
  }
  return t;
}

/** The raw request body (the raw parser leaves it undefined when there is none). */
export function rawBody(req: Request): Uint8Array {
  const b: unknown = req.body;
  if (b instanceof Uint8Array) return b;
  return new Uint8Array(0);
}

/**
 * The largest CBOR shape a request body can need: a batch is a map holding an array of operation
 * maps (depth 3); an operation has at most 5 legal fields; a batch at most 10 000 operations (the batch
 * route checks its own limit again, with its own error).
 */
export const REQUEST_BODY_CBOR_LIMITS: CborLimits = { canonical: false, maxDepth: 3, maxMap: 8, maxArray: 10_000 };

/**
 * Deepest nesting a request body may have. The deepest legal body, a batch, needs 3
 * (`{ops: [{…}]}`); the margin is for forward-compatible fields.
 */
export const MAX_BODY_DEPTH = 8;
/**
 * Most JSON values (objects, arrays, strings — member names included —, numbers, literals) a
 * request body may hold. A 10,000-operation batch needs at most 110,003: per operation one object
 * and five members (`op`, `key`, `value` or `valueUtf8`, `version`, `ifVersion` or `ifAbsent`),
 * each a name and a value.
 */
export const MAX_BODY_VALUES = 120_000;

/**
 * Checks the shape of a JSON text before it is parsed, incrementally (feed it the body chunk by
 * chunk as it arrives) in one linear pass with O(1) memory: nesting at most `maxDepth`, at most
 * `maxValues` values. Throws at the first excess, so a hostile body (millions of nested arrays,
 * millions of tiny values) is refused after the chunk that crosses the line instead of costing
 * seconds of `JSON.parse` on the event loop and hundreds of MiB of heap. Malformed JSON passes
 * here and is refused by the parser.
 */
export class JsonShapeChecker {
  private depth = 0;
  // Values are counted at their start: an opening bracket, a string's opening quote, or the first
  // byte of a number or literal. Inside a string every byte is skipped.
  private values = 0;
  private inString = false;
  private escaped = false;
  private inScalar = false;

  constructor(
    private readonly maxDepth = MAX_BODY_DEPTH,
    private readonly maxValues = MAX_BODY_VALUES,
  ) {}

  /** Scans the next chunk of the body. Throws `400 BAD_REQUEST` (depth) or `413 PAYLOAD_TOO_LARGE` (values). */
  update(chunk: Uint8Array): void {
    let { depth, values, inString, escaped, inScalar } = this;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
        continue;
      }
      if (c === 0x5b || c === 0x7b) {
        inScalar = false;
        if (++depth > this.maxDepth) throw new HttpError('BAD_REQUEST', `request body nests deeper than ${this.maxDepth} levels`);
        values++;
      } else if (c === 0x5d || c === 0x7d) {
        inScalar = false;
        depth--;
        continue;
      } else if (c === 0x22) {
        inString = true;
        inScalar = false;
        values++;
      } else if (c === 0x2c || c === 0x3a || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        inScalar = false;
        continue;
      } else if (!inScalar) {
        inScalar = true;
        values++;
      }
      if (values > this.maxValues) throw new HttpError('PAYLOAD_TOO_LARGE', `request body holds more than ${this.maxValues} JSON values`);
    }
    Object.assign(this, { depth, values, inString, escaped, inScalar });
  }
}

/** Checks a whole JSON body with a {@link JsonShapeChecker}. */
export function checkJsonShape(body: Uint8Array, maxDepth = MAX_BODY_DEPTH, maxValues = MAX_BODY_VALUES): void {
  new JsonShapeChecker(maxDepth, maxValues).update(body);
}

/** Resolves after the event loop has served what was waiting (other requests' I/O): a yield point in long work. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Most bytes of a refused request body read and discarded before the answer (lingering close). The
 * request timeout still bounds how long a slow sender can hold the connection.
 */
export const LINGER_BYTES = 32 * 1024 * 1024;

/**
 * Reads a request body into `req.body` (a Buffer) with a byte limit, refusing what cannot succeed
 * as early as possible: a declared `Content-Length` over the limit before reading anything, a
 * streamed body the moment it crosses the limit, and — for `application/json` — a body whose shape
 * exceeds {@link MAX_BODY_DEPTH} or {@link MAX_BODY_VALUES} the moment the offending chunk arrives.
 * A refused request is answered at once. The rest of its body is then read and discarded — never
 * buffered or parsed — up to {@link LINGER_BYTES} (lingering, as web servers do), because a
 * client that is still sending would otherwise hit a reset (EPIPE) instead of reading the answer;
 * past that, or when the declared length is larger, the connection is closed.
 * `Content-Encoding` other than identity is `415`.
 */
export function bodyReader(limit: number): (req: Request, res: Response, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    const refuse = (err: unknown) => {
      const declared = Number(req.headers['content-length'] ?? 0);
      if (req.complete || declared > LINGER_BYTES) {
        // Nothing left to read, or too much to read: answer and close.
        res.setHeader('Connection', 'close');
        req.pause();
        return next(err);
      }
      // Answer now, and read and discard the rest of the body as it arrives (lingering), so that a
      // client still sending reads the answer instead of hitting a reset; past LINGER_BYTES the
      // connection is cut.
      let drained = 0;
      req.on('data', (chunk: Buffer) => {
        drained += chunk.length;
        if (drained > LINGER_BYTES) req.socket.destroy();
      });
      req.resume();
      next(err);
    };
    const enc = String(req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (enc !== 'identity') return refuse(new HttpError('UNSUPPORTED_MEDIA_TYPE', 'unsupported content encoding or charset'));
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) return refuse(new HttpError('PAYLOAD_TOO_LARGE', 'request body exceeds the limit'));
    const ct = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const checker = ct === 'application/json' ? new JsonShapeChecker() : null;
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (err !== undefined) refuse(err);
      else {
        req.body = Buffer.concat(chunks, size);
        next();
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return finish(new HttpError('PAYLOAD_TOO_LARGE', 'request body exceeds the limit'));
      try {
        checker?.update(chunk);
      } catch (err) {
        return finish(err);
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish();
    const onError = () => finish(new HttpError('BAD_REQUEST', 'request body was not received completely'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  };
}

/**
 * Parses a JSON or CBOR request body into a plain object. Malformed input, a non-object top
 * level, or CBOR that does not decode cleanly is `400 BAD_REQUEST`; a JSON body nested deeper than
 * {@link MAX_BODY_DEPTH} or holding more than {@link MAX_BODY_VALUES} values is refused before it
 * is parsed ({@link checkJsonShape}). A CBOR body first passes the linear pre-pass of
 * `proofs/cbor_scan.ts` (no tags — value sharing 28/29 included — no indefinite lengths, depth and
 * counts within {@link REQUEST_BODY_CBOR_LIMITS}), so cbor-x never expands more than the bytes
 * hold. Longer heads than needed are accepted here: cbor-x's default encoder writes them, and they
 * cost no extra work.
 */
export function parseStructuredBody(type: 'json' | 'cbor', body: Uint8Array): Record<string, unknown> {
  let v: unknown;
  if (body.length === 0) throw new HttpError('BAD_REQUEST', 'request body is empty');
  if (type === 'json') checkJsonShape(body);
  try {
    if (type === 'json') {
      v = JSON.parse(utf8.decode(body));
    } else {
      scanCbor(body, REQUEST_BODY_CBOR_LIMITS);
      v = cbor.decode(body);
    }
  } catch (e) {
    const why = e instanceof DecodeError ? `: ${e.message}` : '';
    throw new HttpError('BAD_REQUEST', `request body is not valid ${type === 'json' ? 'JSON' : 'CBOR'}${why}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    throw new HttpError('BAD_REQUEST', 'request body must be an object');
  }
  return v as Record<string, unknown>;
}

/** Own property `name` of a decoded body (never inherited ones). */
export function field(o: Record<string, unknown>, name: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, name) ? o[name] : undefined;
}

/**
 * A bytes field of a decoded body: a base64url string in JSON, a byte string in CBOR. Throws
 * `400 INVALID_ARGUMENT` naming `what` otherwise.
 */
export function bytesField(type: 'json' | 'cbor', v: unknown, what: string): Uint8Array {
  if (type === 'json') {
    if (typeof v !== 'string') throw new HttpError('INVALID_ARGUMENT', `${what} must be a base64url string`);
    return fromBase64Url(v, what);
  }
  if (!(v instanceof Uint8Array)) throw new HttpError('INVALID_ARGUMENT', `${what} must be a byte string`);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * A version field of a decoded body (number, or bigint from CBOR): an integer in
 * `1 .. 2^53 - 1`, else `400 INVALID_VERSION`.
 */
export function versionField(v: unknown, what = 'version', min = 1): number {
  const n = typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= 0n ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
    throw new HttpError('INVALID_VERSION', `${what} must be an integer in ${min} .. 2^53-1`);
  }
  return n;
}
