/**
 * The write path: a queue with group commit.
 *
 * Callers enqueue batches (and checkpoint barriers). One drain loop takes a group of queued
 * batches, resolves each batch's versions against the latest versions (an invalid batch fails
 * alone and changes nothing), assigns consecutive seqs, appends one journal record per batch,
 * writes the whole group with one write (and one fdatasync if any batch asked for `sync`), then
 * applies the batches to the memtable in order, freezing it whenever it fills. Only then are the
 * callers answered: an acknowledged write is in the journal.
 *
 * Conditions (`ifVersion`, `ifAbsent`) and appends are resolved in the same step as versions,
 * against the state the earlier batches of the group and earlier operations of the batch leave:
 * no write can come between a check and its write. A failed condition fails its whole batch. An
 * append is journaled as the plain put of its computed value, so replay never recomputes it.
 *
 * External-log mode (`writeAheadLog: 'external'`): there is no journal; each batch carries the
 * index of the external log entry it comes from, and `core.logIndex` follows the applied batches
 * so that a freeze records the index its memtable reaches.
 * @module
 */
import { Kind } from '../../proofs/hash.js';
import { ConditionFailedError, ErrorCode, InvalidArgumentError, VersionConflictError } from '../errors.js';
import { encodeBatch, type BatchOp as JournalOp } from '../journal/batch.js';
import { MAX_SEQ, MAX_VERSION } from '../keys.js';
import type { BatchOp } from './batch.js';
import type { DBCore } from './core.js';

/** The version, seq and commit time a write was given. */
export interface WriteResult {
  version: number;
  seq: number;
  /** Commit time, ms since the epoch (docs/engine.md § Commit times). */
  time: number;
}

interface QueuedWrite {
  type: 'write';
  ops: BatchOp[];
  sync: boolean;
  /** External-log mode: index of the log entry this write comes from. */
  logIndex: number;
  /** The time the caller gave (the log command's, in external-log mode); the clock's otherwise. */
  time: number | undefined;
  /** Set for a batch: answered with one result per op. */
  resolve: ((r: WriteResult[]) => void) | null;
  /** Set for a lone op ({@link WritePipeline.writeOne}): answered with its result, no array. */
  resolveOne: ((r: WriteResult) => void) | null;
  reject: (e: Error) => void;
}

interface QueuedBarrier {
  type: 'barrier';
  run: () => Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

type Queued = QueuedWrite | QueuedBarrier;

/** A key's newest version during resolution; its kind and value once a condition or append needed them. */
interface KeyState {
  version: number;
  kind?: Kind;
  value?: Uint8Array;
}

/** Most batches and bytes (approximate) one group commit takes. */
const MAX_GROUP_BATCHES = 1024;
const MAX_GROUP_BYTES = 4 * 1024 * 1024;

/**
 * Node's latin1 decoder called on the key's own view: no Buffer object per key (taken once per
 * write op; a quarter of the time of `Buffer.from(...).toString('latin1')`). Not in Node's typings,
 * so it is looked up, with the documented form as the fallback.
 */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: (this: Uint8Array, start: number, end: number) => string }).latin1Slice;

/** A user key as a latin1 string: a cheap exact Map key for raw bytes. */
export const latin1: (b: Uint8Array) => string =
  typeof latin1Slice === 'function'
    ? (b) => latin1Slice.call(b, 0, b.length)
    : (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/** Serializes writes and barriers; one per database. */
export class WritePipeline {
  private readonly queue: Queued[] = [];
  private draining: Promise<void> | null = null;

  constructor(private readonly core: DBCore) {}

  /**
   * Enqueues a batch; resolves with one result per op once it is journaled and applied. Its commit
   * time is `max(time, previous commit time)`; without `time`, the previous commit time in
   * external-log mode (apply never reads a clock) and `Date.now()` in journal mode.
   */
  write(ops: BatchOp[], sync: boolean, logIndex = 0, time?: number): Promise<WriteResult[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ type: 'write', ops, sync, logIndex, time, resolve, resolveOne: null, reject });
      this.kick();
    });
  }

  /** {@link write} of one op, resolving with its result (every member applies each PUT: no array, no extra hop). */
  writeOne(op: BatchOp, sync: boolean, logIndex = 0, time?: number): Promise<WriteResult> {
    return new Promise((resolveOne, reject) => {
      this.queue.push({ type: 'write', ops: [op], sync, logIndex, time, resolve: null, resolveOne, reject });
      this.kick();
    });
  }

  /** Runs `run` after every write queued before it and before any write queued after it. */
  barrier(run: () => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ type: 'barrier', run, resolve, reject });
      this.kick();
    });
  }

  /** Resolves when the queue is empty. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private kick(): void {
    if (!this.draining) {
      this.draining = this.drain().finally(() => {
        this.draining = null;
        // A write queued after the loop's last check but before this callback must not strand.
        if (this.queue.length > 0) this.kick();
      });
    }
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0];
      if (head.type === 'barrier') {
        this.queue.shift();
        try {
          await head.run();
          head.resolve();
        } catch (err) {
          head.reject(err as Error);
        }
        continue;
      }
      const group: QueuedWrite[] = [];
      let bytes = 0;
      while (this.queue.length > 0 && group.length < MAX_GROUP_BATCHES && bytes < MAX_GROUP_BYTES) {
        const q = this.queue[0];
        if (q.type !== 'write') break;
        this.queue.shift();
        group.push(q);
        for (const op of q.ops) bytes += op.key.length + op.value.length + 16;
      }
      try {
        await this.commitGroup(group);
      } catch (err) {
        // An unexpected failure: the state of the write path is unknown, so stop taking writes.
        this.core.enterFault('internal', err as Error, false);
        for (const w of group) w.reject(err as Error);
      }
    }
  }

  /**
   * True when the key has a live version in `state`; fills in the newest entry's kind and value
   * from the memtables and tables when the group has not written the key.
   */
  private live(key: Uint8Array, state: KeyState): boolean {
    if (state.kind === undefined) {
      const e = state.version === 0 ? undefined : this.core.getEntry(key, MAX_VERSION, MAX_SEQ);
      state.kind = e ? e.kind : Kind.DELETE;
      state.value = e && e.kind === Kind.PUT ? e.value : EMPTY;
    }
    return state.kind === Kind.PUT;
  }

  private async commitGroup(group: QueuedWrite[]): Promise<void> {
    const core = this.core;
    try {
      core.throwIfFailed();
    } catch (err) {
      for (const w of group) w.reject(err as Error);
      return;
    }
    // Resolve versions. `assigned` holds the state this group leaves, ahead of the memtable.
    const assigned = new Map<string, KeyState>();
    const accepted: Array<{ w: QueuedWrite; ops: JournalOp[]; ids: string[]; seq: number; time: number }> = [];
    let seq = core.lastSeq + 1;
    // Commit times never go down: each accepted batch gets max(its time, the previous one's).
    let time = core.lastTime;
    const external = core.opts.writeAheadLog === 'external';
    let groupBytes = 0;
    for (let g = 0; g < group.length; g++) {
      const w = group[g];
      // The state this batch leaves, ahead of `assigned` until the whole batch resolves. A lone op
      // (every replicated PUT) needs no map: its key's state is `lone`.
      const local = w.ops.length > 1 ? new Map<string, KeyState>() : null;
      let lone: KeyState | null = null;
      const ops: JournalOp[] = [];
      const ids: string[] = [];
      let failure: Error | null = null;
      for (let i = 0; i < w.ops.length; i++) {
        const op = w.ops[i];
        const id = latin1(op.key);
        const state = local?.get(id) ?? assigned.get(id) ?? { version: core.latestVersion(op.key, id) };
        const latest = state.version;
        if (op.ifVersion !== undefined || op.ifAbsent) {
          const held = op.ifVersion !== undefined ? op.ifVersion === latest : !this.live(op.key, state);
          if (!held) {
            const cond = op.ifVersion !== undefined ? `ifVersion ${op.ifVersion}` : 'ifAbsent';
            failure = new ConditionFailedError(op.key, latest, !this.live(op.key, state), i, cond);
            break;
          }
        }
        let version: number;
        if (op.version !== undefined) {
          if (op.version <= latest) {
            failure = new VersionConflictError(op.key, op.version, latest);
            break;
          }
          version = op.version;
        } else {
          if (latest >= MAX_VERSION) {
            failure = new InvalidArgumentError(ErrorCode.INVALID_VERSION, `key's version space is exhausted`);
            break;
          }
          version = latest + 1;
        }
        let value = op.kind === Kind.PUT ? op.value : EMPTY;
        if (op.append) {
          const prev = this.live(op.key, state) ? state.value! : EMPTY;
          if (prev.length + op.value.length > core.opts.maxValueSize) {
            failure = new InvalidArgumentError(
              ErrorCode.VALUE_TOO_LARGE,
              `append would make the value ${prev.length + op.value.length} bytes, limit ${core.opts.maxValueSize}`,
            );
            break;
          }
          value = new Uint8Array(prev.length + op.value.length);
          value.set(prev, 0);
          value.set(op.value, prev.length);
        }
        const next: KeyState = { version, kind: op.kind, value };
        if (local) local.set(id, next);
        else lone = next;
        ids.push(id);
        ops.push({ kind: op.kind, key: op.key, version, value: op.kind === Kind.PUT ? value : undefined });
      }
      if (failure) {
        w.reject(failure);
        continue;
      }
      // Appends grow values here, after the drain loop's estimate: a batch that would take the
      // group's resolved bytes past MAX_GROUP_BYTES goes back to the head of the queue, with every
      // batch after it, and is resolved again in the next group (after this one is applied).
      let bytes = 0;
      for (const op of ops) bytes += op.key.length + (op.value?.length ?? 0) + 16;
      if (accepted.length > 0 && groupBytes + bytes > MAX_GROUP_BYTES) {
        this.queue.unshift(...group.slice(g));
        break;
      }
      groupBytes += bytes;
      if (local) for (const [id, st] of local) assigned.set(id, st);
      else assigned.set(ids[0], lone!);
      time = Math.max(time, w.time ?? (external ? time : Date.now()));
      for (const op of ops) op.time = time;
      accepted.push({ w, ops, ids, seq, time });
      seq += ops.length;
    }
    if (accepted.length === 0) return;

    // Journal the group: one write, one sync. (None in external-log mode: the caller's log has it.)
    const journal = core.journal;
    if (journal) {
      // Every earlier flush wrote all its bytes: this is where the last acknowledged record ends.
      const acknowledged = journal.writtenLength;
      let sync = false;
      for (const a of accepted) {
        journal.addRecord(encodeBatch(a.seq, a.ops));
        sync ||= a.w.sync;
      }
      try {
        await journal.flush({ sync });
      } catch (err) {
        // Not acknowledged: recovery cuts the group off this journal and continues in a new one.
        core.journalFailed(journal, acknowledged, err as Error);
        const refused = core.faultError();
        for (const a of accepted) a.w.reject(refused);
        return;
      }
      if (sync) core.stats.journalSyncs++;
      core.noteJournaled(seq - 1);
    }

    // Apply in order, freezing the memtable at the deterministic points.
    let rotateError: Error | null = null;
    for (const a of accepted) {
      for (let i = 0; i < a.ops.length; i++) {
        const op = a.ops[i];
        core.memAdd(op.key, a.ids[i], op.version!, a.seq + i, a.time, op.kind, op.value ?? EMPTY);
      }
      core.lastSeq = a.seq + a.ops.length - 1;
      if (a.w.logIndex > core.logIndex) core.logIndex = a.w.logIndex;
      // Every accepted write is durable in the journal (or the external log): acknowledge it now,
      // even if a flush fails, and before a rotation may wait for an earlier flush (whose install
      // may wait for this write's caller: `beforeLogIndexDurable`).
      if (a.w.resolveOne) a.w.resolveOne({ version: a.ops[0].version!, seq: a.seq, time: a.time });
      else a.w.resolve!(a.ops.map((op, i) => ({ version: op.version!, seq: a.seq + i, time: a.time })));
      if (core.memtableFull() && !rotateError) {
        try {
          await core.rotate(true);
        } catch (err) {
          // rotate entered a write fault (or found one): later groups are refused until it clears.
          rotateError = err as Error;
        }
      }
    }
  }
}

const EMPTY = new Uint8Array(0);
