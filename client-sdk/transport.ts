/**
 * HTTP transport of the client: endpoint failover with leader hints, per-attempt timeouts,
 * retries with exponential backoff, bounded response bodies, and idempotency headers for writes.
 * Isomorphic: it only uses the platform's `fetch`, `AbortController`, `setTimeout`, streams and
 * `crypto.getRandomValues`.
 *
 * ```
 * attempt ──► endpoint[current] ──► 2xx ─────────────► parsed JSON body (at most the request's byte cap)
 *                 │                 any answer with ProofKV-Leader (a follower's) ──► later requests
 *                 │                                    go to the configured endpoint of that origin
 *                 │                 421 NOT_LEADER ──► current = the configured endpoint with the
 *                 │                                    origin of ProofKV-Leader, else the next
 *                 │                                    endpoint; retry at once
 *                 │                 3xx ─────────────► ProofKVHttpError REDIRECT_REFUSED (never followed)
 *                 │                 503/502/504 ─────► next endpoint, back off, retry
 *                 │                 other 4xx/5xx ───► ProofKVHttpError (no retry)
 *                 │                 body over cap ───► ProofKVResponseTooLargeError (no retry)
 *                 └── network error or timeout ─────► next endpoint, back off, retry
 * ```
 * Every answer of a follower names the leader (`ProofKV-Leader`): the client then sends its next
 * requests to the configured endpoint with the leader's origin, so that writes and linearizable
 * reads are not relayed by a follower (docs/cluster.md § Where clients send requests). The answer
 * itself is used as it is: a follower's answers are as good as the leader's.
 * Requests only ever go to the configured endpoints: a leader hint to any other origin is ignored
 * (the next configured endpoint is tried), and redirects are never followed (`redirect: 'manual'`),
 * so the bearer token is sent to no other origin.
 *
 * Response bodies are capped per request by what it can legitimately need
 * ({@link responseLimits}): `Content-Length` is checked first, and the body is read as a stream
 * and abandoned as soon as it passes the cap.
 * A write carries `ProofKV-Client-Id` (random per transport) and `ProofKV-Request-Seq` (one per
 * logical write, increasing, reused by every retry of it), so the server applies a retried write
 * once. After `retries` retries the last failure is thrown (`ProofKVNetworkError` for network
 * errors and timeouts, `ProofKVHttpError` for a last 503).
 * @module
 */
import { concatBytes } from '../proofs/bytes.js';
import { toBase64Url } from './bytes.js';
import { ProofKVHttpError, ProofKVNetworkError, ProofKVResponseTooLargeError, type Problem } from './errors.js';
import { MalformedResponse } from './wire.js';

/** The `fetch` signature the transport needs (the platform's, or a test double). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Transport settings; see {@link ProofKVClientOptions} for their meaning and defaults. */
export interface TransportOptions {
  endpoints: readonly string[];
  token?: string;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
  fetch?: FetchLike;
  clientId?: string;
  /** The server's value and page limits the response caps derive from (defaults: the server's defaults). */
  serverLimits?: { maxValueSize?: number; maxPageBytes?: number };
  /** A ceiling on every response body, bytes (default: none beyond the derived caps). */
  maxResponseBytes?: number;
}

/** What a response may carry, which decides its byte cap (see {@link responseLimits}). */
export type ResponseKind = 'control' | 'entry' | 'page';

/** One logical request. */
export interface RequestSpec {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path and query, starting with `/`. */
  path: string;
  /** A JSON body. */
  body?: unknown;
  /** A write: sent with idempotency headers. */
  write?: boolean;
  /** What the answer may carry (default `control`): decides the response byte cap. */
  kind?: ResponseKind;
  /** A `text/plain` answer (a checkpoint note), returned as a string instead of parsed JSON. */
  text?: boolean;
  /**
   * The log size the client already trusts, sent as `ProofKV-Min-Head`: a cluster member that is
   * behind it waits briefly or answers 503, and the request moves to the next endpoint.
   */
  minHead?: number;
}

/** A successful answer. */
export interface Reply<T> {
  status: number;
  body: T;
  /** The endpoint that answered. */
  endpoint: string;
  /** `ProofKV-Node-Id` of the node that answered, when sent. */
  nodeId?: string;
}

/** Default per-attempt timeout. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Default number of retries after the first attempt. */
export const DEFAULT_RETRIES = 3;
/** Default base delay of the exponential backoff. */
export const DEFAULT_RETRY_DELAY_MS = 100;
const MAX_BACKOFF_MS = 5_000;
const MAX_REDIRECTS = 8;
/** The server's default `maxValueSize` (`GET /v1/status` `limits`). */
export const DEFAULT_MAX_VALUE_SIZE = 1024 * 1024;
/** The server's default `maxPageBytes`: values per scan or history page. */
export const DEFAULT_MAX_PAGE_BYTES = 4 * 1024 * 1024;
/** Cap of answers that carry no values: write results, checkpoints, consistency proofs, status, problems. */
export const CONTROL_RESPONSE_BYTES = 1024 * 1024;

/**
 * Response byte caps derived from the server's limits. A value byte costs at most 9 bytes of JSON:
 * 4/3 as base64url in the entry, up to 6 as JSON-escaped `valueUtf8` text, 4/3 again inside a
 * base64url proof. `entry` (one entry and its proof) is `9 × maxValueSize + 1 MiB`; `page` (a scan
 * or history page, which stops after about `maxPageBytes` of values but always holds one item) is
 * `9 × (maxPageBytes + maxValueSize) + 1 MiB`; `control` is 1 MiB. Each is lowered to
 * `maxResponseBytes` when given.
 */
export function responseLimits(options: { serverLimits?: { maxValueSize?: number; maxPageBytes?: number }; maxResponseBytes?: number } = {}): Record<ResponseKind, number> {
  const value = options.serverLimits?.maxValueSize ?? DEFAULT_MAX_VALUE_SIZE;
  const page = options.serverLimits?.maxPageBytes ?? DEFAULT_MAX_PAGE_BYTES;
  for (const [n, v] of [['serverLimits.maxValueSize', value], ['serverLimits.maxPageBytes', page]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${n} must be a positive integer`);
  }
  const max = options.maxResponseBytes ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxResponseBytes must be a positive integer');
  return {
    control: Math.min(max, CONTROL_RESPONSE_BYTES),
    entry: Math.min(max, 9 * value + CONTROL_RESPONSE_BYTES),
    page: Math.min(max, 9 * (page + value) + CONTROL_RESPONSE_BYTES),
  };
}

/** The origin (`scheme://host:port`) of an http(s) URL, or undefined when it is not one. */
export function originOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : undefined;
  } catch {
    return undefined;
  }
}

/** Removes trailing slashes; checks the endpoint is an http(s) URL. */
export function normalizeEndpoint(url: string): string {
  if (typeof url !== 'string' || !/^https?:\/\/[^/]/i.test(url)) throw new TypeError(`endpoint must be an http(s) URL, got ${String(url)}`);
  return url.replace(/\/+$/, '');
}

function randomClientId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return toBase64Url(b);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class Timeout extends Error {}

/** Sends requests to a set of equivalent endpoints; see the module comment. */
export class Transport {
  /** The configured endpoints, normalized; the only places requests (and the token) go. */
  readonly endpoints: readonly string[];
  /** Byte caps of responses by kind. */
  readonly limits: Record<ResponseKind, number>;
  private readonly origins: (string | undefined)[];
  /** The random id this transport's writes carry in `ProofKV-Client-Id`. */
  readonly clientId: string;
  private current = 0;
  private seq = 0;
  private readonly fetchFn: FetchLike;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;

  constructor(private readonly options: TransportOptions) {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) throw new TypeError('at least one endpoint is required');
    this.endpoints = options.endpoints.map(normalizeEndpoint);
    this.origins = this.endpoints.map(originOf);
    this.limits = responseLimits(options);
    this.clientId = options.clientId ?? randomClientId();
    if (this.clientId.length < 1 || this.clientId.length > 64) throw new RangeError('clientId must have 1 to 64 characters');
    const f = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (typeof f !== 'function') throw new TypeError('no fetch available: pass options.fetch');
    this.fetchFn = (input, init) => f(input, init);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = options.retries ?? DEFAULT_RETRIES;
    this.retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    if (!(this.timeoutMs > 0)) throw new RangeError('timeoutMs must be positive');
    if (!Number.isInteger(this.retries) || this.retries < 0) throw new RangeError('retries must be a non-negative integer');
    if (!(this.retryDelayMs >= 0)) throw new RangeError('retryDelayMs must be non-negative');
  }

  /** The endpoint the next request goes to first. */
  get preferred(): string {
    return this.endpoints[this.current];
  }

  /** Sends `spec`, failing over and retrying as the module comment describes. */
  async request<T>(spec: RequestSpec): Promise<Reply<T>> {
    const headers: Record<string, string> = { accept: spec.text ? 'text/plain' : 'application/json' };
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`;
    if (spec.body !== undefined) headers['content-type'] = 'application/json';
    if (spec.minHead !== undefined && spec.minHead > 0) headers['proofkv-min-head'] = String(spec.minHead);
    if (spec.write) {
      headers['proofkv-client-id'] = this.clientId;
      headers['proofkv-request-seq'] = String(++this.seq);
    }
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    let failures = 0;
    let redirects = 0;
    const cap = this.limits[spec.kind ?? 'control'];
    for (;;) {
      const endpoint = this.endpoints[this.current];
      let res: Response;
      let text: string;
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(new Timeout('timeout')), this.timeoutMs);
      try {
        res = await this.fetchFn(endpoint + spec.path, { method: spec.method, headers, body, signal: ctl.signal, redirect: 'manual' });
        // Redirects are refused before any body is read: nothing is followed, with or without the token.
        if (res.type === 'opaqueredirect' || (res.status >= 300 && res.status < 400)) {
          await res.body?.cancel().catch(() => undefined);
          const to = res.headers.get('location');
          throw new ProofKVHttpError(
            res.status,
            { code: 'REDIRECT_REFUSED', detail: `redirect${to ? ` to ${to}` : ''} not followed: the client only talks to its configured endpoints` },
            endpoint,
          );
        }
        text = await readCapped(res, cap, endpoint);
      } catch (err) {
        clearTimeout(timer);
        if (err instanceof ProofKVResponseTooLargeError || err instanceof ProofKVHttpError) throw err;
        const timedOut = ctl.signal.aborted;
        failures++;
        this.rotate();
        if (failures > this.retries) throw new ProofKVNetworkError(endpoint, failures, timedOut, err);
        await this.backoff(failures);
        continue;
      }
      clearTimeout(timer);
      const nodeId = res.headers.get('proofkv-node-id') ?? undefined;
      const leader = res.status === 421 ? null : res.headers.get('proofkv-leader');
      if (leader !== null) this.prefer(leader);
      if (res.status >= 200 && res.status < 300) {
        return { status: res.status, body: (spec.text ? text : parseJson(text, endpoint, res.status)) as T, endpoint, nodeId };
      }
      const problem = parseProblem(text);
      if (res.status === 421) {
        if (++redirects > MAX_REDIRECTS) throw new ProofKVHttpError(res.status, problem, endpoint);
        this.follow(res.headers.get('proofkv-leader'));
        continue;
      }
      if (res.status === 503 || res.status === 502 || res.status === 504) {
        failures++;
        this.rotate();
        if (failures > this.retries) throw new ProofKVHttpError(res.status, problem, endpoint);
        await this.backoff(failures);
        continue;
      }
      throw new ProofKVHttpError(res.status, problem, endpoint);
    }
  }

  private rotate(): void {
    this.current = (this.current + 1) % this.endpoints.length;
  }

  /**
   * Follows a leader hint only to a configured endpoint with the hint's origin; a hint to any
   * other origin (or none, or one naming the endpoint that sent it) moves to the next endpoint.
   */
  private follow(leader: string | null): void {
    const i = this.endpointOf(leader);
    if (i === -1 || i === this.current) this.rotate();
    else this.current = i;
  }

  /**
   * Moves to the configured endpoint with the origin of a follower's leader hint, for the next
   * requests; a hint to any other origin (or to the endpoint already in use) changes nothing.
   */
  private prefer(leader: string): void {
    const i = this.endpointOf(leader);
    if (i !== -1) this.current = i;
  }

  /** The index of the configured endpoint with the origin of leader hint `leader`; -1 for none, or a hint naming no configured origin. */
  private endpointOf(leader: string | null): number {
    const origin = leader ? originOf(leader) : undefined;
    return origin === undefined ? -1 : this.origins.indexOf(origin);
  }

  private backoff(failures: number): Promise<void> {
    if (this.retryDelayMs === 0) return Promise.resolve();
    const base = Math.min(MAX_BACKOFF_MS, this.retryDelayMs * 2 ** (failures - 1));
    return sleep(base / 2 + Math.random() * (base / 2));
  }
}

/**
 * The body of `res` as text, at most `cap` bytes: a larger `Content-Length` is refused before
 * reading, and the stream is cancelled as soon as it passes the cap (an endless body costs at most
 * `cap` bytes).
 */
async function readCapped(res: Response, cap: number, endpoint: string): Promise<string> {
  const declared = res.headers.get('content-length');
  if (declared !== null && /^[0-9]+$/.test(declared.trim()) && Number(declared.trim()) > cap) {
    await res.body?.cancel().catch(() => undefined);
    throw new ProofKVResponseTooLargeError(endpoint, cap, Number(declared.trim()));
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > cap) {
      await reader.cancel().catch(() => undefined);
      throw new ProofKVResponseTooLargeError(endpoint, cap);
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(concatBytes(...chunks));
}

function parseJson(text: string, endpoint: string, status: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new MalformedResponse(`a ${status} response from ${endpoint} is not JSON (${text.length} chars)`);
  }
}

function parseProblem(text: string): Problem {
  try {
    const p = JSON.parse(text) as unknown;
    if (typeof p === 'object' && p !== null && !Array.isArray(p)) return p as Problem;
  } catch {
    // not a problem document: fall through
  }
  return {};
}
