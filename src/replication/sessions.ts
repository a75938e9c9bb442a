/**
 * Client sessions as replicated state: the `(clientId, seq)` table that makes a retried write
 * idempotent, built by applying the log, persisted beside the engine, and carried in snapshots.
 *
 * **The pure core, {@link SessionTable}.** Per client it remembers the outcome of its most recent
 * sequence numbers (a window of {@link SESSION_WINDOW}), each with the SHA-256 digest of the
 * request, the log index of the entry that first applied it and its settled outcome (opaque bytes
 * to this module: the server encodes a write's result or its deterministic failure, e.g.
 * `CONDITION_FAILED`). {@link SessionTable.apply} takes one log entry's session
 * ({@link SessionInput}) and decides — `new` (apply the command), `retry` (answer from the
 * table), `reused` (same pair, other request) or `stale` (below the window) — touching the client
 * (least recently active first is evicted), sliding its window and evicting clients while the
 * table is over its byte budget. Everything it does depends only on its inputs — the log index,
 * the pair, the digest and a byte estimate computed from the command — never on time or on when
 * an outcome settles, so every replica that applies the same log holds the same table, evicts the
 * same clients and charges the same bytes. A client's recency is the index of its last entry,
 * so the least-recently-active order is itself part of the log.
 *
 * **The storage, {@link SessionStore}.** The engine (external-log mode) records its durable log
 * index D only with a flush install, and entries after D are applied again at open. The store
 * therefore keeps the table *as of D* on disk, never ahead of it and never behind:
 * - a **base image** as of index B ≤ D (one key per client, and B), and a **journal** of the
 *   session inputs (with outcomes) of the entries after B, written in
 *   {@link SessionStore.persist}, which the engine awaits before each manifest edit that records
 *   a new D (`ProofDB.beforeLogIndexDurable`): every entry ≤ that D has its journal record synced
 *   before the engine's D can say so. In the same synced batch the base is advanced to the D
 *   already recorded (folding the journal up to it) — never further, as the new D is not durable
 *   until the engine's edit is.
 * - at open, with the engine's D: the base is loaded, the journal's records ≤ D are folded into
 *   it through the same {@link SessionTable.apply} (which reproduces the live table's decisions,
 *   touches and evictions exactly) and those > D are dropped — the group applies those entries
 *   again, so the table is rebuilt in log order exactly as the live run built it.
 * One fsync per install (a flush, not a write), none per Ready. Why this is exact is argued in
 * docs/replication.md § Sessions.
 *
 * Snapshots: {@link SessionStore.export} encodes the table as of an index (bounded, versioned);
 * {@link SessionStore.import} validates such bytes completely before it replaces anything
 * (`SESSIONS_MALFORMED` otherwise, with nothing changed).
 * @module
 */
import * as fs from 'node:fs';
import { ClassicLevel } from 'classic-level';
import { Encoder } from 'cbor-x';
import { withCrc } from '../raft/level_storage.js';
import { crc32c } from '../util/crc32c.js';

/** Sequence numbers remembered per client. */
export const SESSION_WINDOW = 128;
/**
 * Estimated bytes of a remembered client besides its outcomes (Map entries, objects, the id is
 * charged on top at 2 bytes a character). With an entry estimate of 768 bytes a client with one
 * write is charged about 1.85 KiB, above its measured heap cost (about 0.8 KiB), so the budget
 * bounds real memory.
 */
export const SESSION_CLIENT_BYTES = 1024;
/** Longest client id (characters). */
export const MAX_CLIENT_ID_LENGTH = 64;
/** A client id: what `ProofKV-Client-Id` allows. */
const CLIENT_ID = /^[\x21-\x7e]{1,64}$/;
/** Longest outcome a record may carry in an imported table. */
export const MAX_OUTCOME_BYTES = 1024 * 1024;
/** Format version of {@link SessionStore.export}. */
export const SESSIONS_FORMAT = 1;

/** Stable codes of {@link SessionError}. */
export enum SessionErrorCode {
  /** Bytes given to {@link SessionStore.import} (or a journal record) are not a valid session table. */
  Malformed = 'SESSIONS_MALFORMED',
  /** The stored table cannot be used with the engine's state, or a write to it failed. */
  BadState = 'SESSIONS_BAD_STATE',
  /** The table cannot be exported at that index (not applied yet, or already folded). */
  Unavailable = 'SESSIONS_UNAVAILABLE',
}

/** A failure of the session table or its storage. */
export class SessionError extends Error {
  constructor(
    readonly code: SessionErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SessionError';
  }
}

/** The session of one log entry, as the table sees it. */
export interface SessionInput {
  /** The entry's log index (or, without a log, a counter): increases from call to call. */
  index: number;
  clientId: string;
  seq: number;
  /** SHA-256 of what the command asks for (32 bytes). */
  digest: Uint8Array;
  /** Estimated table bytes of a record of this command (a function of the command only). */
  bytes: number;
}

/** One remembered request. */
export interface SessionRecord {
  readonly seq: number;
  /** Log index of the entry that first applied it. */
  readonly index: number;
  readonly digest: Uint8Array;
  readonly bytes: number;
  /** The settled outcome (opaque, encoded by the caller); undefined while it is in flight. */
  outcome?: Uint8Array;
}

/** What {@link SessionTable.apply} decided for an entry. */
export type SessionDecision =
  | { kind: 'new'; record: SessionRecord }
  | { kind: 'retry'; record: SessionRecord }
  | { kind: 'reused'; record: SessionRecord }
  | { kind: 'stale'; floor: number };

interface ClientState {
  readonly id: string;
  readonly records: Map<number, SessionRecord>;
  /** Lowest seq still remembered once the window has been full; lower ones are stale. */
  floor: number;
  /** Index of the client's latest entry (its recency). */
  last: number;
  /** Estimated bytes this client holds. */
  bytes: number;
}

/** Options of {@link SessionTable}. */
export interface SessionTableOptions {
  /** Byte budget: least recently active clients are evicted while the table is over it. */
  maxBytes: number;
}

const clientBytes = (id: string) => SESSION_CLIENT_BYTES + 2 * id.length;
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const isIndex = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/**
 * The `(clientId, seq)` table: a pure function of the sequence of {@link SessionInput}s applied
 * to it (see the module comment).
 */
export class SessionTable {
  /** clientId → state; Map order is recency order (oldest first), i.e. ascending `last`. */
  private readonly clients = new Map<string, ClientState>();
  private total = 0;
  private applied = 0;
  private changed: Set<string> | null = null;

  constructor(readonly options: SessionTableOptions) {
    if (!isIndex(options.maxBytes)) throw new RangeError('maxBytes must be a non-negative integer');
  }

  /** Clients remembered. */
  get count(): number {
    return this.clients.size;
  }

  /** Estimated bytes held (at most the budget, but for the one client being served). */
  get bytes(): number {
    return this.total;
  }

  /** Index of the latest input applied (0 when none). */
  get lastIndex(): number {
    return this.applied;
  }

  /** The record of `(clientId, seq)`, if remembered. */
  lookup(clientId: string, seq: number): SessionRecord | undefined {
    return this.clients.get(clientId)?.records.get(seq);
  }

  /** Client ids, least recently active first. */
  clientIds(): string[] {
    return [...this.clients.keys()];
  }

  /**
   * Applies one entry's session and says what to do with the entry (see the module comment).
   * `record`: the record a `new` decision keeps (the same object an earlier apply of this input
   * made, when the table is rebuilt); default a new one.
   */
  apply(input: SessionInput, record?: SessionRecord): SessionDecision {
    const { index, clientId, seq } = input;
    if (!isIndex(index) || index <= this.applied) throw new SessionError(SessionErrorCode.BadState, `session input index ${index} does not follow ${this.applied}`);
    this.applied = index;
    let c = this.clients.get(clientId);
    if (c) this.clients.delete(clientId);
    else {
      c = { id: clientId, records: new Map(), floor: 0, last: index, bytes: clientBytes(clientId) };
      this.total += c.bytes;
    }
    this.clients.set(clientId, c);
    c.last = index;
    this.changed?.add(clientId);
    const seen = c.records.get(seq);
    if (seen) return { kind: sameBytes(seen.digest, input.digest) ? 'retry' : 'reused', record: seen };
    if (seq < c.floor) return { kind: 'stale', floor: c.floor };
    record ??= { seq, index, digest: input.digest, bytes: input.bytes };
    c.records.set(seq, record);
    this.charge(c, record.bytes);
    if (c.records.size > SESSION_WINDOW) {
      const lowest = Math.min(...c.records.keys());
      this.charge(c, -c.records.get(lowest)!.bytes);
      c.records.delete(lowest);
      c.floor = Math.max(c.floor, lowest + 1);
    }
    this.evict(clientId);
    return { kind: 'new', record };
  }

  /** Marks the entries up to `index` as applied (those without a session leave the table as it is). */
  skipTo(index: number): void {
    this.applied = Math.max(this.applied, index);
  }

  /**
   * Forgets `record` of `clientId` (a command refused for a passing reason, to be retried). Only
   * for a table that is not replicated: the log cannot say it.
   */
  forget(clientId: string, record: SessionRecord): void {
    const c = this.clients.get(clientId);
    if (c && c.records.get(record.seq) === record) {
      c.records.delete(record.seq);
      this.charge(c, -record.bytes);
    }
  }

  /** Starts collecting the ids of clients changed or evicted (see {@link takeChanges}). */
  trackChanges(): void {
    this.changed ??= new Set();
  }

  /** Ids changed or evicted since {@link trackChanges} or the last call; collecting continues. */
  takeChanges(): Set<string> {
    const out = this.changed ?? new Set<string>();
    this.changed = new Set();
    return out;
  }

  /** A copy that shares nothing mutable with this table. */
  clone(): SessionTable {
    const t = new SessionTable(this.options);
    for (const c of this.clients.values()) t.insert(c.id, c.floor, c.last, [...c.records.values()].map((r) => ({ ...r })));
    t.applied = this.applied;
    return t;
  }

  /** The stored form of one client: `[id, floor, last, [[seq, index, digest, bytes, outcome], …]]`, or undefined if absent. */
  clientImage(id: string): unknown[] | undefined {
    const c = this.clients.get(id);
    if (!c) return undefined;
    return [c.id, c.floor, c.last, [...c.records.values()].map((r) => [r.seq, r.index, r.digest, r.bytes, r.outcome ?? null])];
  }

  /**
   * Builds a table from client images (any order; sorted by recency here), checking every field
   * and (with `enforceBudget`) that it fits `options.maxBytes` as a live table does. Throws
   * `SESSIONS_MALFORMED` naming the first bad field.
   */
  static fromImages(images: unknown[], options: SessionTableOptions, asOf: number, enforceBudget = true): SessionTable {
    const t = new SessionTable(options);
    const parsed = images.map((img, i) => parseClient(img, i, asOf));
    parsed.sort((a, b) => a.last - b.last);
    for (let i = 1; i < parsed.length; i++) {
      if (parsed[i].last === parsed[i - 1].last) malformed(`clients ${parsed[i - 1].id} and ${parsed[i].id} have the same recency ${parsed[i].last}`);
    }
    for (const p of parsed) {
      if (t.clients.has(p.id)) malformed(`client ${p.id} appears twice`);
      t.insert(p.id, p.floor, p.last, p.records);
    }
    // Eviction never drops the client being served: a lone client may hold more than the budget.
    if (enforceBudget && t.total > options.maxBytes && t.clients.size > 1) {
      malformed(`the table holds ${t.total} estimated bytes, over the budget of ${options.maxBytes}`);
    }
    t.applied = asOf;
    return t;
  }

  private insert(id: string, floor: number, last: number, records: SessionRecord[]): void {
    const c: ClientState = { id, records: new Map(records.map((r) => [r.seq, r])), floor, last, bytes: clientBytes(id) };
    for (const r of records) c.bytes += r.bytes;
    this.clients.set(id, c);
    this.total += c.bytes;
  }

  private charge(c: ClientState, n: number): void {
    c.bytes += n;
    this.total += n;
  }

  /** Forgets least recently active clients until the table fits its budget; `keep` stays. */
  private evict(keep: string): void {
    for (const [id, c] of this.clients) {
      if (this.total <= this.options.maxBytes) return;
      if (id === keep) continue;
      this.clients.delete(id);
      this.total -= c.bytes;
      this.changed?.add(id);
    }
  }
}

function malformed(why: string): never {
  throw new SessionError(SessionErrorCode.Malformed, `session table: ${why}`);
}

function parseClient(img: unknown, i: number, asOf: number): { id: string; floor: number; last: number; records: SessionRecord[] } {
  if (!Array.isArray(img) || img.length !== 4) malformed(`client ${i} is not [id, floor, last, records]`);
  const [id, floor, last, recs] = img as unknown[];
  if (typeof id !== 'string' || !CLIENT_ID.test(id)) malformed(`client ${i} has a bad id (1-${MAX_CLIENT_ID_LENGTH} printable ASCII characters)`);
  if (!isIndex(floor)) malformed(`client ${id}: bad floor`);
  if (!isIndex(last) || last < 1 || last > asOf) malformed(`client ${id}: recency ${String(last)} is not in [1, ${asOf}]`);
  if (!Array.isArray(recs) || recs.length > SESSION_WINDOW) malformed(`client ${id}: records are not a list of at most ${SESSION_WINDOW}`);
  const seqs = new Set<number>();
  const records = recs.map((r: unknown): SessionRecord => {
    if (!Array.isArray(r) || r.length !== 5) malformed(`client ${id}: a record is not [seq, index, digest, bytes, outcome]`);
    const [seq, index, digest, bytes, outcome] = r as unknown[];
    if (!isIndex(seq) || seq < floor || seqs.has(seq)) malformed(`client ${id}: seq ${String(seq)} is repeated or below the floor ${floor}`);
    seqs.add(seq);
    if (!isIndex(index) || index < 1 || index > last) malformed(`client ${id} seq ${seq}: index ${String(index)} is not in [1, ${last}]`);
    if (!(digest instanceof Uint8Array) || digest.length !== 32) malformed(`client ${id} seq ${seq}: digest is not 32 bytes`);
    if (!isIndex(bytes) || bytes < 1 || bytes > MAX_OUTCOME_BYTES * 64) malformed(`client ${id} seq ${seq}: bad byte estimate`);
    if (!(outcome instanceof Uint8Array) || outcome.length > MAX_OUTCOME_BYTES) malformed(`client ${id} seq ${seq}: outcome missing or over ${MAX_OUTCOME_BYTES} bytes`);
    return { seq, index, digest: copy(digest), bytes, outcome: copy(outcome) };
  });
  return { id, floor, last, records };
}

const copy = (b: Uint8Array) => new Uint8Array(b);
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

// ---- storage ---------------------------------------------------------------------------------

/** One applied session input, kept until it is folded into the base. */
interface Delta {
  input: SessionInput;
  /** The live record when the input was `new`: its outcome goes to the journal. */
  record?: SessionRecord;
}

/** The calls {@link SessionStore} and a plain {@link SessionTable} both answer, for the command applier. */
export interface SessionBook {
  apply(input: SessionInput): SessionDecision;
  /** `settled` resolves once `record`'s outcome is set (or it failed the engine). */
  settling(record: SessionRecord, settled: Promise<unknown>): void;
  /** See {@link SessionTable.forget}; false where the table is replicated (nothing is forgotten). */
  forget(clientId: string, record: SessionRecord): boolean;
  /** See {@link SessionStore.rollback}; absent where the table is not replicated. */
  rollback?(index: number): void;
  readonly count: number;
  readonly bytes: number;
}

/** A {@link SessionBook} kept only in memory (the local write path). */
export class MemorySessionBook implements SessionBook {
  readonly table: SessionTable;
  constructor(options: SessionTableOptions) {
    this.table = new SessionTable(options);
  }
  apply(input: SessionInput): SessionDecision {
    return this.table.apply(input);
  }
  settling(): void {}
  forget(clientId: string, record: SessionRecord): boolean {
    this.table.forget(clientId, record);
    return true;
  }
  get count(): number {
    return this.table.count;
  }
  get bytes(): number {
    return this.table.bytes;
  }
}

// Keys: "b" → base index (u64 | crc32c); "c" clientId → client image (CBOR | crc32c);
// "j" index:u64 → journal record [index, clientId, seq, digest, bytes, outcome|null] (CBOR | crc32c).
const BASE_KEY = Uint8Array.of(0x62);
const CLIENT = 0x63;
const JOURNAL = 0x6a;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function clientKey(id: string): Uint8Array {
  const b = utf8.encode(id);
  const k = new Uint8Array(1 + b.length);
  k[0] = CLIENT;
  k.set(b, 1);
  return k;
}

function journalKey(index: number): Uint8Array {
  const k = new Uint8Array(9);
  k[0] = JOURNAL;
  new DataView(k.buffer).setBigUint64(1, BigInt(index));
  return k;
}

function unsealed(what: string, v: Uint8Array): unknown {
  const bad = (why: string): never => {
    throw new SessionError(SessionErrorCode.BadState, `session store: ${what}: ${why}`);
  };
  if (v.length < 4) bad('too short');
  const body = v.subarray(0, v.length - 4);
  if (crc32c(body) !== new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(v.length - 4)) bad('checksum mismatch');
  try {
    return cbor.decode(body);
  } catch (err) {
    return bad(`not CBOR (${(err as Error).message})`);
  }
}

const bytesOf = (b: unknown): unknown => (b instanceof Uint8Array ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : b);

/** Byte strings of a decoded client image as plain `Uint8Array`s (CBOR may give Buffers). */
function normalizeImage(img: unknown): unknown {
  if (!Array.isArray(img)) return img;
  return img.map((x, i) => (i === 3 && Array.isArray(x) ? x.map((r) => (Array.isArray(r) ? r.map(bytesOf) : r)) : bytesOf(x)));
}

function encodeDelta(d: Delta): Uint8Array {
  const { index, clientId, seq, digest, bytes } = d.input;
  return withCrc(cbor.encode([index, clientId, seq, digest, bytes, d.record?.outcome ?? null]));
}

function decodeDelta(v: Uint8Array): Delta {
  const a = unsealed('journal record', v);
  const [index, clientId, seq, digest, bytes, outcome] = (Array.isArray(a) ? a : []).map(bytesOf);
  if (!isIndex(index) || typeof clientId !== 'string' || !isIndex(seq) || !(digest instanceof Uint8Array) || !isIndex(bytes) || !(outcome === null || outcome instanceof Uint8Array)) {
    throw new SessionError(SessionErrorCode.BadState, 'session store: a journal record has bad fields');
  }
  const input = { index, clientId, seq, digest, bytes };
  return outcome === null ? { input } : { input, record: { seq, index, digest, bytes, outcome } };
}

type Batch = Array<{ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }>;

/** Adds to `ops` the stored image (or deletion) of every client of `t` changed since the last call. */
function writeChanges(t: SessionTable, ops: Batch): void {
  for (const id of t.takeChanges()) {
    const img = t.clientImage(id);
    ops.push(img ? { type: 'put', key: clientKey(id), value: withCrc(cbor.encode(img)) } : { type: 'del', key: clientKey(id) });
  }
}

/** Folds one delta into `t`, checking that `t` decides as the live table did. */
function fold(t: SessionTable, d: Delta): void {
  const decision = t.apply(d.input);
  if ((decision.kind === 'new') !== (d.record !== undefined)) {
    throw new SessionError(SessionErrorCode.BadState, `session store: entry ${d.input.index} was ${d.record ? '' : 'not '}new when applied, but folds otherwise`);
  }
  if (decision.kind === 'new') {
    if (d.record!.outcome === undefined) throw new SessionError(SessionErrorCode.BadState, `session store: entry ${d.input.index} has no settled outcome`);
    decision.record.outcome = d.record!.outcome;
  }
}

/** Estimated bytes of one session input kept until it is folded into the base. */
export const SESSION_INPUT_BYTES = 256;
/** Default {@link SessionStoreOptions.maxPendingBytes} (16 MiB). */
export const MAX_PENDING_SESSION_BYTES = 16 * 1024 * 1024;

/** Options of {@link SessionStore.open}. */
export interface SessionStoreOptions extends SessionTableOptions {
  /** The engine's durable log index D (`db.logIndex().durable`): the table is restored as of it. */
  durableIndex: number;
  /**
   * Estimated bytes of the inputs kept since the base ({@link SESSION_INPUT_BYTES} each) past
   * which {@link onPressure} is called (once until the next {@link SessionStore.persist}).
   * Default {@link MAX_PENDING_SESSION_BYTES}.
   */
  maxPendingBytes?: number;
  /**
   * Asks for the engine's recorded index to move (the Raft write path proposes a checkpoint), so
   * that the next install folds the kept inputs into the base.
   */
  onPressure?: () => void;
}

/** The persistent, replicated session table (see the module comment). Create with {@link SessionStore.open}. */
export class SessionStore implements SessionBook {
  /** Inputs applied to {@link live} after {@link baseIndex}, in index order. */
  private deltas: Delta[] = [];
  /** Highest index whose delta is in the journal on disk. */
  private journaled: number;
  private readonly waits = new Map<SessionRecord, Promise<unknown>>();
  private chain: Promise<void> = Promise.resolve();
  private failure: SessionError | null = null;
  private pressed = false;
  private closed = false;
  private readonly maxPending: number;
  private readonly onPressure: (() => void) | undefined;

  private constructor(
    private readonly db: ClassicLevel<Uint8Array, Uint8Array>,
    /** The table the applier reads and changes: as of the latest applied entry. */
    private live: SessionTable,
    /** The table as of {@link baseIndex}, as stored in the base image. */
    private base: SessionTable,
    private baseIndex: number,
    options: SessionStoreOptions,
  ) {
    this.maxPending = options.maxPendingBytes ?? MAX_PENDING_SESSION_BYTES;
    this.onPressure = options.onPressure;
    this.journaled = baseIndex;
    base.trackChanges();
  }

  /**
   * Opens (or creates) the store in `dir` and restores the table as of `durableIndex`: the base
   * image, plus the journal's records up to that index (folded and written back as the new base);
   * journal records after it are dropped, as the group applies those entries again.
   * `SESSIONS_BAD_STATE` when the stored base is ahead of the engine or a record is damaged.
   */
  static async open(dir: string, options: SessionStoreOptions): Promise<SessionStore> {
    const { durableIndex } = options;
    fs.mkdirSync(dir, { recursive: true });
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    try {
      const bv = await db.get(BASE_KEY);
      const baseIndex = bv === undefined ? durableIndex : (unsealed('base index', bv) as number);
      if (!isIndex(baseIndex)) throw new SessionError(SessionErrorCode.BadState, 'session store: bad base index');
      if (baseIndex > durableIndex) {
        throw new SessionError(SessionErrorCode.BadState, `session store in ${dir} is as of log index ${baseIndex}, ahead of the engine's durable index ${durableIndex}`);
      }
      const images: unknown[] = [];
      for await (const [k, v] of db.iterator({ gt: Uint8Array.of(CLIENT), lt: Uint8Array.of(CLIENT + 1) })) {
        images.push(normalizeImage(unsealed(`client ${fromUtf8.decode(k.subarray(1))}`, v)));
      }
      let base: SessionTable;
      try {
        // Not held to the budget: it may have been lowered since; the next new record evicts.
        base = SessionTable.fromImages(images, options, baseIndex, false);
      } catch (err) {
        throw new SessionError(SessionErrorCode.BadState, `session store in ${dir}: ${(err as Error).message}`, { cause: err });
      }
      base.trackChanges();
      const ops: Batch = [];
      for await (const [k, v] of db.iterator({ gte: journalKey(0), lte: journalKey(Number.MAX_SAFE_INTEGER) })) {
        const d = decodeDelta(v);
        if (d.input.index <= durableIndex) fold(base, d);
        ops.push({ type: 'del', key: k });
      }
      writeChanges(base, ops);
      ops.push({ type: 'put', key: BASE_KEY, value: withCrc(cbor.encode(durableIndex)) });
      await db.batch(ops, { sync: true });
      base.skipTo(durableIndex);
      return new SessionStore(db, base.clone(), base, durableIndex, options);
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  /** Clients remembered (live). */
  get count(): number {
    return this.live.count;
  }

  /** Estimated bytes of the live table. */
  get bytes(): number {
    return this.live.bytes;
  }

  /** Estimated bytes of the inputs kept since the base (see {@link SessionStoreOptions.maxPendingBytes}). */
  get pendingBytes(): number {
    return this.deltas.length * SESSION_INPUT_BYTES;
  }

  /** Index the stored base image is as of. */
  get baseIndexOf(): number {
    return this.baseIndex;
  }

  /** The live table (read it; change it only through {@link apply}). */
  get table(): SessionTable {
    return this.live;
  }

  /** {@inheritDoc SessionBook.apply} */
  apply(input: SessionInput): SessionDecision {
    const decision = this.live.apply(input);
    this.deltas.push(decision.kind === 'new' ? { input, record: decision.record } : { input });
    if (!this.pressed && this.deltas.length * SESSION_INPUT_BYTES > this.maxPending) {
      this.pressed = true;
      this.onPressure?.();
    }
    return decision;
  }

  /** {@inheritDoc SessionBook.settling} */
  settling(record: SessionRecord, settled: Promise<unknown>): void {
    this.waits.set(record, settled);
    void settled.finally(() => this.waits.delete(record)).catch(() => undefined);
  }

  /** A replicated table forgets nothing. */
  forget(): boolean {
    return false;
  }

  /**
   * Takes back the inputs of the entries from `index` on (they were refused by a passing engine
   * fault and are applied again, in order, once it clears): the live table becomes the table as
   * of the entry before `index` — the base with the kept inputs applied again, keeping their
   * records — so that applying the same entries again decides, touches and evicts exactly as a
   * first apply would. `SESSIONS_BAD_STATE` when `index` is at or before the stored base.
   */
  rollback(index: number): void {
    if (!isIndex(index) || index <= this.baseIndex) {
      throw new SessionError(SessionErrorCode.BadState, `cannot roll the session table back to ${index}: the stored base is as of ${this.baseIndex}`);
    }
    let keep = this.deltas.length;
    while (keep > 0 && this.deltas[keep - 1].input.index >= index) keep--;
    if (keep === this.deltas.length) return;
    if (index <= this.base.lastIndex) {
      // A persist in progress already folded entries from `index` on into the base.
      throw new SessionError(SessionErrorCode.BadState, `cannot roll the session table back to ${index}: the base being stored is as of ${this.base.lastIndex}`);
    }
    // In place: a persist in progress splices the prefix it folded, which is unchanged.
    this.deltas.length = keep;
    this.journaled = Math.min(this.journaled, index - 1);
    const live = this.base.clone();
    for (const d of this.deltas) if (d.input.index > this.base.lastIndex) live.apply(d.input, d.record);
    this.live = live;
  }

  /**
   * Makes every applied entry up to `index` durable (journal), and advances the base to `durable`
   * (folding the journal up to it), in one synced batch. The engine awaits this before recording
   * `index` as its durable index (`ProofDB.beforeLogIndexDurable`); `durable` is the index it has
   * recorded so far. Calls run one at a time. A failed write fails this and every later call
   * (`SESSIONS_BAD_STATE`): the engine then stops installing, and a restart recovers from disk.
   */
  persist(index: number, durable: number): Promise<void> {
    const run = this.chain.then(() => this.persistNow(index, durable));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async persistNow(index: number, durable: number): Promise<void> {
    if (this.closed) throw new SessionError(SessionErrorCode.Unavailable, 'session store is closed');
    if (this.failure) throw this.failure;
    for (const d of this.deltas) {
      if (d.input.index > index) break;
      if (d.record && d.record.outcome === undefined) await this.waits.get(d.record);
    }
    try {
      const ops: Batch = [];
      let folded = 0;
      const to = Math.max(this.baseIndex, Math.min(durable, index));
      for (const d of this.deltas) {
        if (d.input.index <= this.journaled) {
          if (d.input.index <= to) ops.push({ type: 'del', key: journalKey(d.input.index) });
        } else if (d.input.index <= index) {
          if (d.record && d.record.outcome === undefined) throw new SessionError(SessionErrorCode.BadState, `entry ${d.input.index} has no settled outcome`);
          if (d.input.index > to) ops.push({ type: 'put', key: journalKey(d.input.index), value: encodeDelta(d) });
        } else break;
        if (d.input.index <= to) {
          fold(this.base, d);
          folded++;
        }
      }
      writeChanges(this.base, ops);
      if (to > this.baseIndex) ops.push({ type: 'put', key: BASE_KEY, value: withCrc(cbor.encode(to)) });
      if (ops.length > 0) await this.db.batch(ops, { sync: true });
      this.deltas.splice(0, folded);
      this.pressed = false;
      if (to > this.baseIndex) this.base.skipTo(to);
      this.baseIndex = to;
      this.journaled = Math.max(this.journaled, index);
    } catch (err) {
      this.failure = err instanceof SessionError ? err : new SessionError(SessionErrorCode.BadState, `session store write failed: ${(err as Error).message}`, { cause: err });
      throw this.failure;
    }
  }

  /**
   * The table as of log index `index` (at least the base index, and no later than the latest
   * applied entry), encoded for a snapshot: CBOR `{ v: 1, asOf, clients: [client image, …] }`,
   * clients least recently active first. Every outcome up to `index` must have settled.
   */
  export(index: number): Uint8Array {
    // `base.lastIndex`, not only `baseIndex`: while a persist waits for its write, the base already
    // holds the inputs it folded (up to the index it stores), and the deltas it folded are still listed.
    const folded = Math.max(this.baseIndex, this.base.lastIndex);
    if (!isIndex(index) || index < folded) {
      throw new SessionError(SessionErrorCode.Unavailable, `session table as of ${index} is no longer available (stored base is as of ${folded})`);
    }
    const t = this.base.clone();
    for (const d of this.deltas) {
      if (d.input.index <= folded) continue;
      if (d.input.index > index) break;
      if (d.record && d.record.outcome === undefined) throw new SessionError(SessionErrorCode.Unavailable, `entry ${d.input.index} has not settled yet`);
      fold(t, d);
    }
    return encodeTable(t, index);
  }

  /**
   * Replaces the whole table (memory and disk) with `bytes` from {@link export}, as of the index
   * they carry, which it returns. The bytes are validated completely first: on any fault
   * `SESSIONS_MALFORMED` and nothing changes. Call it only while no entry is being applied (a
   * snapshot install), with the engine's state as of the same index.
   */
  async import(bytes: Uint8Array): Promise<number> {
    if (this.failure) throw this.failure;
    const { table, asOf } = decodeTable(bytes, this.live.options);
    const ops: Batch = [];
    for await (const k of this.db.keys()) if (k[0] === CLIENT || k[0] === JOURNAL) ops.push({ type: 'del', key: k });
    for (const id of table.clientIds()) ops.push({ type: 'put', key: clientKey(id), value: withCrc(cbor.encode(table.clientImage(id))) });
    ops.push({ type: 'put', key: BASE_KEY, value: withCrc(cbor.encode(asOf)) });
    const chained = this.chain.then(() => this.db.batch(ops, { sync: true }));
    this.chain = chained.catch(() => undefined);
    await chained;
    table.trackChanges();
    this.base = table;
    this.live = table.clone();
    this.baseIndex = this.journaled = asOf;
    this.deltas = [];
    this.pressed = false;
    this.waits.clear();
    return asOf;
  }

  /** Closes the storage (waits for a running {@link persist}); later calls of {@link persist} fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    await this.db.close();
  }
}

/** Encodes a table as of `asOf` (see {@link SessionStore.export}). */
export function encodeTable(t: SessionTable, asOf: number): Uint8Array {
  return cbor.encode({ v: SESSIONS_FORMAT, asOf, clients: t.clientIds().map((id) => t.clientImage(id)) });
}

/**
 * Decodes and validates {@link encodeTable} bytes against `options` (budget included); throws
 * `SESSIONS_MALFORMED` naming the first fault.
 */
export function decodeTable(bytes: Uint8Array, options: SessionTableOptions): { table: SessionTable; asOf: number } {
  if (!(bytes instanceof Uint8Array)) malformed('not bytes');
  if (bytes.length > options.maxBytes + 64 * 1024) malformed(`${bytes.length} bytes exceed the budget of ${options.maxBytes}`);
  let doc: unknown;
  try {
    doc = cbor.decode(bytes);
  } catch (err) {
    return malformed(`not CBOR (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) malformed('not a map');
  const { v, asOf, clients } = doc as Record<string, unknown>;
  if (v !== SESSIONS_FORMAT) malformed(`format ${String(v)}, want ${SESSIONS_FORMAT}`);
  if (!isIndex(asOf)) malformed('bad asOf');
  if (!Array.isArray(clients)) malformed('clients is not a list');
  return { table: SessionTable.fromImages(clients.map(normalizeImage), options, asOf), asOf };
}
