/**
 * The engine's shared state and its maintenance: memtable rotation, flushes, compaction
 * scheduling and installs.
 *
 * Determinism: the table set changes only at *install points*, whose sequence is a pure function
 * of the write sequence: a memtable is frozen exactly when its accounted size reaches
 * `writeBufferSize` after a batch, or at a checkpoint. After each install the pure policy in
 * `picker.ts` picks the next compaction from the new version, and the *drain* installs it, picks
 * again, and so on until every level's score is below 1; a flush's install waits for the drain
 * (the write backpressure), so flushes and compactions alternate in one fixed order and table
 * numbers are allocated in it. A checkpoint then compacts level 0 into level 1 when it would
 * leave more than `checkpointLevel0Tables` level-0 tables ({@link DBCore.settleForCheckpoint}).
 * How long a flush or compaction takes changes when things happen, never what is written.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCode, ProofKVError } from '../errors.js';
import { errorCodeOf, WriteFaultError, type WriteFault } from './write_fault.js';
import type { Entry } from '../keys.js';
import { encodeInternalKey, encodeStoredValue, kindOf, seekKey, seqOf, storedTime, storedUserValue, TRAILER_LEN, versionOf } from '../keys.js';
import type { Kind } from '../../proofs/hash.js';
import { JournalWriter } from '../journal/writer.js';
import { Memtable } from '../memtable/skiplist.js';
import { VersionMemo } from './version_memo.js';
import type { ResolvedOptions } from '../options.js';
import { CompactionRunner } from '../compaction/runner.js';
import { LeafCache } from '../compaction/leaf_cache.js';
import { packEntries, type CompactionOutput, type TableShape } from '../compaction/compact.js';
import type { TableMeta, VersionEdit } from '../version/edit.js';
import { pickCheckpointLevel0, pickCompaction, type Compaction } from '../version/picker.js';
import type { Version } from '../version/version.js';
import { files, type VersionSet } from '../version/version_set.js';
import { syncDir, syncDirAsync } from '../util/durable.js';
import { TableCache } from './table_cache.js';
import { TableDeleter } from './table_deleter.js';
import { trace, tracing } from '../replication/trace.js';

export { errorCodeOf, WriteFaultError, type WriteFault };

/** A journal file still needed by recovery, with the highest seq it holds. */
interface LiveJournal {
  number: number;
  maxSeq: number;
}

interface PendingCompaction {
  compaction: Compaction;
  result: Promise<CompactionOutput[]>;
  /** Picked by a checkpoint's rule rather than by the policy's scores. */
  forCheckpoint: boolean;
  /** Set when the compaction or its install failed: recovery drops it and picks again. */
  failed?: boolean;
  /** The failure. */
  error?: Error;
}

/** What a read sees: the memtables and the table set at one moment. */
export interface ReadState {
  mem: Memtable;
  /** The frozen memtables not yet installed as tables, newest first. */
  imms: readonly Memtable[];
  version: Version;
}

/** A frozen memtable on its way to a level-0 table, with what its flush install records. */
interface FrozenMemtable {
  imm: Memtable;
  /** Every record with seq <= this is in it or in a table. */
  flushedSeq: number;
  /** External-log mode: the log index captured at its freeze. */
  appliedIndex: number;
  /** Commit time of its latest write. */
  flushedTime: number;
  /**
   * The checkpoint whose steps after its freeze were running when this memtable was frozen: this
   * flush's install waits until that checkpoint's record is appended ({@link CheckpointTail}).
   */
  heldBy: CheckpointTail | null;
}

/**
 * The steps of a pipelined checkpoint after its freeze (external-log mode; docs/engine.md
 * § Checkpoints): wait for the install of every memtable frozen up to the checkpoint, settle
 * ({@link DBCore.settleForCheckpoint}), the edit recording its log index, its record. They run in
 * the flush chain, so a flush frozen after the checkpoint installs only once they are done.
 */
export interface CheckpointTail {
  /** The log index of the checkpoint entry. */
  readonly index: number;
  /** The commit time of the latest write at the freeze (what the index edit records). */
  readonly time: number;
  /** The last memtable frozen at or before the checkpoint's freeze, or null: installed before the settle. */
  readonly after: Memtable | null;
  /** Appends the checkpoint's record (the database's step). Throws to be retried. */
  readonly record: () => Promise<void>;
  /** The settle and the index edit are done (a retry goes on with the record). */
  settled: boolean;
  /** The record is appended (a retry goes on with the follow-ups). */
  recorded: boolean;
  /**
   * Steps of later log entries that must run after the record, in order, before a flush frozen
   * after the checkpoint installs (cosigns applied while it is in flight: {@link afterCheckpointRecord}).
   * Each is removed once it succeeded; a failure is retried like the record.
   */
  readonly followUps: Array<{ run: () => Promise<void>; reject: (err: Error) => void }>;
  /** `failed`: a step threw; recovery runs the steps again. `abandoned`: the fail-stop. */
  state: 'running' | 'failed' | 'done' | 'abandoned';
  /** Settles when the record is appended; rejects at a fail-stop or a close before that. */
  readonly completion: Promise<void>;
  /** Settles (never rejects) when the steps finished or failed. */
  readonly idle: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}

/** First recovery retry after a fault, ms; each failed attempt doubles it. */
export const RECOVERY_BASE_MS = 50;
/** Longest wait between recovery attempts, ms. */
export const RECOVERY_MAX_MS = 5000;
/**
 * Recovery attempts a checkpoint's steps after its freeze get (about 21 s with the backoff above)
 * before the fault becomes fatal: the fail-stop of docs/engine.md § Checkpoints.
 */
export const CHECKPOINT_TAIL_ATTEMPTS = 10;

/** Counters for status and benchmarks. */
export interface EngineStats {
  flushes: number;
  compactions: number;
  trivialMoves: number;
  /** Compactions of level 0 that checkpoints made (more than `checkpointLevel0Tables` level-0 tables); also counted in `compactions`. */
  checkpointCompactions: number;
  /**
   * Of `checkpointCompactions`, the merges of level 0 into one level-0 table (level 0 under
   * `checkpointLevel0Bytes`); the others compacted level 0 into level 1.
   */
  checkpointLevel0Merges: number;
  /**
   * Compactions dropped unfinished by a checkpoint. Always 0 since the drain (docs/engine.md §
   * Compaction scheduling): a checkpoint waits for the policy's compactions before its own rule.
   * Kept so that the field and its metric stay stable.
   */
  droppedCompactions: number;
  /** Milliseconds writers waited for the previous flush (and the compactions before its install): the write stall. */
  stallMs: number;
  /**
   * Milliseconds flush installs waited for the drain, i.e. for the compactions picked since the
   * previous flush (the write backpressure; overlaps `stallMs` when a writer waits on that install).
   */
  compactionWaitMs: number;
  /** Bytes of the tables flushes wrote (each entry hashed once here). */
  flushBytes: number;
  /** Bytes of the input tables of installed merging compactions. */
  compactionBytesRead: number;
  /** Bytes of the tables installed merging compactions wrote (each entry in them hashed again, unless its leaf was reused). */
  compactionBytesWritten: number;
  /** Entries of installed compactions' outputs whose leaf was taken from their input's leaves (leaf_cache.ts) instead of hashed. */
  compactionLeavesReused: number;
  /** Completed journal `fdatasync`s that acknowledged writes waited for (writes with `sync`). */
  journalSyncs: number;
  /** Write faults entered since open. */
  faults: number;
  /** Write faults the engine recovered from by itself. */
  faultRecoveries: number;
  /** Obsolete table files unlinked. */
  obsoleteTablesDeleted: number;
  /** Unlinks of obsolete table files that failed (other than ENOENT); the next open removes those files. */
  obsoleteTableDeleteErrors: number;
}

/** Shared engine state. One per open database. */
export class DBCore {
  mem = new Memtable();
  /** Latest versions of keys written since open, beyond the memtables (bounded; `version_memo.ts`). */
  readonly versions = new VersionMemo();
  /**
   * Frozen memtables, oldest first, each dropped in the step that makes its table current. At
   * most `maxFrozenMemtables` (plus one, briefly, when recovery flushes after a journal fault).
   */
  readonly imms: Memtable[] = [];
  /** Highest seq assigned. Invariant: flushedSeq <= lastSeq. */
  lastSeq = 0;
  /**
   * Commit time (ms since the epoch) of the latest applied write; 0 before the first. Commit times
   * never go below it (docs/engine.md § Commit times). A freeze records it with the frozen
   * memtable, and the manifest keeps it (`lastTime`), so it survives a restart.
   */
  lastTime = 0;
  /**
   * External-log mode: index of the latest log entry applied (its writes are in the memtable or
   * the tables). A freeze records it with the frozen memtable; 0 in journal mode.
   */
  logIndex = 0;
  /**
   * External-log mode: awaited before every manifest edit that raises the recorded log index
   * (`appliedIndex`), with the index it records and the one recorded so far. State the caller
   * keeps beside the engine (the replicated session table) makes itself durable up to `index`
   * here, so that it is never behind the engine's recorded index. A rejection fails the install.
   */
  beforeLogIndexDurable: ((index: number, durable: number) => Promise<void>) | null = null;
  /** Recovery from a `checkpoint-log` fault: makes the checkpoint log writable again, or throws (set by the database). */
  repairCheckpointLog: (() => Promise<void>) | null = null;
  /**
   * Makes the checkpoint log's deferred records durable (external-log mode: `Checkpointer.syncLog`):
   * awaited, beside {@link beforeLogIndexDurable}, before every edit that raises the recorded log
   * index, and before an edit that records a checkpoint's index.
   */
  syncCheckpointLog: (() => Promise<void>) | null = null;
  journal: JournalWriter | null = null;
  readonly journals: LiveJournal[] = [];
  readonly tables: TableCache;
  readonly runner: CompactionRunner;
  /** The leaves of recently built tables, for the compactions that rewrite them (leaf_cache.ts). */
  readonly leaves: LeafCache;
  readonly shape: TableShape;
  /** The write fault the engine is in, if any (see {@link WriteFault}). */
  fault: WriteFault | null = null;
  /** Called when a fault begins (with it) and when it clears (with null). */
  onFaultChange: ((fault: WriteFault | null) => void) | null = null;
  readonly stats: EngineStats = {
    flushes: 0,
    compactions: 0,
    trivialMoves: 0,
    checkpointCompactions: 0,
    checkpointLevel0Merges: 0,
    droppedCompactions: 0,
    stallMs: 0,
    compactionWaitMs: 0,
    flushBytes: 0,
    compactionBytesRead: 0,
    compactionBytesWritten: 0,
    compactionLeavesReused: 0,
    journalSyncs: 0,
    faults: 0,
    faultRecoveries: 0,
    obsoleteTablesDeleted: 0,
    obsoleteTableDeleteErrors: 0,
  };
  /** A journal whose write or sync failed, and the length its last acknowledged record ends at. */
  private brokenJournal: { writer: JournalWriter; keepLength: number } | null = null;
  /** Frozen memtables whose flush failed (or never started), in freeze order, to flush again on recovery. */
  private failedFlushes: FrozenMemtable[] = [];
  /** After a journal fault the memtable is flushed before writes resume (the old journal is not trusted). */
  private flushAfterRecovery = false;
  /** Tables a failed install may have logged to the manifest: kept on disk until a new manifest is written. */
  private readonly quarantined = new Set<number>();
  private recoveryTimer: NodeJS.Timeout | null = null;
  private recovering: Promise<void> | null = null;
  private closed = false;
  /**
   * The flushes in flight, oldest first: each builds its table at once and installs it after the
   * one before it (installs keep freeze order). Each settles (never rejects) after its install.
   */
  private readonly flushQueue: Array<Promise<void>> = [];
  private pending: PendingCompaction | null = null;
  /** The drain ({@link startDrain}) while it runs. */
  private draining: Promise<void> | null = null;
  private readonly liveVersions = new Set<Version>();
  /** Iterators not closed yet (`ProofDB.replaceFromSnapshot` waits for them). */
  openIterators = 0;
  /** Table numbers being installed: renamed into place but not yet in the current version. */
  private readonly installing = new Set<number>();
  /**
   * Tables that left the current version (an edit's `deleted`) or were never installed (a failed
   * install's outputs) and whose files may still exist: what {@link deleteObsoleteTables}
   * considers, so that it never lists the directory. Each number names a file on disk, so the set
   * is bounded by the directory's tables. Leftovers of a crash are found by listing at open.
   */
  private readonly obsolete = new Set<number>();
  /** Runs the unlinks off the event loop; `close` waits for it. */
  private readonly deleter: TableDeleter;
  /** Set once `close` has drained the deleter: later releases leave their files to the next open. */
  private deletionsStopped = false;
  private jobCounter = 0;
  /** The pipelined checkpoint whose steps after the freeze are not done yet, or null. */
  private tail: CheckpointTail | null = null;
  /** Recovery attempts a failed checkpoint tail gets before the fail-stop (tests lower it). */
  checkpointTailAttempts = CHECKPOINT_TAIL_ATTEMPTS;
  /** Test hook: awaited after a flush's table is built, before its install (null: none). */
  beforeFlushInstall: ((flushedSeq: number) => Promise<void>) | null = null;

  constructor(
    readonly dir: string,
    readonly opts: ResolvedOptions,
    readonly vs: VersionSet,
  ) {
    this.tables = new TableCache(dir, opts.blockCacheSize, opts.tableMemoryBytes, opts.maxOpenTables);
    this.runner = new CompactionRunner(opts.compactionThread, opts.compactionDelay, opts.compactionWorkerHeapBytes);
    this.leaves = new LeafCache(opts.leafCacheSize);
    this.deleter = new TableDeleter(dir, this.stats, () => this.deleteObsoleteTables());
    this.shape = {
      blockSize: opts.blockSize,
      blockRestartInterval: opts.blockRestartInterval,
      bloomBitsPerKey: opts.bloomBitsPerKey,
      targetFileSize: opts.targetFileSize,
      merkleGroup: opts.merkleGroup,
    };
  }

  // ---- reads -------------------------------------------------------------------------------

  /** The current memtables and version. */
  readState(): ReadState {
    return { mem: this.mem, imms: this.imms.slice().reverse(), version: this.vs.current };
  }

  /** Pins a version so its table files outlive later compactions while a reader uses them. */
  refVersion(v: Version): void {
    v.refs++;
    this.liveVersions.add(v);
  }

  /** Releases a pin taken with {@link refVersion}. */
  unrefVersion(v: Version): void {
    if (--v.refs <= 0) {
      this.liveVersions.delete(v);
      // The current version's tables are all live: releasing it frees none.
      if (v !== this.vs.current) this.deleteObsoleteTables();
    }
  }

  /**
   * The newest entry of `userKey` with version <= `version` and seq <= `seq`, searching
   * memtable, frozen memtable, then tables in read order. The first hit is the answer: a key's
   * newer records always sit in earlier places of the read order.
   */
  getEntry(userKey: Uint8Array, version: number, seq: number, rs: ReadState = this.readState()): Entry | undefined {
    const target = seekKey(userKey, version, seq);
    let fromMem = rs.mem.get(userKey, target, seq);
    for (let i = 0; !fromMem && i < rs.imms.length; i++) fromMem = rs.imms[i].get(userKey, target, seq);
    if (fromMem) return entryOf(fromMem[0], fromMem[1]);
    for (const t of rs.version.tablesForKey(userKey)) {
      const e = this.tables.get(t.number).get(userKey, version, seq);
      if (e) return e;
    }
    return undefined;
  }

  /**
   * The latest version of `userKey` ever written (0 when none). `id` is the key as a latin1
   * string: the memtables answer from their version maps; only keys absent from both reach the
   * tables (where bloom filters answer most misses).
   */
  latestVersion(userKey: Uint8Array, id: string): number {
    let v = this.mem.latest.get(id);
    for (let i = this.imms.length - 1; v === undefined && i >= 0; i--) v = this.imms[i].latest.get(id);
    v ??= this.versions.get(id);
    if (v !== undefined) return v;
    const version = this.vs.current;
    for (const t of version.tablesForKey(userKey)) {
      const e = this.tables.get(t.number).get(userKey, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      if (e) return e.version;
    }
    return 0;
  }

  /** Inserts one record, committed at `time`, into the memtable and its version map. */
  memAdd(userKey: Uint8Array, id: string, version: number, seq: number, time: number, kind: Kind, value: Uint8Array): void {
    this.mem.add(encodeInternalKey(userKey, version, seq, kind), encodeStoredValue(time, value), seq);
    this.mem.latest.set(id, version);
    this.versions.set(id, version);
    if (time > this.lastTime) this.lastTime = time;
  }

  // ---- journal -----------------------------------------------------------------------------

  /** Opens a fresh journal file for new writes. */
  openJournal(): void {
    const number = this.vs.nextJournalNumber++;
    this.journal = JournalWriter.open(path.join(this.dir, files.journal(number)), { syncMode: 'threadpool' });
    this.journals.push({ number, maxSeq: this.lastSeq });
  }

  /** Records that the current journal now holds records up to `seq`. */
  noteJournaled(seq: number): void {
    this.journals[this.journals.length - 1].maxSeq = seq;
  }

  // ---- rotation, flush, install ------------------------------------------------------------

  /** True when the memtable has reached its size and must be frozen. */
  memtableFull(): boolean {
    return this.mem.approximateSize >= this.opts.writeBufferSize;
  }

  /** The latest flush in flight (it settles after every earlier one), or null. */
  private get flushing(): Promise<void> | null {
    return this.flushQueue.length > 0 ? this.flushQueue[this.flushQueue.length - 1] : null;
  }

  /**
   * Freezes the memtable and starts flushing it. When `maxFrozenMemtables` frozen memtables are
   * still waiting for their installs (which wait for the compactions before them), waits first for
   * the oldest: the write stall. `switchJournal` is false during recovery, when the replayed
   * journals stay until flushed. Only when the stall happens depends on timing: the freeze points,
   * and the order of installs and compactions, do not.
   */
  async rotate(switchJournal: boolean): Promise<void> {
    // Frozen memtables count, not a checkpoint's steps in the flush chain (they hold no memtable).
    if (this.imms.length >= this.opts.maxFrozenMemtables && this.flushQueue.length > 0) {
      const t0 = performance.now();
      while (this.imms.length >= this.opts.maxFrozenMemtables && this.flushQueue.length > 0) await this.flushQueue[0];
      this.stats.stallMs += performance.now() - t0;
    }
    this.throwIfFailed();
    const imm = this.mem;
    this.imms.push(imm);
    this.mem = new Memtable();
    const flushedSeq = this.lastSeq;
    // In external-log mode the memtable holds entries up to this log index (captured at the freeze).
    const appliedIndex = this.logIndex;
    // ... and its writes were committed at or before this time.
    const flushedTime = this.lastTime;
    if (switchJournal && this.journal) {
      // Closing syncs the old journal. A failure there is not fatal: the frozen memtable holds every
      // record of it and is flushed (synced) next, after which the old journal is not needed.
      await this.journal.close().catch(() => undefined);
      this.journal = null;
      try {
        this.openJournal();
      } catch (err) {
        this.failedFlushes.push({ imm, flushedSeq, appliedIndex, flushedTime, heldBy: null });
        this.enterFault('journal', err as Error);
        throw this.faultError();
      }
    }
    this.startFlush({ imm, flushedSeq, appliedIndex, flushedTime, heldBy: this.tail });
  }

  /**
   * Starts the steps of a pipelined checkpoint after its freeze (called in the write queue right
   * after the freeze, or without one when the memtable was empty): they run after every flush in
   * flight and before the install of any memtable frozen later. `record` appends the
   * checkpoint's record. Returns the tail; its `completion` settles when the record is appended.
   * A failed step enters a recoverable write fault and recovery runs the steps again, up to
   * {@link checkpointTailAttempts} times; then the fault becomes fatal (the fail-stop). One at a
   * time: wait for {@link checkpointIdle} first.
   */
  startCheckpointTail(index: number, record: () => Promise<void>): CheckpointTail {
    if (this.tail) throw new ProofKVError(ErrorCode.BUSY, 'a checkpoint is already in flight');
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const completion = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    completion.catch(() => undefined);
    const before = this.flushing;
    const tail: CheckpointTail = {
      index,
      time: this.lastTime,
      after: this.imms.length > 0 ? this.imms[this.imms.length - 1] : null,
      record,
      settled: false,
      recorded: false,
      followUps: [],
      state: 'running',
      completion,
      idle: Promise.resolve(),
      resolve,
      reject,
    };
    this.tail = tail;
    const done: Promise<void> = (async () => {
      if (before) await before;
      await this.runTail(tail);
    })()
      .catch((err: Error) => {
        if (tail.state === 'running') tail.state = 'failed';
        this.enterFault('flush', err);
      })
      .finally(() => {
        this.flushQueue.splice(this.flushQueue.indexOf(done), 1);
      });
    (tail as { idle: Promise<void> }).idle = done;
    this.flushQueue.push(done);
    return tail;
  }

  /**
   * The steps of a checkpoint tail: the install of its flush (done before, or it failed), the
   * settle and the index edit (once), the record. Throws when one fails (the tail is then
   * `failed`); marks it done and resolves its completion otherwise.
   */
  private async runTail(tail: CheckpointTail): Promise<void> {
    if (tail.state === 'done' || tail.state === 'abandoned') return;
    tail.state = 'running';
    try {
      if (tail.after && this.imms.includes(tail.after)) {
        throw this.fault ? this.faultError() : new ProofKVError(ErrorCode.IO_ERROR, "the checkpoint's flush was not installed");
      }
      trace('ckpt', 'flushed', tail.index);
      if (!tail.settled) {
        await this.settleForCheckpoint(tail.index, tail.time);
        tail.settled = true;
      }
      trace('ckpt', 'settled', tail.index);
      if (!tail.recorded) {
        await tail.record();
        tail.recorded = true;
        // The checkpoint's proposer is answered now, whatever happens to the follow-ups.
        tail.resolve();
      }
      // Taken one by one: a follow-up queued while one runs is run too, before the tail is done.
      while (tail.followUps.length > 0) {
        await tail.followUps[0].run();
        tail.followUps.shift();
      }
    } catch (err) {
      tail.state = 'failed';
      throw err;
    }
    tail.state = 'done';
    if (this.tail === tail) this.tail = null;
    trace('ckpt', 'end', tail.index);
    tail.resolve();
  }

  /**
   * Queues `step` (of a log entry applied after the checkpoint in flight) to run after that
   * checkpoint's record and before any flush frozen after it installs, in call order; resolves
   * with its result. A failure is retried with the checkpoint's steps (a step must then change
   * nothing when it throws). Returns null when no checkpoint is in flight and running: the
   * caller runs the step itself.
   */
  afterCheckpointRecord<T>(step: () => Promise<T>): Promise<T> | null {
    const t = this.tail;
    if (!t || t.state !== 'running') return null;
    return new Promise<T>((resolve, reject) => {
      t.followUps.push({
        run: async () => resolve(await step()),
        reject,
      });
    });
  }

  /**
   * Resolves when no pipelined checkpoint is in flight; throws the write fault when one is in
   * flight and failed (its record does not exist yet: what reads the checkpoint log must wait).
   */
  async checkpointIdle(): Promise<void> {
    const t = this.tail;
    if (!t) return;
    await t.idle;
    if (this.tail) throw this.fault ? this.faultError() : new ProofKVError(ErrorCode.IO_ERROR, 'a checkpoint is still in flight');
  }

  /** True while a pipelined checkpoint's steps after its freeze run (not while a failed one waits for recovery). */
  checkpointRunning(): boolean {
    return this.tail?.state === 'running';
  }

  /** Runs the failed checkpoint tail once its flush is installed (recovery). */
  private async finishFailedTail(): Promise<void> {
    const t = this.tail;
    if (!t || t.state !== 'failed' || (t.after && this.imms.includes(t.after))) return;
    // What followed the flush's install (moves, the next pick) may have failed: redo it first,
    // as a replica without the fault did it.
    this.repickFailedCompaction();
    await this.afterInstall();
    await this.waitForCompactions();
    await this.runTail(t);
  }

  private startFlush(frozen: FrozenMemtable): void {
    const before = this.flushing;
    const done: Promise<void> = this.flushAndInstall(frozen, before)
      .catch((err: Error) => {
        // This one and every later frozen memtable are flushed again, in order, by recovery.
        this.failedFlushes.push(frozen);
        this.enterFault('flush', err);
      })
      .finally(() => {
        this.flushQueue.splice(this.flushQueue.indexOf(done), 1);
      });
    this.flushQueue.push(done);
  }

  // ---- faults and recovery -----------------------------------------------------------------

  /** The error writes get while {@link fault} is set. */
  faultError(): WriteFaultError {
    return new WriteFaultError(this.fault!);
  }

  /**
   * Enters (or extends) a write fault and schedules recovery. A second failure while one is set
   * keeps the first as the reported cause.
   */
  enterFault(component: WriteFault['component'], error: Error, recoverable = true): void {
    if (this.fault) {
      this.fault.lastError = error;
      if (!recoverable) this.fault.recoverable = false;
    } else {
      this.fault = { component, error, since: Date.now(), attempts: 0, recoverable };
      this.stats.faults++;
      this.onFaultChange?.(this.fault);
    }
    this.scheduleRecovery();
  }

  /**
   * A journal write or sync failed after `keepLength` bytes were acknowledged. The failed group is
   * not acknowledged; recovery cuts it off the file, starts a new journal and flushes the memtable.
   */
  journalFailed(writer: JournalWriter, keepLength: number, error: Error): void {
    if (this.journal === writer) this.journal = null;
    this.brokenJournal ??= { writer, keepLength };
    this.flushAfterRecovery = true;
    this.enterFault('journal', error);
  }

  private scheduleRecovery(): void {
    const f = this.fault;
    if (!f || !f.recoverable || this.closed || this.recoveryTimer || this.recovering) return;
    const delay = Math.min(RECOVERY_MAX_MS, RECOVERY_BASE_MS * 2 ** Math.min(f.attempts, 16));
    this.recoveryTimer = setTimeout(() => {
      this.recoveryTimer = null;
      this.recovering = this.tryRecover().finally(() => {
        this.recovering = null;
        this.scheduleRecovery();
      });
    }, delay);
    this.recoveryTimer.unref();
  }

  private async tryRecover(): Promise<void> {
    const f = this.fault;
    if (!f || this.closed) return;
    f.attempts++;
    try {
      await this.recoverOnce();
    } catch (err) {
      f.lastError = err as Error;
      const t = this.tail;
      if (t && t.state === 'failed' && f.attempts >= this.checkpointTailAttempts) this.failStop(t);
      return;
    }
    if (this.fault === f && f.recoverable) {
      this.fault = null;
      this.stats.faultRecoveries++;
      this.onFaultChange?.(null);
    }
  }

  /**
   * One recovery attempt. Each step is idempotent and leaves the state consistent when it throws:
   * 1. a broken journal is closed and cut back to its last acknowledged record (synced);
   * 2. a new journal is opened;
   * 3. a failed flush is built and installed again (a failed compaction is dropped and picked again:
   *    the pick is a pure function of the version, so the result is the same);
   * 4. after a journal fault the memtable is frozen and flushed, so nothing depends on the old journal.
   */
  private async recoverOnce(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.fault?.component === 'checkpoint-log') await this.repairCheckpointLog?.();
    if (this.brokenJournal) {
      const { writer, keepLength } = this.brokenJournal;
      await writer.close().catch(() => undefined);
      truncateSynced(writer.path, keepLength);
      this.brokenJournal = null;
    }
    if (!this.journal && this.opts.writeAheadLog === 'journal') this.openJournal();
    // Frozen memtables not installed yet, in freeze order (a failed one's successors failed too).
    const failed = this.imms.flatMap((imm) => this.failedFlushes.filter((f) => f.imm === imm));
    if (failed.length > 0) {
      for (const f of failed) {
        // A failed checkpoint tail runs between its flush and the memtables frozen after it.
        await this.finishFailedTail();
        await this.flushAndInstall(f, null);
        this.failedFlushes.splice(this.failedFlushes.indexOf(f), 1);
      }
    } else {
      // The flush was installed and what followed it (moves, the next pick) failed: redo that.
      this.repickFailedCompaction();
      await this.afterInstall();
      await this.waitForCompactions();
    }
    await this.finishFailedTail();
    this.failedFlushes = [];
    if (this.flushAfterRecovery) {
      if (this.mem.count > 0) {
        const frozen = { imm: this.mem, flushedSeq: this.lastSeq, appliedIndex: this.logIndex, flushedTime: this.lastTime, heldBy: null };
        this.imms.push(frozen.imm);
        this.mem = new Memtable();
        this.failedFlushes = [frozen];
        await this.flushAndInstall(frozen, null);
        this.failedFlushes = [];
      }
      this.flushAfterRecovery = false;
    }
  }

  /** Drops a failed pending compaction and picks again (the same one: the pick is a pure function of the version). */
  private repickFailedCompaction(): void {
    if (this.pending?.failed) {
      this.pending = null;
      this.maybeScheduleCompaction();
    }
  }

  /**
   * The fail-stop: a checkpoint's steps after its freeze could not finish. Later log entries took
   * effect, so the checkpoint can no longer be refused: the fault becomes fatal (writes are
   * refused until the database is reopened; the next open replays the external log from the
   * recorded index, which is below the checkpoint's, and redoes it).
   */
  private failStop(t: CheckpointTail): void {
    const f = this.fault!;
    f.recoverable = false;
    t.state = 'abandoned';
    this.onFaultChange?.(f);
    t.reject(this.faultError());
    for (const u of t.followUps.splice(0)) u.reject(this.faultError());
  }

  /** True while a frozen memtable's flush runs (not while a failed one waits for recovery). */
  flushRunning(): boolean {
    return this.flushQueue.length > 0;
  }

  /** Waits until no flush is running. */
  async waitForFlush(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.throwIfFailed();
  }

  /** Throws a {@link WriteFaultError} while the engine is in a write fault. */
  throwIfFailed(): void {
    if (this.fault) throw this.faultError();
  }

  /**
   * Builds the table of a frozen memtable (at once, on the flush worker) and installs it once the
   * flush before it (`before`) has settled; if that one failed, this one fails too without
   * installing (recovery installs both, in order).
   */
  private async flushAndInstall(frozen: FrozenMemtable, before: Promise<void> | null): Promise<void> {
    const { imm, flushedSeq, appliedIndex, flushedTime } = frozen;
    // The table is built on the worker (hashing is the cost); the event loop only packs entries.
    const packed = packEntries(imm.iterator(), imm.approximateSize);
    const tf = tracing ? performance.now() : 0;
    const out = await this.runner.flush({ dir: this.dir, tmpName: `flush-${flushedSeq}-${process.pid}.tmp`, shape: this.shape, packed, keepLeaves: this.leaves.capacity > 0 });
    if (tracing) trace('flush-built', imm.count, Math.round((performance.now() - tf) * 1000));
    this.stats.flushes++;
    this.stats.flushBytes += out.meta.size;
    if (this.beforeFlushInstall) await this.beforeFlushInstall(flushedSeq);
    if (before) await before;
    // Installs keep freeze order, and a memtable frozen after a checkpoint waits for its record.
    if ((before && this.imms[0] !== imm) || (frozen.heldBy && frozen.heldBy.state !== 'done')) {
      fs.rmSync(path.join(this.dir, out.tmpName), { force: true });
      throw this.fault ? this.faultError() : new ProofKVError(ErrorCode.IO_ERROR, 'an earlier flush or checkpoint was not installed');
    }
    await this.install({ ...out, flushedSeq, appliedIndex, flushedTime }, imm);
  }

  /**
   * An install point, one manifest edit. A flush's install first waits until the compactions
   * picked since the previous flush have all been installed ({@link waitForCompactions}: every
   * level's score is then below 1) — that wait is the write backpressure — and then adds the
   * flushed table to level 0. The drain's installs ({@link drain}) apply the pending compaction's
   * result. Then the next compaction is picked and started. In external-log mode a flush records
   * the log index captured at its freeze (`appliedIndex`).
   */
  private async install(flush?: CompactionOutput & { flushedSeq: number; appliedIndex: number; flushedTime: number }, imm?: Memtable): Promise<void> {
    this.repickFailedCompaction();
    if (flush) {
      const t0 = performance.now();
      await this.waitForCompactions();
      this.stats.compactionWaitMs += performance.now() - t0;
      if (tracing) trace('flush-waited', Math.round((performance.now() - t0) * 1000));
    }
    const edit: VersionEdit = { deleted: [], added: [], lastSeq: this.lastSeq };
    if (flush && flush.appliedIndex > 0) edit.appliedIndex = flush.appliedIndex;
    // The commit time the tables reach: the flushed memtable's (captured at its freeze). A restart
    // in external-log mode resumes from it, so replayed log entries get the times they had.
    if (flush) edit.lastTime = flush.flushedTime;
    const renames: Array<[string, string]> = [];
    /** The leaves of the tables this install adds, kept once it has succeeded. */
    const leaves: Array<[number, Uint8Array]> = [];
    // Only while closing (the drain stopped) does a flush's install meet a pending compaction: it
    // then applies it first, as the drain would have.
    const pending = this.pending;
    if (pending) {
      let outputs: CompactionOutput[];
      try {
        outputs = await pending.result;
      } catch (err) {
        pending.failed = true;
        pending.error = err as Error;
        throw err;
      }
      const c = pending.compaction;
      for (const t of c.inputs) edit.deleted!.push([c.level, t.number]);
      for (const t of c.nextInputs) edit.deleted!.push([c.level + 1, t.number]);
      if (c.trivialMove) {
        edit.added!.push([c.outputLevel, c.inputs[0]]);
        this.stats.trivialMoves++;
      } else {
        for (const o of outputs) {
          const number = this.vs.nextTableNumber++;
          renames.push([o.tmpName, files.table(number)]);
          edit.added!.push([c.outputLevel, { ...o.meta, number }]);
          if (o.leaves) leaves.push([number, o.leaves]);
          this.stats.compactionLeavesReused += o.leavesReused ?? 0;
        }
        this.stats.compactions++;
        for (const t of [...c.inputs, ...c.nextInputs]) this.stats.compactionBytesRead += t.size;
        for (const o of outputs) this.stats.compactionBytesWritten += o.meta.size;
        if (pending.forCheckpoint) this.stats.checkpointCompactions++;
        if (c.outputLevel === c.level) this.stats.checkpointLevel0Merges++;
      }
      if (c.pointer) edit.compactPointers = [[c.level, c.pointer]];
    }
    if (flush) {
      const number = this.vs.nextTableNumber++;
      renames.push([flush.tmpName, files.table(number)]);
      edit.added!.push([0, { ...flush.meta, number }]);
      if (flush.leaves) leaves.push([number, flush.leaves]);
      edit.flushedSeq = flush.flushedSeq;
      const live = this.journals.filter((j) => j.maxSeq > flush.flushedSeq || j === this.journals[this.journals.length - 1]);
      edit.logNumber = live.length > 0 ? live[0].number : this.vs.nextJournalNumber;
    }
    if (!pending && !flush) return;
    const ta = tracing ? performance.now() : 0;
    await this.announceLogIndex(edit.appliedIndex);
    if (tracing) trace('announced', Math.round((performance.now() - ta) * 1000));
    for (const [, m] of edit.added!) this.installing.add(m.number);
    let logged = false;
    const t0 = tracing ? performance.now() : 0;
    try {
      for (const [from, to] of renames) fs.renameSync(path.join(this.dir, from), path.join(this.dir, to));
      if (renames.length > 0) await syncDirAsync(this.dir);
      const t1 = tracing ? performance.now() : 0;
      // The flushed table and the frozen memtable must never both be visible: drop the memtable
      // in the same step that makes the table current.
      logged = true;
      await this.vs.logAndApply(edit, () => {
        if (imm && this.imms[0] === imm) this.imms.shift();
      });
      if (tracing) trace('install', flush ? 'flush' : 'compaction', Math.round((t1 - t0) * 1000), Math.round((performance.now() - t1) * 1000));
      logged = false;
      this.quarantined.clear();
    } catch (err) {
      // The renamed compaction outputs are gone from their temporary names: pick it again.
      if (pending) {
        pending.failed = true;
        pending.error = err as Error;
      }
      // The edit may have reached the manifest: keep its tables until a new manifest is written.
      if (logged) for (const [, m] of edit.added!) this.quarantined.add(m.number);
      // Its renamed outputs are in no version: obsolete (once out of quarantine).
      for (const [, m] of edit.added!) this.obsolete.add(m.number);
      throw err;
    } finally {
      for (const [, m] of edit.added!) this.installing.delete(m.number);
    }
    this.pending = null;
    for (const [, number] of edit.deleted!) this.obsolete.add(number);
    for (const [number, l] of leaves) this.leaves.put(number, l);
    // Journals wholly below the flushed seq are no longer needed.
    if (flush) {
      while (this.journals.length > 1 && this.journals[0].number < this.vs.logNumber) {
        const j = this.journals.shift()!;
        fs.rmSync(path.join(this.dir, files.journal(j.number)), { force: true });
      }
    }
    this.deleteObsoleteTables();
    await this.afterInstall();
  }

  /**
   * What follows every install (and an open): moves that rewrite nothing are applied at once —
   * each is a pure function of the version, so this stays deterministic — then the next real
   * compaction is picked and started, and the drain installs it (and the ones after it).
   */
  async afterInstall(): Promise<void> {
    if (this.pending || this.fault?.recoverable === false) return;
    // Apply the moves to a scratch version, then log the net change as one edit (one sync).
    const start = this.vs.current;
    let v = start;
    const pointers = new Map(this.vs.pointers);
    let moves = 0;
    for (;;) {
      const c = pickCompaction(v, pointers, this.opts);
      if (!c || !c.trivialMove) break;
      v = v.apply({ deleted: [[c.level, c.inputs[0].number]], added: [[c.level + 1, c.inputs[0]]] });
      pointers.set(c.level, c.pointer!);
      moves++;
    }
    if (moves > 0) {
      const levelOf = (ver: Version) => {
        const m = new Map<number, number>();
        ver.levels.forEach((tables, level) => tables.forEach((t) => m.set(t.number, level)));
        return m;
      };
      const before = levelOf(start);
      const after = levelOf(v);
      const edit: VersionEdit = { deleted: [], added: [], compactPointers: [] };
      for (const [n, level] of before) if (after.get(n) !== level) edit.deleted!.push([level, n]);
      v.levels.forEach((tables, level) =>
        tables.forEach((t) => {
          if (before.get(t.number) !== level) edit.added!.push([level, t]);
        }),
      );
      for (const [level, key] of pointers) if (this.vs.pointers.get(level) !== key) edit.compactPointers!.push([level, key]);
      await this.vs.logAndApply(edit);
      this.stats.trivialMoves += moves;
    }
    this.maybeScheduleCompaction();
  }

  /**
   * Picks the next compaction from the current version, starts it and makes sure the drain runs.
   * `level0`: the checkpoint's level-0 rule, whatever the scores ({@link settleForCheckpoint}:
   * level 0 merged into one level-0 table, or into level 1); otherwise the policy's pick, if any.
   */
  private maybeScheduleCompaction(level0 = false): void {
    if (this.pending || this.closed || this.fault?.recoverable === false) return;
    const c = level0 ? pickCheckpointLevel0(this.vs.current, this.vs.pointers, this.opts) : pickCompaction(this.vs.current, this.vs.pointers, this.opts);
    if (!c) return;
    let result: Promise<CompactionOutput[]>;
    if (c.trivialMove) {
      result = Promise.resolve([]);
    } else {
      const inputs = [...c.inputs, ...c.nextInputs].map((t) => t.number);
      const keepLeaves = this.leaves.capacity > 0;
      const job = {
        dir: this.dir,
        inputs,
        tmpPrefix: `compact-${++this.jobCounter}-${process.pid}`,
        shape: this.shape,
        singleOutput: c.outputLevel === 0,
        // The inputs' leaves go with the job (moved to the worker): their tables are rewritten by it.
        ...(keepLeaves ? { keepLeaves, leaves: inputs.map((n) => this.leaves.take(n)) } : {}),
      };
      result = this.runner.run(job);
    }
    const pending: PendingCompaction = { compaction: c, result, forCheckpoint: level0 };
    // Surface a failure at the install that waits for it; avoid an unhandled rejection meanwhile.
    result.catch((err: Error) => {
      pending.failed = true;
      pending.error = err;
    });
    this.pending = pending;
    this.startDrain();
  }

  /**
   * Starts the drain unless it runs: the loop that installs the pending compaction as soon as its
   * job ends, which picks the next one (from the new version, by the same pure policy), until
   * nothing is picked — every level's score below 1. Nothing else changes the table set meanwhile
   * (a flush's install waits for the drain to end), so the sequence of versions is a pure function
   * of the writes; only when each compaction runs depends on timing. A failed compaction or install
   * ends the drain and enters a recoverable write fault; recovery picks the same compaction again.
   */
  private startDrain(): void {
    if (this.draining || this.closed) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
    });
  }

  private async drain(): Promise<void> {
    while (this.pending && !this.pending.failed && !this.closed) {
      try {
        await this.install();
      } catch (err) {
        this.enterFault('flush', err as Error);
        return;
      }
    }
  }

  /**
   * Waits until the drain has installed every compaction the policy picks (every level's score is
   * then below 1; while closing, until the drain stopped). Throws the error of a compaction that
   * failed (the fault's recovery picks it again).
   */
  async waitForCompactions(): Promise<void> {
    while (this.draining) await this.draining;
    const p = this.pending;
    if (p?.failed) throw p.error ?? new ProofKVError(ErrorCode.IO_ERROR, 'compaction failed');
  }

  /**
   * Waits until no flush runs and the drain has ended (a flush's install starts the drain again,
   * so both are awaited until neither runs): the table set is then levelled, and the unlinks of
   * the tables it left have finished. Throws like {@link waitForCompactions}, or when the engine
   * is in a write fault.
   */
  async waitForBackgroundWork(): Promise<void> {
    while (this.flushing || this.draining) {
      while (this.flushing) await this.flushing;
      await this.waitForCompactions();
    }
    await this.deleter.idle();
    this.throwIfFailed();
  }

  /**
   * Completes a checkpoint's table set, after its flush's install ({@link waitForFlush}): waits
   * for the drain; then, when level 0 holds more than `checkpointLevel0Tables` tables, applies the
   * level-0 rule (whatever the scores): all of level 0 merged into one level-0 table while level 0
   * is under `checkpointLevel0Bytes` and smaller than level 1, else compacted into level 1
   * (`pickCheckpointLevel0`); and waits for
   * the drain again. The result is a
   * pure function of the version after the flush, so a checkpoint applied again after a crash
   * anywhere in between (the open resumes the drain) reaches the same table set. With
   * `checkpointIndex` (external-log mode) an edit of its own then records that the checkpoint at
   * that log index has its table set complete, with `lastTime` (the commit time at its freeze).
   */
  async settleForCheckpoint(checkpointIndex?: number, lastTime = this.lastTime): Promise<void> {
    this.repickFailedCompaction();
    await this.waitForCompactions();
    if (this.vs.current.levels[0].length > this.opts.checkpointLevel0Tables) {
      this.maybeScheduleCompaction(true);
      await this.waitForCompactions();
    }
    if (checkpointIndex !== undefined) {
      // The checkpoint's intent must be durable before the edit that names its index.
      if (checkpointIndex <= this.vs.appliedIndex) await this.syncCheckpointLog?.();
      await this.announceLogIndex(checkpointIndex);
      await this.vs.logAndApply({ appliedIndex: checkpointIndex, checkpointIndex, lastTime });
    }
  }

  /** True while a picked compaction waits for its install. */
  hasPendingCompaction(): boolean {
    return this.pending !== null;
  }

  /**
   * When an edit is about to raise the recorded log index: syncs the checkpoint log's deferred
   * records ({@link syncCheckpointLog}) and calls {@link beforeLogIndexDurable}, at once (two
   * files, each synced in the threadpool); throws the first failure once both have settled.
   */
  private async announceLogIndex(index: number | undefined): Promise<void> {
    if (index === undefined || index <= this.vs.appliedIndex) return;
    const durable = this.vs.appliedIndex;
    const [log, hook] = await Promise.allSettled([this.syncCheckpointLog?.(), this.beforeLogIndexDurable?.(index, durable)]);
    if (log.status === 'rejected') throw log.reason;
    if (hook.status === 'rejected') throw hook.reason;
  }

  /**
   * Deletes the files of the obsolete candidates ({@link obsolete}) that nothing references any
   * more: not the current version, an install in progress, a quarantined edit or a pinned version.
   * The unlinks run off the event loop ({@link TableDeleter}); this does no syscall but closing
   * the evicted tables' readers.
   */
  deleteObsoleteTables(): void {
    if (this.obsolete.size === 0 || this.deletionsStopped) return;
    const current = this.vs.current.tableNumbers();
    const keep = new Set<number>(this.installing);
    for (const n of this.quarantined) keep.add(n);
    for (const v of this.liveVersions) for (const n of v.tableNumbers()) keep.add(n);
    for (const n of this.obsolete) {
      // Back in the current version (a move): no longer a candidate; an edit that removes it adds it again.
      if (current.has(n)) this.obsolete.delete(n);
      else if (!keep.has(n) && this.deleter.offer(n)) {
        this.obsolete.delete(n);
        this.tables.evict(n);
      }
    }
  }

  /**
   * Stops background work and closes files. A running flush and the drain's running install are
   * awaited; the drain then stops, and a compaction picked but not installed runs to its end with
   * its outputs discarded (the next open picks the same compaction again).
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.recoveryTimer) clearTimeout(this.recoveryTimer);
    this.recoveryTimer = null;
    try {
      while (this.recovering) await this.recovering;
      while (this.flushing) await this.flushing;
      while (this.draining) await this.draining;
      // A checkpoint whose steps failed is not finished now: the next open replays its entry.
      if (this.tail && this.tail.state !== 'done') {
        this.tail.state = 'abandoned';
        const closed = new ProofKVError(ErrorCode.DATABASE_CLOSED, 'the database closed before the checkpoint was recorded');
        this.tail.reject(closed);
        for (const u of this.tail.followUps.splice(0)) u.reject(closed);
        this.tail = null;
      }
      if (this.brokenJournal) {
        // Best effort: cut the refused group off, so the next open does not replay it.
        const { writer, keepLength } = this.brokenJournal;
        await writer.close().catch(() => undefined);
        try {
          truncateSynced(writer.path, keepLength);
        } catch {
          // the next open replays what the file holds
        }
      }
    } finally {
      await this.runner.close();
      if (this.journal) await this.journal.close().catch(() => undefined);
      this.journal = null;
      // A reopen (or a snapshot install's renames) must not race an unlink in flight.
      this.deletionsStopped = true;
      await this.deleter.idle();
      this.tables.close();
      await this.vs.close();
      for (const name of fs.readdirSync(this.dir)) {
        if (name.endsWith('.tmp')) fs.rmSync(path.join(this.dir, name), { force: true });
      }
    }
  }

  /** Every table with its level, in read order. */
  tableMetas(): Array<{ level: number; meta: TableMeta }> {
    return this.vs.current.placed().map((p) => ({ level: p.level, meta: p.meta }));
  }
}

/** Cuts `file` back to `length` bytes and syncs it. Throws the OS error. */
function truncateSynced(file: string, length: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    if (fs.fstatSync(fd).size > length) fs.ftruncateSync(fd, length);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Builds an {@link Entry} from an internal key and stored value (`u64 time || value`; copies). */
export function entryOf(ik: Uint8Array, value: Uint8Array): Entry {
  return {
    key: ik.slice(0, ik.length - TRAILER_LEN),
    version: versionOf(ik),
    seq: seqOf(ik),
    time: storedTime(value),
    kind: kindOf(ik),
    value: storedUserValue(value).slice(),
  };
}
