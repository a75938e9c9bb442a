/**
 * The engine's shared state and its maintenance: memtable rotation, flushes, compaction
 * scheduling and installs.
 *
 * Determinism: the table set changes only at *install points*, which are a pure function of the
 * write sequence: a memtable is frozen exactly when its accounted size reaches `writeBufferSize`
 * after a batch, or at a checkpoint. Each install applies, in this order, the result of the one
 * compaction picked at the previous install (waiting for it: that wait is the write stall when
 * compaction falls behind) and then the flushed table; table numbers are allocated then, in that
 * order. The next compaction is picked from the new version by the pure policy in `picker.ts`.
 * How long a flush or compaction takes changes when things happen, never what is written.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCode, ProofKVError } from '../errors.js';
import type { Entry } from '../keys.js';
import { encodeInternalKey, kindOf, seekKey, seqOf, TRAILER_LEN, versionOf } from '../keys.js';
import type { Kind } from '../../proofs/hash.js';
import { JournalWriter } from '../journal/writer.js';
import { Memtable } from '../memtable/skiplist.js';
import type { ResolvedOptions } from '../options.js';
import { CompactionRunner } from '../compaction/runner.js';
import { packEntries, type CompactionOutput, type TableShape } from '../compaction/compact.js';
import type { TableMeta, VersionEdit } from '../version/edit.js';
import { pickCompaction, type Compaction } from '../version/picker.js';
import type { Version } from '../version/version.js';
import { files, syncDir, type VersionSet } from '../version/version_set.js';
import { TableCache } from './table_cache.js';

/** A journal file still needed by recovery, with the highest seq it holds. */
interface LiveJournal {
  number: number;
  maxSeq: number;
}

interface PendingCompaction {
  compaction: Compaction;
  result: Promise<CompactionOutput[]>;
}

/** What a read sees: the memtables and the table set at one moment. */
export interface ReadState {
  mem: Memtable;
  imm: Memtable | null;
  version: Version;
}

/** Counters for status and benchmarks. */
export interface EngineStats {
  flushes: number;
  compactions: number;
  trivialMoves: number;
  /** Milliseconds writers waited for the previous flush (and the compaction it installs): the write stall. */
  stallMs: number;
  /** Milliseconds install points waited for a compaction to finish (overlaps `stallMs` when a writer waits on that install). */
  compactionWaitMs: number;
}

/** Shared engine state. One per open database. */
export class DBCore {
  mem = new Memtable();
  imm: Memtable | null = null;
  /** Highest seq assigned. Invariant: flushedSeq <= lastSeq. */
  lastSeq = 0;
  /**
   * External-log mode: index of the latest log entry applied (its writes are in the memtable or
   * the tables). A freeze records it with the frozen memtable; 0 in journal mode.
   */
  logIndex = 0;
  journal: JournalWriter | null = null;
  readonly journals: LiveJournal[] = [];
  readonly tables: TableCache;
  readonly runner: CompactionRunner;
  readonly shape: TableShape;
  /** Sticky background error: once set, writes fail with it until the database is reopened. */
  bgError: Error | null = null;
  readonly stats: EngineStats = { flushes: 0, compactions: 0, trivialMoves: 0, stallMs: 0, compactionWaitMs: 0 };
  private flushing: Promise<void> | null = null;
  private pending: PendingCompaction | null = null;
  private readonly liveVersions = new Set<Version>();
  /** Table numbers being installed: renamed into place but not yet in the current version. */
  private readonly installing = new Set<number>();
  private jobCounter = 0;

  constructor(
    readonly dir: string,
    readonly opts: ResolvedOptions,
    readonly vs: VersionSet,
  ) {
    this.tables = new TableCache(dir, opts.blockCacheSize, opts.tableMemoryBytes);
    this.runner = new CompactionRunner(opts.compactionThread, opts.compactionDelay);
    this.shape = {
      blockSize: opts.blockSize,
      blockRestartInterval: opts.blockRestartInterval,
      bloomBitsPerKey: opts.bloomBitsPerKey,
      targetFileSize: opts.targetFileSize,
    };
  }

  // ---- reads -------------------------------------------------------------------------------

  /** The current memtables and version. */
  readState(): ReadState {
    return { mem: this.mem, imm: this.imm, version: this.vs.current };
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
      this.deleteObsoleteTables();
    }
  }

  /**
   * The newest entry of `userKey` with version <= `version` and seq <= `seq`, searching
   * memtable, frozen memtable, then tables in read order. The first hit is the answer: a key's
   * newer records always sit in earlier places of the read order.
   */
  getEntry(userKey: Uint8Array, version: number, seq: number, rs: ReadState = this.readState()): Entry | undefined {
    const target = seekKey(userKey, version, seq);
    const fromMem = rs.mem.get(userKey, target, seq) ?? rs.imm?.get(userKey, target, seq);
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
    const v = this.mem.latest.get(id) ?? this.imm?.latest.get(id);
    if (v !== undefined) return v;
    const version = this.vs.current;
    for (const t of version.tablesForKey(userKey)) {
      const e = this.tables.get(t.number).get(userKey, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      if (e) return e.version;
    }
    return 0;
  }

  /** Inserts one record into the memtable and its version map. */
  memAdd(userKey: Uint8Array, id: string, version: number, seq: number, kind: Kind, value: Uint8Array): void {
    this.mem.add(encodeInternalKey(userKey, version, seq, kind), value, seq);
    this.mem.latest.set(id, version);
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

  /**
   * Freezes the memtable and starts flushing it. Waits first for the previous flush (and the
   * compaction it installs): the write stall. `switchJournal` is false during recovery, when the
   * replayed journals stay until flushed.
   */
  async rotate(switchJournal: boolean): Promise<void> {
    if (this.flushing) {
      const t0 = performance.now();
      await this.flushing;
      this.stats.stallMs += performance.now() - t0;
    }
    this.throwIfFailed();
    const imm = this.mem;
    this.imm = imm;
    this.mem = new Memtable();
    if (switchJournal && this.journal) {
      await this.journal.close();
      this.openJournal();
    }
    const flushedSeq = this.lastSeq;
    this.flushing = this.flushAndInstall(imm, flushedSeq, this.logIndex)
      .catch((err: Error) => {
        this.bgError ??= err;
      })
      .finally(() => {
        this.flushing = null;
      });
  }

  /** Waits until no flush is running. */
  async waitForFlush(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.throwIfFailed();
  }

  /** Throws the sticky background error, if any. */
  throwIfFailed(): void {
    if (this.bgError) {
      throw new ProofKVError(ErrorCode.IO_ERROR, `background work failed: ${this.bgError.message}`, { cause: this.bgError });
    }
  }

  private async flushAndInstall(imm: Memtable, flushedSeq: number, appliedIndex: number): Promise<void> {
    // The table is built on the worker (hashing is the cost); the event loop only packs entries.
    const packed = packEntries(imm.iterator(), imm.approximateSize);
    const out = await this.runner.flush({ dir: this.dir, tmpName: `flush-${flushedSeq}-${process.pid}.tmp`, shape: this.shape, packed });
    this.stats.flushes++;
    await this.install({ ...out, flushedSeq, appliedIndex }, imm);
  }

  /**
   * An install point: applies the pending compaction's result (waiting for it), then the flushed
   * table if any, in one manifest edit; then picks and starts the next compaction. In external-log
   * mode a flush records the log index captured at its freeze (`appliedIndex`), and the last
   * install of a checkpoint records the checkpoint's own index (`checkpointIndex`, see
   * `ProofDB.checkpoint`), atomically with the tables.
   */
  async install(flush?: CompactionOutput & { flushedSeq: number; appliedIndex: number }, imm?: Memtable, checkpointIndex?: number): Promise<void> {
    const edit: VersionEdit = { deleted: [], added: [], lastSeq: this.lastSeq };
    if (flush && flush.appliedIndex > 0) edit.appliedIndex = flush.appliedIndex;
    if (checkpointIndex !== undefined) edit.appliedIndex = edit.checkpointIndex = checkpointIndex;
    const renames: Array<[string, string]> = [];
    const pending = this.pending;
    if (pending) {
      const t0 = performance.now();
      const outputs = await pending.result;
      this.stats.compactionWaitMs += performance.now() - t0;
      const c = pending.compaction;
      for (const t of c.inputs) edit.deleted!.push([c.level, t.number]);
      for (const t of c.nextInputs) edit.deleted!.push([c.level + 1, t.number]);
      if (c.trivialMove) {
        edit.added!.push([c.level + 1, c.inputs[0]]);
        this.stats.trivialMoves++;
      } else {
        for (const o of outputs) {
          const number = this.vs.nextTableNumber++;
          renames.push([o.tmpName, files.table(number)]);
          edit.added!.push([c.level + 1, { ...o.meta, number }]);
        }
        this.stats.compactions++;
      }
      edit.compactPointers = [[c.level, c.pointer]];
    }
    if (flush) {
      const number = this.vs.nextTableNumber++;
      renames.push([flush.tmpName, files.table(number)]);
      edit.added!.push([0, { ...flush.meta, number }]);
      edit.flushedSeq = flush.flushedSeq;
      const live = this.journals.filter((j) => j.maxSeq > flush.flushedSeq || j === this.journals[this.journals.length - 1]);
      edit.logNumber = live.length > 0 ? live[0].number : this.vs.nextJournalNumber;
    }
    if (!pending && !flush) return;
    for (const [, m] of edit.added!) this.installing.add(m.number);
    try {
      for (const [from, to] of renames) fs.renameSync(path.join(this.dir, from), path.join(this.dir, to));
      if (renames.length > 0) syncDir(this.dir);
      // The flushed table and the frozen memtable must never both be visible: drop the memtable
      // in the same step that makes the table current.
      await this.vs.logAndApply(edit, () => {
        if (imm && this.imm === imm) this.imm = null;
      });
    } finally {
      for (const [, m] of edit.added!) this.installing.delete(m.number);
    }
    this.pending = null;
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
   * compaction is picked and started.
   */
  async afterInstall(): Promise<void> {
    if (this.pending || this.bgError) return;
    // Apply the moves to a scratch version, then log the net change as one edit (one sync).
    const start = this.vs.current;
    let v = start;
    const pointers = new Map(this.vs.pointers);
    let moves = 0;
    for (;;) {
      const c = pickCompaction(v, pointers, this.opts);
      if (!c || !c.trivialMove) break;
      v = v.apply({ deleted: [[c.level, c.inputs[0].number]], added: [[c.level + 1, c.inputs[0]]] });
      pointers.set(c.level, c.pointer);
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

  /** Picks the next compaction from the current version and starts it. */
  private maybeScheduleCompaction(): void {
    if (this.pending || this.bgError) return;
    const c = pickCompaction(this.vs.current, this.vs.pointers, this.opts);
    if (!c) return;
    let result: Promise<CompactionOutput[]>;
    if (c.trivialMove) {
      result = Promise.resolve([]);
    } else {
      const job = {
        dir: this.dir,
        inputs: [...c.inputs, ...c.nextInputs].map((t) => t.number),
        tmpPrefix: `compact-${++this.jobCounter}-${process.pid}`,
        shape: this.shape,
      };
      result = this.runner.run(job);
      // Surface a failure at the install that waits for it; avoid an unhandled rejection meanwhile.
      result.catch(() => undefined);
    }
    this.pending = { compaction: c, result };
  }

  /** True while a picked compaction waits for its install point. */
  hasPendingCompaction(): boolean {
    return this.pending !== null;
  }

  /**
   * Installs the pending compaction, if any (a checkpoint with an empty memtable). With
   * `checkpointIndex` (external-log mode) the install — or, with nothing pending, an edit of its
   * own — records that the checkpoint at that log index has its table set complete.
   */
  async installPendingCompaction(checkpointIndex?: number): Promise<void> {
    if (this.pending) await this.install(undefined, undefined, checkpointIndex);
    else if (checkpointIndex !== undefined) await this.vs.logAndApply({ appliedIndex: checkpointIndex, checkpointIndex });
  }

  /** Deletes table files no live version references. */
  deleteObsoleteTables(): void {
    const keep = this.vs.current.tableNumbers();
    for (const n of this.installing) keep.add(n);
    for (const v of this.liveVersions) for (const n of v.tableNumbers()) keep.add(n);
    for (const name of fs.readdirSync(this.dir)) {
      const m = /^(\d+)\.sst$/.exec(name);
      if (!m) continue;
      const n = Number(m[1]);
      if (!keep.has(n)) {
        this.tables.evict(n);
        fs.rmSync(path.join(this.dir, name), { force: true });
      }
    }
  }

  /**
   * Stops background work and closes files. A running flush and a running compaction are awaited;
   * the compaction's outputs are then discarded (the next open picks the same compaction again).
   */
  async close(): Promise<void> {
    try {
      while (this.flushing) await this.flushing;
    } finally {
      await this.runner.close();
      if (this.journal) await this.journal.close().catch(() => undefined);
      this.journal = null;
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

/** Builds an {@link Entry} from an internal key and value (copies). */
export function entryOf(ik: Uint8Array, value: Uint8Array): Entry {
  return {
    key: ik.slice(0, ik.length - TRAILER_LEN),
    version: versionOf(ik),
    seq: seqOf(ik),
    kind: kindOf(ik),
    value: value.slice(),
  };
}
