/**
 * HTTP transport of the client: endpoint failover with leader hints, per-attempt timeouts,
 * retries with exponential backoff, and idempotency headers for writes. Isomorphic: it only uses
 * the platform's `fetch`, `AbortController`, `setTimeout` and `crypto.getRandomValues`.
 *
 * ```
 * attempt ──► endpoint[current] ──► 2xx ─────────────► parsed JSON body
 *                 │                 421 NOT_LEADER ──► current = ProofKV-Leader (added if new),
 *                 │                                    else the next endpoint; retry at once
 *                 │                 503/502/504 ─────► next endpoint, back off, retry
 *                 │                 other 4xx/5xx ───► ProofKVHttpError (no retry)
 *                 └── network error or timeout ─────► next endpoint, back off, retry
 * ```
 * A write carries `ProofKV-Client-Id` (random per transport) and `ProofKV-Request-Seq` (one per
 * logical write, increasing, reused by every retry of it), so the server applies a retried write
 * once. After `retries` retries the last failure is thrown (`ProofKVNetworkError` for network
 * errors and timeouts, `ProofKVHttpError` for a last 503).
 * @module
 */
import { toBase64Url } from './bytes.js';
import { ProofKVClientError, ProofKVHttpError, ProofKVNetworkError, type Problem } from './errors.js';

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
}

/** One logical request. */
export interface RequestSpec {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path and query, starting with `/`. */
  path: string;
  /** A JSON body. */
  body?: unknown;
  /** A write: sent with idempotency headers. */
  write?: boolean;
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
  /** The endpoints, normalized; a leader learned from a hint is appended. */
  readonly endpoints: string[];
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
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`;
    if (spec.body !== undefined) headers['content-type'] = 'application/json';
    if (spec.write) {
      headers['proofkv-client-id'] = this.clientId;
      headers['proofkv-request-seq'] = String(++this.seq);
    }
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    let failures = 0;
    let redirects = 0;
    for (;;) {
      const endpoint = this.endpoints[this.current];
      let res: Response;
      let text: string;
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(new Timeout('timeout')), this.timeoutMs);
      try {
        res = await this.fetchFn(endpoint + spec.path, { method: spec.method, headers, body, signal: ctl.signal });
        text = await res.text();
      } catch (err) {
        clearTimeout(timer);
        const timedOut = ctl.signal.aborted;
        failures++;
        this.rotate();
        if (failures > this.retries) throw new ProofKVNetworkError(endpoint, failures, timedOut, err);
        await this.backoff(failures);
        continue;
      }
      clearTimeout(timer);
      const nodeId = res.headers.get('proofkv-node-id') ?? undefined;
      if (res.status >= 200 && res.status < 300) {
        return { status: res.status, body: parseJson(text, endpoint, res.status) as T, endpoint, nodeId };
      }
      const problem = parseProblem(text);
      if (res.status === 421) {
        if (++redirects > MAX_REDIRECTS) throw new ProofKVHttpError(res.status, problem, endpoint);
        const leader = res.headers.get('proofkv-leader');
        if (leader) this.follow(leader);
        else this.rotate();
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

  private follow(leader: string): void {
    let url: string;
    try {
      url = normalizeEndpoint(leader);
    } catch {
      this.rotate();
      return;
    }
    let i = this.endpoints.indexOf(url);
    if (i === -1) i = this.endpoints.push(url) - 1;
    this.current = i;
  }

  private backoff(failures: number): Promise<void> {
    if (this.retryDelayMs === 0) return Promise.resolve();
    const base = Math.min(MAX_BACKOFF_MS, this.retryDelayMs * 2 ** (failures - 1));
    return sleep(base / 2 + Math.random() * (base / 2));
  }
}

function parseJson(text: string, endpoint: string, status: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ProofKVClientError(`malformed JSON in a ${status} response from ${endpoint}`, { cause: err });
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
