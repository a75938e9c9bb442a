/**
 * `streamFetch`: a `fetch` for the SDK that sends the hot key-value routes of an endpoint over a
 * `proofkv-stream/1` connection to it (docs/stream-protocol.md) and every other request over HTTP.
 * Node-only (`node:http`, `node:https` through `stream_connection.ts`); exported by the Node entry
 * of `proofkv/client`. With it the SDK is unchanged: `new ProofKVClient({ ..., fetch: streamFetch() })`
 * verifies every answer exactly as over HTTP, fails over on the same errors, and retries writes
 * with the same idempotency headers.
 *
 * What goes over the stream: `GET`, `PUT` and `DELETE /v1/kv/{key}` and `GET /v1/kv/{key}/proof`
 * whose translation is exact (below); everything else, and any of those it cannot translate
 * exactly, goes to the HTTP `fetch` unchanged, so the server gives it its ordinary answer.
 *
 * | HTTP request | stream request |
 * |---|---|
 * | the path's key segment (percent-decoded, or base64url with `keyEncoding=base64url`) | the key's raw bytes; `keyEncoding` leaves the query |
 * | the query string | the same string (plus `version=N` from a JSON PUT body, below) |
 * | `Accept: application/json`, none, or `*\/*` / `application/cbor` / `application/octet-stream` (GET) | accept JSON / CBOR / raw (`octet-stream` on other routes: JSON, as HTTP negotiates) |
 * | `ProofKV-*` headers (client id, request seq, minimum head) | the same headers |
 * | `Authorization` | the connection's handshake (one connection set per endpoint and credentials) |
 * | a PUT body: `application/octet-stream` bytes, or JSON `{ "value": base64url, "version"?: N }` (what the SDK sends) | the value bytes (and `version=N` in the query) |
 *
 * Falls back to HTTP for that request: another `Accept` or body type, a JSON body with other
 * fields (`valueUtf8`, unknown ones) or a version both in the body and the query or outside
 * 1 .. 2^53-1, a malformed percent-escape or base64url key, a key over 65535 bytes, a body on a
 * GET or DELETE, a body that is not a string or bytes — so the server's answer to those is its
 * HTTP answer, errors included. An endpoint that refuses the upgrade (a node without the stream:
 * 404 or 426; bad credentials: 401 or 403) is sent HTTP for `refusedRetryMs`.
 *
 * The answer becomes a `Response` with the frame's status, headers (plus `ProofKV-Node-Id` from
 * the handshake) and body. A connection that fails — refused, reset, a protocol violation, a
 * connection error frame — rejects its requests with a `TypeError` (as `fetch` does), whose
 * `cause` is a {@link StreamProtocolError} or the socket's error; the next request opens a new
 * connection. An aborted `signal` rejects with its reason.
 * @module
 */
import { fromBase64Url } from './bytes.js';
import type { FetchLike } from './transport.js';
import { StreamAccept, StreamOp, StreamProtocolError, type StreamAnswer } from './stream_codec.js';
import { checkConnectionBounds, networkFailure, StreamConnection, StreamRefused, type StreamConnectionOptions } from './stream_connection.js';

/** Options of {@link streamFetch}. */
export interface StreamFetchOptions {
  /** The `fetch` for every request that does not go over the stream (default `globalThis.fetch`). */
  fetch?: FetchLike;
  /** Stream connections per endpoint and credentials, 1 .. 16 (default 1); requests take them in turn. */
  connections?: number;
  /** Requests in flight per connection (default 1024, the server's `maxStreamInFlight`); more wait their turn. */
  maxInFlight?: number;
  /** Bytes of requests queued per connection (default 8 MiB); a request past it fails like a network error. */
  maxQueuedBytes?: number;
  /** The largest answer frame, bytes (default 10 MiB + 64 KiB: an entry with its proof of a 1 MiB value). */
  maxAnswerBytes?: number;
  /** Time for a connection's TCP/TLS set-up and upgrade (default 10 s). */
  connectTimeoutMs?: number;
  /** With requests in flight, the longest silence of a node before its connection fails (default 30 s; see `StreamConnectionOptions.answerTimeoutMs`). */
  answerTimeoutMs?: number;
  /** TLS options for `https:` endpoints (`ca`, `servername`, …), as `https.request` takes them. */
  tls?: StreamConnectionOptions['tls'];
  /** How long an endpoint that refused the upgrade is sent plain HTTP before the stream is tried again (default 30 s). */
  refusedRetryMs?: number;
  /** At most this many endpoint-and-credentials pairs keep connections (default 64; the oldest is closed past it). */
  maxEndpoints?: number;
}

/** What a {@link streamFetch} did so far. */
export interface StreamFetchStats {
  /** Requests answered over a stream connection. */
  streamed: number;
  /** Requests passed to the HTTP `fetch` (other routes, untranslatable requests, refused upgrades). */
  http: number;
  /** Stream connections opened. */
  opened: number;
  /** Stream connections open now. */
  open: number;
}

/** The `fetch` {@link streamFetch} returns: a {@link FetchLike} with statistics and `close`. */
export interface StreamFetch extends FetchLike {
  /** Counters of what went where. */
  stats(): StreamFetchStats;
  /** Closes every stream connection (their requests in flight fail); later requests open new ones. */
  close(): void;
}

interface Pool {
  slots: (Promise<StreamConnection> | undefined)[];
  next: number;
  refusedUntil: number;
}

/** A request as it goes over the stream. */
interface Translated {
  op: StreamOp;
  accept: StreamAccept;
  key: Uint8Array;
  query: string;
  headers: [string, string][];
  value?: Uint8Array;
}

const KV_PATH = /^\/v1\/kv\/([^/]+)(\/proof)?$/;
const HEX2 = /^[0-9A-Fa-f]{2}$/;
const MAX_KEY_FRAME = 0xffff;

/**
 * A {@link FetchLike} that sends the key-value routes over stream connections; see the module
 * comment. Node-only.
 */
export function streamFetch(options: StreamFetchOptions = {}): StreamFetch {
  const httpFetch: FetchLike | undefined = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
  if (typeof httpFetch !== 'function') throw new TypeError('no fetch available: pass options.fetch');
  const connections = options.connections ?? 1;
  if (!Number.isInteger(connections) || connections < 1 || connections > 16) throw new RangeError('connections must be an integer of 1 .. 16');
  const refusedRetryMs = options.refusedRetryMs ?? 30_000;
  if (!(refusedRetryMs >= 0)) throw new RangeError('refusedRetryMs must be non-negative');
  const maxEndpoints = options.maxEndpoints ?? 64;
  if (!Number.isInteger(maxEndpoints) || maxEndpoints < 1) throw new RangeError('maxEndpoints must be a positive integer');
  // Checked once here, so a bad bound is an error at construction, not at the first request.
  checkConnectionBounds(options);
  const pools = new Map<string, Pool>();
  const open = new Set<StreamConnection>();
  const stats = { streamed: 0, http: 0, opened: 0 };

  const viaHttp = (input: string, init: RequestInit) => {
    stats.http++;
    return httpFetch(input, init);
  };

  const poolOf = (origin: string, authorization: string | undefined): Pool => {
    const id = `${origin}\n${authorization ?? ''}`;
    let pool = pools.get(id);
    if (pool) {
      // Most recently used last: the oldest is the first evicted.
      pools.delete(id);
      pools.set(id, pool);
      return pool;
    }
    pool = { slots: new Array(connections).fill(undefined), next: 0, refusedUntil: 0 };
    pools.set(id, pool);
    if (pools.size > maxEndpoints) {
      const [oldId, old] = pools.entries().next().value as [string, Pool];
      pools.delete(oldId);
      for (const s of old.slots) void s?.then((c) => c.close(), () => undefined);
    }
    return pool;
  };

  const connectionOf = (pool: Pool, origin: string, authorization: string | undefined): Promise<StreamConnection> => {
    const i = pool.next;
    pool.next = (i + 1) % connections;
    const have = pool.slots[i];
    if (!have) return reopen();
    return have.then((c) => {
      if (!c.closed) return c;
      // Closed under us: whoever saw it first opens the slot's next connection; the others share it.
      const now = pool.slots[i];
      return now && now !== have ? now : reopen();
    });
    function reopen(): Promise<StreamConnection> {
      const p = StreamConnection.open({
        origin,
        authorization,
        maxInFlight: options.maxInFlight,
        maxQueuedBytes: options.maxQueuedBytes,
        maxAnswerBytes: options.maxAnswerBytes,
        connectTimeoutMs: options.connectTimeoutMs,
        answerTimeoutMs: options.answerTimeoutMs,
        tls: options.tls,
      }).then((c) => {
        stats.opened++;
        const done = () => {
          open.delete(c);
          if (pool.slots[i] === p) pool.slots[i] = undefined;
        };
        // A connection can fail as it opens (a bad first frame): then it is never kept.
        if (c.closed) done();
        else {
          open.add(c);
          c.onClose = done;
        }
        return c;
      });
      pool.slots[i] = p;
      // A failed open leaves the slot empty: the next request tries again.
      p.catch(() => {
        if (pool.slots[i] === p) pool.slots[i] = undefined;
      });
      return p;
    }
  };

  const fetchFn = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const t = translate(input, init);
    if (!t) return viaHttp(input, init);
    const { origin, authorization, request } = t;
    const pool = poolOf(origin, authorization);
    if (pool.refusedUntil > Date.now()) return viaHttp(input, init);
    if (init.signal?.aborted) throw init.signal.reason;
    let conn: StreamConnection;
    try {
      conn = await untilAborted(connectionOf(pool, origin, authorization), init.signal);
    } catch (err) {
      if (err instanceof StreamRefused) {
        // A node without the stream, or credentials it refuses: HTTP gives this request its
        // ordinary answer, and the endpoint is sent HTTP for a while.
        pool.refusedUntil = Date.now() + refusedRetryMs;
        return viaHttp(input, init);
      }
      if (init.signal?.aborted && err === init.signal.reason) throw err;
      throw err instanceof TypeError ? err : networkFailure(err);
    }
    const answer = await conn.request(request, init.signal);
    stats.streamed++;
    return responseOf(answer, conn.nodeId);
  };

  const f = fetchFn as StreamFetch;
  f.stats = () => ({ ...stats, open: open.size });
  f.close = () => {
    for (const c of [...open]) c.close();
    for (const pool of pools.values()) pool.slots.fill(undefined);
    pools.clear();
  };
  return f;
}

/**
 * `p`, or a rejection with `signal.reason` as soon as `signal` aborts (the connection it waits for
 * goes on opening, for later requests).
 */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | null | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** The {@link Response} of an answer frame. */
function responseOf(a: StreamAnswer, nodeId: string): Response {
  const headers = new Headers();
  for (const [name, value] of a.headers) headers.append(name, value);
  if (nodeId !== '' && !headers.has('proofkv-node-id')) headers.set('proofkv-node-id', nodeId);
  const nullBody = a.status === 204 || a.status === 205 || a.status === 304;
  return new Response(nullBody ? null : a.body, { status: a.status, headers });
}

/**
 * The stream request of an HTTP request, with its connection's origin and credentials; undefined
 * when the request is not a key-value route or cannot be translated exactly (see the module
 * comment). Throws nothing: whatever it cannot read goes over HTTP.
 */
export function translate(input: string, init: RequestInit): { origin: string; authorization?: string; request: Translated } | undefined {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  const m = KV_PATH.exec(url.pathname);
  if (!m) return undefined;
  const method = (init.method ?? 'GET').toUpperCase();
  const proof = m[2] !== undefined;
  const op = proof ? (method === 'GET' ? StreamOp.PROOF : undefined) : method === 'GET' ? StreamOp.GET : method === 'PUT' ? StreamOp.PUT : method === 'DELETE' ? StreamOp.DELETE : undefined;
  if (op === undefined) return undefined;
  let headers: Headers;
  try {
    headers = new Headers(init.headers);
  } catch {
    return undefined;
  }
  const accept = acceptOf(headers.get('accept'), op === StreamOp.GET);
  if (accept === undefined) return undefined;

  // The query, with keyEncoding taken out (the key travels as raw bytes).
  const rawQuery = url.search.startsWith('?') ? url.search.slice(1) : '';
  const parts = rawQuery === '' ? [] : rawQuery.split('&');
  const isKeyEncoding = (part: string) => {
    try {
      return decodeURIComponent(part.split('=')[0].replace(/\+/g, ' ')) === 'keyEncoding';
    } catch {
      return false;
    }
  };
  const encodings = parts.filter(isKeyEncoding);
  if (encodings.length > 1) return undefined;
  let keyEncoding = 'percent';
  if (encodings.length === 1) {
    const eq = encodings[0].indexOf('=');
    keyEncoding = eq === -1 ? '' : encodings[0].slice(eq + 1);
  }
  let key: Uint8Array | undefined;
  if (keyEncoding === 'percent') key = percentDecodeSegment(m[1]);
  else if (keyEncoding === 'base64url') {
    try {
      key = fromBase64Url(m[1]);
    } catch {
      key = undefined;
    }
  }
  if (!key || key.length === 0 || key.length > MAX_KEY_FRAME) return undefined;
  let queryParts = parts.filter((p) => !isKeyEncoding(p));

  let value: Uint8Array | undefined;
  const body = bodyBytes(init.body);
  if (body === undefined) return undefined;
  if (op === StreamOp.PUT) {
    const type = (headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (type === 'application/octet-stream') value = body;
    else if (type === 'application/json') {
      const j = jsonPutBody(body);
      if (!j) return undefined;
      value = j.value;
      if (j.version !== undefined) {
        if (new URLSearchParams(rawQuery).has('version')) return undefined;
        queryParts = [...queryParts, `version=${j.version}`];
      }
    } else return undefined;
  } else if (body.length > 0) return undefined;

  const fwd: [string, string][] = [];
  for (const [name, v] of headers) if (name.startsWith('proofkv-')) fwd.push([name, v]);
  const authorization = headers.get('authorization') ?? undefined;
  const request: Translated = { op, accept, key, query: queryParts.join('&'), headers: fwd };
  if (value !== undefined) request.value = value;
  return { origin: url.origin, authorization, request };
}

/** The stream's accept code for an `Accept` header, as HTTP's negotiation picks; undefined for anything else. */
function acceptOf(accept: string | null, rawAllowed: boolean): StreamAccept | undefined {
  const a = (accept ?? '').trim().toLowerCase();
  if (a === '' || a === '*/*' || a === 'application/json') return StreamAccept.JSON;
  if (a === 'application/cbor') return StreamAccept.CBOR;
  if (a === 'application/octet-stream') return rawAllowed ? StreamAccept.RAW : StreamAccept.JSON;
  return undefined;
}

/** The bytes of a request body (empty when none); undefined for a body that is not a string or bytes. */
function bodyBytes(body: RequestInit['body']): Uint8Array | undefined {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === 'string') return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return undefined;
}

/** `{ value, version? }` of a JSON PUT body the stream can carry exactly; undefined otherwise. */
function jsonPutBody(body: Uint8Array): { value: Uint8Array; version?: number } | undefined {
  let o: unknown;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  const rec = o as Record<string, unknown>;
  for (const k of Object.keys(rec)) if (k !== 'value' && k !== 'version') return undefined;
  if (typeof rec.value !== 'string') return undefined;
  let value: Uint8Array;
  try {
    value = fromBase64Url(rec.value);
  } catch {
    return undefined;
  }
  if (rec.version === undefined) return { value };
  const v = rec.version;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) return undefined;
  return { value, version: v };
}

/** A path segment's bytes: `%XX` escapes as bytes, other characters as UTF-8; undefined on a malformed escape. */
function percentDecodeSegment(seg: string): Uint8Array | undefined {
  if (!seg.includes('%')) return new TextEncoder().encode(seg);
  const out: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c === 0x25) {
      const hex = seg.slice(i + 1, i + 3);
      if (!HEX2.test(hex)) return undefined;
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80) out.push(c);
    else {
      const cp = seg.codePointAt(i)!;
      for (const b of enc.encode(String.fromCodePoint(cp))) out.push(b);
      if (cp > 0xffff) i++;
    }
  }
  return Uint8Array.from(out);
}


