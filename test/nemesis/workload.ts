/**
 * The clients of a nemesis run: several {@link ProofKVClient}s, each a loop of seeded random
 * operations over a small key set, every operation recorded as an {@link OpRecord}.
 *
 * - Writes: puts of unique values (`c<client>-<n>`), `ifVersion` and `ifAbsent` puts, deletes,
 *   appends of unique suffixes (`|c<client>-<n>`, so a value is its tokens joined by `|` and the
 *   last token names the write that made the version), and batches of 2–3 distinct keys (at least
 *   one put). Every write carries the SDK's idempotency session (`ProofKV-Client-Id`,
 *   `ProofKV-Request-Seq`): the SDK retries one request with the same pair on network errors,
 *   timeouts and 502/503/504, across members (`client-sdk/transport.ts`). An operation the SDK
 *   gave up on is recorded `info` and not sent again with a new seq (that would be a new write).
 * - Reads: linearizable and serializable gets, plain history reads (from a little below the
 *   newest version the client has seen), `verifiedGet` and `verifiedHistory`.
 * - Each operation has a deadline (`opTimeoutMs`; the SDK's per-attempt timeout is a quarter of
 *   it): at the deadline it is recorded `info` and the client goes on; the client's `fetch`
 *   refuses every further attempt of that operation (its gate, found through `AsyncLocalStorage`),
 *   so it ends in the background within the SDK's backoff, sending nothing more.
 * - The log heads each client verified are kept (`trustedHeads`) for the fork/rollback check.
 *
 * Memory is bounded: the clients start no operation once `maxOps` (default 500 000) are
 * recorded (an operation missing from the history would make its value look written by no one),
 * so at most `maxOps + clients` are kept; at most `maxHeads` distinct trusted heads (default 5000) are kept, the rest
 * counted in `droppedHeads`.
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ProofKVClient, ProofKVHttpError, ProofKVNetworkError, VerificationError, MemoryStateStore, type Entry, type FetchLike } from '../../client-sdk/index.js';
import { keyPath } from '../../client-sdk/bytes.js';
import { streamFetch, type StreamFetch, type StreamFetchStats } from '../../client-sdk/stream_fetch.js';
import { parseEntry } from '../../client-sdk/wire.js';
import { mulberry32 } from '../support/prng.js';
import { HistoryLog, type OpKind, type OpRecord, type Outcome } from './history.js';

/** Settings of a {@link Workload}. */
export interface WorkloadOptions {
  /** The members' client URLs now (asked before each operation: members come and go). */
  endpoints: () => string[];
  /** The members' public keys the clients trust. */
  publicKeys: Uint8Array[];
  /** Signatures a checkpoint needs (a majority). */
  quorum: number;
  /** Number of clients (1 to 64). */
  clients: number;
  /** Number of keys (`k0` …; 1 to 1000). */
  keys: number;
  /** Seed of every client's choices. */
  seed: number;
  /** Deadline of one operation, ms. */
  opTimeoutMs: number;
  /** `performance.now()` at the start of the run: times are ms after it (default: when `start` is called). */
  origin?: number;
  /** Pause between two operations of a client, ms (default 5). */
  thinkMs?: number;
  /** Operations kept in memory (default 500 000). */
  maxOps?: number;
  /** Distinct trusted heads kept (default 5000). */
  maxHeads?: number;
  /**
   * How the clients reach the members (default `http`): `stream` gives each client's SDK a
   * `streamFetch()` (docs/stream-protocol.md), so its GETs, PUTs, DELETEs and proofs go over
   * `proofkv-stream/1` connections and every other route over HTTP; the checks are the same.
   */
  protocol?: NemesisProtocol;
}

/** The client protocols of a nemesis run. */
export const NEMESIS_PROTOCOLS = ['http', 'stream'] as const;
/** A client protocol of a nemesis run: plain HTTP, or the stream for the hot key routes. */
export type NemesisProtocol = (typeof NEMESIS_PROTOCOLS)[number];

/** How often each kind is chosen (relative weights). */
export const OP_WEIGHTS: ReadonlyArray<[OpKind, number]> = [
  ['put', 20],
  ['put-if-version', 8],
  ['put-if-absent', 4],
  ['delete', 4],
  ['append', 8],
  ['batch', 6],
  ['get', 20],
  ['get-serializable', 8],
  ['history', 8],
  ['verified-get', 8],
  ['verified-history', 4],
];

const td = new TextDecoder();

/** The deadline of one operation, and the member its last request went to. */
interface Gate {
  closed: boolean;
  ctl: AbortController;
  endpoint: string;
}

/** The gate of the operation a request belongs to (requests of one client may overlap after a deadline). */
const opGate = new AsyncLocalStorage<Gate>();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The stable code of an error, for `OpRecord.error`. */
export function errorCode(err: unknown): string {
  if (err instanceof ProofKVHttpError) return err.code;
  if (err instanceof VerificationError) return `VERIFY_${String(err.reason)}`;
  if (err instanceof ProofKVNetworkError) return err.timedOut ? 'TIMEOUT' : 'NETWORK';
  if (err instanceof Error) return err.name === 'MalformedResponse' ? 'MALFORMED' : err.name || 'ERROR';
  return 'ERROR';
}

/**
 * The outcome of a failed operation: a read that failed did nothing (`fail`); a write failed for
 * sure only when the server refused it before applying (`CONDITION_FAILED` and the 4xx codes of a
 * bad request); anything else — no answer, a timeout, 5xx, a redirect loop — may have been
 * applied (`info`).
 */
export function failureOutcome(err: unknown, write: boolean): Outcome {
  if (!write) return err instanceof ProofKVNetworkError ? 'info' : 'fail';
  if (err instanceof ProofKVHttpError) {
    if (err.code === 'CONDITION_FAILED') return 'fail';
    if ([400, 401, 403, 404, 405, 413, 415, 422].includes(err.status)) return 'fail';
  }
  return 'info';
}

/** The value of an entry: its UTF-8 text, or null for a tombstone. */
function valueOf(e: Entry): string | null {
  return e.kind === 'delete' ? null : td.decode(e.value);
}

/** One client: its SDK instance (rebuilt when the member list changes) and its choices. */
class Client {
  readonly process: string;
  private sdk!: ProofKVClient;
  private clientId = '';
  private endpointsKey = '';
  private generation = 0;
  /** Writes sent by the current SDK instance: its transport numbers them 1, 2, … (`ProofKV-Request-Seq`). */
  private writes = 0;
  private n = 0;
  private readonly rng: () => number;
  /** The newest version this client saw of each key. */
  private readonly seen = new Map<string, number>();
  private readonly store = new MemoryStateStore();
  private lastHeadSize = -1;
  /** The client's `streamFetch` (protocol `stream`): one for the whole run, its connections keyed by endpoint. */
  readonly stream: StreamFetch | undefined;

  constructor(
    readonly index: number,
    private readonly w: Workload,
    private readonly o: WorkloadOptions,
  ) {
    this.process = `c${index}`;
    this.rng = mulberry32((o.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
    // Its HTTP requests (the other routes) take the global fetch, as the `http` protocol's do.
    if (o.protocol === 'stream') this.stream = streamFetch({ fetch: (input, init) => fetch(input, init) });
  }

  /** The SDK for the current member list (a new one, with a new client id, when it changed). */
  private client(): ProofKVClient {
    const endpoints = this.o.endpoints();
    const key = endpoints.join(',');
    if (this.sdk && key === this.endpointsKey) return this.sdk;
    this.endpointsKey = key;
    this.generation++;
    this.writes = 0;
    this.clientId = `nemesis-${this.o.seed}-c${this.index}-g${this.generation}`;
    const perAttempt = Math.max(250, Math.floor(this.o.opTimeoutMs / 4));
    const send: FetchLike = this.stream ?? ((input, init) => fetch(input, init));
    const fetchFn: FetchLike = (input, init) => {
      const gate = opGate.getStore();
      if (!gate) return send(input, init);
      if (gate.closed) return Promise.reject(new Error('operation deadline passed'));
      gate.endpoint = new URL(input).origin;
      const signal = init.signal ? AbortSignal.any([init.signal, gate.ctl.signal]) : gate.ctl.signal;
      return send(input, { ...init, signal });
    };
    this.sdk = new ProofKVClient({
      endpoints,
      trust: { publicKeys: this.o.publicKeys, quorum: this.o.quorum },
      // Shared by every generation: the trusted head carries over when the member list changes.
      stateStore: this.store,
      clientId: this.clientId,
      timeoutMs: perAttempt,
      retries: 6,
      retryDelayMs: 50,
      fetch: fetchFn,
      checkpointWaitMs: this.o.opTimeoutMs,
      onWarning: () => {},
    });
    return this.sdk;
  }

  private kind(): OpKind {
    const total = OP_WEIGHTS.reduce((s, [, w]) => s + w, 0);
    let x = this.rng() * total;
    for (const [k, w] of OP_WEIGHTS) {
      if ((x -= w) < 0) return k;
    }
    return 'get';
  }

  private key(): string {
    return `k${Math.floor(this.rng() * this.o.keys)}`;
  }

  private token(): string {
    return `c${this.index}-${++this.n}`;
  }

  private saw(key: string, version: number | undefined): void {
    if (version !== undefined && version > (this.seen.get(key) ?? 0)) this.seen.set(key, version);
  }

  /** Runs operations until the workload stops. */
  async loop(): Promise<void> {
    const think = this.o.thinkMs ?? 5;
    while (!this.w.stopping && !this.w.full) {
      await this.one();
      if (think > 0) await sleep(think);
    }
  }

  /** Chooses, runs and records one operation. */
  async one(): Promise<void> {
    const sdk = this.client();
    const kind = this.kind();
    const key = this.key();
    const op: OpRecord = { id: this.w.nextId(), client: this.index, process: this.process, kind, key, call: 0, ret: Infinity, outcome: 'info', endpoint: '' };
    let run: () => Promise<OpRecord['result']>;
    const write = (value: string | undefined) => {
      op.session = { clientId: this.clientId, seq: ++this.writes };
      if (value !== undefined) op.value = value;
    };
    switch (kind) {
      case 'put': {
        const v = this.token();
        write(v);
        run = async () => {
          return { version: (await sdk.put(key, v)).version };
        };
        break;
      }
      case 'put-if-version': {
        const v = this.token();
        // The newest version seen, sometimes one off, so that the condition also fails.
        const r = this.rng();
        const seen = this.seen.get(key) ?? 0;
        op.ifVersion = Math.max(0, r < 0.15 ? seen - 1 : r < 0.25 ? seen + 1 : seen);
        write(v);
        run = async () => {
          return { version: (await sdk.put(key, v, { ifVersion: op.ifVersion })).version };
        };
        break;
      }
      case 'put-if-absent': {
        const v = this.token();
        write(v);
        run = async () => {
          return { version: (await sdk.put(key, v, { ifAbsent: true })).version };
        };
        break;
      }
      case 'delete':
        write(undefined);
        run = async () => {
          return { version: (await sdk.delete(key)).version };
        };
        break;
      case 'append': {
        const v = `|${this.token()}`;
        write(v);
        run = async () => {
          return { version: (await sdk.append(key, v)).version };
        };
        break;
      }
      case 'batch': {
        const keys = new Set<string>([key]);
        const size = 2 + Math.floor(this.rng() * 2);
        for (let i = 0; i < 8 && keys.size < size; i++) keys.add(this.key());
        op.ops = [...keys].map((k, i) => (i === 0 || this.rng() < 0.8 ? { key: k, value: this.token() } : { key: k }));
        write(undefined);
        const members = op.ops;
        run = async () => {
          const res = await sdk.batch(members.map((m) => (m.value === undefined ? { op: 'delete' as const, key: m.key } : { op: 'put' as const, key: m.key, value: m.value })));
          return { versions: res.map((r, i) => ({ version: r.version, value: members[i].value ?? null })) };
        };
        break;
      }
      case 'get':
        run = async () => {
          const e = await sdk.get(key);
          return e ? { value: valueOf(e), version: e.version } : { value: null };
        };
        break;
      case 'get-serializable':
        run = async () => {
          const { segment, base64 } = keyPath(new TextEncoder().encode(key));
          try {
            const r = await sdk.transport.request<unknown>({ method: 'GET', path: `/v1/kv/${segment}?consistency=serializable${base64 ? '&keyEncoding=base64url' : ''}`, kind: 'entry' });
            const e = parseEntry(r.body);
            return { value: valueOf(e), version: e.version };
          } catch (err) {
            if (err instanceof ProofKVHttpError && err.status === 404 && err.code === 'NOT_FOUND') return { value: null };
            throw err;
          }
        };
        break;
      case 'history': {
        const minVersion = Math.max(0, (this.seen.get(key) ?? 0) - 4);
        run = async () => {
          const page = await sdk.history(key, { minVersion, limit: 1000 });
          return { versions: page.entries.map((e) => ({ version: e.version, value: valueOf(e) })), complete: page.cursor === undefined, minVersion };
        };
        break;
      }
      case 'verified-get':
        run = async () => {
          const r = await sdk.verifiedGet(key);
          return { value: r.entry ? valueOf(r.entry) : null, version: r.version, checkpointSize: r.head.size };
        };
        break;
      case 'verified-history': {
        const minVersion = Math.max(0, (this.seen.get(key) ?? 0) - 8);
        run = async () => {
          const r = await sdk.verifiedHistory(key, { minVersion });
          return { versions: r.entries.map((e) => ({ version: e.version, value: valueOf(e) })), checkpointSize: r.head.size, complete: true, minVersion };
        };
        break;
      }
    }
    // The deadline: the operation is recorded as unknown at once, and every further attempt of
    // it is refused (its fetches see its closed gate), so it ends in the background soon after.
    const gate: Gate = { closed: false, ctl: new AbortController(), endpoint: '' };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => {
        gate.closed = true;
        gate.ctl.abort(new Error('operation deadline passed'));
        resolve('deadline');
      }, this.o.opTimeoutMs);
    });
    op.call = this.w.now();
    const done = opGate.run(gate, run);
    done.catch(() => undefined);
    try {
      const first = await Promise.race([done.then((r) => ({ r })), deadline]);
      if (first === 'deadline') {
        op.error = 'TIMEOUT';
        op.outcome = 'info';
      } else {
        op.ret = this.w.now();
        op.outcome = 'ok';
        op.result = first.r;
      }
    } catch (err) {
      op.error = gate.closed ? 'TIMEOUT' : errorCode(err);
      op.outcome = gate.closed ? 'info' : failureOutcome(err, op.session !== undefined);
      if (op.outcome === 'fail') op.ret = this.w.now();
    } finally {
      clearTimeout(timer);
    }
    op.endpoint = gate.endpoint;
    const r = op.result;
    if (op.outcome === 'ok' && r) {
      this.saw(key, r.version);
      if (kind === 'batch') r.versions!.forEach((v, i) => this.saw(op.ops![i].key, v.version));
      else for (const v of r.versions ?? []) this.saw(key, v.version);
    }
    this.w.record(op);
    if (op.outcome === 'ok' && (kind === 'verified-get' || kind === 'verified-history')) {
      const head = await sdk.trust.trustedHead();
      if (head && head.size !== this.lastHeadSize) {
        this.lastHeadSize = head.size;
        this.w.trusted(head);
      }
    }
  }
}

/**
 * The clients of a run. `start()` starts every client's loop; `stop()` lets each finish its
 * operation in flight (bounded by the deadline) and resolves when all stopped.
 */
export class Workload {
  private readonly log: HistoryLog;
  private readonly maxOps: number;
  private readonly clients: Client[] = [];
  private readonly heads = new Map<string, { size: number; root: Uint8Array }>();
  private loops: Promise<void>[] = [];
  private origin: number | undefined;
  private id = 0;
  /** Set by `stop()`. */
  stopping = false;
  /** Distinct trusted heads not kept because `maxHeads` was reached. */
  droppedHeads = 0;

  constructor(private readonly o: WorkloadOptions) {
    if (typeof o.endpoints !== 'function') throw new TypeError('endpoints must be a function');
    if (!Number.isInteger(o.clients) || o.clients < 1 || o.clients > 64) throw new RangeError('clients must be an integer in [1, 64]');
    if (!Number.isInteger(o.keys) || o.keys < 1 || o.keys > 1000) throw new RangeError('keys must be an integer in [1, 1000]');
    if (!(o.opTimeoutMs >= 100)) throw new RangeError('opTimeoutMs must be at least 100');
    if (!Number.isInteger(o.quorum) || o.quorum < 1 || o.quorum > o.publicKeys.length) throw new RangeError('quorum must be in [1, publicKeys.length]');
    if (o.protocol !== undefined && !NEMESIS_PROTOCOLS.includes(o.protocol)) throw new RangeError(`protocol must be one of ${NEMESIS_PROTOCOLS.join(', ')}`);
    this.maxOps = o.maxOps ?? 500_000;
    // Room for the operation each client has in flight when the cap is reached: none is dropped.
    this.log = new HistoryLog(this.maxOps + o.clients);
    this.origin = o.origin;
    for (let i = 0; i < o.clients; i++) this.clients.push(new Client(i, this, o));
  }

  /** Milliseconds since the run's origin. */
  now(): number {
    return performance.now() - (this.origin ?? performance.now());
  }

  /** Starts every client. */
  start(): void {
    if (this.loops.length > 0) throw new Error('the workload already started');
    this.origin ??= performance.now();
    this.loops = this.clients.map((c) => c.loop());
  }

  /** Stops every client after its operation in flight; resolves when all stopped. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    for (const c of this.clients) c.stream?.close();
  }

  /**
   * What the clients' `streamFetch`es did (protocol `stream`; all zero over `http`): requests
   * answered over the stream, requests sent over HTTP, connections opened.
   */
  streamStats(): Omit<StreamFetchStats, 'open'> {
    const sum = { streamed: 0, http: 0, opened: 0 };
    for (const c of this.clients) {
      const s = c.stream?.stats();
      if (!s) continue;
      sum.streamed += s.streamed;
      sum.http += s.http;
      sum.opened += s.opened;
    }
    return sum;
  }

  /** The recorded operations, by id. */
  history(): OpRecord[] {
    return this.log.list();
  }

  /** Operations not kept because `maxOps` was reached. */
  get droppedOps(): number {
    return this.log.dropped;
  }

  /**
   * True once `maxOps` operations are recorded: the clients then start no more (an operation
   * left out of the history would make its value look written by no one); the ones in flight
   * are still recorded.
   */
  get full(): boolean {
    return this.log.size >= this.maxOps;
  }

  /** Every distinct log head a client verified and trusted, by size. */
  trustedHeads(): Array<{ size: number; root: Uint8Array }> {
    return [...this.heads.values()].sort((a, b) => a.size - b.size);
  }

  /** @internal */
  nextId(): number {
    return ++this.id;
  }

  /** @internal */
  record(op: OpRecord): void {
    this.log.add(op);
  }

  /** @internal */
  trusted(head: { size: number; root: Uint8Array }): void {
    const k = `${head.size}:${Buffer.from(head.root).toString('hex')}`;
    if (this.heads.has(k)) return;
    if (this.heads.size >= (this.o.maxHeads ?? 5000)) {
      this.droppedHeads++;
      return;
    }
    this.heads.set(k, { size: head.size, root: head.root.slice() });
  }
}

