/**
 * `ProofKVClient`: plain and verified operations over the HTTP API (`docs/http-api.md`).
 * Isomorphic: no `node:` imports.
 *
 * Plain calls (`put`, `get`, `delete`, `batch`, `history`, `scan`) return what the server says.
 * Verified calls return only what a proof establishes against a checkpoint that a quorum of
 * trusted keys signed, whose head is at least the trusted head when the call began and consistent
 * with the current one (`TrustKeeper.acceptAnswer`); on any failure they throw
 * {@link VerificationError}, return nothing and leave the trusted state as it was:
 *
 * | call | proves |
 * |---|---|
 * | `verifiedGet(k, { version })` | the newest entry of `k` at or below `version` (or the latest) at the checkpoint — value or tombstone — or that there is none |
 * | `verifiedHistory(k, { minVersion, maxVersion, since, until })` | these are all versions of `k` in the range (committed in [since, until] when given), none omitted or added (page by page, each page proven) |
 * | `verifiedScan({ prefix } \| { start, end }, { limit, includeTombstones })` | page by page: these are exactly the keys live in the range at the checkpoint, each with its newest version and value, none omitted or added; each page complete up to its proven cursor |
 * | `verifiedPut(k, v, { version })` / `verifiedDelete(k)` | this request's write is in a certified checkpoint: the entry (k, version, seq) holds exactly this value (or a tombstone), its seq is above the trusted checkpoint's before sending (no older write qualifies), its version is the asked one; and whether it is the newest version there (`newest`, else `newer`) |
 * | `checkpoint()` | the latest checkpoint is signed by a quorum, is the last leaf of its head, links to its predecessor, and that head extends the trusted one |
 *
 * Proofs cover data up to the latest checkpoint; writes after it are proven from the next one on
 * (the server checkpoints every second by default).
 * @module
 */
import { compareBytes, equalBytes } from '../proofs/bytes.js';
import { verifyGetProof, verifyHistoryProof, type GetFacts, type GetProof, type HistoryFacts, type HistoryProof } from '../proofs/lsm_proof.js';
import { getProofCodec, historyProofCodec, scanProofCodec } from '../proofs/lsm_encoding.js';
import { keySuccessor, prefixEnd, verifyScanProof, type ScanFacts, type ScanProof } from '../proofs/lsm_scan.js';
import type { Checkpoint, LogHead } from '../proofs/checkpoint.js';
import type { SignerSet } from '../proofs/signer_set.js';
import type { KeyRotation } from '../proofs/rotation.js';
import { Reason, VerificationError } from '../proofs/errors.js';
import { inTimeWindow, windowHistory } from '../proofs/lsm_time.js';
import { timeWindowOf, type TimeRange } from './time.js';
import { asBytes, fromBase64Url, keyPath, toBase64Url, type BytesLike } from './bytes.js';
import { ClientReason, ProofKVClientError, ProofKVHttpError, verificationFailure } from './errors.js';
import { MemoryStateStore, type StateStore } from './state.js';
import { Transport, type FetchLike, type RequestSpec } from './transport.js';
import { check, proveLeaf, sameCheckpoint, TrustKeeper, type AcceptContext, type IncludedCheckpoint, type SetChangePage, type TrustConfig } from './trust.js';
import {
  b64,
  b64List,
  MalformedResponse,
  obj,
  parseEntry,
  parseSetChange,
  parseSignedCheckpoint,
  parseWrite,
  uint,
  type Entry,
  type WriteResult,
} from './wire.js';

/** Settings of a {@link ProofKVClient}. */
export interface ProofKVClientOptions {
  /**
   * Base URLs of the nodes (`http://127.0.0.1:7070`); requests fail over between them. With a
   * cluster, give every member: once a follower names the leader (`ProofKV-Leader`), the client
   * sends its requests to the endpoint with the leader's origin, never to an unlisted one.
   */
  endpoints: string[];
  /** Bearer token (`read`, `write` or `admin` role). */
  token?: string;
  /** Trusted keys and quorum, or `{ tofu: true }` to pin the first key seen (with a warning). */
  trust: TrustConfig;
  /** Where the trusted head persists; default a {@link MemoryStateStore} (lost on exit). */
  stateStore?: StateStore;
  /** Per-attempt timeout in ms (default 10 000). */
  timeoutMs?: number;
  /** Retries after the first attempt on network errors, timeouts and 502/503/504 (default 3). */
  retries?: number;
  /** Base delay of the exponential backoff between retries, ms (default 100; 0 disables waiting). */
  retryDelayMs?: number;
  /** `fetch` to use (default `globalThis.fetch`). */
  fetch?: FetchLike;
  /** `ProofKV-Client-Id` for idempotent writes (default: 16 random bytes, base64url). */
  clientId?: string;
  /** Receives warnings (TOFU pinning); default `console.warn`. */
  onWarning?: (message: string) => void;
  /** How long `verifiedPut` waits for a checkpoint that covers the write, ms (default 30 000). */
  checkpointWaitMs?: number;
  /** Polling interval of `verifiedPut` when it cannot create checkpoints, ms (default 200). */
  pollIntervalMs?: number;
  /** Page size of `verifiedHistory` requests (default 1000). */
  historyPageSize?: number;
  /**
   * The server's `maxValueSize` and `maxPageBytes` (`GET /v1/status` `limits`) when they differ
   * from the defaults (1 MiB, 4 MiB): response byte caps derive from them (`responseLimits`).
   */
  serverLimits?: { maxValueSize?: number; maxPageBytes?: number };
  /** A ceiling on every response body, bytes (lowers the derived caps). */
  maxResponseBytes?: number;
  /**
   * Ask for and require edge proofs (docs/proofs.md §8.12) in verified reads: every table the read
   * consults also proves the entry at its claimed key-range edge, so a signer that shrinks a table's
   * range to hide a newer version or a history entry is caught by the client alone
   * (`RANGE_MISMATCH`). Default `true`; `false` saves up to a few hundred bytes per proof and
   * leaves table ranges to the signers' honesty.
   */
  edgeProofs?: boolean;
}

/** A page of plain history. */
export interface HistoryPage {
  /** Oldest first, tombstones included. */
  entries: Entry[];
  /** Pass as `cursor` to continue; absent on the last page. */
  cursor?: string;
}

/** A page of a plain scan. */
export interface ScanPage {
  /** Latest live values in key order. */
  items: Entry[];
  /** Pass as `cursor` to continue; absent on the last page. */
  cursor?: string;
}

/**
 * The condition of a write: at most one of the two. A failed condition is a
 * {@link ProofKVHttpError} with `code` `CONDITION_FAILED` (409) whose `currentVersion` and
 * `absent` say what the key held; nothing was written (in a batch, no operation).
 */
export interface WriteCondition {
  /** Write only if the key's newest version is this one (a tombstone's version matches; 0: never written). */
  ifVersion?: number;
  /** Write only if the key has no live version (never written, or deleted). Not for deletes. */
  ifAbsent?: boolean;
}

/**
 * A batch operation; keys and values as strings (UTF-8) or bytes. `append` appends `value` to
 * the key's newest live value.
 */
export type BatchOp =
  | ({ op: 'put'; key: BytesLike; value: BytesLike; version?: number } & WriteCondition)
  | { op: 'delete'; key: BytesLike; ifVersion?: number }
  | ({ op: 'append'; key: BytesLike; value: BytesLike } & WriteCondition);

/** A checkpoint the client verified and accepted. */
export interface VerifiedCheckpoint {
  /** The checkpoint, proven to be the last leaf of `head`. */
  checkpoint: Checkpoint;
  /** The signed log head that ends with `checkpoint`. */
  head: LogHead;
  /** The keys of the trusted set (or of the checkpoint's own signer set) whose signatures are on the head. */
  signers: Uint8Array[];
  /** The trusted head before this call (undefined on first contact). */
  previous?: LogHead;
  /** The configured witnesses whose cosignature on `head` verified (`trust.witnesses`; empty without). */
  witnesses: string[];
  /** The signer set a v2 checkpoint commits to, now trusted (docs/proofs.md §5.6); undefined for v1. */
  signerSet?: SignerSet;
}

/** What `verifiedGet` proved. */
export interface VerifiedGetResult {
  /** The newest entry at or below the asked version (value or tombstone), or undefined when none exists. */
  entry?: Entry;
  /** The value when `entry` is a put; undefined when the key is absent or deleted. */
  value?: Uint8Array;
  /** `entry.version`, when there is an entry. */
  version?: number;
  /** The checkpoint the proof is against. */
  checkpoint: Checkpoint;
  /** The signed head that includes it. */
  head: LogHead;
  /** The configured witnesses whose cosignature on `head` verified (`trust.witnesses`; empty without). */
  witnesses: string[];
}

/** What `verifiedHistory` proved. */
export interface VerifiedHistoryResult {
  /** Every version of the key in [minVersion, maxVersion], oldest first, tombstones included. */
  entries: Entry[];
  minVersion: number;
  maxVersion: number;
  /** The checkpoint of the last page (pages may span checkpoints; history is append-only). */
  checkpoint: Checkpoint;
  head: LogHead;
  /** The configured witnesses whose cosignature on the last page's head verified (`trust.witnesses`; empty without). */
  witnesses: string[];
}

/** The key range of a verified scan: a prefix, or `start` (inclusive) to `end` (exclusive); empty: every key. */
export type ScanRange = { prefix: BytesLike } | { start?: BytesLike; end?: BytesLike };

/** One page of `verifiedScan`. */
export interface VerifiedScanPage {
  /** The newest entry of every key of the page that is live (or, with `includeTombstones`, deleted), in key order. */
  entries: Entry[];
  /** Keys the page covers, deleted ones included (at most the page limit). */
  keysCovered: number;
  /**
   * The proven cursor: the page's last key (base64url) when more may follow. The page is complete
   * up to and including it; pass it as `cursor` to resume right after it. Absent on the last page.
   */
  cursor?: string;
  /** The checkpoint this page is proven against (pages may span checkpoints). */
  checkpoint: Checkpoint;
  head: LogHead;
}

/** What `verifiedPut` / `verifiedDelete` proved. */
export interface VerifiedPutResult extends WriteResult {
  /** `put` for {@link ProofKVClient.verifiedPut}, `delete` for {@link ProofKVClient.verifiedDelete}. */
  kind: 'put' | 'delete';
  /** The certified checkpoint whose proofs show the write (its head extends the trusted one). */
  checkpoint: Checkpoint;
  head: LogHead;
  /**
   * Seq of the trusted checkpoint before the request was sent (0 when the server had none): the
   * proven entry's seq is above it, so no write older than the request can be the one proven.
   */
  baselineSeq: number;
  /** True when the write is the newest version of the key at `checkpoint`. */
  newest: boolean;
  /** When not `newest`: the newest entry of the key at `checkpoint` (a later write, or a tombstone). */
  newer?: { version: number; seq: number; kind: 'put' | 'delete' };
}

/** Largest version (2^53 - 1). */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function checkVersion(v: number | undefined, name: string, min = 1): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw new RangeError(`${name} must be an integer in [${min}, 2^53 - 1], got ${String(v)}`);
}

/** The `edges` option of a raw proof call: a boolean, default false. */
function edgesOption(v: boolean | undefined): boolean {
  if (v !== undefined && typeof v !== 'boolean') throw new TypeError('edges must be a boolean');
  return v === true;
}

/** Checks a condition; its wire fields (query parameters or batch-op fields). */
function conditionWire(c: WriteCondition, what: string): { ifVersion?: number; ifAbsent?: true } {
  checkVersion(c.ifVersion, `${what}ifVersion`, 0);
  if (c.ifAbsent !== undefined && typeof c.ifAbsent !== 'boolean') throw new TypeError(`${what}ifAbsent must be a boolean`);
  if (c.ifVersion !== undefined && c.ifAbsent) throw new TypeError(`${what}give ifVersion or ifAbsent, not both`);
  return c.ifVersion !== undefined ? { ifVersion: c.ifVersion } : c.ifAbsent ? { ifAbsent: true } : {};
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) if (v !== undefined) parts.push(`${k}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** A malformed body in a verified call is a verification failure: it proves nothing. */
function malformedAsVerification(err: unknown): never {
  if (err instanceof MalformedResponse) throw new VerificationError(Reason.MALFORMED_ENCODING, err.message, { cause: err });
  throw err;
}

/** Runs `f`, turning a {@link MalformedResponse} into `VerificationError(MALFORMED_ENCODING)`. */
async function decoding<T>(f: () => T | Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    return malformedAsVerification(err);
  }
}

function sameEntry(a: Entry, b: Entry): boolean {
  return (
    equalBytes(a.key, b.key) &&
    a.version === b.version &&
    a.seq === b.seq &&
    a.time === b.time &&
    a.kind === b.kind &&
    (a.kind === 'delete' || equalBytes(a.value, b.value))
  );
}


/**
 * The ProofKV client. One instance per trust configuration; it is safe to share between
 * concurrent calls: acceptances run one at a time, and freshness is judged per request (an
 * answer only needs to be at least as new as the trusted head when its request was sent).
 *
 * ```ts
 * const client = new ProofKVClient({ endpoints: ['http://127.0.0.1:7070'], trust: { publicKeys: [key], quorum: 1 },
 *   stateStore: new FileStateStore('~/.proofkv/trust.json') });
 * await client.put('greeting', 'hello');
 * const { value, version, checkpoint } = await client.verifiedGet('greeting');
 * ```
 */
export class ProofKVClient {
  /** The HTTP transport (endpoints, client id). */
  readonly transport: Transport;
  /** The trusted state keeper. */
  readonly trust: TrustKeeper;
  private readonly checkpointWaitMs: number;
  private readonly pollIntervalMs: number;
  private readonly historyPageSize: number;
  private readonly edges: boolean;
  /** False once the server refused `POST /v1/checkpoints` (token below admin). */
  private canCreateCheckpoints = true;
  private readonly ctx: AcceptContext;

  constructor(options: ProofKVClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options are required');
    this.transport = new Transport(options);
    const warn = options.onWarning ?? ((m: string) => console.warn(m));
    this.trust = new TrustKeeper(options.trust, options.stateStore ?? new MemoryStateStore(), this.transport.endpoints, warn);
    this.checkpointWaitMs = options.checkpointWaitMs ?? 30_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    this.historyPageSize = options.historyPageSize ?? 1000;
    this.edges = options.edgeProofs ?? true;
    if (typeof this.edges !== 'boolean') throw new TypeError('edgeProofs must be a boolean');
    if (!Number.isInteger(this.historyPageSize) || this.historyPageSize < 1 || this.historyPageSize > 100_000) {
      throw new RangeError('historyPageSize must be an integer in [1, 100000]');
    }
    this.ctx = {
      consistency: (from, to) => this.consistencyProof(from, to),
      checkpointAt: (index) => this.checkpointWithInclusion(index),
      signerSetChanges: (from, size) => this.signerSetChanges(from, size),
      keyRotations: () => this.keyRotations(),
      note: async (size) => (await this.transport.request<string>({ method: 'GET', path: `/v1/checkpoints/${size}/note`, text: true })).body,
    };
  }

  private kvPath(key: Uint8Array, suffix = '', params: Record<string, string | number | boolean | undefined> = {}): string {
    const { segment, base64 } = keyPath(key);
    return `/v1/kv/${segment}${suffix}${query({ ...params, keyEncoding: base64 ? 'base64url' : undefined })}`;
  }

  // ---- plain operations ----------------------------------------------------------------------

  /**
   * Writes `value` under `key` at the next version, or at `version` (must exceed the key's latest).
   * With `ifVersion` / `ifAbsent` only if the condition holds (else `CONDITION_FAILED`, see {@link WriteCondition}).
   */
  async put(key: BytesLike, value: BytesLike, options: { version?: number } & WriteCondition = {}): Promise<WriteResult> {
    const k = asBytes(key, 'key');
    const v = asBytes(value, 'value');
    checkVersion(options.version, 'version');
    const cond = conditionWire(options, '');
    const body: Record<string, unknown> = { value: toBase64Url(v) };
    if (options.version !== undefined) body.version = options.version;
    const r = await this.transport.request({ method: 'PUT', path: this.kvPath(k, '', cond), body, write: true });
    return parseWrite(r.body);
  }

  /**
   * Appends `suffix` to the key's newest live value (empty when absent or deleted) as a new
   * version, computed by the server where the write is applied. Conditions as for {@link put}.
   * Retries are safe (idempotency headers): a retried append is applied once.
   */
  async append(key: BytesLike, suffix: BytesLike, options: WriteCondition = {}): Promise<WriteResult> {
    const k = asBytes(key, 'key');
    const v = asBytes(suffix, 'suffix');
    const r = await this.transport.request({ method: 'POST', path: this.kvPath(k, '/append', conditionWire(options, '')), body: { value: toBase64Url(v) }, write: true });
    return parseWrite(r.body);
  }

  /**
   * The latest entry of `key`, or the newest at or below `version` (which may be a tombstone,
   * `kind: 'delete'`). `undefined` when the key is absent (or, without `version`, deleted).
   * Not verified: see {@link verifiedGet}.
   */
  async get(key: BytesLike, options: { version?: number } = {}): Promise<Entry | undefined> {
    const k = asBytes(key, 'key');
    checkVersion(options.version, 'version', 0);
    try {
      const r = await this.transport.request({ method: 'GET', path: this.kvPath(k, '', { version: options.version }), kind: 'entry' });
      return parseEntry(r.body);
    } catch (err) {
      if (err instanceof ProofKVHttpError && err.status === 404 && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** Writes a tombstone for `key` at a new version; with `ifVersion` only if that is the key's newest version. */
  async delete(key: BytesLike, options: { ifVersion?: number } = {}): Promise<WriteResult> {
    const k = asBytes(key, 'key');
    const r = await this.transport.request({ method: 'DELETE', path: this.kvPath(k, '', conditionWire({ ifVersion: options.ifVersion }, '')), write: true });
    return parseWrite(r.body);
  }

  /** Applies `ops` atomically; one result per op, in order. */
  async batch(ops: BatchOp[]): Promise<WriteResult[]> {
    if (!Array.isArray(ops) || ops.length === 0) throw new TypeError('batch needs at least one op');
    const wire = ops.map((o, i) => {
      const at = `ops[${i}].`;
      if (o.op === 'put' || o.op === 'append') {
        const w: Record<string, unknown> = { op: o.op, key: toBase64Url(asBytes(o.key, `${at}key`)), value: toBase64Url(asBytes(o.value, `${at}value`)), ...conditionWire(o, at) };
        if (o.op === 'put') {
          checkVersion(o.version, `${at}version`);
          if (o.version !== undefined) w.version = o.version;
        }
        return w;
      }
      if (o.op === 'delete') return { op: 'delete', key: toBase64Url(asBytes(o.key, `${at}key`)), ...conditionWire({ ifVersion: o.ifVersion }, at) };
      throw new TypeError(`ops[${i}].op must be "put", "delete" or "append"`);
    });
    const r = await this.transport.request({ method: 'POST', path: '/v1/batch', body: { ops: wire }, write: true });
    const o = obj(r.body, 'batch result');
    if (!Array.isArray(o.results) || o.results.length !== ops.length) throw new MalformedResponse(`batch returned ${Array.isArray(o.results) ? o.results.length : 'no'} results for ${ops.length} ops`);
    return o.results.map((x, i) => parseWrite(x, `results[${i}]`));
  }

  /** One page of the versions of `key` in [minVersion, maxVersion], oldest first. Not verified. */
  async history(key: BytesLike, options: { minVersion?: number; maxVersion?: number; limit?: number; cursor?: string } & TimeRange = {}): Promise<HistoryPage> {
    const k = asBytes(key, 'key');
    checkVersion(options.minVersion, 'minVersion', 0);
    checkVersion(options.maxVersion, 'maxVersion', 0);
    const w = timeWindowOf(options);
    const r = await this.transport.request({
      method: 'GET',
      path: this.kvPath(k, '/history', { min: options.minVersion, max: options.maxVersion, limit: options.limit, cursor: options.cursor, since: w.since, until: w.until }),
      kind: 'page',
    });
    const o = obj(r.body, 'history');
    if (!Array.isArray(o.entries)) throw new MalformedResponse('history.entries is not a list');
    const page: HistoryPage = { entries: o.entries.map((e, i) => parseEntry(e, `entries[${i}]`)) };
    if (typeof o.nextCursor === 'string') page.cursor = o.nextCursor;
    return page;
  }

  /** One page of latest live values in key order (`start` inclusive, `end` exclusive, `limit` <= 1000). Not verified. */
  async scan(options: { prefix?: BytesLike; start?: BytesLike; end?: BytesLike; limit?: number; cursor?: string } = {}): Promise<ScanPage> {
    const enc = (v: BytesLike | undefined, n: string) => (v === undefined ? undefined : toBase64Url(asBytes(v, n)));
    const r = await this.transport.request({
      method: 'GET',
      path: `/v1/kv${query({
        prefix: enc(options.prefix, 'prefix'),
        start: enc(options.start, 'start'),
        end: enc(options.end, 'end'),
        limit: options.limit,
        cursor: options.cursor,
        keyEncoding: 'base64url',
      })}`,
      kind: 'page',
    });
    const o = obj(r.body, 'scan');
    if (!Array.isArray(o.items)) throw new MalformedResponse('scan.items is not a list');
    const page: ScanPage = { items: o.items.map((e, i) => parseEntry(e, `items[${i}]`)) };
    if (typeof o.cursor === 'string') page.cursor = o.cursor;
    return page;
  }

  /** The node's status (`GET /v1/status`): role, node id, public key (base64url), last checkpoint, … */
  async status(): Promise<Record<string, unknown>> {
    const r = await this.transport.request({ method: 'GET', path: '/v1/status' });
    return obj(r.body, 'status');
  }

  // ---- raw proofs ------------------------------------------------------------------------------

  /**
   * The encoded get proof of `key` (`getProofCodec` CBOR) and the server's entry, unverified —
   * for saving and checking later with `verifyProofBundle`. With `edges: true` the proof carries
   * edge proofs (docs/proofs.md §8.12); record that in the bundle (`getProofBundle(…, { edges })`).
   * Default false (the client's `edgeProofs` applies to verified reads only).
   */
  async getProof(key: BytesLike, options: { version?: number; checkpoint?: number; edges?: boolean } = {}): Promise<{ proof: Uint8Array; entry?: Entry }> {
    const k = asBytes(key, 'key');
    checkVersion(options.version, 'version', 0);
    const edges = edgesOption(options.edges);
    const r = await this.transport.request({ method: 'GET', path: this.kvPath(k, '/proof', { version: options.version, checkpoint: options.checkpoint, edges: edges || undefined }), kind: 'entry' });
    const o = obj(r.body, 'proof response');
    const out: { proof: Uint8Array; entry?: Entry } = { proof: b64(o, 'proof', 'proof response') };
    if (o.entry !== undefined && o.entry !== null) out.entry = parseEntry(o.entry);
    return out;
  }

  /**
   * One page of history with its encoded proof (`historyProofCodec` CBOR), unverified; `edges` as
   * for {@link getProof}.
   */
  async historyProof(
    key: BytesLike,
    options: { minVersion?: number; maxVersion?: number; limit?: number; edges?: boolean } = {},
  ): Promise<{ proof: Uint8Array; entries: Entry[] }> {
    const k = asBytes(key, 'key');
    checkVersion(options.minVersion, 'minVersion', 0);
    checkVersion(options.maxVersion, 'maxVersion', 0);
    const edges = edgesOption(options.edges);
    const r = await this.transport.request({
      method: 'GET',
      path: this.kvPath(k, '/history', { min: options.minVersion, max: options.maxVersion, limit: options.limit, proof: true, edges: edges || undefined }),
      kind: 'page',
    });
    const o = obj(r.body, 'history');
    if (!Array.isArray(o.entries)) throw new MalformedResponse('history.entries is not a list');
    return { proof: b64(o, 'proof', 'history'), entries: o.entries.map((e, i) => parseEntry(e, `entries[${i}]`)) };
  }

  /** A request of a verified call: an undecodable answer is `VerificationError(MALFORMED_ENCODING)`. */
  /**
   * A request whose answer is verified. It names (`ProofKV-Min-Head`) the trusted log size, or
   * `atLeast` when larger: a follow-up request of one call (an inclusion or consistency proof for
   * a head another member just showed) needs a member that has certified that head.
   */
  private async verifiedRequest<T>(spec: RequestSpec, atLeast = 0): Promise<T> {
    const trusted = await this.trust.trustedHead();
    const minHead = Math.max(trusted?.size ?? 0, atLeast);
    return decoding(async () => (await this.transport.request<T>({ ...spec, minHead })).body);
  }

  private async consistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    const body = await this.verifiedRequest<unknown>({ method: 'GET', path: `/v1/checkpoints/consistency${query({ from, to })}` }, to);
    return decoding(() => {
      const o = obj(body, 'consistency');
      if (uint(o, 'from', 'consistency') !== from || uint(o, 'to', 'consistency') !== to) {
        verificationFailure(ClientReason.RESPONSE_MISMATCH, `consistency proof for ${String(o.from)}..${String(o.to)}, asked ${from}..${to}`);
      }
      return b64List(o, 'proof', 'consistency');
    });
  }

  /** `GET /v1/checkpoints/{index}`: the checkpoint at `index` with its inclusion in the server's latest signed head (unverified). */
  private async checkpointWithInclusion(index: number): Promise<IncludedCheckpoint> {
    const body = await this.verifiedRequest<unknown>({ method: 'GET', path: `/v1/checkpoints/${index}` }, index + 1);
    const c = await decoding(() => {
      const o = obj(body, 'checkpoint');
      const out: IncludedCheckpoint = { ...parseSignedCheckpoint(o), inclusion: b64List(o, 'inclusion', 'checkpoint') };
      if (o.setChange !== undefined && o.setChange !== null) {
        const sc = obj(o.setChange, 'checkpoint.setChange');
        out.setChange = { ...parseSignedCheckpoint(sc, 'checkpoint.setChange'), inclusion: b64List(sc, 'inclusion', 'checkpoint.setChange') };
      }
      return out;
    });
    if (c.checkpoint.index !== index) verificationFailure(ClientReason.RESPONSE_MISMATCH, `asked checkpoint ${index}, got ${c.checkpoint.index}`);
    return c;
  }

  /**
   * `GET /v1/checkpoints/set-changes`: one page of the signer-set changes at checkpoints `from ..
   * size - 1`, proven against the head of `size` (unverified; the trust keeper checks them), or
   * `undefined` when the server does not list them (a version before the route: 400 or 404).
   */
  private async signerSetChanges(from: number, size: number): Promise<SetChangePage | undefined> {
    let body: unknown;
    try {
      body = await this.verifiedRequest<unknown>({ method: 'GET', path: `/v1/checkpoints/set-changes${query({ from, size })}` }, size);
    } catch (err) {
      if (err instanceof ProofKVHttpError && (err.status === 400 || err.status === 404)) return undefined;
      throw err;
    }
    return decoding(() => {
      const o = obj(body, 'set changes');
      if (uint(o, 'from', 'set changes') !== from || uint(o, 'size', 'set changes') !== size) {
        verificationFailure(ClientReason.RESPONSE_MISMATCH, `set changes from ${String(o.from)} at size ${String(o.size)}, asked from ${from} at size ${size}`);
      }
      if (!Array.isArray(o.changes)) throw new MalformedResponse('set changes.changes is not a list');
      const page: SetChangePage = { changes: o.changes.map((c, i) => parseSetChange(c, `set changes.changes[${i}]`)) };
      if (o.next !== undefined && o.next !== null) page.next = uint(o, 'next', 'set changes');
      return page;
    });
  }

  /** `GET /v1/key-rotations`: the node's key rotation statements, oldest first (unverified; the trust keeper checks them). */
  private async keyRotations(): Promise<KeyRotation[]> {
    const body = await this.verifiedRequest<unknown>({ method: 'GET', path: '/v1/key-rotations' });
    return decoding(() => {
      const list = obj(body, 'key rotations').rotations;
      if (!Array.isArray(list)) throw new MalformedResponse('key rotations.rotations is not a list');
      return list.map((v, i) => {
        const what = `key rotations.rotations[${i}]`;
        const o = obj(v, what);
        const r: KeyRotation = {
          logSize: uint(o, 'logSize', what),
          oldPublicKey: b64(o, 'oldPublicKey', what),
          newPublicKey: b64(o, 'newPublicKey', what),
          newSignature: b64(o, 'newSignature', what),
          time: typeof o.time === 'string' ? o.time : '',
        };
        if (o.oldSignature !== undefined) r.oldSignature = b64(o, 'oldSignature', what);
        return r;
      });
    });
  }

  // ---- verified operations -------------------------------------------------------------------

  /**
   * Fetches the latest signed checkpoint and accepts it: quorum signatures, the checkpoint is the
   * last leaf of its head (RFC 9162 inclusion, `GET /v1/checkpoints/{index}`), it links to its
   * predecessor (`prevCheckpointHash`, seq), and the head is at least the trusted head when the
   * call began and consistent with the current one (a smaller head is `ROLLBACK`, another root at
   * the same size `FORK`). Advances and persists the trusted state when the head is newer.
   */
  async checkpoint(): Promise<VerifiedCheckpoint> {
    const sent = await this.trust.trustedHead();
    const body = await this.verifiedRequest<unknown>({ method: 'GET', path: '/v1/checkpoints/latest' });
    return this.acceptSignedCheckpoint(body, sent);
  }

  /** Asks the server to checkpoint now (`POST /v1/checkpoints`, admin role) and accepts the result like {@link checkpoint}. */
  async createCheckpoint(): Promise<VerifiedCheckpoint> {
    const sent = await this.trust.trustedHead();
    const body = await this.verifiedRequest<unknown>({ method: 'POST', path: '/v1/checkpoints', write: true });
    return this.acceptSignedCheckpoint(body, sent);
  }

  private async acceptSignedCheckpoint(body: unknown, sent: LogHead | undefined): Promise<VerifiedCheckpoint> {
    const { checkpoint, head, signatures, signers: signerSet } = await decoding(() => parseSignedCheckpoint(body));
    if (checkpoint.index + 1 !== head.size) {
      verificationFailure(Reason.CHECKPOINT_MISMATCH, `checkpoint ${checkpoint.index} is not the last of a log of size ${head.size}`);
    }
    // Its inclusion path, in the server's latest head (which may have grown since).
    const cert = await this.checkpointWithInclusion(checkpoint.index);
    if (!sameCheckpoint(cert.checkpoint, checkpoint)) {
      verificationFailure(ClientReason.RESPONSE_MISMATCH, `checkpoint ${checkpoint.index} differs between the signed checkpoint and /v1/checkpoints/${checkpoint.index}`);
    }
    const cosignatures = typeof body === 'object' && body !== null ? (body as { cosignatures?: unknown }).cosignatures : undefined;
    const accepted = await this.trust.acceptAnswer({ head, signatures, checkpoint, sent, cosignatures, signers: signerSet }, this.ctx, (policy) => proveLeaf(cert, head, policy, this.ctx));
    const keys = [...accepted.policy.publicKeys, ...(accepted.signerSet?.members.map((m) => m.publicKey) ?? [])];
    const signers = signatures.map((s) => s.publicKey).filter((k) => keys.some((t) => equalBytes(t, k)));
    const out: VerifiedCheckpoint = { checkpoint, head, signers: signers.map((k) => k.slice()), witnesses: accepted.witnesses };
    if (accepted.previous) out.previous = accepted.previous;
    if (accepted.signerSet) out.signerSet = accepted.signerSet;
    return out;
  }

  /**
   * The newest entry of `key` at or below `version` (default: latest) at the latest checkpoint,
   * proven by a get proof (value, version, seq and kind; or a proven absence). The server's plain
   * `entry` must agree with the proof (`RESPONSE_MISMATCH` otherwise). With `checkpoint`, the
   * proof must be at that checkpoint index.
   */
  async verifiedGet(key: BytesLike, options: { version?: number; checkpoint?: number } = {}): Promise<VerifiedGetResult> {
    const k = asBytes(key, 'key');
    checkVersion(options.version, 'version', 0);
    const sent = await this.trust.trustedHead();
    const body = await this.verifiedRequest<unknown>({
      method: 'GET',
      path: this.kvPath(k, '/proof', { version: options.version, checkpoint: options.checkpoint, edges: this.edges || undefined }),
      kind: 'entry',
    });
    const { proof, claimed, cosignatures } = await decoding(() => {
      const o = obj(body, 'proof response');
      const p: GetProof = getProofCodec.decode(b64(o, 'proof', 'proof response'));
      return { proof: p, claimed: o.entry !== undefined && o.entry !== null ? parseEntry(o.entry) : undefined, cosignatures: o.cosignatures };
    });
    let facts: GetFacts | undefined;
    const { head, signatures, checkpoint, signers } = proof.certificate;
    // The server's plain entry is checked before the head is accepted: a failed call moves nothing.
    const accepted = await this.trust.acceptAnswer({ head, signatures, checkpoint, sent, cosignatures, signers }, this.ctx, (policy) => {
      const res = verifyGetProof(proof, { key: k, version: options.version, edges: this.edges }, { trust: policy, checkpointIndex: options.checkpoint });
      check(res);
      const proven = (res as GetFacts).entry;
      if (!proven !== !claimed || (proven && claimed && !sameEntry(proven, claimed))) {
        verificationFailure(
          proven && claimed && proven.kind === 'put' && !equalBytes(proven.value, claimed.value) ? Reason.VALUE_MISMATCH : ClientReason.RESPONSE_MISMATCH,
          `server entry ${describe(claimed)} disagrees with the proven ${describe(proven)}`,
        );
      }
      facts = res as GetFacts;
    });
    const f = facts!;
    const entry: Entry | undefined = f.entry ? { ...f.entry } : undefined;
    const out: VerifiedGetResult = { checkpoint: f.checkpoint, head: f.head, witnesses: accepted.witnesses };
    if (entry) {
      out.entry = entry;
      out.version = entry.version;
      if (entry.kind === 'put') out.value = entry.value;
    }
    return out;
  }

  /**
   * All versions of `key` in [minVersion, maxVersion] (default: all), oldest first, tombstones
   * included, each page proven complete by a history proof; follows the proof's continuation
   * (`nextMinVersion`) until the range is covered. The server's plain `entries` must agree with
   * each proof.
   */
  async verifiedHistory(key: BytesLike, options: { minVersion?: number; maxVersion?: number } & TimeRange = {}): Promise<VerifiedHistoryResult> {
    const k = asBytes(key, 'key');
    checkVersion(options.minVersion, 'minVersion', 0);
    checkVersion(options.maxVersion, 'maxVersion', 0);
    const window = timeWindowOf(options);
    const timed = window.since !== undefined || window.until !== undefined;
    const minVersion = options.minVersion ?? 0;
    const maxVersion = options.maxVersion ?? MAX_VERSION;
    if (minVersion > maxVersion) throw new RangeError(`minVersion ${minVersion} exceeds maxVersion ${maxVersion}`);
    const limit = this.historyPageSize;
    const entries: Entry[] = [];
    let min = minVersion;
    for (;;) {
      const sent = await this.trust.trustedHead();
      const body = await this.verifiedRequest<unknown>({
        method: 'GET',
        path: this.kvPath(k, '/history', { min, max: maxVersion, limit, since: window.since, until: window.until, proof: true, edges: this.edges || undefined }),
        kind: 'page',
      });
      const lo = min;
      // The server may shrink a page to its byte budget; it echoes the limit its proof is for. With a
      // time window it may start the page above `lo`, at a version it proves older than `since`.
      const { proof, claimed, pageLimit, served } = await decoding(() => {
        const o = obj(body, 'history');
        const p: HistoryProof = historyProofCodec.decode(b64(o, 'proof', 'history'));
        if (!Array.isArray(o.entries)) throw new MalformedResponse('history.entries is not a list');
        const c = o.entries.map((e, i) => parseEntry(e, `entries[${i}]`));
        const servedMin = timed && o.minVersion !== undefined ? uint(o, 'minVersion', 'history') : lo;
        if ((!timed && o.minVersion !== undefined && o.minVersion !== lo) || servedMin < lo || servedMin > maxVersion || (o.maxVersion !== undefined && o.maxVersion !== maxVersion)) {
          verificationFailure(ClientReason.RESPONSE_MISMATCH, `history page for [${String(o.minVersion)}, ${String(o.maxVersion)}], asked [${lo}, ${maxVersion}]`);
        }
        return { proof: p, claimed: c, pageLimit: o.limit !== undefined ? uint(o, 'limit', 'history') : limit, served: servedMin };
      });
      if (pageLimit < 1 || pageLimit > limit) verificationFailure(ClientReason.RESPONSE_MISMATCH, `history page limit ${pageLimit}, asked at most ${limit}`);
      let facts: HistoryFacts | undefined;
      let complete = false;
      const { head, signatures, checkpoint, signers } = proof.certificate;
      const cosignatures = (body as { cosignatures?: unknown }).cosignatures;
      const accepted = await this.trust.acceptAnswer({ head, signatures, checkpoint, sent, cosignatures, signers }, this.ctx, (policy) => {
        const res = verifyHistoryProof(proof, { key: k, minVersion: served, maxVersion, limit: pageLimit, edges: this.edges }, { trust: policy });
        check(res);
        // With a time window: the page's ends proven outside it (§8.12), and only its versions kept.
        const win = timed ? windowHistory(res as HistoryFacts, lo, served, window) : undefined;
        if (win) check(win);
        const proven = win && win.ok ? win.entries : (res as HistoryFacts).entries;
        if (win && win.ok) complete = win.complete;
        if (claimed.length !== proven.length) {
          verificationFailure(ClientReason.RESPONSE_MISMATCH, `server listed ${claimed.length} entries, the proof proves ${proven.length}`);
        }
        for (let i = 0; i < claimed.length; i++) {
          if (!sameEntry(proven[i], claimed[i])) {
            const valueOnly = proven[i].version === claimed[i].version && proven[i].kind === 'put' && !equalBytes(proven[i].value, claimed[i].value);
            verificationFailure(valueOnly ? Reason.VALUE_MISMATCH : ClientReason.RESPONSE_MISMATCH, `history entry ${i}: server ${describe(claimed[i])}, proven ${describe(proven[i])}`);
          }
        }
        facts = res as HistoryFacts;
      });
      const f = facts!;
      entries.push(...f.entries.filter((e) => !timed || inTimeWindow(e.time, window)).map((e) => ({ ...e })));
      if (f.nextMinVersion === undefined || complete) return { entries, minVersion, maxVersion, checkpoint: f.checkpoint, head: f.head, witnesses: accepted.witnesses };
      if (f.nextMinVersion <= min) verificationFailure(Reason.HISTORY_BOUND, `history does not advance past version ${min}`);
      min = f.nextMinVersion;
    }
  }

  /**
   * The keys of a range (`{ prefix }`, or `{ start, end }`: start inclusive, end exclusive) at the
   * latest checkpoint, page by page, each proven by a scan proof (docs/proofs.md §8.9.1): every
   * live key of the page with its newest version and value, none omitted or added, deleted keys
   * left out unless `includeTombstones`. A page covers at most `limit` keys (default 100, at most
   * 1000; the server may use fewer to fit its byte budget) and is complete up to its proven
   * `cursor`; the next page starts right after it, so the pages chain with no gap. Resume a scan
   * with `cursor`. The server's plain `items` must agree with each proof. Each page may be at a
   * newer checkpoint than the one before (a scan is not a snapshot across pages).
   */
  async *verifiedScan(range: ScanRange = {}, options: { limit?: number; includeTombstones?: boolean; cursor?: string } & TimeRange = {}): AsyncGenerator<VerifiedScanPage> {
    const r = range as { prefix?: BytesLike; start?: BytesLike; end?: BytesLike };
    if (r.prefix !== undefined && (r.start !== undefined || r.end !== undefined)) throw new TypeError('give prefix, or start and end, not both');
    const prefix = r.prefix === undefined ? undefined : asBytes(r.prefix, 'prefix');
    const start = prefix ?? (r.start === undefined ? new Uint8Array(0) : asBytes(r.start, 'start'));
    const end = prefix ? prefixEnd(prefix) : r.end === undefined ? undefined : asBytes(r.end, 'end');
    if (end && (end.length === 0 || compareBytes(start, end) >= 0)) throw new RangeError('scan end must be above start');
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RangeError('limit must be an integer in [1, 1000]');
    const tombstones = options.includeTombstones === true;
    let cursor = options.cursor === undefined ? undefined : fromCursor(options.cursor);
    // A time window keeps the keys whose newest version was committed in it: the page proves every
    // key of its range with its newest version and time, so the filtered page is complete too.
    const window = timeWindowOf(options);
    for (;;) {
      const page = await this.verifiedScanPage(start, cursor, end, limit, tombstones);
      yield window.since === undefined && window.until === undefined ? page : { ...page, entries: page.entries.filter((e) => inTimeWindow(e.time, window)) };
      if (page.cursor === undefined) return;
      cursor = fromCursor(page.cursor);
    }
  }

  /**
   * One page of {@link verifiedScan}: keys from `start`, or after `cursor` when that is further
   * (the server picks the same tightest lower bound), verified against the client's own range.
   */
  private async verifiedScanPage(start: Uint8Array, cursor: Uint8Array | undefined, end: Uint8Array | undefined, limit: number, tombstones: boolean): Promise<VerifiedScanPage> {
    const after = cursor && keySuccessor(cursor);
    const from = after && compareBytes(after, start) > 0 ? after : start;
    const sent = await this.trust.trustedHead();
    const params = {
      start: start.length > 0 ? toBase64Url(start) : undefined,
      end: end && toBase64Url(end),
      cursor: cursor && toBase64Url(cursor),
      limit,
      proof: true,
      includeTombstones: tombstones || undefined,
      edges: this.edges || undefined,
      keyEncoding: 'base64url',
    };
    const body = await this.verifiedRequest<unknown>({ method: 'GET', path: `/v1/kv${query(params)}`, kind: 'page' });
    const { proof, claimed, pageLimit } = await decoding(() => {
      const o = obj(body, 'scan');
      const p: ScanProof = scanProofCodec.decode(b64(o, 'proof', 'scan'));
      if (!Array.isArray(o.items)) throw new MalformedResponse('scan.items is not a list');
      return { proof: p, claimed: o.items.map((e, i) => parseEntry(e, `items[${i}]`)), pageLimit: o.limit !== undefined ? uint(o, 'limit', 'scan') : limit };
    });
    if (pageLimit < 1 || pageLimit > limit) verificationFailure(ClientReason.RESPONSE_MISMATCH, `scan page limit ${pageLimit}, asked at most ${limit}`);
    let facts: ScanFacts | undefined;
    const { head, signatures, checkpoint, signers } = proof.certificate;
    await this.trust.acceptAnswer({ head, signatures, checkpoint, sent, signers }, this.ctx, (policy) => {
      const res = verifyScanProof(proof, { start: from, end, limit: pageLimit, includeTombstones: tombstones, edges: this.edges }, { trust: policy });
      check(res);
      const proven = (res as ScanFacts).entries;
      if (claimed.length !== proven.length) verificationFailure(ClientReason.RESPONSE_MISMATCH, `server listed ${claimed.length} items, the proof proves ${proven.length}`);
      for (let i = 0; i < claimed.length; i++) {
        if (!sameEntry(proven[i], claimed[i])) {
          const valueOnly = equalBytes(proven[i].key, claimed[i].key) && proven[i].version === claimed[i].version && proven[i].kind === 'put' && !equalBytes(proven[i].value, claimed[i].value);
          verificationFailure(valueOnly ? Reason.VALUE_MISMATCH : ClientReason.RESPONSE_MISMATCH, `scan item ${i}: server ${describe(claimed[i])}, proven ${describe(proven[i])}`);
        }
      }
      facts = res as ScanFacts;
    });
    const f = facts!;
    const out: VerifiedScanPage = { entries: f.entries.map((e) => ({ ...e })), keysCovered: f.keysCovered, checkpoint: f.checkpoint, head: f.head };
    if (f.bound) out.cursor = toBase64Url(f.bound);
    return out;
  }

  /**
   * Writes `value` and proves that **this request's** write is in a certified checkpoint:
   * 1. before sending, the client holds a verified baseline — its trusted checkpoint, or the
   *    latest one, verified first;
   * 2. after the write it gets a checkpoint covering it — `POST /v1/checkpoints` when the token
   *    allows, else polling the latest (`pollIntervalMs`, up to `checkpointWaitMs`);
   * 3. at one checkpoint whose head extends the trusted one, a get proof of the latest version
   *    and (when that is not the write) one of the written version show: the entry
   *    (key, version, seq) holds exactly this value with kind put; its seq is above the
   *    baseline's (no write older than the request qualifies); its version is `options.version`
   *    when one was asked. `newest` says whether it is the key's newest version there; if not,
   *    `newer` is the newer entry.
   * Otherwise `VerificationError` `WRITE_NOT_PROVEN`. Retried writes apply once (idempotency
   * headers). What this does not exclude: see `docs/client.md` ("What a verified write proves").
   * `ifVersion` / `ifAbsent` are passed to the write: a failed condition throws `CONDITION_FAILED`
   * before anything is proven; the proof of a written one is the same.
   */
  async verifiedPut(key: BytesLike, value: BytesLike, options: { version?: number } & WriteCondition = {}): Promise<VerifiedPutResult> {
    const k = asBytes(key, 'key');
    const v = asBytes(value, 'value');
    checkVersion(options.version, 'version');
    conditionWire(options, '');
    return this.proveWrite(k, { kind: 'put', value: v, version: options.version }, () => this.put(k, v, options));
  }

  /**
   * Deletes `key` (a tombstone at a new version) and proves it like {@link verifiedPut}: the entry
   * (key, version, seq) is a tombstone with seq above the baseline, at a certified checkpoint,
   * and whether it is the newest version there.
   */
  async verifiedDelete(key: BytesLike, options: { ifVersion?: number } = {}): Promise<VerifiedPutResult> {
    const k = asBytes(key, 'key');
    conditionWire({ ifVersion: options.ifVersion }, '');
    return this.proveWrite(k, { kind: 'delete' }, () => this.delete(k, options));
  }

  /** The seq of the verified baseline before a write: the trusted checkpoint, verifying the latest first when there is none. */
  private async baselineSeq(): Promise<number> {
    let base = await this.trust.trustedCheckpoint();
    if (!base) {
      try {
        await this.checkpoint();
      } catch (err) {
        // A server without any checkpoint: the baseline is the empty log.
        if (err instanceof ProofKVHttpError && err.code === 'CHECKPOINT_UNAVAILABLE') return 0;
        throw err;
      }
      base = await this.trust.trustedCheckpoint();
    }
    if (!base) verificationFailure(ClientReason.STATE_MISMATCH, 'no trusted checkpoint after verifying the latest');
    return base.seq;
  }

  private async proveWrite(
    k: Uint8Array,
    want: { kind: 'put'; value: Uint8Array; version?: number } | { kind: 'delete' },
    send: () => Promise<WriteResult>,
  ): Promise<VerifiedPutResult> {
    const baselineSeq = await this.baselineSeq();
    const w = await send();
    // The answer's seq is only a hint of which checkpoint to wait for; the proofs decide.
    await this.waitForCheckpoint(w.seq);
    for (let attempt = 1; ; attempt++) {
      let latest: VerifiedGetResult;
      let at: VerifiedGetResult;
      try {
        latest = await this.verifiedGet(k);
        at = latest.entry?.version === w.version ? latest : await this.verifiedGet(k, { version: w.version, checkpoint: latest.checkpoint.index });
      } catch (err) {
        // A newer checkpoint replaced it between the two proofs: prove both again at the latest.
        if (attempt < 4 && err instanceof ProofKVHttpError && err.code === 'CHECKPOINT_UNAVAILABLE') continue;
        throw err;
      }
      const e: Entry | undefined = at.entry;
      const where = `at checkpoint ${at.checkpoint.index} (seq ${at.checkpoint.seq})`;
      const fail: (why: string) => never = (why) => verificationFailure(ClientReason.WRITE_NOT_PROVEN, `${want.kind} of version ${w.version} seq ${w.seq} not proven ${where}: ${why}`);
      if (!e || e.version !== w.version) fail(`the proven entry at or below version ${w.version} is ${describe(e)}`);
      if (e.seq !== w.seq) fail(`the proven entry has seq ${e.seq}`);
      if (e.time !== w.time) fail(`the proven entry has commit time ${e.time}, the server answered ${w.time}`);
      if (e.kind !== want.kind || (want.kind === 'put' && !equalBytes(e.value, want.value))) fail(`the proven entry is ${describe(e)}, not this ${want.kind}`);
      if (e.seq <= baselineSeq) fail(`the proven entry's seq ${e.seq} is not above the baseline checkpoint seq ${baselineSeq}: an older write, not this request's`);
      if (want.kind === 'put' && want.version !== undefined && e.version !== want.version) fail(`version ${e.version}, asked ${want.version}`);
      const n = latest.entry;
      if (!n || n.version < e.version) fail(`the latest proof at the same checkpoint shows ${describe(n)}`);
      const out: VerifiedPutResult = { kind: want.kind, version: e.version, seq: e.seq, time: e.time, checkpoint: at.checkpoint, head: at.head, baselineSeq, newest: true };
      if (n.version !== e.version) {
        out.newest = false;
        out.newer = { version: n.version, seq: n.seq, kind: n.kind };
      }
      return out;
    }
  }

  /** A verified checkpoint whose seq is at least `seq`, created or awaited. */
  private async waitForCheckpoint(seq: number): Promise<VerifiedCheckpoint> {
    const deadline = Date.now() + this.checkpointWaitMs;
    if (this.canCreateCheckpoints) {
      try {
        const cp = await this.createCheckpoint();
        if (cp.checkpoint.seq >= seq) return cp;
      } catch (err) {
        if (!(err instanceof ProofKVHttpError && (err.status === 403 || err.status === 401))) throw err;
        this.canCreateCheckpoints = false;
      }
    }
    for (;;) {
      let cp: VerifiedCheckpoint | undefined;
      try {
        cp = await this.checkpoint();
      } catch (err) {
        if (!(err instanceof ProofKVHttpError && err.code === 'CHECKPOINT_UNAVAILABLE')) throw err;
      }
      if (cp && cp.checkpoint.seq >= seq) return cp;
      if (Date.now() >= deadline) throw new ProofKVClientError(`no checkpoint covered seq ${seq} within ${this.checkpointWaitMs} ms`);
      await sleep(this.pollIntervalMs);
    }
  }
}

/** The key a scan cursor names (base64url); a malformed one is a `TypeError`. */
function fromCursor(c: string): Uint8Array {
  try {
    return fromBase64Url(c);
  } catch {
    throw new TypeError('cursor is not a scan cursor');
  }
}

function describe(e: Entry | undefined): string {
  if (!e) return 'none';
  return `{version ${e.version}, seq ${e.seq}, time ${e.time}, ${e.kind}${e.kind === 'put' ? `, ${e.value.length} B` : ''}}`;
}
