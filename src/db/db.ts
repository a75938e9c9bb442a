/**
 * `ProofDB`: the embedded, versioned, deterministic LSM database.
 *
 * ```ts
 * const db = await ProofDB.open('./data');
 * const { version } = await db.put('user:1', 'alice');   // version 1
 * await db.get('user:1');                                 // Uint8Array "alice"
 * await db.getVersionHistory('user:1');                   // every version, oldest first
 * await db.checkpoint();                                  // flush + install compactions
 * await db.close();
 * ```
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareBytes, toBytes } from '../../proofs/bytes.js';
import { Kind } from '../../proofs/hash.js';
import {
  DatabaseClosedError,
  ErrorCode,
  InvalidArgumentError,
  ProofKVError,
  OutdatedFormatError,
} from '../errors.js';
import { MAX_SEQ, MAX_VERSION, seqOf, versionOf, type Entry } from '../keys.js';
import { resolveOptions, sameShape, SHAPE_OPTIONS, shapeOf, withRecordedShape, type DBOptions, type ResolvedOptions } from '../options.js';
import { files, VersionSet } from '../version/version_set.js';
import { WriteBatch, type BatchOp, type WriteCondition } from './batch.js';
import { DBCore, type CHECKPOINT_TAIL_ATTEMPTS, type EngineStats, type WriteFault } from './core.js';
import { DBIterator, type IteratorOptions, type VersionEntry } from './iterator.js';
import { lockDir, type DirLock } from './lock.js';
import { Checkpointer, type CosignResult, type SignedCheckpoint, type TakenCheckpoint } from '../proof/checkpointer.js';
import type { CosignCommand, CosignCounters, Divergence, MemberSignature } from '../replication/cosign.js';
import type { KeyRotation } from '../proof/node_key.js';
import type { CheckpointCertificate, GetProof, HistoryProof } from '../../proofs/lsm_proof.js';
import type { LogHead } from '../../proofs/checkpoint.js';
import { checkSignerSet, type SignerSet } from '../../proofs/signer_set.js';
import type { SetChange } from '../../proofs/set_changes.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { keySuccessor, type ScanProof } from '../../proofs/lsm_scan.js';
import { removeLeftovers, replayJournals } from './recovery.js';
import { finishSnapshotInstall } from './snapshot_install.js';
import { CheckpointLogWriteError, type StoredCheckpoint } from '../proof/checkpoint_log.js';
import { WritePipeline, type WriteResult } from './write.js';
import { trace } from '../replication/trace.js';

/** Per-write options. */
export interface WriteOptions {
  /** fdatasync the journal before acknowledging (default: the database's `sync` option). */
  sync?: boolean;
  /**
   * External-log mode only (`writeAheadLog: 'external'`), and required there: the index of the
   * external log entry this write comes from. Indexes must increase from write to write (and
   * checkpoint); a write with a smaller or equal index is refused with `INVALID_ARGUMENT`.
   */
  logIndex?: number;
  /**
   * The commit time to record, ms since the epoch (a safe non-negative integer). The version gets
   * `max(time, previous commit time)`, so times never go down. External-log mode: the log
   * command's time (never a clock at apply); a write without one gets the previous commit time.
   * Journal mode: defaults to `Date.now()`. See docs/engine.md § Commit times.
   */
  time?: number;
}

/**
 * A write's options with a condition (see {@link WriteCondition}): a failed one throws
 * `ConditionFailedError` (`CONDITION_FAILED`) and writes nothing.
 */
export interface ConditionalWriteOptions extends WriteOptions, WriteCondition {}

/** Options of {@link ProofDB.checkpoint}. */
export interface CheckpointOptions {
  /** External-log mode only, and required there: the index of the log entry that asks for the checkpoint. */
  logIndex?: number;
  /**
   * The checkpoint's time (ms since the epoch), from the log command; the checkpoint gets
   * `max(time, previous checkpoint's time)`. Default: the previous checkpoint's time. Never read
   * from a clock here, so every replica records the same time.
   */
  time?: number;
  /** The members that certify the checkpoint (the group's members at apply). Default: this node alone, quorum 1. */
  signers?: SignerSet;
}

/** Options of {@link ProofDB.cosign}. */
export interface CosignOptions {
  /** External-log mode only, and required there: the index of the log entry of the cosign command. */
  logIndex?: number;
}

/** Where the external log stands, in external-log mode (both 0 in journal mode). */
export interface LogIndexState {
  /** Latest log index applied (its writes are in the memtable or the tables). */
  applied: number;
  /**
   * Every entry up to this index has its effect on disk (tables, manifest, checkpoint log). After
   * an open this is where the caller's replay starts: at `durable + 1`.
   */
  durable: number;
}

/** Bounds of a history query; versions are inclusive. */
export interface HistoryOptions {
  minVersion?: number;
  maxVersion?: number;
  /** At most this many entries (the oldest ones). */
  limit?: number;
}

/**
 * What a checkpoint did: the checkpoint (certified at once, or pending with the `cosign` to
 * propose), its time and signer set, and the table set its MasterRoot commits to.
 */
export interface CheckpointResult extends TakenCheckpoint {
  /** Every write with seq <= this is in the tables. */
  seq: number;
  /** Tables after the checkpoint, in read order. */
  tables: TableInfo[];
}

/** Which checkpoint a proof is built against. */
export interface ProofOptions {
  /** Checkpoint index; default the latest (the only one whose tables are kept for proofs). */
  checkpoint?: number;
  /**
   * Also prove the edge entries of every consulted table that does not cover the key, so a client
   * verifying with `edges: true` checks the descriptors' key ranges itself (docs/proofs.md §8.12).
   */
  edges?: boolean;
}

/** A get answer with its proof. */
export interface ProvenGet {
  /** The newest entry at or below the asked version at the checkpoint, or undefined. */
  entry?: VersionEntry;
  proof: GetProof;
}

/** A history answer with its proof. */
export interface ProvenHistory {
  entries: VersionEntry[];
  proof: HistoryProof;
  /** Where to continue when `limit` cut the answer. */
  nextMinVersion?: number;
}

/** Bounds of a proven scan: a key range and a page size. */
export interface ScanProofOptions extends ProofOptions {
  /** Lowest key, inclusive (default: the first key). */
  start?: Bytes;
  /** First key after the range, exclusive (default: no upper end). */
  end?: Bytes;
  /** Most keys the page covers, live or deleted (default: the whole range). */
  limit?: number;
  /** Also return keys whose newest version is a tombstone. */
  includeTombstones?: boolean;
}

/** A scan page with its proof. */
export interface ProvenScan {
  /** The newest entry of each returned key, in key order. */
  entries: VersionEntry[];
  proof: ScanProof;
  /** Where the next page starts when `limit` cut this one (the smallest key after the proof's `bound`). */
  nextStart?: Uint8Array;
}

/** A table as the manifest describes it. */
export interface TableInfo {
  level: number;
  position: number;
  number: number;
  size: number;
  entryCount: number;
  /** Table Merkle root. */
  root: Uint8Array;
  smallest: { key: Uint8Array; version: number; seq: number };
  largest: { key: Uint8Array; version: number; seq: number };
}

type Bytes = Uint8Array | string;

/**
 * A consistent, read-only view at one seq. Writes after the snapshot are invisible to it. Call
 * `release()` when done; reads after that throw `SNAPSHOT_RELEASED`.
 */
export class Snapshot {
  private released = false;

  private readonly generation: number;

  /** @internal */
  constructor(
    private readonly db: ProofDB,
    /** The snapshot's sequence number. */
    readonly seq: number,
  ) {
    this.generation = db._generation;
  }

  private check(): void {
    if (this.released) throw new ProofKVError(ErrorCode.SNAPSHOT_RELEASED, 'snapshot was released');
    this.db._checkGeneration(this.generation);
  }

  /** Latest value as of the snapshot; undefined if absent or deleted. */
  async get(key: Bytes): Promise<Uint8Array | undefined> {
    this.check();
    return this.db._getSync(key, MAX_VERSION, this.seq);
  }

  /** Newest entry at or below `version` as of the snapshot. */
  async getWithVersion(key: Bytes, version: number): Promise<VersionEntry | undefined> {
    this.check();
    return this.db._getWithVersion(key, version, this.seq);
  }

  /** Version history as of the snapshot. */
  async getVersionHistory(key: Bytes, options: HistoryOptions = {}): Promise<VersionEntry[]> {
    this.check();
    return this.db._history(key, options, this.seq);
  }

  /** Range iteration as of the snapshot. */
  iterator(options: IteratorOptions = {}): DBIterator {
    this.check();
    return this.db._iterator(options, this.seq);
  }

  /** Ends the snapshot. Idempotent. */
  release(): void {
    this.released = true;
  }
}

/**
 * The embedded database. Open with {@link ProofDB.open}; every method throws
 * {@link DatabaseClosedError} after {@link ProofDB.close}.
 */
export class ProofDB {
  private closed = false;
  private closing: Promise<void> | null = null;
  /** External-log mode: the latest log index a write or checkpoint was given (validation). */
  private lastLogIndex: number;
  /** Set while {@link replaceFromSnapshot} has the engine closed: calls are refused meanwhile. */
  private replacing: string | null = null;
  /** The running {@link replaceFromSnapshot} ({@link close} waits for it). */
  private replacement: Promise<unknown> | null = null;
  /** Bumped by every {@link replaceFromSnapshot}: a {@link Snapshot} of an earlier state refuses reads. */
  private generation = 0;
  /** {@link deferCheckpointLogSyncs}: kept for the engine a snapshot install opens. */
  private deferredCheckpointSyncs = false;

  private constructor(
    private core: DBCore,
    private pipeline: WritePipeline,
    private checkpointer: Checkpointer,
    private lock: DirLock,
  ) {
    this.lastLogIndex = core.logIndex;
  }

  /**
   * The options in force, defaults filled in (the shape options are the recorded ones; after
   * {@link replaceFromSnapshot}, those the installed manifest records).
   */
  get options(): ResolvedOptions {
    return this.core.opts;
  }

  /**
   * Opens (creating if missing, by default) the database in `dir` and takes its lock. Recovers
   * from the journal after a crash. Throws `DIRECTORY_LOCKED` if another open database holds it,
   * `CORRUPTION` if its files are damaged, `INVALID_ARGUMENT` for bad options.
   */
  static async open(dir: string, options: DBOptions = {}): Promise<ProofDB> {
    if (typeof dir !== 'string' || dir.length === 0) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'dir must be a non-empty string');
    }
    const parts = await ProofDB.openParts(dir, resolveOptions(options), options);
    return new ProofDB(parts.core, parts.pipeline, parts.checkpointer, parts.lock);
  }

  /** Takes the lock of `dir`, finishes a committed snapshot install, recovers and opens the engine. */
  private static async openParts(dir: string, resolved: ResolvedOptions, explicit: DBOptions): Promise<{ core: DBCore; pipeline: WritePipeline; checkpointer: Checkpointer; lock: DirLock }> {
    let lock: DirLock;
    let opts = resolved;
    try {
      if (!fs.existsSync(dir)) {
        if (!opts.createIfMissing) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${dir} does not exist`);
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      }
      lock = lockDir(dir);
      makePrivate(dir);
    } catch (err) {
      throw asTyped(err, `opening ${dir}`);
    }
    let core: DBCore | null = null;
    let checkpointer: Checkpointer | null = null;
    try {
      // A snapshot install committed before a crash is finished first (src/db/snapshot_install.ts).
      finishSnapshotInstall(dir);
      let vs = VersionSet.recover(dir);
      const existing = vs !== null;
      if (vs && opts.errorIfExists) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${dir} already holds a database`);
      // A manifest that never recorded a commit time comes from before them: refused when it has
      // tables (their entries carry no times); journals of that age are refused at replay.
      if (vs && vs.lastTime === undefined && vs.current.tableNumbers().size > 0) {
        throw new OutdatedFormatError('MANIFEST', 'names tables but records no commit time');
      }
      if (!vs) {
        if (!opts.createIfMissing) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${dir} holds no database`);
        vs = VersionSet.create(dir);
      }
      // The shape is recorded in the manifest (docs/engine.md § Shape options): unset shape options
      // are the recorded ones, not this release's defaults (a database from before shapes were
      // recorded keeps the defaults it was created with); explicit ones are recorded.
      opts = withRecordedShape(opts, explicit, vs.shape, existing);
      const shape = shapeOf(opts);
      const recordShape = existing && !sameShape(vs.shape, shape);
      vs.shape = shape;
      core = new DBCore(dir, opts, vs);
      checkpointer = Checkpointer.open(core, opts.rotateKey);
      const cp = checkpointer;
      core.repairCheckpointLog = () => cp.repairLog();
      core.syncCheckpointLog = () => cp.syncLog();
      removeLeftovers(core, checkpointer.pinnedTables());
      await vs.openManifest();
      // The live engine picked a compaction at its last install; pick the same one before replay,
      // so an install reached during replay applies it exactly as the live engine would have.
      await core.afterInstall();
      await replayJournals(core);
      await core.waitForFlush();
      if (opts.writeAheadLog === 'journal') core.openJournal();
      else await openExternalLog(core, checkpointer);
      // A new manifest records the shape in its first edit; a changed one gets an edit of its own,
      // once the open has succeeded.
      if (recordShape) await vs.logAndApply({ shape });
      return { core, pipeline: new WritePipeline(core), checkpointer, lock };
    } catch (err) {
      if (checkpointer) await checkpointer.close().catch(() => undefined);
      if (core) await core.close().catch(() => undefined);
      lock.release();
      throw asTyped(err, `opening ${dir}`);
    }
  }

  // ---- validation --------------------------------------------------------------------------

  private checkOpen(): void {
    if (this.closed) throw new DatabaseClosedError();
    if (this.replacing !== null) throw new DatabaseClosedError(this.replacing);
  }

  /** @internal Throws `DATABASE_CLOSED` when the state `generation` was read from has been replaced. */
  _checkGeneration(generation: number): void {
    this.checkOpen();
    if (generation !== this.generation) throw new DatabaseClosedError('the database state this snapshot was taken of was replaced by a replication snapshot');
  }

  /** @internal The state generation ({@link replaceFromSnapshot} bumps it). */
  get _generation(): number {
    return this.generation;
  }

  /**
   * {@link key} for a read that keeps nothing past its synchronous return: a plain `Uint8Array`
   * is used as it is (no copy); a string or another view type (`Buffer`) is converted as for a write.
   */
  private readKey(k: Bytes): Uint8Array {
    if (k instanceof Uint8Array && k.constructor === Uint8Array && k.length > 0 && k.length <= this.options.maxKeySize) return k;
    return this.key(k);
  }

  private key(k: Bytes): Uint8Array {
    if (typeof k !== 'string' && !(k instanceof Uint8Array)) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'key must be a string or Uint8Array');
    }
    // A private plain Uint8Array: callers may reuse their buffers, and one array type keeps the
    // comparators monomorphic.
    const b = typeof k === 'string' ? toBytes(k) : new Uint8Array(k);
    if (b.length === 0) throw new InvalidArgumentError(ErrorCode.EMPTY_KEY, 'key must not be empty');
    if (b.length > this.options.maxKeySize) {
      throw new InvalidArgumentError(ErrorCode.KEY_TOO_LARGE, `key is ${b.length} bytes, limit ${this.options.maxKeySize}`);
    }
    return b;
  }

  private value(v: Bytes): Uint8Array {
    if (typeof v !== 'string' && !(v instanceof Uint8Array)) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'value must be a string or Uint8Array');
    }
    const b = typeof v === 'string' ? toBytes(v) : new Uint8Array(v);
    if (b.length > this.options.maxValueSize) {
      throw new InvalidArgumentError(ErrorCode.VALUE_TOO_LARGE, `value is ${b.length} bytes, limit ${this.options.maxValueSize}`);
    }
    return b;
  }

  private static version(v: unknown, min: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new InvalidArgumentError(
        ErrorCode.INVALID_VERSION,
        `version must be an integer in [${min}, 2^53 - 1], got ${String(v)}`,
      );
    }
    return v;
  }

  private validateOp(op: BatchOp): BatchOp {
    if (op.kind !== Kind.PUT && op.kind !== Kind.DELETE) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'unknown operation kind');
    }
    const out: BatchOp = {
      kind: op.kind,
      key: this.key(op.key),
      value: op.kind === Kind.PUT ? this.value(op.value) : new Uint8Array(0),
      version: op.version === undefined ? undefined : ProofDB.version(op.version, 1),
    };
    if (op.append !== undefined) {
      if (typeof op.append !== 'boolean') throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'append must be a boolean');
      if (op.append && (op.kind !== Kind.PUT || out.version !== undefined)) {
        throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'an append is a put without an explicit version');
      }
      if (op.append) out.append = true;
    }
    return ProofDB.condition(out, op);
  }

  /** Validates the condition `c` and sets it on `op`. */
  private static condition(op: BatchOp, c: WriteCondition): BatchOp {
    if (c.ifAbsent !== undefined && typeof c.ifAbsent !== 'boolean') throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'ifAbsent must be a boolean');
    if (c.ifVersion !== undefined) {
      if (c.ifAbsent) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'give ifVersion or ifAbsent, not both');
      op.ifVersion = ProofDB.version(c.ifVersion, 0);
    }
    if (c.ifAbsent) {
      if (op.kind !== Kind.PUT) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'ifAbsent applies to puts and appends, not deletes');
      op.ifAbsent = true;
    }
    return op;
  }

  /**
   * Checks that the database is open, builds and validates one operation with `build`, and
   * enqueues it. Not an async function (every member applies each replicated PUT through here:
   * the pipeline's own promise is the answer, no extra hops); bad input still rejects, never throws.
   */
  private writeOne(build: () => BatchOp, options: WriteOptions): Promise<WriteResult> {
    let op: BatchOp;
    let time: number | undefined;
    let logIndex: number;
    try {
      this.checkOpen();
      op = build();
      time = ProofDB.time(options.time);
      logIndex = this.takeLogIndex(options.logIndex);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.pipeline.writeOne(op, options.sync ?? this.options.sync, logIndex, time);
  }

  /** Checks a write's `time` option: undefined, or a non-negative safe integer (ms). */
  private static time(time: unknown): number | undefined {
    if (time === undefined) return undefined;
    if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `time must be a non-negative integer of ms, got ${String(time)}`);
    }
    return time;
  }

  // ---- writes ------------------------------------------------------------------------------

  /**
   * Checks a write's or checkpoint's `logIndex` against the mode and takes it: in external-log
   * mode it is required and must exceed every index taken before; in journal mode it is refused.
   */
  private takeLogIndex(logIndex: number | undefined): number {
    if (this.options.writeAheadLog === 'journal') {
      if (logIndex !== undefined) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `logIndex needs writeAheadLog: 'external'`);
      return 0;
    }
    if (typeof logIndex !== 'number' || !Number.isSafeInteger(logIndex) || logIndex <= this.lastLogIndex) {
      throw new InvalidArgumentError(
        ErrorCode.INVALID_ARGUMENT,
        `writeAheadLog 'external' needs a logIndex above ${this.lastLogIndex}, got ${String(logIndex)}`,
      );
    }
    this.lastLogIndex = logIndex;
    return logIndex;
  }

  /**
   * Writes `value` at the key's next version (1 for a new key). With `ifVersion` or `ifAbsent`,
   * only if the condition holds; otherwise throws `CONDITION_FAILED` and writes nothing.
   */
  put(key: Bytes, value: Bytes, options: ConditionalWriteOptions = {}): Promise<WriteResult> {
    return this.writeOne(() => ProofDB.condition({ kind: Kind.PUT, key: this.key(key), value: this.value(value) }, options), options);
  }

  /**
   * Writes `value` at an explicit version, which must be greater than the key's latest version;
   * otherwise throws `VERSION_NOT_INCREASING` and writes nothing. Conditions as for {@link put}.
   */
  putWithVersion(key: Bytes, value: Bytes, version: number, options: ConditionalWriteOptions = {}): Promise<WriteResult> {
    return this.writeOne(() => ProofDB.condition({ kind: Kind.PUT, key: this.key(key), value: this.value(value), version: ProofDB.version(version, 1) }, options), options);
  }

  /** Writes a tombstone at the key's next version (with `ifVersion`: only if that is the newest). History keeps it. */
  delete(key: Bytes, options: WriteOptions & Pick<WriteCondition, 'ifVersion'> = {}): Promise<WriteResult> {
    return this.writeOne(() => ProofDB.condition({ kind: Kind.DELETE, key: this.key(key), value: new Uint8Array(0) }, { ifVersion: options.ifVersion }), options);
  }

  /**
   * Writes, at the key's next version, its newest live value (empty when absent or deleted)
   * followed by `suffix`. The value is computed when the write is applied, after every write
   * queued before it. A result above `maxValueSize` throws `VALUE_TOO_LARGE` and writes nothing.
   */
  append(key: Bytes, suffix: Bytes, options: ConditionalWriteOptions = {}): Promise<WriteResult> {
    return this.writeOne(() => ProofDB.condition({ kind: Kind.PUT, key: this.key(key), value: this.value(suffix), append: true }, options), options);
  }

  /** A new, empty batch for {@link write}. */
  batch(): WriteBatch {
    return new WriteBatch();
  }

  /**
   * Applies a batch atomically: every operation or none. Returns one result per operation.
   * A later operation on the same key sees the versions of earlier ones in the batch.
   */
  async write(batch: WriteBatch, options: WriteOptions = {}): Promise<WriteResult[]> {
    this.checkOpen();
    if (!(batch instanceof WriteBatch)) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'write expects a WriteBatch');
    const ops = batch.ops.map((op) => this.validateOp(op));
    const time = ProofDB.time(options.time);
    const logIndex = this.takeLogIndex(options.logIndex);
    if (ops.length === 0) return [];
    return this.pipeline.write(ops, options.sync ?? this.options.sync, logIndex, time);
  }

  // ---- reads -------------------------------------------------------------------------------

  /**
   * The latest value of `key`, or undefined if it never existed or its latest version is a tombstone.
   * The read itself is synchronous (memtables, then tables in memory or by `readSync`): the promise
   * is already settled when it is returned, and bad input or a closed database rejects it.
   */
  get(key: Bytes): Promise<Uint8Array | undefined> {
    try {
      return Promise.resolve(this._getSync(key, MAX_VERSION, MAX_SEQ));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The newest entry of `key` at or below `version` (a tombstone included), or undefined. */
  async getWithVersion(key: Bytes, version: number): Promise<VersionEntry | undefined> {
    this.checkOpen();
    return this._getWithVersion(key, version, MAX_SEQ);
  }

  /** Versions of `key` in [minVersion, maxVersion], oldest first, tombstones included. */
  async getVersionHistory(key: Bytes, options: HistoryOptions = {}): Promise<VersionEntry[]> {
    this.checkOpen();
    return this._history(key, options, MAX_SEQ);
  }

  /**
   * Iterates a key range: latest values by default, every version with `allVersions`. The
   * iterator reads at the seq of its creation (an implicit snapshot), as LevelDB's do.
   */
  iterator(options: IteratorOptions = {}): DBIterator {
    this.checkOpen();
    return this._iterator(options, this.core.lastSeq);
  }

  /** A consistent view at the current seq. */
  snapshot(): Snapshot {
    this.checkOpen();
    return new Snapshot(this, this.core.lastSeq);
  }

  /** @internal */
  async _get(key: Bytes, version: number, seq: number): Promise<Uint8Array | undefined> {
    return this._getSync(key, version, seq);
  }

  /** @internal The read of {@link get}; throws what `get` rejects with. */
  _getSync(key: Bytes, version: number, seq: number): Uint8Array | undefined {
    this.checkOpen();
    const e = this.core.getEntry(this.readKey(key), version, seq);
    return e && e.kind === Kind.PUT ? e.value : undefined;
  }

  /** @internal */
  async _getWithVersion(key: Bytes, version: number, seq: number): Promise<VersionEntry | undefined> {
    this.checkOpen();
    const k = this.key(key);
    const v = ProofDB.version(version, 0);
    const e = this.core.getEntry(k, v, seq);
    return e ? toVersionEntry(e) : undefined;
  }

  /** @internal */
  async _history(key: Bytes, options: HistoryOptions, seq: number): Promise<VersionEntry[]> {
    this.checkOpen();
    const k = this.key(key);
    const min = options.minVersion === undefined ? 0 : ProofDB.version(options.minVersion, 0);
    const max = options.maxVersion === undefined ? MAX_VERSION : ProofDB.version(options.maxVersion, 0);
    const limit = options.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `limit must be a non-negative integer, got ${String(limit)}`);
    }
    if (min > max || limit === 0) return [];
    // All versions of the key at or below `max`, newest first, through the merged view.
    const it = this._iterator({ gte: k, lte: k, allVersions: true }, seq);
    const out: VersionEntry[] = [];
    try {
      it.seekVersion(k, max);
      for (;;) {
        const chunk = await it.nextv(256);
        if (chunk.length === 0) break;
        let stop = false;
        for (const e of chunk) {
          if (e.version < min) {
            stop = true;
            break;
          }
          if (e.version <= max) out.push(e);
        }
        if (stop) break;
      }
    } finally {
      it.close();
    }
    out.reverse();
    return limit === undefined ? out : out.slice(0, limit);
  }

  /** @internal */
  _iterator(options: IteratorOptions, seq: number): DBIterator {
    this.checkOpen();
    if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 0)) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'limit must be a non-negative integer');
    }
    for (const b of ['gt', 'gte', 'lt', 'lte'] as const) {
      const v = options[b];
      if (v !== undefined && typeof v !== 'string' && !(v instanceof Uint8Array)) {
        throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${b} must be a string or Uint8Array`);
      }
    }
    return new DBIterator(this.core, this.core.readState(), seq, options);
  }

  // ---- maintenance -------------------------------------------------------------------------

  /**
   * Flushes the memtable into a table and installs the finished (or awaited) compaction, at this
   * point of the write sequence. Writes queued before it are included; resolves once the
   * checkpoint is recorded. In external-log mode writes queued after it go on at its freeze
   * (see {@link startCheckpoint}); in journal mode they wait for it.
   */
  async checkpoint(options: CheckpointOptions = {}): Promise<CheckpointResult> {
    return (await this.startCheckpoint(options)).result;
  }

  /**
   * Takes a checkpoint at this point of the write sequence and resolves once it **took effect**:
   * `result` then settles when it is recorded. External-log mode: the checkpoint takes effect at
   * its freeze (the intent is recorded, the seq and log index are captured, the memtable is
   * frozen), and the writes queued after it go into the new memtable while its flush, settle and
   * record run (pipelined checkpoints, docs/engine.md § Checkpoints); the certified table set is
   * exactly the one the checkpoint would have had with writes held. A fault after the freeze
   * no longer refuses the checkpoint: the engine retries its steps, and when they cannot finish
   * the fault becomes fatal and `result` rejects (the next open redoes the checkpoint from the
   * log). A second checkpoint waits in the write queue for the record of the one in flight.
   * Journal mode: resolves when the checkpoint is recorded (the write queue waits for it).
   */
  async startCheckpoint(options: CheckpointOptions = {}): Promise<{ result: Promise<CheckpointResult> }> {
    this.checkOpen();
    if (options.time !== undefined && !(Number.isSafeInteger(options.time) && options.time >= 0)) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `checkpoint time ${String(options.time)} is not a safe non-negative integer`);
    }
    const badSet = options.signers === undefined ? undefined : checkSignerSet(options.signers);
    if (badSet) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `checkpoint signers: ${badSet.message}`);
    const logIndex = this.takeLogIndex(options.logIndex);
    if (this.options.writeAheadLog === 'external') return this.pipelinedCheckpoint(logIndex, options);
    let result: CheckpointResult | undefined;
    await this.pipeline.barrier(async () => {
      const core = this.core;
      core.throwIfFailed();
      trace('ckpt', 'begin', logIndex);
      if (core.mem.count > 0) await core.rotate(true);
      await core.waitForFlush();
      trace('ckpt', 'flushed', logIndex);
      // Every level within budget, and at most `checkpointLevel0Tables` level-0 tables in the
      // certified set (more are compacted into level 1).
      await core.settleForCheckpoint();
      trace('ckpt', 'settled', logIndex);
      const signed = await this.checkpointer.checkpoint(core.lastSeq, undefined, options);
      result = { ...signed, seq: signed.checkpoint.seq, tables: this.tables() };
      trace('ckpt', 'end', logIndex);
    });
    return { result: Promise.resolve(result!) };
  }

  /**
   * External-log mode: the checkpoint's steps up to its freeze in the write queue, the rest in
   * the engine's flush chain ({@link DBCore.startCheckpointTail}).
   */
  private async pipelinedCheckpoint(logIndex: number, options: CheckpointOptions): Promise<{ result: Promise<CheckpointResult> }> {
    let result: Promise<CheckpointResult> | undefined;
    await this.pipeline.barrier(async () => {
      const core = this.core;
      core.throwIfFailed();
      trace('ckpt', 'begin', logIndex);
      // One checkpoint in flight: the next one (its intent, its signer set) follows its record.
      await core.checkpointIdle();
      core.throwIfFailed();
      // Time and signer set are recorded before the freeze, so a checkpoint finished at the next
      // open records the same ones (openExternalLog). A refusal here changes nothing.
      const meta = await this.checkpointLogStep(() => this.checkpointer.intend(logIndex, options));
      trace('ckpt', 'intent', logIndex);
      // The freeze records the log index of the writes before the checkpoint (a crash before its
      // index edit replays the checkpoint entry); the checkpoint takes effect here.
      if (core.mem.count > 0) await core.rotate(true);
      const seq = core.lastSeq;
      core.logIndex = logIndex;
      trace('ckpt', 'frozen', logIndex);
      let taken: CheckpointResult | undefined;
      const tail = core.startCheckpointTail(logIndex, async () => {
        const signed = await this.checkpointLogStep(() => this.checkpointer.checkpoint(seq, logIndex, meta));
        // The table set is still the checkpoint's: a later flush installs after this step.
        taken = { ...signed, seq: signed.checkpoint.seq, tables: this.tables() };
      });
      result = tail.completion.then(() => taken!);
    });
    return { result: result! };
  }

  /**
   * Resolves when no checkpoint is in flight (external-log mode: the record of the last one
   * taken is appended); rejects with the write fault when the one in flight failed and is being
   * retried or was abandoned (see {@link startCheckpoint}).
   */
  async waitForCheckpoint(): Promise<void> {
    this.checkOpen();
    await this.core.checkpointIdle();
  }

  /** True while a checkpoint's steps after its freeze run (external-log mode; false while a failed one waits for the engine's recovery). */
  checkpointInFlight(): boolean {
    return !this.closed && this.core.checkpointRunning();
  }

  /**
   * True while a frozen memtable's flush runs: its install makes its log index durable
   * ({@link logIndex}, {@link beforeLogIndexDurable}). False while a failed flush waits for the
   * engine's recovery.
   */
  flushInFlight(): boolean {
    return !this.closed && this.core.flushRunning();
  }

  /** Resolves when no flush runs; rejects with the write fault when one failed. */
  async waitForFlush(): Promise<void> {
    this.checkOpen();
    await this.core.waitForFlush();
  }

  /**
   * Runs a step that appends to the checkpoint log. When the append fails (a full disk, no
   * descriptor left) nothing of the step is recorded. External-log mode: the engine enters a
   * recoverable write fault (`checkpoint-log`), so that the log entries after it are refused too
   * and can be applied again in order, and the caller gets the fault's error. (Journal mode: the
   * error as it is; the next checkpoint takes the same index.) A checkpoint's record fails the
   * same way, after its freeze: the engine then retries it (docs/engine.md § Checkpoints).
   */
  private async checkpointLogStep<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      if (!(err instanceof CheckpointLogWriteError) || this.options.writeAheadLog !== 'external') throw err;
      this.core.enterFault('checkpoint-log', err);
      throw this.core.faultError();
    }
  }

  /**
   * Applies a member's signature on a checkpoint-log head (a `cosign` log command; see
   * `Checkpointer.cosign` and docs/replication.md § Co-signing): a valid signature on this node's
   * latest head is collected and persisted before this resolves, and certifies the head once the
   * quorums are met; an invalid, unknown or duplicated one is ignored (see the verdict). Ordered
   * with writes and checkpoints like a write (a barrier), so a later write never becomes durable
   * before it.
   */
  async cosign(cmd: CosignCommand, options: CosignOptions = {}): Promise<CosignResult> {
    return (await this.startCosign(cmd, options)).result;
  }

  /**
   * {@link cosign}, resolving once the cosign **took effect** in log order: `result` then settles
   * with its verdict. External-log mode, while a checkpoint is in flight: the cosign is judged
   * after that checkpoint's record (judged before it, it would be `unknown-head` on this replica
   * only) and before any flush frozen after it installs, so the writes after it go on meanwhile;
   * its append failing is retried with the checkpoint's steps (docs/engine.md § Checkpoints).
   * Otherwise it is judged in the write queue.
   */
  async startCosign(cmd: CosignCommand, options: CosignOptions = {}): Promise<{ result: Promise<CosignResult> }> {
    this.checkOpen();
    const logIndex = this.takeLogIndex(options.logIndex);
    const judge = async (): Promise<CosignResult> => {
      trace('cosign', 'begin', logIndex);
      const r = await this.checkpointLogStep(() => this.checkpointer.cosign(cmd));
      trace('cosign', 'end', logIndex, r.verdict);
      return r;
    };
    let result: Promise<CosignResult> | undefined;
    await this.pipeline.barrier(async () => {
      this.core.throwIfFailed();
      const external = this.options.writeAheadLog === 'external';
      const later = external ? this.core.afterCheckpointRecord(judge) : null;
      if (later) {
        later.catch(() => undefined); // the caller's await sees the rejection
        result = later;
      } else {
        // A failed checkpoint in flight refuses the cosign for now (its record does not exist).
        await this.core.checkpointIdle();
        const r = await judge();
        result = Promise.resolve(r);
      }
      if (external) this.core.logIndex = logIndex;
    });
    return { result: result! };
  }

  /**
   * This node's signature on its pending head when it is not among the collected ones yet (to
   * propose again after a restart; see `Checkpointer.ownCosign`).
   */
  ownCosign(): CosignCommand | undefined {
    this.checkOpen();
    return this.checkpointer.ownCosign();
  }

  /**
   * This node's signatures on the newest set-change checkpoints whose own certificate still lacks
   * a quorum (see `Checkpointer.setChangeCosigns`), to propose again.
   */
  setChangeCosigns(limit?: number): CosignCommand[] {
    this.checkOpen();
    return this.checkpointer.setChangeCosigns(limit);
  }

  /**
   * Sizes of the set-change checkpoints whose certificate in the log still lacks a quorum of the
   * new signer set or of the previous one (see `Checkpointer.incompleteSetChanges`): a verifier
   * trusting the previous set cannot follow them yet.
   */
  incompleteSetChanges(): number[] {
    this.checkOpen();
    return this.checkpointer.incompleteSetChanges();
  }

  /**
   * The Raft log index of the entry that asked for the earliest set-change checkpoint whose
   * certificate is incomplete ({@link incompleteSetChanges}), or undefined when there is none (or
   * its record holds no log index). The replication layer keeps the log from there, so that a
   * member of the old or the new set that is behind re-executes the checkpoint and signs it
   * instead of skipping it through a snapshot (docs/replication.md § Membership, *Set changes*).
   */
  incompleteSetChangeLogIndex(): number | undefined {
    this.checkOpen();
    return this.checkpointer.incompleteSetChangeRecords()[0]?.appliedIndex;
  }

  /**
   * The member ids of the latest checkpoint's signer set, certified or pending (undefined before
   * the first checkpoint, or for a legacy record without a set).
   */
  latestSignerIds(): number[] | undefined {
    this.checkOpen();
    return this.checkpointer.latestStored()?.signers?.members.map((m) => m.id);
  }

  /** The divergence this replica is in (docs/replication.md § Co-signing), or undefined. */
  divergence(): Divergence | undefined {
    return this.checkpointer.divergence();
  }

  /** Verdicts of the cosign commands applied since open (for metrics). */
  cosignCounters(): Readonly<CosignCounters> {
    return this.checkpointer.cosignCounters;
  }

  /**
   * Co-signing state for status pages: the certified and the latest log size, and the latest
   * certificate's signers (member ids, in log order).
   */
  certification(): { certifiedSize: number; latestSize: number; signers: number[]; time?: number } {
    this.checkOpen();
    const { certified, latest } = this.checkpointer.sizes();
    const cert = this.checkpointer.certificate();
    const out: { certifiedSize: number; latestSize: number; signers: number[]; time?: number } = {
      certifiedSize: certified,
      latestSize: latest,
      signers: cert ? cert.signatures.map((g: MemberSignature) => g.id) : [],
    };
    const time = this.checkpointer.latestStored()?.time;
    if (time !== undefined) out.time = time;
    return out;
  }

  /**
   * The newest entry of `key` at or below `version` (default: latest) at a checkpoint, with a proof
   * a client verifies with `verifyGetProof` from `proofkv/proofs`. Writes after the checkpoint are
   * not covered until the next one.
   */
  async getWithProof(key: Bytes, options: { version?: number } & ProofOptions = {}): Promise<ProvenGet> {
    this.checkOpen();
    const k = this.key(key);
    const v = options.version === undefined ? MAX_VERSION : ProofDB.version(options.version, 0);
    const { proof, entry } = this.checkpointer.getProof(k, v, options.checkpoint, options.edges === true);
    return { proof, entry: entry ? toVersionEntry(entry) : undefined };
  }

  /**
   * Every version of `key` in [minVersion, maxVersion] at a checkpoint (oldest first; with `limit`,
   * the oldest `limit` and where to continue), with a proof that none is omitted or added.
   */
  async getVersionHistoryWithProof(key: Bytes, options: HistoryOptions & ProofOptions = {}): Promise<ProvenHistory> {
    this.checkOpen();
    const k = this.key(key);
    const min = options.minVersion === undefined ? 0 : ProofDB.version(options.minVersion, 0);
    const max = options.maxVersion === undefined ? MAX_VERSION : ProofDB.version(options.maxVersion, 0);
    if (min > max) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `minVersion ${min} exceeds maxVersion ${max}`);
    const limit = options.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `limit must be a positive integer, got ${String(limit)}`);
    }
    const { proof, entries } = this.checkpointer.historyProof(k, min, max, limit, options.checkpoint, options.edges === true);
    return {
      proof,
      entries: entries.map(toVersionEntry),
      nextMinVersion: proof.bound < max ? proof.bound + 1 : undefined,
    };
  }

  /**
   * The newest entry of every key in [start, end) at a checkpoint, tombstoned keys left out unless
   * `includeTombstones`, with a proof a client verifies with `verifyScanProof` (docs/proofs.md
   * §8.9.1). With `limit`, the page covers the first `limit` keys and `nextStart` says where the
   * next one starts.
   */
  async scanWithProof(options: ScanProofOptions = {}): Promise<ProvenScan> {
    this.checkOpen();
    // A start may be one byte longer than a key: the successor of the previous page's last key.
    const start = options.start === undefined ? new Uint8Array(0) : toBytes(options.start);
    if (start.length > this.options.maxKeySize + 1) throw new InvalidArgumentError(ErrorCode.KEY_TOO_LARGE, `scan start is ${start.length} bytes`);
    const end = options.end === undefined ? undefined : this.key(options.end);
    if (end && compareBytes(start, end) >= 0) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'scan end must be above start');
    const limit = options.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `limit must be a positive integer, got ${String(limit)}`);
    }
    const tombstones = options.includeTombstones === true;
    const { proof, entries } = this.checkpointer.scanProof(start, end, limit, tombstones, options.checkpoint, options.edges === true);
    return {
      proof,
      entries: (tombstones ? entries : entries.filter((e) => e.kind === Kind.PUT)).map(toVersionEntry),
      nextStart: proof.bound ? keySuccessor(proof.bound) : undefined,
    };
  }

  /**
   * The latest certified checkpoint with its certificate (the signed head that ends with it).
   * Throws `CHECKPOINT_UNAVAILABLE` before the first is certified.
   */
  latestCheckpoint(): SignedCheckpoint {
    this.checkOpen();
    return this.checkpointer.latest();
  }

  /** Checkpoint `index`, with its RFC 9162 inclusion proof in the latest signed head. */
  checkpointAt(index: number): SignedCheckpoint & { inclusion: Uint8Array[]; setChange?: CheckpointCertificate } {
    this.checkOpen();
    return this.checkpointer.at(index);
  }

  /**
   * The signer-set changes at checkpoints `from .. size - 1`, proven against the certified head of
   * `size` (see `Checkpointer.setChanges`): at most `limit` per call and about `maxBytes`.
   */
  signerSetChanges(from: number, size: number, limit: number, maxBytes: number): { changes: SetChange[]; next?: number } {
    this.checkOpen();
    return this.checkpointer.setChanges(from, size, limit, maxBytes);
  }

  /** RFC 9162 consistency proof that the log head of size `toSize` extends the one of size `fromSize`. */
  consistencyProof(fromSize: number, toSize: number): Uint8Array[] {
    this.checkOpen();
    return this.checkpointer.consistency(fromSize, toSize);
  }

  /** The log head of size `size` (1 <= size <= the latest size), for checkpoint notes of past heads. */
  logHead(size: number): LogHead {
    this.checkOpen();
    return this.checkpointer.headAt(size);
  }

  /** The latest checkpoint's table descriptors, for auditors (see `Checkpointer.latestTables`). */
  checkpointTables(): ReturnType<Checkpointer['latestTables']> {
    this.checkOpen();
    return this.checkpointer.latestTables();
  }

  /**
   * The checkpoint proofs are served against (the latest), as its `CHECKPOINTS` record stores it
   * (table list in read order, log index, compaction pointers), or undefined before the first:
   * what a replication snapshot describes (`src/replication/snapshot.ts`). Its tables stay on
   * disk while it is the one served.
   */
  servedCheckpointRecord(): StoredCheckpoint | undefined {
    this.checkOpen();
    return this.checkpointer.certifiedRecord();
  }

  /**
   * Keeps the tables of {@link servedCheckpointRecord} on disk after newer checkpoints replace it,
   * until `release` is called (idempotent; also a no-op once this engine was closed or replaced by
   * a snapshot install, whose reopen deletes what nothing references). For a member serving a
   * replication snapshot that another member is still fetching (docs/replication.md § Snapshots,
   * *Held while fetched*). Undefined before the first certified checkpoint.
   */
  holdServedCheckpoint(): { record: StoredCheckpoint; release: () => void } | undefined {
    this.checkOpen();
    const core = this.core;
    const h = this.checkpointer.holdCertifiedTables();
    if (!h) return undefined;
    return {
      record: h.checkpoint,
      release: () => {
        if (this.core === core && !this.closed && this.replacing === null) h.release();
      },
    };
  }

  /** The node's key rotations, oldest first, and the one this open made (see `KEY_ROTATIONS`). */
  keyRotations(): { rotations: readonly KeyRotation[]; rotatedAtOpen?: KeyRotation } {
    return { rotations: this.checkpointer.rotations, rotatedAtOpen: this.checkpointer.rotated };
  }

  /**
   * An Ed25519 signature by the node key over `message` (RFC 8032): for messages of other formats
   * than the log head, such as checkpoint notes (docs/witness.md). The key never leaves the engine.
   */
  signWithNodeKey(message: Uint8Array): Uint8Array {
    this.checkOpen();
    return ed25519.sign(message, this.checkpointer.key.privateKey);
  }

  /** This node's Ed25519 public key: what clients trust. */
  publicKey(): Uint8Array {
    return this.checkpointer.key.publicKey;
  }

  /** The table set in read order (level 0 newest first, then each level by key). */
  tables(): TableInfo[] {
    this.checkOpen();
    return this.core.vs.current.placed().map(({ level, position, meta }) => ({
      level,
      position,
      number: meta.number,
      size: meta.size,
      entryCount: meta.entryCount,
      root: meta.root,
      smallest: describeKey(meta.smallest),
      largest: describeKey(meta.largest),
    }));
  }

  /** Engine counters: flushes, compactions, stall time. */
  stats(): EngineStats & { lastSeq: number; memtableBytes: number; frozenMemtables: number; frozenBytes: number; flushing: boolean; compactionPending: boolean } {
    this.checkOpen();
    return {
      ...this.core.stats,
      lastSeq: this.core.lastSeq,
      memtableBytes: this.core.mem.approximateSize,
      frozenMemtables: this.core.imms.length,
      frozenBytes: this.core.imms.reduce((a, m) => a + m.approximateSize, 0),
      flushing: this.core.imms.length > 0,
      compactionPending: this.core.hasPendingCompaction(),
    };
  }

  /**
   * Waits until the background flush and compactions have run to the end: every level is then
   * within its budget (docs/engine.md § Compaction scheduling), and the files of the tables they
   * replaced that no open iterator holds are deleted. Writes need not wait for this (a
   * flush waits for the compactions by itself); a bulk load that wants a levelled table set before
   * it reads can. Rejects with the error of a failed flush or compaction (the engine is then in a
   * write fault and retries by itself).
   */
  async waitForCompactions(): Promise<void> {
    this.checkOpen();
    await this.core.waitForBackgroundWork();
  }

  /** External-log mode: the latest applied and the latest durable log index (see {@link LogIndexState}). */
  logIndex(): LogIndexState {
    this.checkOpen();
    return { applied: this.core.logIndex, durable: this.core.vs.appliedIndex };
  }

  /**
   * External-log mode: gives back the log indexes taken from `index` on, whose writes, checkpoints
   * and cosigns were all refused by a write fault (nothing of them applied), so that the caller
   * can apply the same entries again once the fault clears. Throws `INVALID_ARGUMENT` when one of
   * them took effect (the applied log index reached `index`): applying them again would differ.
   * Call it only when no write, checkpoint or cosign is in flight.
   */
  rewindLogIndex(index: number): void {
    this.checkOpen();
    if (this.options.writeAheadLog !== 'external') throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `rewindLogIndex needs writeAheadLog: 'external'`);
    if (!Number.isSafeInteger(index) || index <= 0) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `log index must be a positive integer, got ${index}`);
    if (this.core.logIndex >= index) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `cannot rewind to log index ${index}: entries up to ${this.core.logIndex} took effect`);
    }
    this.lastLogIndex = Math.min(this.lastLogIndex, index - 1);
  }

  /**
   * External-log mode: `hook(index, durable)` is awaited before every manifest edit that raises
   * the recorded log index from `durable` to `index` (a flush install, a checkpoint's last
   * install), so that state kept beside the engine can be made durable up to `index` first — the
   * replicated session table does (docs/replication.md § Sessions). A rejection fails that install
   * (a write fault). One hook; null removes it.
   */
  beforeLogIndexDurable(hook: ((index: number, durable: number) => Promise<void>) | null): void {
    this.checkOpen();
    this.core.beforeLogIndexDurable = hook;
  }

  /**
   * External-log mode: whether the checkpoint log defers its syncs (its checkpoint, intent and
   * cosign records are written at once and synced before every manifest edit that raises the
   * recorded log index, beside the {@link beforeLogIndexDurable} hook; docs/replication.md
   * § Co-signing, Crash safety). Sound only when the external log holds every entry durably before
   * the entry is applied — a Raft log that syncs —, because a record a power loss takes is then of
   * an entry after the recorded index, which is applied again after the open. Off by default
   * (every record synced when appended, as in journal mode); turning it off syncs the deferred
   * records first. Kept across {@link replaceFromSnapshot}.
   */
  async deferCheckpointLogSyncs(on: boolean): Promise<void> {
    this.checkOpen();
    if (on && this.options.writeAheadLog !== 'external') throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `deferCheckpointLogSyncs needs writeAheadLog: 'external'`);
    this.deferredCheckpointSyncs = on;
    await this.checkpointer.deferLogSyncs(on);
  }

  /**
   * The write fault the engine is in, or undefined. While one is set, writes and checkpoints throw
   * `WriteFaultError`; a recoverable fault is retried in the background and clears by itself.
   */
  writeFault(): Readonly<WriteFault> | undefined {
    return this.core.fault ?? undefined;
  }

  /** Calls `listener` when a write fault begins (with it) and when it clears (with null). One listener. */
  onWriteFault(listener: ((fault: Readonly<WriteFault> | null) => void) | null): void {
    this.core.onFaultChange = listener;
  }

  /**
   * The engine's caches with their byte use and budget: `block` (decoded data blocks for reads),
   * `table_memory` (table files read into memory), `proof_block` (decoded blocks and entry trees
   * for proofs), `block_tree` (per-table block trees for proofs) and `version_memo` (the latest
   * versions of recently written keys, `src/db/version_memo.ts`). Charges of the proof caches and
   * the memo are estimates of heap use (see `src/proof/prover.ts`).
   */
  cacheStats(): Array<{ cache: string; bytes: number; capacity: number; count?: number }> {
    this.checkOpen();
    const t = this.core.tables;
    const c = this.checkpointer;
    return [
      { cache: 'block', bytes: t.blocks.size, capacity: t.blocks.capacity },
      { cache: 'table_memory', bytes: t.memoryBytes, capacity: this.options.tableMemoryBytes },
      { cache: 'proof_block', bytes: c.blockCache.lru.bytes, capacity: c.blockCache.lru.capacity, count: c.blockCache.lru.count },
      { cache: 'block_tree', bytes: c.blockTrees.bytes, capacity: c.blockTrees.capacity, count: c.blockTrees.count },
      { cache: 'version_memo', bytes: this.core.versions.bytes(), capacity: this.core.versions.capacity, count: this.core.versions.size },
      { cache: 'leaf', bytes: this.core.leaves.bytes, capacity: this.core.leaves.capacity, count: this.core.leaves.count },
    ];
  }

  /**
   * Table file descriptors: how many are `open`, the bound (`limit`, option `maxOpenTables`) and
   * how many times a descriptor closed by the bound was `reopens`ed. Tables held in memory have none.
   */
  openTables(): { open: number; limit: number; reopens: number } {
    this.checkOpen();
    const f = this.core.tables.files;
    return { open: f.count, limit: f.limit, reopens: f.reopens };
  }

  /**
   * @internal Test hooks of the engine: `beforeFlushInstall` is awaited after a flush's table is
   * built, before its install (a rejection fails that flush like an I/O error: a recoverable
   * write fault); `checkpointTailAttempts` bounds the recovery attempts of a checkpoint's steps
   * after its freeze before the fail-stop (default {@link CHECKPOINT_TAIL_ATTEMPTS}).
   */
  _engineHooks(hooks: { beforeFlushInstall?: ((flushedSeq: number) => Promise<void>) | null; checkpointTailAttempts?: number }): void {
    this.checkOpen();
    if (hooks.beforeFlushInstall !== undefined) this.core.beforeFlushInstall = hooks.beforeFlushInstall;
    if (hooks.checkpointTailAttempts !== undefined) this.core.checkpointTailAttempts = hooks.checkpointTailAttempts;
  }

  /**
   * @internal Bytes of `CHECKPOINTS` known durable: what a power loss now would leave of it
   * (external-log mode defers its syncs; crash tests cut a copy to this length).
   */
  _checkpointLogSyncedLength(): number {
    this.checkOpen();
    return this.checkpointer.log.syncedLength;
  }

  /** The directory this database lives in. */
  get location(): string {
    return this.core.dir;
  }

  /**
   * Replaces this database's whole state in place by a replication snapshot, keeping this object
   * (the server's routes hold it). `install(dir, beforeCommit)` fetches and verifies the snapshot
   * while the database keeps serving, then calls `beforeCommit` just before it replaces the files
   * in `dir` (`installSnapshot` in `src/replication/snapshot.ts` does exactly that). `beforeCommit`
   * refuses new calls (`DATABASE_CLOSED`, "installing a snapshot"), waits up to `drainMs` (default
   * 5000) for queued writes and open iterators to finish — `BUSY` if they do not, and nothing
   * changes — then closes the engine and releases the directory's lock. Whatever `install` does
   * next, the engine is opened again from `dir` before this settles: on the new state when the
   * install committed, on the old one otherwise. The hooks set with {@link beforeLogIndexDurable}
   * and {@link onWriteFault} are kept; a {@link Snapshot} taken before refuses reads after it.
   * If reopening fails the database is closed (`DATABASE_CLOSED`) and the error is thrown.
   * Throws `BUSY` when a replacement is already running, `DATABASE_CLOSED` when closed.
   */
  async replaceFromSnapshot<T>(install: (dir: string, beforeCommit: () => Promise<void>) => Promise<T>, options: { drainMs?: number } = {}): Promise<T> {
    this.checkOpen();
    if (this.closing) throw new DatabaseClosedError();
    if (this.replacement) throw new ProofKVError(ErrorCode.BUSY, 'a snapshot is already being installed');
    let done!: () => void;
    this.replacement = new Promise<void>((resolve) => (done = resolve));
    try {
      return await this.runReplacement(install, options);
    } finally {
      this.replacement = null;
      done();
    }
  }

  private async runReplacement<T>(install: (dir: string, beforeCommit: () => Promise<void>) => Promise<T>, options: { drainMs?: number }): Promise<T> {
    const dir = this.core.dir;
    const drainMs = options.drainMs ?? 5000;
    let closedEngine = false;
    const beforeCommit = async (): Promise<void> => {
      if (this.closed) throw new DatabaseClosedError();
      this.replacing = 'the database is installing a replication snapshot';
      try {
        const deadline = Date.now() + drainMs;
        await this.pipeline.idle();
        while (this.core.openIterators > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        if (this.core.openIterators > 0) {
          throw new ProofKVError(ErrorCode.BUSY, `${this.core.openIterators} iterators are still open after ${drainMs} ms: the snapshot is not installed`);
        }
        await this.pipeline.idle();
        await this.core.checkpointIdle().catch(() => undefined);
      } catch (err) {
        this.replacing = null;
        throw err;
      }
      closedEngine = true;
      try {
        await this.checkpointer.close();
        await this.core.close();
      } finally {
        this.lock.release();
      }
    };
    try {
      return await install(dir, beforeCommit);
    } finally {
      if (closedEngine) await this.reopen(dir);
    }
  }

  /** Opens the engine again in `dir` after {@link replaceFromSnapshot} closed it, keeping the hooks. */
  private async reopen(dir: string): Promise<void> {
    const hook = this.core.beforeLogIndexDurable;
    const faults = this.core.onFaultChange;
    try {
      // The shape is the one the installed manifest records (the serving member's, which built its
      // tables: src/replication/snapshot.ts), not this engine's: no shape option is explicit.
      const opts: ResolvedOptions = { ...this.options, rotateKey: false, errorIfExists: false, createIfMissing: false };
      const explicit: DBOptions = { ...opts };
      for (const k of SHAPE_OPTIONS) delete explicit[k];
      const parts = await ProofDB.openParts(dir, opts, explicit);
      parts.core.beforeLogIndexDurable = hook;
      parts.core.onFaultChange = faults;
      await parts.checkpointer.deferLogSyncs(this.deferredCheckpointSyncs);
      this.core = parts.core;
      this.pipeline = parts.pipeline;
      this.checkpointer = parts.checkpointer;
      this.lock = parts.lock;
      this.lastLogIndex = parts.core.logIndex;
      this.generation++;
      this.replacing = null;
    } catch (err) {
      this.closed = true;
      this.closing = Promise.resolve();
      this.replacing = null;
      throw err;
    }
  }

  /**
   * Waits for queued writes, a running flush and a running compaction (whose result is discarded),
   * then closes every file. The memtable is not flushed: the journal (in external-log mode, the
   * caller's log) holds it and the next open replays it. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closing) return this.closing;
    // A running snapshot install reopens the engine first (or leaves it closed if that failed).
    if (this.replacement) await this.replacement;
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      try {
        await this.pipeline.idle();
        // A checkpoint in flight appends its record first (a failed one is abandoned by the close).
        await this.core.checkpointIdle().catch(() => undefined);
        await this.checkpointer.close();
        await this.core.close();
      } finally {
        this.lock.release();
      }
    })();
    return this.closing;
  }
}

/**
 * The end of an open in external-log mode. Writes made earlier in journal mode (replayed into the
 * memtable) are flushed and the journals deleted, so that from here on the tables and the caller's
 * log are the whole state. Seqs restart right after the flushed ones: replaying the log gives its
 * writes the seqs they had. A checkpoint whose table set is complete (`checkpointIndex`) but
 * whose checkpoint-log record was not written before a crash is taken now, on that same table
 * set, so it is never taken on another one.
 */
async function openExternalLog(core: DBCore, checkpointer: Checkpointer): Promise<void> {
  if (core.mem.count > 0) {
    await core.rotate(false);
    await core.waitForFlush();
  }
  for (const j of core.journals.splice(0)) fs.rmSync(path.join(core.dir, files.journal(j.number)), { force: true });
  const vs = core.vs;
  core.lastSeq = vs.flushedSeq;
  core.lastTime = vs.lastTime ?? 0;
  core.logIndex = vs.appliedIndex;
  if (vs.checkpointIndex > (checkpointer.log.latest()?.appliedIndex ?? 0)) {
    await checkpointer.checkpoint(core.lastSeq, vs.checkpointIndex, checkpointer.intentFor(vs.checkpointIndex));
  }
}

/**
 * The data directory holds the node's private key and every record: mode 0700, whatever the umask
 * was when it was created, and every file directly in it loses group and other permissions (0600
 * for files the engine wrote). Files the engine creates later get the process umask; the server
 * sets it to 077. Not followed: symbolic links.
 */
function makePrivate(dir: string): void {
  const st = fs.statSync(dir);
  if ((st.mode & 0o777) !== 0o700) fs.chmodSync(dir, 0o700);
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!d.isFile() && !d.isDirectory()) continue;
    const p = path.join(dir, d.name);
    const mode = fs.statSync(p).mode & 0o777;
    if (mode & 0o077) fs.chmodSync(p, mode & 0o700);
  }
}

/** Errors from the OS become typed `IO_ERROR`s; typed errors pass through. */
function asTyped(err: unknown, what: string): ProofKVError {
  if (err instanceof ProofKVError) return err;
  return new ProofKVError(ErrorCode.IO_ERROR, `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

function describeKey(ik: Uint8Array): { key: Uint8Array; version: number; seq: number } {
  return { key: ik.slice(0, ik.length - 16), version: versionOf(ik), seq: seqOf(ik) };
}

function toVersionEntry(e: Entry): VersionEntry {
  return { key: e.key, version: e.version, seq: e.seq, time: e.time, kind: e.kind === Kind.DELETE ? 'delete' : 'put', value: e.value };
}
