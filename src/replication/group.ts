/**
 * {@link ReplicationGroup}: the Raft driver. It turns proposals into committed log entries and
 * hands each committed entry, in log order, to a {@link StateMachine}; a proposal is answered with
 * the outcome of applying its own entry. Today the group has one member (the node itself); the
 * loop is the one a replicated group runs, with no messages to send.
 *
 * **The Raft log is the write-ahead log.** The log (a {@link LevelStorage} in `<dir>/log`) is
 * the only journal of a write: the state machine applies entries to an engine opened with
 * `writeAheadLog: 'external'`, which writes no journal of its own and records, atomically with
 * each flush, the highest log index whose effects are in its tables. At open the caller passes
 * that index as {@link ReplicationGroupOptions.appliedIndex}, and the group re-applies every
 * entry after it (the memtable the crash lost is rebuilt from the log, in the same order, so the
 * engine reaches the same state, the same tables and the same checkpoints).
 *
 * **One loop, one sync per Ready.** One driver loop runs at a time. Each turn feeds the queued
 * ticks and every queued proposal into the node and then, for each Ready:
 * 1. `storage.save(rd)` writes entries and hard state in one atomic batch, synced when the Ready
 *    must be (new entries, term or vote; a Ready that only moves the commit index is written
 *    unsynced, as in etcd) — so every proposal that arrived while the previous Ready was being
 *    processed shares one fsync;
 * 2. sends the messages (none in a one-member group);
 * 3. starts applying the committed entries in log order — each `apply` call is made before the
 *    next, so the engine's group commit takes them together — and waits for all of them;
 *    committed entries that an earlier Ready already persisted are applied *while* step 1 syncs
 *    this Ready's new entries (as etcd's server does);
 * 4. answers each entry's proposer with its outcome, then `advance`s the node.
 * After a Ready that persisted new entries, the next turn takes no new proposals until the
 * entries those made committed are applied and answered: in a one-member group that is the very
 * next Ready, so a proposal waits for one fsync, not two, and the proposers just answered join the
 * next batch — 100 clients share each fsync instead of alternating between two half-full batches.
 * A proposal is therefore answered only after its entry is synced in the log and applied.
 *
 * **Why there is no separate applied record.** The previous driver kept `<dir>/applied`, an
 * fdatasync'd `(appliedIndex, engineSeq)` record written after every entry, and reconciled it
 * with the engine's own journal after a crash: two durable copies of every write had to be kept
 * in step. Now there is one: the engine's recorded index moves only with a flush, together with
 * the tables that hold the effects of every entry up to it, in one manifest edit (a checkpoint
 * records its own index in its last install and in its checkpoint-log record; see docs/engine.md).
 * Everything after that index is in the Raft log, synced before it was applied, and applying it
 * again to the state as of the index produces the same result (apply is deterministic: the
 * engine's install points depend only on the sequence of writes). There is no window in which an
 * entry is half-recorded, so none to analyse. The log's commit index is not synced on its own:
 * after a crash it may lag the engine's recorded index; entries up to the recorded index are
 * skipped, not re-applied.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { EntryType, LevelStorage, RawNode, SeededRand, StateType, type Entry } from '../raft/index.js';

/** Stable codes of {@link ReplicationError}. */
export enum ReplicationErrorCode {
  /** The group is closed, has failed, or dropped the proposal: it was not applied. */
  Unavailable = 'REPLICATION_UNAVAILABLE',
  /** The group's state on disk cannot be used. */
  BadState = 'REPLICATION_BAD_STATE',
}

/** A proposal the group did not apply, or a group that cannot open. */
export class ReplicationError extends Error {
  constructor(
    readonly code: ReplicationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ReplicationError';
  }
}

/** What the group drives: the replicated state machine. */
export interface StateMachine<O> {
  /**
   * Applies the command of committed entry `index`. Called in log order, each call before the
   * next (an implementation must take the entry in call order, e.g. by enqueueing synchronously);
   * the calls of one Ready may run concurrently. A rejection is that command's failure and goes
   * to its proposer, unless {@link isFatal} says the machine itself failed.
   */
  apply(index: number, command: Uint8Array): Promise<O>;
  /** True for an error that means the command may not have been applied: the loop stops. */
  isFatal(err: unknown): boolean;
}

/** Options of {@link ReplicationGroup.open}. */
export interface ReplicationGroupOptions<O> {
  stateMachine: StateMachine<O>;
  /**
   * Every entry up to this index has its effect durable in the state machine (the engine's
   * `logIndex().durable`); entries after it are applied again at open.
   */
  appliedIndex: number;
  /** Milliseconds per Raft tick (default 100). */
  tickMs?: number;
  /**
   * Called once the log is open and before any entry is applied, with the group (whose
   * {@link ReplicationGroup.commands} and {@link ReplicationGroup.status} can be read).
   */
  beforeReplay?: (group: ReplicationGroup<O>) => void;
}

/** Where the group stands. */
export interface GroupStatus {
  term: number;
  leader: number;
  commit: number;
  applied: number;
  lastIndex: number;
}

interface Waiter<O> {
  resolve(o: O): void;
  reject(e: unknown): void;
}

/** This node's id in its one-member group. */
const NODE_ID = 1;
/** Entry payload format: `FORMAT || u8 idLength || proposal id (UTF-8) || command`. */
const FORMAT = 1;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Frames a command with its proposal id for the log. */
export function encodeEntryPayload(id: string, command: Uint8Array): Uint8Array {
  const idBytes = utf8.encode(id);
  if (idBytes.length > 255) throw new RangeError('proposal id longer than 255 bytes');
  const out = new Uint8Array(2 + idBytes.length + command.length);
  out[0] = FORMAT;
  out[1] = idBytes.length;
  out.set(idBytes, 2);
  out.set(command, 2 + idBytes.length);
  return out;
}

/** Splits {@link encodeEntryPayload}; throws `REPLICATION_BAD_STATE` on anything else. */
export function decodeEntryPayload(data: Uint8Array): { id: string; command: Uint8Array } {
  if (data.length < 2 || data[0] !== FORMAT || data.length < 2 + data[1]) {
    throw new ReplicationError(ReplicationErrorCode.BadState, `log entry payload is not format ${FORMAT} (${data.length} bytes, first byte ${data[0]})`);
  }
  return { id: fromUtf8.decode(data.subarray(2, 2 + data[1])), command: data.subarray(2 + data[1]) };
}

const unavailable = (why: string, cause?: unknown) => new ReplicationError(ReplicationErrorCode.Unavailable, why, { cause });

/** The Raft driver of one group. Create with {@link ReplicationGroup.open}. */
export class ReplicationGroup<O> {
  private readonly nonce = randomBytes(8).toString('hex');
  private counter = 0;
  private readonly waiters = new Map<string, Waiter<O>>();
  private queue: Array<{ id: string; data: Uint8Array }> = [];
  private ticks = 0;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private failure: unknown = null;
  /** Proposers answered while processing the current Ready. */
  private answered = 0;
  /** Highest entry handed to the state machine (or skipped as already durable in it). */
  private applied: number;

  private constructor(
    private readonly storage: LevelStorage,
    private readonly node: RawNode,
    private readonly sm: StateMachine<O>,
    appliedIndex: number,
  ) {
    this.applied = appliedIndex;
  }

  /**
   * Opens (or creates) the group's log in `dir`, elects itself, applies every committed entry
   * after `appliedIndex` (and, once elected, every entry of the log: a one-member group commits
   * its whole log) and starts ticking.
   */
  static async open<O>(dir: string, options: ReplicationGroupOptions<O>): Promise<ReplicationGroup<O>> {
    if (fs.existsSync(path.join(dir, 'applied'))) {
      throw new ReplicationError(
        ReplicationErrorCode.BadState,
        `${dir} was written by the earlier raft write path (it has an 'applied' record); this version cannot take it over`,
      );
    }
    fs.mkdirSync(dir, { recursive: true });
    const storage = await LevelStorage.open(path.join(dir, 'log'), { voters: [NODE_ID], learners: [] });
    try {
      if (options.appliedIndex > storage.lastIndex()) {
        throw new ReplicationError(
          ReplicationErrorCode.BadState,
          `the state machine has applied log index ${options.appliedIndex} but the log in ${dir} ends at ${storage.lastIndex()}`,
        );
      }
      const hs = storage.initialState().hardState;
      const node = new RawNode({
        id: NODE_ID, storage, electionTick: 10, heartbeatTick: 1,
        rand: new SeededRand(randomBytes(4).readUInt32BE(0)),
        applied: Math.min(options.appliedIndex, hs.commit),
      });
      const group = new ReplicationGroup(storage, node, options.stateMachine, options.appliedIndex);
      options.beforeReplay?.(group);
      node.campaign();
      await group.kick();
      if (group.failure) throw group.failure;
      if (node.raft.state !== StateType.Leader) throw new ReplicationError(ReplicationErrorCode.BadState, `one-member group did not elect itself (state ${node.raft.state})`);
      group.timer = setInterval(() => {
        group.ticks++;
        void group.kick();
      }, options.tickMs ?? 100);
      group.timer.unref();
      return group;
    } catch (err) {
      await storage.close().catch(() => undefined);
      throw err;
    }
  }

  /** Where the group stands. */
  status(): GroupStatus {
    const hs = this.node.raft.hardState();
    return { term: hs.term, leader: this.node.leader(), commit: hs.commit, applied: this.applied, lastIndex: this.storage.lastIndex() };
  }

  /** Normal entries in `[lo, hi]` with their commands (to inspect the log, e.g. at open). */
  commands(lo: number, hi: number): Array<{ index: number; command: Uint8Array }> {
    const out: Array<{ index: number; command: Uint8Array }> = [];
    const from = Math.max(lo, this.storage.firstIndex());
    const to = Math.min(hi, this.storage.lastIndex());
    if (from > to) return out;
    for (const e of this.storage.entries(from, to + 1, Infinity)) {
      if (e.type === EntryType.Normal && e.data.length > 0) out.push({ index: e.index, command: decodeEntryPayload(e.data).command });
    }
    return out;
  }

  /**
   * Appends `command` to the log and resolves with the state machine's outcome once its entry is
   * synced and applied; rejects with the command's own failure, or `REPLICATION_UNAVAILABLE`
   * when it was not applied.
   */
  propose(command: Uint8Array): Promise<O> {
    if (this.closed) return Promise.reject(unavailable('replication group is closed'));
    if (this.failure) return Promise.reject(this.failedError());
    const id = `${this.nonce}/${++this.counter}`;
    const data = encodeEntryPayload(id, command);
    const p = new Promise<O>((resolve, reject) => this.waiters.set(id, { resolve, reject }));
    this.queue.push({ id, data });
    void this.kick();
    return p;
  }

  /** Stops ticking, finishes the running Ready, fails what is still queued, closes the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    while (this.running) await this.running;
    this.failAll(unavailable('replication group is closed'));
    await this.storage.close();
  }

  private failedError(): ReplicationError {
    const e = this.failure as Error;
    return unavailable(`replication group failed: ${e?.message ?? String(e)}`, e);
  }

  /** Runs the driver loop unless it is running; resolves when the loop that covers this call ends. */
  private kick(): Promise<void> {
    if (!this.running) {
      this.running = this.run()
        .catch((err: unknown) => {
          this.failure = err;
          this.failAll(this.failedError());
        })
        .finally(() => {
          this.running = null;
          // A proposal queued after the loop's last look but before this callback must not wait
          // for the next tick.
          if ((this.queue.length > 0 || this.ticks > 0) && !this.failure && !this.closed) void this.kick();
        });
    }
    return this.running;
  }

  private failAll(err: unknown): void {
    for (const q of this.queue.splice(0)) {
      this.waiters.get(q.id)?.reject(err);
      this.waiters.delete(q.id);
    }
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
  }

  private async run(): Promise<void> {
    const node = this.node;
    let feed = true;
    for (;;) {
      if (this.failure) return;
      for (; this.ticks > 0; this.ticks--) node.tick();
      if (feed && !this.closed) {
        for (const q of this.queue.splice(0)) {
          try {
            node.propose(q.data);
          } catch (err) {
            this.waiters.get(q.id)?.reject(unavailable(`proposal dropped: ${(err as Error).message}`, err));
            this.waiters.delete(q.id);
          }
        }
      }
      if (!node.hasReady()) {
        if (feed || this.queue.length === 0 || this.closed) return;
        feed = true;
        continue;
      }
      const rd = node.ready();
      this.answered = 0;
      // Committed entries already stable (persisted by an earlier Ready) are applied while this
      // Ready's entries are being synced; the others only after (RawNode's order, steps 1-3).
      const firstNew = rd.entries.length > 0 ? rd.entries[0].index : Infinity;
      const stable = rd.committedEntries.filter((e) => e.index < firstNew);
      const rest = rd.committedEntries.filter((e) => e.index >= firstNew);
      const [saved, applied] = await Promise.allSettled([
        this.storage.save(rd), // (1) one atomic batch, synced when it must be
        // (2) a one-member group has no peers to send to.
        this.applyAll(stable), // (3) + answers
      ]);
      if (saved.status === 'rejected') throw saved.reason;
      if (applied.status === 'rejected') throw applied.reason;
      await this.applyAll(rest);
      node.advance(rd); // (4)
      // After persisting new entries, first apply what they committed (in a one-member group:
      // all of them, at once) and only then take new proposals: the proposers answered now
      // join the next batch, instead of every client alternating between two half-full ones.
      const held = !feed;
      feed = rd.entries.length === 0;
      // Having just answered proposers, let one turn of the event loop pass: requests that are
      // already back are parsed and join the next batch instead of waiting a whole fsync.
      if (held && feed && this.answered > 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Starts every entry's apply in log order, waits for all, answers their proposers. */
  private async applyAll(entries: Entry[]): Promise<void> {
    const started: Array<{ id: string; p: Promise<O> }> = [];
    for (const e of entries) {
      if (e.index <= this.applied) continue; // durable in the state machine before a restart
      this.applied = e.index;
      if (e.type !== EntryType.Normal || e.data.length === 0) continue; // a leader's no-op (no conf changes in one member)
      const { id, command } = decodeEntryPayload(e.data);
      const p = this.sm.apply(e.index, command);
      p.catch(() => undefined); // settled below, in order
      started.push({ id, p });
    }
    let fatal: unknown = null;
    for (const { id, p } of started) {
      let settled: { ok: true; outcome: O } | { ok: false; error: unknown };
      try {
        settled = { ok: true, outcome: await p };
      } catch (error) {
        settled = { ok: false, error };
        if (this.sm.isFatal(error)) fatal ??= error;
      }
      const w = this.waiters.get(id);
      if (!w) continue;
      this.waiters.delete(id);
      this.answered++;
      if (settled.ok) w.resolve(settled.outcome);
      else w.reject(this.sm.isFatal(settled.error) ? unavailable(`not applied: ${(settled.error as Error)?.message}`, settled.error) : settled.error);
    }
    if (fatal) throw fatal;
  }
}
