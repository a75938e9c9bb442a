/**
 * {@link ReplicationGroup}: the Raft driver. It turns proposals into committed log entries and
 * hands each committed entry, in log order, to a {@link StateMachine}; a proposal is answered with
 * the outcome of applying its own entry on the member that proposed it. A group has one member
 * (`proofkv serve` without peers) or several, which talk through a {@link Transport}.
 *
 * **The Raft log is the write-ahead log.** The log (a {@link WalStorage}: segment files in `<dir>/wal`) is
 * the only journal of a write: the state machine applies entries to an engine opened with
 * `writeAheadLog: 'external'`, which writes no journal of its own and records, atomically with
 * each flush, the highest log index whose effects are in its tables. At open the caller passes
 * that index as {@link ReplicationGroupOptions.appliedIndex}, and the group re-applies every
 * committed entry after it (the memtable the crash lost is rebuilt from the log, in the same
 * order, so the engine reaches the same state, the same tables and the same checkpoints).
 *
 * **One loop, one sync per Ready.** One driver loop runs at a time; nothing steps the Raft node
 * from outside it (inbound messages, unreachable reports, proposals, reads and membership changes
 * are queued and fed in by the loop). Each turn feeds the queued ticks, inbound messages and
 * every queued proposal into the node and then, for each Ready:
 * 0. if the Ready carries a snapshot, awaits {@link StateMachine.restore} before anything of it
 *    is persisted;
 * 1. `storage.save(rd)` writes snapshot, entries and hard state in one write, synced when
 *    the Ready must be (new entries, term or vote; a Ready that only moves the commit index is
 *    written unsynced, as in etcd) — so every proposal that arrived while the previous Ready was
 *    being processed shares one fsync;
 * 2. sends the Ready's messages through the transport: a leader's appends, heartbeats and
 *    snapshot chunks while step 1 writes (Raft thesis §10.2.1: the core counts the leader's own
 *    entries toward commit only once `advance` reports them stable), every other message (votes,
 *    a follower's acknowledgements) once that write resolves;
 * 3. starts applying the committed entries in log order — each `apply` call is made before the
 *    next, so the engine's group commit takes them together — and waits for all of them;
 *    committed entries that an earlier Ready already persisted are applied *while* step 1 syncs
 *    this Ready's new entries (as etcd's server does); so are those that a commit learnt during
 *    the sync makes appliable: messages arriving meanwhile are stepped at once, and a leader sends
 *    the appends that carry the new commit index (see `duringSync`);
 * 4. answers each entry's proposer (if it is waiting on this member) with its outcome, serves the
 *    reads whose read index is now applied, then `advance`s the node (membership changes take
 *    effect) and tells the transport the new peer set.
 * In a group whose only voter is this member, after a Ready that persisted new entries, the next
 * turn takes no new proposals until the work that Ready made immediately possible is done: that is
 * the very next Ready (its entries commit at once), so a proposal waits for one fsync, not two,
 * and the proposers just answered join the next batch — 100 clients share each fsync instead of
 * alternating between two half-full batches. With other voters every turn takes the proposals
 * queued (holding them there starved them). A proposal is answered only after its entry is
 * committed, synced in this member's log and applied here.
 *
 * **Why there is no separate applied record.** The previous driver kept `<dir>/applied`, an
 * fdatasync'd `(appliedIndex, engineSeq)` record written after every entry, and reconciled it
 * with the engine's own journal after a crash: two durable copies of every write had to be kept
 * in step. Now there is one: the engine's recorded index moves only with a flush, together with
 * the tables that hold the effects of every entry up to it, in one manifest edit (a checkpoint
 * records its own index in its last install and in its checkpoint-log record; see docs/engine.md).
 * Everything after that index is in the Raft log, synced before it was applied, and applying it
 * again to the state as of the index produces the same result (apply is deterministic: the
 * engine's install points depend only on the sequence of writes). The log's commit index is not
 * synced on its own: after a crash it may lag the engine's recorded index; entries up to the
 * recorded index are skipped, not re-applied.
 *
 * **Faults that pass.** A committed entry is never skipped: when the state machine refuses one
 * with a transient fault ({@link StateMachine.isTransient}: nothing of it applied), applying
 * pauses at it, the machine rolls back to before it, and the loop applies it and every later
 * entry again, in order, with backoff, until they succeed; a failed write of the log for a passing
 * reason drops that Ready and reopens the log. Meanwhile new proposals are refused before the log
 * ({@link ReplicationGroup.applyPause}). Any other failure stops the group.
 *
 * The whole design (a write on a follower, timeouts, membership, compaction, faults, the
 * simulator) is in docs/replication.md.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  ConfChangeType, EntryType, MessageType, None, ProgressState, RaftError, RaftErrorCode, RawNode, SeededRand, StateType,
  decodeConfChange, encodeConfChange, entsSize,
  type ConfChange, type ConfState, type Entry, type Message, type ReadState, type Ready, type Snapshot, type SoftState,
} from '../raft/index.js';
import { WalStorage } from '../raft/wal_storage.js';
import { realClock, type Clock, type TimerHandle } from './clock.js';
import type { PeerAddress, Transport } from './transport.js';
import { trace, traceMessages, tracing } from './trace.js';
import { coalesceAppendAcks } from './coalesce.js';
import { CommitNotices, DEFAULT_COMMIT_NOTICE_DELAY_MS } from './commit_notices.js';

/** Stable codes of {@link ReplicationError}. */
export enum ReplicationErrorCode {
  /**
   * The group is closed, has failed, knows no leader, dropped the request or timed out waiting
   * for it. {@link ReplicationError.indeterminate} tells whether a proposal may still commit.
   */
  Unavailable = 'REPLICATION_UNAVAILABLE',
  /** The group's state on disk, or an argument, cannot be used. */
  BadState = 'REPLICATION_BAD_STATE',
}

/** A proposal the group did not apply, or a group that cannot open. */
export class ReplicationError extends Error {
  constructor(
    readonly code: ReplicationErrorCode,
    message: string,
    options?: { cause?: unknown; indeterminate?: boolean },
  ) {
    super(message, options);
    this.name = 'ReplicationError';
    this.indeterminate = options?.indeterminate ?? false;
  }

  /**
   * True when the proposal had already entered the log when this error was raised (it timed out,
   * or the group closed or failed while it was in flight): its entry may still commit and be
   * applied. False means it was never appended (no leader, dropped, refused before the loop took
   * it): retrying cannot apply it twice.
   */
  readonly indeterminate: boolean;
}

/** The Raft snapshot handed to {@link StateMachine.restore}. */
export interface RestoreSnapshot {
  /** Last log index the snapshot covers. */
  readonly index: number;
  /** Term of the entry at `index`. */
  readonly term: number;
  /** What {@link StateMachine.snapshot} returned on the member that made it (a small descriptor). */
  readonly data: Uint8Array;
}

/** What the group drives: the replicated state machine. */
export interface StateMachine<O> {
  /**
   * Applies the command of committed entry `index`. Called in log order, each call before the
   * next (an implementation must take the entry in call order, e.g. by enqueueing synchronously);
   * the calls of one Ready may run concurrently. A rejection is that command's failure and goes
   * to its proposer, unless {@link isFatal} says the machine itself failed. Resolving with a
   * {@link LaterAnswer} says the entry took effect (the loop goes on) while its proposer's answer
   * comes later (a pipelined checkpoint: applied at its freeze, answered at its record).
   */
  apply(index: number, command: Uint8Array): Promise<O | LaterAnswer<O>>;
  /** True for an error that means the command may not have been applied: the loop stops. */
  isFatal(err: unknown): boolean;
  /**
   * Optional: true for a passing fault of the machine (an engine write fault it recovers from by
   * itself: a full disk, descriptor exhaustion) on which the command was refused and *nothing* of
   * it applied. The group then pauses applying: it applies this entry and every later one again,
   * in order, with backoff, until they succeed (a committed entry can never be skipped); new
   * proposals are refused meanwhile (see {@link ReplicationGroup.applyPause}). Checked before
   * {@link isFatal}.
   */
  isTransient?(err: unknown): boolean;
  /**
   * Optional, with {@link isTransient}: called before the group applies entries again from
   * `index` after a transient fault, so that the machine forgets what its refused applies of
   * entries `>= index` recorded outside the engine (the session inputs): applying them again must
   * produce exactly what a first apply would.
   */
  rollback?(index: number): void;
  /**
   * Optional: the latest state this machine can be rebuilt from elsewhere (a certified checkpoint's
   * descriptor) and its log index, at most the last applied index. The group records it as the
   * Raft snapshot when {@link ReplicationGroupOptions.snapshotEvery} entries were applied since
   * the last one, and compacts the log behind it.
   */
  snapshot?(): { index: number; data: Uint8Array } | undefined;
  /**
   * Optional: replaces the machine's state by `snapshot`'s, fetched from member `from` (the
   * leader that sent it). Awaited before the snapshot is persisted in the log; once it resolves
   * the machine's state must be durable as of `snapshot.index`. A rejection leaves the log as it
   * was (the member retries when the leader sends the snapshot again). Without this hook a member
   * that is sent a snapshot stops (`REPLICATION_BAD_STATE`).
   */
  restore?(snapshot: RestoreSnapshot, from: number): Promise<void>;
  /**
   * Optional: the data a leader sends now as the Raft snapshot at `index` to a member behind its
   * log, given the data recorded with it; asked when a transfer starts and when a one-chunk
   * snapshot is sent again (the core's `Config.snapshotToSend`). What was recorded can grow stale
   * while it waits: a certificate gains signatures after the snapshot is recorded, and a member
   * behind a signer-set change trusts the snapshot only through a certificate of that change
   * signed by a quorum of the set before it. Must describe the same snapshot (same index, same
   * state); a throw sends the recorded data. Undefined: the snapshot cannot be served now (no
   * transfer starts; asked again at the next heartbeat). Default: the recorded data.
   */
  snapshotToSend?(index: number, data: Uint8Array): Uint8Array | undefined;
  /**
   * Optional: the membership change of committed entry `index`, handed over in log order with the
   * normal entries (before the next entry's {@link apply}) — so that state derived from the
   * membership (the member registry, a checkpoint's signer set) follows the log, not the Ready
   * boundaries (the core itself applies the change later, in `advance`). Entries at or below the
   * applied index given at open are not handed over again.
   */
  applyConfChange?(index: number, cc: ConfChange): void;
}

/**
 * What {@link StateMachine.apply} resolves with for an entry that took effect but whose outcome
 * comes later: the group counts the entry applied and answers its proposer when `answer`
 * settles (a rejection is the proposer's error; it does not pause or stop applying: the
 * machine reports its own failure on the entries after it).
 */
export class LaterAnswer<O> {
  constructor(readonly answer: Promise<O>) {
    answer.catch(() => undefined);
  }
}

/**
 * `snap` with the data {@link StateMachine.snapshotToSend} gives to send now (as recorded when it
 * throws), or undefined when it says the snapshot cannot be sent now.
 */
function sendable<O>(sm: StateMachine<O>, snap: Snapshot): Snapshot | undefined {
  let data: Uint8Array | undefined;
  try {
    data = sm.snapshotToSend!(snap.metadata.index, snap.data);
  } catch {
    return snap;
  }
  if (data === undefined) return undefined;
  return data === snap.data ? snap : { metadata: snap.metadata, data };
}

/** Options of {@link ReplicationGroup.open}. */
export interface ReplicationGroupOptions<O> {
  stateMachine: StateMachine<O>;
  /**
   * Every entry up to this index has its effect durable in the state machine (the engine's
   * `logIndex().durable`); committed entries after it are applied again at open.
   */
  appliedIndex: number;
  /** This member's Raft id (default 1). */
  id?: number;
  /**
   * The bootstrap voters, this member included, used only when the log is empty (default: this
   * member alone). They are written as the first log entries (one `AddNode` each, term 1,
   * committed), identically on every bootstrap member, so that a member added later learns the
   * initial membership from the log like any other change. Their addresses also seed
   * {@link resolvePeer}.
   */
  peers?: readonly PeerAddress[];
  /**
   * State-machine commands written into a fresh log after the bootstrap `AddNode` entries (term 1,
   * committed, in this order), identically on every bootstrap member; used only when the log is
   * empty and `join` is not set. The write path puts the initial members' registry entries here
   * (ids, URLs, keys), so that a member added later learns them from the log, not from its own
   * copy of the cluster file.
   */
  bootstrapCommands?: readonly Uint8Array[];
  /**
   * True for a member that joins a running group (it was added with
   * {@link ReplicationGroup.proposeConfChange}): it never bootstraps, starts with an empty
   * membership and learns it from the leader; `peers` then only gives addresses.
   */
  join?: boolean;
  /** Carries messages to the other members; required when the group has more than one. */
  transport?: Transport;
  /**
   * The address of member `id`, for the transport (the member registry lives in the state
   * machine). Asked whenever the membership changes; `peers` are used when this gives nothing.
   */
  resolvePeer?: (id: number) => PeerAddress | undefined;
  /**
   * Ids the state machine's durable membership says were removed from the group (the member
   * registry's `removed`). Asked at open and after each snapshot install; their messages are
   * refused and their streams not admitted, also when the entries that removed them are behind
   * this member's log (applied before a restart, or in a snapshot). Default: only the removals
   * this member applied since it opened.
   */
  removedMembers?: () => Iterable<number>;
  /** Milliseconds per Raft tick (default 100). */
  tickMs?: number;
  /**
   * How long a leader's append that only tells a follower a new commit index may wait for the
   * next append with entries to carry it instead (ms, default {@link DEFAULT_COMMIT_NOTICE_DELAY_MS};
   * 0 sends each at once). Not held: notices to a follower whose relayed proposal awaits its commit,
   * or that is sent a read index, or that is not replicating normally (`commit_notices.ts`).
   */
  commitNoticeDelayMs?: number;
  /** Ticks without a leader before a follower campaigns (default 10). */
  electionTick?: number;
  /** Ticks between a leader's heartbeats (default 1). */
  heartbeatTick?: number;
  /** Seed of the election timeouts and proposal ids (default random; the simulator sets it). */
  seed?: number;
  /** Timers and time (default {@link realClock}; the simulator passes a virtual clock). */
  clock?: Clock;
  /**
   * Default timeout of {@link ReplicationGroup.propose}, {@link ReplicationGroup.readIndex} and
   * {@link ReplicationGroup.proposeConfChange}, in ms: 3 election timeouts
   * (`3 × electionTick × tickMs`, 3 s with the defaults). Checked on every tick.
   */
  requestTimeoutMs?: number;
  /** Log entries kept behind a snapshot for slow followers (default {@link DEFAULT_COMPACT_MARGIN}). */
  compactMargin?: number;
  /**
   * Bytes of the entries kept behind a snapshot, at most (default
   * {@link DEFAULT_COMPACT_MARGIN_BYTES}): fewer than `compactMargin` entries are kept when they
   * would hold more (the log's in-memory mirror is byte-bound, docs/raft.md § Memory).
   */
  compactMarginBytes?: number;
  /**
   * Bytes of log entries held in memory (`WalStorage.mirroredBytes`) above which
   * `onLogPressure` is called after a write (default {@link DEFAULT_MAX_LOG_MEMORY_BYTES}), once
   * until the bytes fall below again: the state machine is asked for a snapshot point (the write
   * path proposes a checkpoint, whose certified snapshot compacts the log).
   */
  maxLogMemoryBytes?: number;
  /** See `maxLogMemoryBytes`; called with the bytes held. */
  onLogPressure?: (bytes: number) => void;
  /**
   * Ask {@link StateMachine.snapshot} for a new snapshot once this many entries were applied
   * after the last one (default 10 000; 0 = never: only {@link ReplicationGroup.snapshotAt}).
   */
  snapshotEvery?: number;
  /**
   * Sync the log before a Ready's new entries count as persisted (default true). False writes the
   * log without fdatasync: an acknowledged write survives a crash of the process, not a power
   * loss (`proofkv serve --no-sync`). Snapshot records and compactions are synced either way.
   */
  sync?: boolean;
  /**
   * Awaited after each write of the log that synced, before its Ready counts as persisted (before
   * its late messages are sent and its new entries applied). The simulator makes a sync's
   * completion an event of its virtual clock with it, so that messages arrive and commits are
   * learnt while a member syncs (`src/replication/sim/syncs.ts`). Default: none.
   */
  afterSync?: () => Promise<void>;
  /**
   * True for a failed write of the log that passes (a full disk, a file-size limit, descriptor
   * exhaustion). The group then pauses: the failed Ready is dropped (its proposers are answered
   * indeterminate), the node is rebuilt from the log as it is, new proposals are refused, and the
   * log is reopened and reconciled ({@link WalStorage.reopen}) with backoff until it works.
   * Default {@link isPassingIoError}; any other failure of the log stops the group.
   */
  isTransientLogError?: (err: unknown) => boolean;
  /**
   * Called when applying pauses or the log fails ({@link ReplicationGroup.applyPause}: the first
   * refusal, not each retry) and with `undefined` when the group runs again (for logs).
   */
  onPause?: (pause: ApplyPause | undefined) => void;
  /**
   * Called once the log is open and before any entry is applied, with the group (whose
   * {@link ReplicationGroup.commands} and {@link ReplicationGroup.status} can be read).
   */
  beforeReplay?: (group: ReplicationGroup<O>) => void;
}

/**
 * A member's role: `joining` is a member not (yet) in the membership it knows (opened with
 * `join: true`); `removed` one whose removal it applied.
 */
export type GroupRole = 'leader' | 'follower' | 'candidate' | 'pre-candidate' | 'learner' | 'joining' | 'removed';

/** Where the group stands, as this member sees it. */
export interface GroupStatus {
  id: number;
  role: GroupRole;
  term: number;
  /** The leader's id, 0 when none is known. */
  leader: number;
  commit: number;
  applied: number;
  /** First entry still in this member's log (entries before it were compacted behind the snapshot). */
  firstIndex: number;
  lastIndex: number;
  /** Index of the Raft snapshot this member holds (0: none). */
  snapshotIndex: number;
  voters: number[];
  learners: number[];
}

/** First wait before an entry refused by a transient fault is applied again, ms; it doubles with each refusal. */
export const APPLY_RETRY_BASE_MS = 50;
/** Longest wait between two attempts to apply a refused entry again, ms (checked on every tick). */
export const APPLY_RETRY_MAX_MS = 1000;

/**
 * Applying is paused: committed entry `index` was refused by a transient fault of the state
 * machine ({@link StateMachine.isTransient}); it and every later committed entry wait to be
 * applied again, in order.
 */
export interface ApplyPause {
  /**
   * `apply`: the state machine refused entry `index`; `log`: writing the log failed (entries
   * from `index` were not persisted) and the log is being reopened.
   */
  readonly component: 'apply' | 'log';
  /** The first entry not applied (`apply`), or the first entry of the failed write (`log`). */
  readonly index: number;
  /** The latest refusal. */
  readonly error: unknown;
  /** Attempts to apply it so far (1 after the first refusal). */
  readonly attempts: number;
  /** Clock time of the first refusal (the group's clock, ms). */
  readonly since: number;
}

/**
 * True for an I/O failure that passes by itself or by an operator freeing resources: a full disk
 * or quota, a file-size limit, descriptor exhaustion — by errno code, or by the messages LevelDB
 * reports them with (it gives no code).
 */
export function isPassingIoError(err: unknown): boolean {
  return passingIoCode(err) !== undefined;
}

/** Passing errno codes and how LevelDB words them (it gives no code); ENFILE's words contain EMFILE's, so it comes first. */
const PASSING_IO: Array<[string, RegExp]> = [
  ['ENOSPC', /No space left on device/i],
  ['EDQUOT', /Disk quota exceeded/i],
  ['EFBIG', /File too large/i],
  ['ENFILE', /Too many open files in system/i],
  ['EMFILE', /Too many open files/i],
];

/** The errno code of a passing I/O failure ({@link isPassingIoError}), from its code or its message. */
export function passingIoCode(err: unknown): string | undefined {
  for (let e = err, i = 0; i < 5 && e instanceof Error; i++, e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (PASSING_IO.some(([c]) => c === code)) return code;
    for (const [c, re] of PASSING_IO) if (re.test(e.message)) return c;
  }
  return undefined;
}

/** Entries kept behind a snapshot by default, so that a follower that lags by less needs no snapshot (etcd's `SnapshotCatchUpEntries`). */
export const DEFAULT_COMPACT_MARGIN = 5000;
/** Default {@link ReplicationGroupOptions.compactMarginBytes}: 64 MiB. */
export const DEFAULT_COMPACT_MARGIN_BYTES = 64 << 20;
/** Default {@link ReplicationGroupOptions.maxLogMemoryBytes}: 256 MiB. */
export const DEFAULT_MAX_LOG_MEMORY_BYTES = 256 << 20;
/** Senders outside the known membership that are added to the peer set (docs/replication.md § Membership). */
export const MAX_HEARD_PEERS = 64;

/**
 * Most removed member ids a group remembers (its log's removals and the state machine's durable
 * list); past it the oldest is forgotten (the member registry keeps the newest 256 durably).
 */
export const MAX_REMOVED_IDS = 1024;
/**
 * Bytes of proposals handed to the node in one step (one relayed message, one append): the
 * proposals of a turn are split into steps of at most this much (a larger one goes alone).
 */
export const MAX_PROPOSAL_BATCH_BYTES = 1024 * 1024;
/** Inbound messages queued between two turns of the loop; more are dropped (Raft resends). */
export const MAX_INBOUND_MESSAGES = 4096;
/** Bytes of entry data in queued inbound messages; more are dropped (Raft resends). */
export const MAX_INBOUND_BYTES = 64 * 1024 * 1024;

interface Waiter<T> {
  resolve(o: T): void;
  reject(e: unknown): void;
  /** Clock time after which it is rejected as timed out. */
  deadline: number;
  /** Its entry is being applied here: the outcome is delivered, whatever the deadline. */
  applying?: boolean;
}

interface ReadWaiter extends Waiter<number> {
  /** The read index, once the leader confirmed it. */
  index?: number;
}

interface ConfWaiter extends Waiter<void> {
  cc: ConfChange;
  /** The change was handed to the node (it may be in the log). */
  stepped: boolean;
}

/** Entry payload format: `FORMAT || u8 idLength || proposal id (UTF-8) || command`. */
const FORMAT = 1;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * True for a message that may be sent while the Ready that carries it is being written: a
 * leader's replication messages (append, heartbeat, snapshot chunk; Raft thesis §10.2.1 — the
 * core counts the leader's own entries toward commit only once they are stable) and its answers
 * to forwarded reads (a read index is a commit index, already on a quorum's disks, confirmed by
 * a quorum: it depends on nothing this Ready writes — etcd's leader sends them at once too), and
 * on any member a proposal or a read request relayed to the leader, which state nothing about
 * this member's log. Acknowledgements and votes wait for the write.
 */
function sendsBeforeWrite(m: Message, leader: boolean): boolean {
  if (m.type === MessageType.Prop || m.type === MessageType.ReadIndex) return true;
  return leader && (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap || m.type === MessageType.ReadIndexResp);
}

/**
 * Whether `m` carries a write onward (a relayed proposal, entries to append, a snapshot): written
 * at once. A leader's append without entries (a new commit index) and ReadIndex traffic are left
 * to the end of the turn, coalesced.
 */
function carriesWrite(m: Message): boolean {
  return m.type === MessageType.Prop || m.type === MessageType.Snap || (m.type === MessageType.App && m.entries.length > 0);
}

/** Frames a command with its proposal id for the log. */
export function encodeEntryPayload(id: string, command: Uint8Array): Uint8Array {
  // A proposal id is ASCII (`<hex nonce>/<counter>`): written byte for byte, the same bytes as
  // its UTF-8 encoding, without the encoder's intermediate array.
  let ascii = id.length <= 255;
  for (let i = 0; ascii && i < id.length; i++) if (id.charCodeAt(i) >= 0x80) ascii = false;
  const idBytes = ascii ? undefined : utf8.encode(id);
  const idLength = idBytes ? idBytes.length : id.length;
  if (idLength > 255) throw new RangeError('proposal id longer than 255 bytes');
  const out = new Uint8Array(2 + idLength + command.length);
  out[0] = FORMAT;
  out[1] = idLength;
  if (idBytes) out.set(idBytes, 2);
  else for (let i = 0; i < idLength; i++) out[2 + i] = id.charCodeAt(i);
  out.set(command, 2 + idLength);
  return out;
}

/** Splits {@link encodeEntryPayload}; throws `REPLICATION_BAD_STATE` on anything else. */
export function decodeEntryPayload(data: Uint8Array): { id: string; command: Uint8Array } {
  if (data.length < 2 || data[0] !== FORMAT || data.length < 2 + data[1]) {
    throw new ReplicationError(ReplicationErrorCode.BadState, `log entry payload is not format ${FORMAT} (${data.length} bytes, first byte ${data[0]})`);
  }
  return { id: fromUtf8.decode(data.subarray(2, 2 + data[1])), command: data.subarray(2 + data[1]) };
}

const unavailable = (why: string, cause?: unknown, indeterminate = false) =>
  new ReplicationError(ReplicationErrorCode.Unavailable, why, { cause, indeterminate });
const badState = (why: string) => new ReplicationError(ReplicationErrorCode.BadState, why);

/** The membership after applying `cc` to `cs` (the core's rules: thesis §4.1 single-server changes). */
export function applyConfChangeTo(cs: ConfState, cc: ConfChange): ConfState {
  const voters = new Set(cs.voters);
  const learners = new Set(cs.learners);
  switch (cc.type) {
    case ConfChangeType.AddNode: voters.add(cc.nodeId); learners.delete(cc.nodeId); break;
    // A new learner, or a voter demoted (never the last voter).
    case ConfChangeType.AddLearner: if (!(voters.has(cc.nodeId) && voters.size === 1)) { voters.delete(cc.nodeId); learners.add(cc.nodeId); } break;
    case ConfChangeType.RemoveNode: voters.delete(cc.nodeId); learners.delete(cc.nodeId); break;
  }
  const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
  return { voters: sorted(voters), learners: sorted(learners) };
}

function checkId(what: string, id: number): void {
  if (!Number.isSafeInteger(id) || id <= 0 || id > 0xffff_ffff) throw badState(`${what} must be an integer in [1, 2^32), got ${id}`);
}

/** A transport for a group that has no peers: it carries nothing. */
const noTransport: Transport = {
  send() {},
  onMessages() {},
  onUnreachable() {},
  setPeers() {},
  fetchSnapshotChunk: () => Promise.reject(unavailable('no transport')),
  onSnapshotRead() {},
  close: () => Promise.resolve(),
};

/** The Raft driver of one member of a group. Create with {@link ReplicationGroup.open}. */
export class ReplicationGroup<O> {
  private readonly nonce: string;
  private counter = 0;
  private readonly waiters = new Map<string, Waiter<O>>();
  private queue: Array<{ id: string; data: Uint8Array }> = [];
  private inbound: Message[] = [];
  private inboundBytes = 0;
  private readonly unreachable = new Set<number>();
  /**
   * Read requests not yet handed to the node. They share one ReadIndex request, and only one is
   * in flight at a time ({@link readRequestOpen}): reads that arrive meanwhile wait for it to be
   * answered and then go together in the next.
   */
  private readQueue: ReadWaiter[] = [];
  /** The ReadIndex request in flight (its context) and when it was made (clock ms). */
  private readInFlight: { ctx: string; since: number } | undefined;
  /** After this many ms without an answer, the next ReadIndex request goes anyway (a lost message must not hold reads back). */
  private readonly readRetryMs: number;
  /** ReadIndex context → the reads it serves. */
  private readonly reads = new Map<string, ReadWaiter[]>();
  private confQueue: ConfWaiter[] = [];
  private readonly confWaiters: ConfWaiter[] = [];
  /** Snapshot and compaction requests, run by the loop between two Readies. */
  private storageOps: Array<{ run: () => Promise<void>; fail: (err: unknown) => void }> = [];
  /** The log's mirror was over `maxLogMemoryBytes` at the last check (`onLogPressure` called). */
  private logPressure = false;
  private readonly leaderCallbacks: Array<(leader: number) => void> = [];
  private lastLeader = None;
  private ticks = 0;
  private running: Promise<void> | null = null;
  private timer: TimerHandle | null = null;
  private closed = false;
  private failure: unknown = null;
  /** Proposers answered while processing the current Ready. */
  private answered = 0;
  /** Highest entry handed to the state machine (or skipped as already durable in it). */
  private applied: number;
  /** Highest committed entry handed to the apply step (applied, or waiting behind {@link pause}). */
  private committedTo: number;
  /** Set while applying is paused by a transient fault; `retryAt` is when to try again. */
  private pause: (ApplyPause & { retryAt: number }) | null = null;
  /** Log syncs made by {@link WalStorage.save} for this group's Readies. */
  private syncs = 0;
  /** Set when the node was rebuilt after the log was reopened: campaign once it knows it is the only voter. */
  private campaignWhenAlone = false;
  private node: RawNode;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly margin: number;
  private readonly snapshotEvery: number;
  private readonly addresses = new Map<number, PeerAddress>();
  /**
   * Members removed by a change in this member's log or in its state machine's durable membership
   * ({@link ReplicationGroupOptions.removedMembers}), and not added again: their messages are
   * ignored. The transport may deliver messages from ids outside the peer set, because a lagging
   * member does not yet know the members added after its applied index.
   */
  private readonly removed = new Set<number>();
  /** Ids the transport was last told about. */
  private peerIds = new Set<number>();
  /**
   * Senders outside the membership as this member knows it (at most {@link MAX_HEARD_PEERS}):
   * added to the peer set so that a lagging member can answer a leader it does not know yet.
   */
  private readonly heard = new Set<number>();
  /**
   * Conf changes of the Ready being applied that were handed to the state machine: the Raft node
   * takes them in only at `advance`, after the Ready's apply, so {@link status} adds them to the
   * node's configuration (its `applied` already counts them).
   */
  private unadvanced: ConfChange[] = [];
  /** Addresses that senders in {@link heard} named themselves ({@link admitSender}): used when {@link ReplicationGroupOptions.resolvePeer} knows none. */
  private readonly learnt = new Map<number, PeerAddress>();
  /** Set while the loop waits for a sync ({@link duringSync}): wakes it to step what arrived. */
  private wake: (() => void) | null = null;
  /**
   * While {@link duringSync} runs: the applies it has in flight (the Ready's own, then those of
   * commits learnt during the sync, and the reads released after them), and whether they settled
   * ({@link applyingDuringSync}).
   */
  private syncApplies: { settled: boolean; done: Promise<void> } | null = null;
  /** A leader's commit-only appends held back for a while ({@link CommitNotices}). */
  private readonly notices = new CommitNotices();
  /** The timer that sends the held notices; null when none is armed. */
  private noticeTimer: TimerHandle | null = null;
  private readonly noticeDelayMs: number;

  private constructor(
    readonly id: number,
    private readonly storage: WalStorage,
    private readonly newNode: () => RawNode,
    private readonly sm: StateMachine<O>,
    appliedIndex: number,
    private readonly options: ReplicationGroupOptions<O>,
    nonce: string,
  ) {
    this.applied = appliedIndex;
    this.committedTo = appliedIndex;
    this.node = newNode();
    this.nonce = nonce;
    this.transport = options.transport ?? noTransport;
    this.clock = options.clock ?? realClock;
    const tickMs = options.tickMs ?? 100;
    this.timeoutMs = options.requestTimeoutMs ?? 3 * (options.electionTick ?? 10) * tickMs;
    this.margin = options.compactMargin ?? DEFAULT_COMPACT_MARGIN;
    this.snapshotEvery = options.snapshotEvery ?? 10_000;
    this.noteDurablyRemoved();
    this.readRetryMs = 2 * (options.heartbeatTick ?? 1) * tickMs;
    this.noticeDelayMs = options.commitNoticeDelayMs ?? DEFAULT_COMMIT_NOTICE_DELAY_MS;
    for (const p of options.peers ?? []) this.addresses.set(p.id, p);
  }

  /**
   * Opens (or creates) the member's log in `dir`, applies every committed entry after
   * `appliedIndex`, and starts ticking. A one-member group elects itself before this resolves
   * (and, once elected, applies its whole log: a one-member group commits it); a member of a
   * larger group waits for an election like any Raft node.
   */
  static async open<O>(dir: string, options: ReplicationGroupOptions<O>): Promise<ReplicationGroup<O>> {
    if (fs.existsSync(path.join(dir, 'applied'))) {
      throw badState(`${dir} was written by the earlier raft write path (it has an 'applied' record); this version cannot take it over`);
    }
    const id = options.id ?? 1;
    checkId('member id', id);
    const peers = options.peers ?? [{ id, peerUrl: '' }];
    for (const p of peers) checkId('peer id', p.id);
    if (options.join && !options.transport) throw badState('a joining member needs a transport');
    if (!options.join && !peers.some((p) => p.id === id)) throw badState(`the bootstrap peers ${peers.map((p) => p.id).join(', ')} do not include this member (${id}); a joining member sets join: true`);
    const tickMs = options.tickMs ?? 100;
    const electionTick = options.electionTick ?? 10;
    const heartbeatTick = options.heartbeatTick ?? 1;
    if (!(tickMs > 0) || !Number.isSafeInteger(electionTick) || !Number.isSafeInteger(heartbeatTick) || heartbeatTick <= 0 || electionTick <= heartbeatTick) {
      throw badState(`bad timing: tickMs ${tickMs}, electionTick ${electionTick}, heartbeatTick ${heartbeatTick}`);
    }
    fs.mkdirSync(dir, { recursive: true });
    const storage = await WalStorage.open(path.join(dir, 'wal'), { voters: [], learners: [] }, { upgradeFrom: path.join(dir, 'log') });
    try {
      const hs0 = storage.initialState().hardState;
      const fresh = storage.lastIndex() === 0 && storage.snapshot().metadata.index === 0 && hs0.term === 0 && hs0.vote === 0 && hs0.commit === 0;
      if (fresh && !options.join) await bootstrap(storage, peers.map((p) => p.id), options.bootstrapCommands ?? []);
      if (options.appliedIndex > storage.lastIndex()) {
        throw badState(`the state machine has applied log index ${options.appliedIndex} but the log in ${dir} ends at ${storage.lastIndex()}`);
      }
      const snapIndex = storage.snapshot().metadata.index;
      if (options.appliedIndex < snapIndex) {
        throw badState(`the state machine has applied log index ${options.appliedIndex} but the log in ${dir} starts after its snapshot at ${snapIndex}`);
      }
      const seeds = new SeededRand(options.seed ?? randomBytes(4).readUInt32BE(0));
      const nonce = options.seed === undefined ? randomBytes(8).toString('hex') : (seeds.u32().toString(16).padStart(8, '0') + seeds.u32().toString(16).padStart(8, '0'));
      // The node starts at the snapshot: committed entries after it are delivered again, so that
      // the membership changes among them take effect (the state machine skips what it has);
      // the entries kept behind it (the compaction margin) are not: the snapshot's membership
      // already holds their changes.
      const sm = options.stateMachine;
      const snapshotToSend = sm.snapshotToSend ? (snap: Snapshot) => sendable(sm, snap) : undefined;
      const newNode = () => new RawNode({ id, storage, electionTick, heartbeatTick, rand: seeds.fork(), applied: storage.snapshot().metadata.index, snapshotToSend });
      const group = new ReplicationGroup(id, storage, newNode, options.stateMachine, options.appliedIndex, options, nonce);
      trace('node', id);
      options.beforeReplay?.(group);
      group.transport.onMessages((msgs) => group.receive(msgs));
      group.transport.onUnknownSender?.((peer) => group.admitSender(peer));
      group.transport.onUnreachable((peer) => {
        if (group.closed) return;
        group.unreachable.add(peer);
        void group.kick();
      });
      await group.kick();
      if (group.failure) throw group.failure;
      const cs = group.node.raft.prs.confState();
      if (cs.voters.length + cs.learners.length > 1 && !options.transport) throw badState(`a group of ${cs.voters.length} voters and ${cs.learners.length} learners needs a transport`);
      group.updatePeers();
      if (cs.voters.length === 1 && cs.voters[0] === id && cs.learners.length === 0) {
        group.node.campaign();
        await group.kick();
        if (group.failure) throw group.failure;
        if (group.node.raft.state !== StateType.Leader) throw badState(`one-member group did not elect itself (state ${group.node.raft.state})`);
      }
      group.timer = group.clock.setInterval(() => group.onTick(), tickMs);
      return group;
    } catch (err) {
      await storage.close().catch(() => undefined);
      throw err;
    }
  }

  /** The leader this member knows (its id; 0 when none, or when the group is closed). Cheap: a field read. */
  leader(): number {
    return this.closed ? None : this.node.leader();
  }

  /** Whether this member knows a leader (itself or another) to take a proposal now. */
  leaderKnown(): boolean {
    return !this.closed && this.node.leader() !== None;
  }

  /** Where the group stands, as this member sees it. */
  status(): GroupStatus {
    const r = this.node.raft;
    let cs = r.prs.confState();
    for (const cc of this.unadvanced) cs = applyConfChangeTo(cs, cc);
    let role: GroupRole;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) role = this.removed.has(this.id) ? 'removed' : 'joining';
    else if (cs.learners.includes(this.id)) role = 'learner';
    else role = r.state === StateType.Leader ? 'leader' : r.state === StateType.Candidate ? 'candidate' : r.state === StateType.PreCandidate ? 'pre-candidate' : 'follower';
    const hs = r.hardState();
    return {
      id: this.id, role, term: hs.term, leader: this.node.leader(), commit: hs.commit, applied: this.applied,
      firstIndex: this.storage.firstIndex(), lastIndex: r.raftLog.lastIndex(), snapshotIndex: this.storage.snapshot().metadata.index,
      voters: [...cs.voters], learners: [...cs.learners],
    };
  }

  /**
   * The leader's view of each member's replication progress (the match index: the last entry
   * known to be in its log); empty on a member that is not the leader.
   */
  progress(): Map<number, { match: number }> {
    const out = new Map<number, { match: number }>();
    for (const [id, p] of this.node.status().progress) out.set(id, { match: p.match });
    return out;
  }

  /**
   * The pause in force: the apply step's, when a committed entry was refused by a transient fault
   * of the state machine and waits to be applied again, or the log's, after a failed write while
   * it is being reopened (undefined when the group runs).
   */
  applyPause(): ApplyPause | undefined {
    if (!this.pause) return undefined;
    const { component, index, error, attempts, since } = this.pause;
    return { component, index, error, attempts, since };
  }

  /** Syncs of this member's log so far (every Ready that wrote entries, a term or a vote; none with `sync: false`). */
  logSyncs(): number {
    return this.syncs;
  }

  /** Calls `cb` with the new leader's id (0: none known) whenever it changes, after the Ready that changed it. */
  onLeaderChange(cb: (leader: number) => void): void {
    this.leaderCallbacks.push(cb);
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
   * Appends `command` to the log — on any member: a follower's core forwards it to the leader —
   * and resolves with the state machine's outcome once its entry is committed, synced in this
   * member's log and applied here. Rejects with the command's own failure, or
   * `REPLICATION_UNAVAILABLE`: at once when no leader is known; with `indeterminate` set when it
   * timed out after `timeoutMs` (default {@link ReplicationGroupOptions.requestTimeoutMs}) or the
   * group closed while it was in flight — its entry may still commit.
   *
   * `mapError`, when given, turns every rejection into the caller's error as it is made — what a
   * `.catch` on the result would do, without the promise hop a `.catch` adds to every outcome,
   * failed or not (the answer then waits behind one more turn of other work's microtasks).
   */
  propose(command: Uint8Array, options: { timeoutMs?: number; mapError?: (err: unknown) => unknown } = {}): Promise<O> {
    const { mapError } = options;
    const refused = this.closed || this.failure ? this.refusal() : (this.pauseRefusal() ?? this.refusal());
    if (refused) return Promise.reject(mapError ? mapError(refused) : refused);
    const id = `${this.nonce}/${++this.counter}`;
    const data = encodeEntryPayload(id, command);
    const deadline = this.clock.now() + (options.timeoutMs ?? this.timeoutMs);
    const p = new Promise<O>((resolve, reject) => this.waiters.set(id, { resolve, reject: mapError ? (err) => reject(mapError(err)) : reject, deadline }));
    if (tracing) trace('propose', id);
    this.queue.push({ id, data });
    void this.kick();
    // A follower syncing a Ready relays a lone proposal at once (duringSync), not after the sync.
    if (this.wake && this.loneProposals() && this.node.raft.state === StateType.Follower) this.wake();
    return p;
  }

  /**
   * A linearizable read barrier (Raft's ReadIndex, thesis §6.4): resolves with the read index —
   * the leader's commit index, confirmed by a quorum after the request arrived — once this
   * member has applied it, so that reading the state machine now is linearizable. A follower asks
   * the leader. Rejects `REPLICATION_UNAVAILABLE` when no leader is known, the leader changes
   * before confirming, or after `timeoutMs`. Reads made in the same turn share one round.
   */
  readIndex(options: { timeoutMs?: number } = {}): Promise<number> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    const deadline = this.clock.now() + (options.timeoutMs ?? this.timeoutMs);
    const p = new Promise<number>((resolve, reject) => this.readQueue.push({ resolve, reject, deadline }));
    // While this member's ReadIndex request is unanswered the read waits for the next one, which
    // the loop makes when the answer arrives (its message kicks the loop), or the tick after
    // `readRetryMs`: no loop run per read then (one per chunk of a client's reads, for nothing).
    if (!this.readRequestDue(false)) return p;
    void this.kick();
    // A member syncing a Ready asks for the read index at once (duringSync), not after the sync.
    this.wake?.();
    return p;
  }

  /**
   * Proposes a membership change (add a learner, add or promote a voter, remove a member —
   * possibly the leader itself) and resolves once it is applied on this member. Rejects
   * `REPLICATION_UNAVAILABLE` when no leader is known or the core refuses it (another change
   * pending, a learner not caught up, the last voter), or indeterminate after the timeout.
   */
  proposeConfChange(cc: ConfChange, options: { timeoutMs?: number } = {}): Promise<void> {
    try {
      checkId('conf change node id', cc.nodeId);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!Object.values(ConfChangeType).includes(cc.type)) return Promise.reject(badState(`unknown conf change type ${String(cc.type)}`));
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    const deadline = this.clock.now() + (options.timeoutMs ?? this.timeoutMs);
    const p = new Promise<void>((resolve, reject) => this.confQueue.push({ resolve, reject, deadline, cc: { type: cc.type, nodeId: cc.nodeId }, stepped: false }));
    void this.kick();
    return p;
  }

  /**
   * Records a Raft snapshot at `index` (at most the applied index) whose data is `data` (the state
   * machine's descriptor, sent to a follower that is behind the log's first index), and compacts
   * the log behind it, keeping {@link ReplicationGroupOptions.compactMargin} entries before it for
   * slow followers. Runs inside the loop, between two Readies. An index not after the current
   * snapshot changes nothing.
   *
   * `keepFrom`: a log index (at most `index`) whose entry members behind it should apply from the
   * log rather than skip through this snapshot — the compaction then also keeps `compactMargin`
   * entries before it, as if the snapshot were there, while the entries kept in all stay within
   * `compactMarginBytes` (past that the bytes bound wins). The state machine's reason: a
   * set-change checkpoint whose certificate still lacks signatures (docs/replication.md §
   * Membership, *Set changes*).
   *
   * On a leader the compaction also keeps what a follower catching up still needs, within
   * `compactMarginBytes`: the entries after the snapshot it is being sent (it asks for them once
   * installed), and those after the match of one heard from since the last quorum check (it is
   * being sent them). Without it a follower whose snapshot took longer to fetch than the cluster
   * took to write `compactMargin` entries would need another snapshot, and so on under a steady
   * load (docs/replication.md § Snapshots and log compaction, *Catching up under load*).
   */
  snapshotAt(index: number, data: Uint8Array, options: { keepFrom?: number } = {}): Promise<void> {
    if (!Number.isSafeInteger(index) || index < 0) return Promise.reject(badState(`snapshot index must be a non-negative integer, got ${index}`));
    const keepFrom = options.keepFrom;
    if (keepFrom !== undefined && !(Number.isSafeInteger(keepFrom) && keepFrom >= 0 && keepFrom <= index)) return Promise.reject(badState(`keepFrom must be an integer in 0 .. ${index}, got ${keepFrom}`));
    return this.storageOp(async () => {
      if (index > this.applied) throw badState(`snapshot at ${index} is beyond the applied index ${this.applied}`);
      await this.recordSnapshot(index, data, keepFrom);
    });
  }

  /** Drops log entries up to `index`, which must be at or before the snapshot (runs in the loop). */
  compact(index: number): Promise<void> {
    return this.storageOp(async () => {
      const snapIndex = this.storage.snapshot().metadata.index;
      if (index > snapIndex) throw badState(`cannot compact up to ${index}: the snapshot is at ${snapIndex}`);
      if (index >= this.storage.firstIndex()) await this.storage.compact(index);
    });
  }

  /** Bytes of log entries the log's in-memory mirror holds (`WalStorage.mirroredBytes`; docs/raft.md § Memory). */
  logMemoryBytes(): number {
    return this.storage.mirroredBytes();
  }

  /** Calls `onLogPressure` once when the log's mirror holds more than `maxLogMemoryBytes` (again after it fell below). */
  private checkLogMemory(): void {
    const on = this.options.onLogPressure;
    if (!on) return;
    const bytes = this.storage.mirroredBytes();
    const over = bytes > (this.options.maxLogMemoryBytes ?? DEFAULT_MAX_LOG_MEMORY_BYTES);
    if (over && !this.logPressure) on(bytes);
    this.logPressure = over;
  }

  private storageOp(op: () => Promise<void>): Promise<void> {
    const refused = this.refusal(false);
    if (refused) return Promise.reject(refused);
    return new Promise<void>((resolve, reject) => {
      this.storageOps.push({ run: () => op().then(resolve, reject), fail: reject });
      void this.kick();
    });
  }

  /** Asks {@link ReplicationGroupOptions.resolvePeer} again and gives the transport the current peer set. */
  refreshPeers(): void {
    this.updatePeers();
  }

  /** Resolves once the loop is not running and nothing is queued for it (the simulator waits for this between events). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** True while the loop runs or has work queued. */
  busy(): boolean {
    return this.running !== null || (!this.closed && !this.failure && this.hasWork());
  }

  /**
   * Stops ticking, finishes the running Ready, fails what is still waiting, closes the log. The
   * transport is the caller's: it is not closed (inbound messages are ignored from now on).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) this.clock.clearInterval(this.timer);
    this.dropNotices();
    while (this.running) await this.running;
    this.failAll(unavailable('replication group is closed'), unavailable('replication group closed with the request in flight', undefined, true));
    await this.storage.close();
  }

  // ---- inputs ------------------------------------------------------------------------------

  private refusal(needLeader = true): ReplicationError | undefined {
    if (this.closed) return unavailable('replication group is closed');
    if (this.failure) return this.failedError();
    if (needLeader && this.removed.has(this.id)) return unavailable(`member ${this.id} was removed from the group`);
    if (needLeader && this.node.leader() === None) return unavailable(`no leader is known (term ${this.node.raft.term})`);
    return undefined;
  }

  /**
   * While applying is paused, new proposals are refused before they enter the log (retrying them
   * later cannot apply them twice); the error's cause is the state machine's refusal.
   */
  private pauseRefusal(): ReplicationError | undefined {
    const p = this.pause;
    if (!p) return undefined;
    const what = p.component === 'log' ? 'writing the log failed' : `applying is paused at log index ${p.index}`;
    return unavailable(`${what} (${(p.error as Error)?.message ?? String(p.error)}); the proposal was not appended`, p.error);
  }

  /** Inbound messages from the transport: queued (bounded), stepped by the loop. */
  private receive(msgs: Message[]): void {
    if (this.closed || this.failure) return;
    traceMessages('rx', msgs);
    for (const m of msgs) {
      const bytes = entsSize(m.entries) + (m.snapshot?.data.length ?? 0);
      if (this.inbound.length >= MAX_INBOUND_MESSAGES || this.inboundBytes + bytes > MAX_INBOUND_BYTES) break;
      this.inbound.push(m);
      this.inboundBytes += bytes;
    }
    this.wake?.();
    void this.kick();
  }

  private onTick(): void {
    if (this.closed || this.failure) return;
    this.ticks++;
    this.expire();
    void this.kick();
  }

  /** Rejects every request whose deadline passed. */
  private expire(): void {
    const now = this.clock.now();
    const late = (why: string) => unavailable(`${why} timed out; its outcome is unknown: it may still commit`, undefined, true);
    for (const [id, w] of this.waiters) {
      if (w.deadline > now || w.applying) continue;
      const queued = this.queue.findIndex((q) => q.id === id);
      if (queued >= 0) {
        this.queue.splice(queued, 1);
        w.reject(unavailable('proposal timed out before the loop took it; it was not appended'));
      } else {
        w.reject(late('proposal'));
      }
      this.waiters.delete(id);
    }
    const readLate = () => unavailable('read index timed out');
    this.readQueue = this.readQueue.filter((w) => (w.deadline > now ? true : (w.reject(readLate()), false)));
    for (const [ctx, ws] of this.reads) {
      const keep = ws.filter((w) => (w.deadline > now ? true : (w.reject(readLate()), false)));
      if (keep.length === 0) this.reads.delete(ctx);
      else this.reads.set(ctx, keep);
    }
    this.confQueue = this.confQueue.filter((w) => (w.deadline > now ? true : (w.reject(unavailable('membership change timed out before the loop took it')), false)));
    for (let i = this.confWaiters.length - 1; i >= 0; i--) {
      if (this.confWaiters[i].deadline > now) continue;
      this.confWaiters[i].reject(late('membership change'));
      this.confWaiters.splice(i, 1);
    }
  }

  private failedError(): ReplicationError {
    const e = this.failure as Error;
    return unavailable(`replication group failed: ${e?.message ?? String(e)}`, e, true);
  }

  private hasWork(): boolean {
    return this.queue.length > 0 || this.ticks > 0 || this.inbound.length > 0 || this.unreachable.size > 0 ||
      this.readRequestDue(false) || this.confQueue.length > 0 || this.storageOps.length > 0;
  }

  /**
   * True when reads are queued and a ReadIndex request may go: none is in flight (its index is
   * known, or its reads were refused or timed out), or the one in flight is older than
   * {@link readRetryMs} (etcd's server batches its linearizable reads the same way: one request
   * at a time). A read waits at most for the answer to the request before it, never shares one
   * made before it arrived, so every read still gets an index confirmed after it was made.
   * `afterRetry` false ignores the retry time: {@link hasWork} must not turn true as time passes
   * without a kick (the tick that follows kicks the loop, which then sends the retry), or a
   * simulator waiting for the group to settle before it moves the clock would wait forever.
   */
  private readRequestDue(afterRetry = true): boolean {
    if (this.readQueue.length === 0) return false;
    const f = this.readInFlight;
    if (f === undefined) return true;
    const ws = this.reads.get(f.ctx);
    if (ws === undefined || ws.every((w) => w.index !== undefined) || (afterRetry && this.clock.now() - f.since >= this.readRetryMs)) {
      this.readInFlight = undefined;
      return true;
    }
    return false;
  }

  /** Runs the driver loop unless it is running; resolves when the loop that covers this call ends. */
  private kick(): Promise<void> {
    if (!this.running) {
      // The loop starts in a microtask, once `running` is set: a state machine that proposes
      // synchronously from `apply` (the session store's pressure checkpoint) during the loop's
      // first turn must queue its proposal, not start a second loop beside this one.
      this.running = Promise.resolve()
        .then(() => this.run())
        .catch((err: unknown) => {
          this.failure = err;
          const e = this.failedError();
          this.failAll(e, e);
        })
        .finally(() => {
          this.running = null;
          // Work queued after the loop's last look but before this callback must not wait for
          // the next tick.
          // (Not while the log is paused: the tick retries it.)
          if (this.hasWork() && !this.failure && !this.closed && this.pause?.component !== 'log') void this.kick();
        });
    }
    return this.running;
  }

  /** Rejects everything waiting: `queued` for requests not yet in the node, `inFlight` for the others. */
  private failAll(queued: ReplicationError, inFlight: ReplicationError): void {
    const inQueue = new Set(this.queue.splice(0).map((q) => q.id));
    for (const [id, w] of this.waiters) w.reject(inQueue.has(id) ? queued : inFlight);
    this.waiters.clear();
    for (const w of this.readQueue.splice(0)) w.reject(queued);
    for (const ws of this.reads.values()) for (const w of ws) w.reject(queued);
    this.reads.clear();
    for (const w of this.confQueue.splice(0)) w.reject(queued);
    for (const w of this.confWaiters.splice(0)) w.reject(inFlight);
    for (const op of this.storageOps.splice(0)) op.fail(queued);
  }

  // ---- the loop ----------------------------------------------------------------------------

  /** Feeds everything queued into the node (never re-entrantly: only the loop steps it). */
  private feedInputs(feed: boolean): void {
    const node = this.node;
    for (; this.ticks > 0; this.ticks--) node.tick();
    this.stepInbound();
    for (const peer of this.unreachable) node.reportUnreachable(peer);
    this.unreachable.clear();
    if (!feed || this.closed) return;
    this.feedProposals();
    for (const w of this.confQueue.splice(0)) {
      try {
        node.proposeConfChange(w.cc);
        w.stepped = true;
        this.confWaiters.push(w);
      } catch (err) {
        w.reject(unavailable(`membership change dropped: ${(err as Error).message}`, err));
      }
    }
    if (this.readRequestDue()) this.requestReads();
  }

  /** Hands the queued reads to the node as one ReadIndex request (only the loop calls this). */
  private requestReads(): void {
    const ws = this.readQueue;
    this.readQueue = [];
    const ctx = `${this.nonce}/r${++this.counter}`;
    try {
      this.node.readIndex(utf8.encode(ctx));
      trace('read-request', ws.length);
      this.reads.set(ctx, ws);
      this.readInFlight = { ctx, since: this.clock.now() };
    } catch (err) {
      for (const w of ws) w.reject(unavailable(`read dropped: ${(err as Error).message}`, err));
    }
  }

  /**
   * True when proposals are queued and none of this member's is in flight (relayed or appended,
   * not yet answered): a lone client's, which {@link duringSync} relays at once on a follower.
   */
  private loneProposals(): boolean {
    return this.queue.length > 0 && this.waiters.size === this.queue.length;
  }

  /** Feeds the queued proposals into the node, in order, in batches (only the loop calls this). */
  private feedProposals(): void {
    const node = this.node;
    const paused = this.pauseRefusal();
    // The proposals of one turn go to the node together (up to MAX_PROPOSAL_BATCH_BYTES at a
    // time): one relayed message, one append per follower, one acknowledgement each — instead of
    // one of each per proposal.
    const batch: Array<{ id: string; data: Uint8Array }> = [];
    let batchBytes = 0;
    const proposeBatch = () => {
      if (batch.length === 0) return;
      try {
        if (tracing) for (const q of batch) trace('feed', q.id);
        node.proposeAll(batch.map((q) => q.data));
      } catch (err) {
        for (const q of batch) {
          this.waiters.get(q.id)?.reject(unavailable(`proposal dropped: ${(err as Error).message}`, err));
          this.waiters.delete(q.id);
        }
      }
      batch.length = 0;
      batchBytes = 0;
    };
    for (const q of this.queue.splice(0)) {
      if (paused) {
        // Taken before the pause began, not appended yet: refused like a new one.
        this.waiters.get(q.id)?.reject(paused);
        this.waiters.delete(q.id);
        continue;
      }
      if (batch.length > 0 && batchBytes + q.data.length > MAX_PROPOSAL_BATCH_BYTES) proposeBatch();
      batch.push(q);
      batchBytes += q.data.length;
    }
    proposeBatch();
  }

  /** Steps the queued inbound messages into the node (only the loop calls this). */
  private stepInbound(): void {
    if (this.inbound.length === 0) return;
    const node = this.node;
    const msgs = this.inbound;
    this.inbound = [];
    this.inboundBytes = 0;
    let newPeer = false;
    for (const m of msgs) {
      if (this.removed.has(m.from)) continue;
      if (!this.peerIds.has(m.from) && m.from !== this.id && this.heard.size < MAX_HEARD_PEERS && !this.heard.has(m.from)) {
        this.heard.add(m.from);
        newPeer = true;
      }
      try {
        node.step(m);
        // A proposal relayed by a follower: its commit is told to it at once (commit_notices.ts).
        if (m.type === MessageType.Prop && node.raft.state === StateType.Leader) this.notices.noteRelayed(m.from, node.raft.raftLog.lastIndex());
      } catch (err) {
        // A forwarded proposal the leader cannot take, a reply from a removed member, a message
        // of a local type: Raft ignores them (the proposer times out); anything else is a bug.
        if (!(err instanceof RaftError) || (err.code !== RaftErrorCode.ProposalDropped && err.code !== RaftErrorCode.StepPeerNotFound && err.code !== RaftErrorCode.StepLocalMsg)) throw err;
      }
    }
    if (newPeer) this.updatePeers();
  }

  private async run(): Promise<void> {
    let feed = true;
    for (;;) {
      if (this.failure) return;
      if (this.pause && this.clock.now() >= this.pause.retryAt && !this.closed) {
        if (this.pause.component === 'apply') await this.retryApply();
        else await this.reopenLog();
      }
      // Nothing is written to the log until it is reopened.
      if (this.pause?.component === 'log') return;
      for (const op of this.storageOps.splice(0)) await op.run();
      this.feedInputs(feed);
      const node = this.node;
      if (!node.hasReady()) {
        // Done, unless proposals were held back by the rule below (then take them now); work
        // queued meanwhile is picked up by kick's re-run.
        if (feed || this.closed || (this.queue.length === 0 && this.confQueue.length === 0 && !this.readRequestDue())) return;
        feed = true;
        continue;
      }
      const rd = node.ready();
      if (tracing) {
        const last = (es: Entry[]) => (es.length > 0 ? es[es.length - 1].index : 0);
        trace('ready', rd.entries.length > 0 ? rd.entries[0].index : 0, last(rd.entries), rd.committedEntries.length > 0 ? rd.committedEntries[0].index : 0, last(rd.committedEntries), rd.messages.length, rd.mustSync);
      }
      this.answered = 0;
      if (rd.softState) this.noteSoftState(rd.softState);
      this.noteReadStates(rd.readStates);
      // No apply is in flight between two Readies (`applied` is what the state machine holds):
      // a read whose index is applied already is answered now, not after this Ready's write.
      if (rd.readStates.length > 0) this.releaseReads();
      if (rd.snapshot && !(await this.restoreSnapshot(rd.snapshot))) continue;
      // Committed entries already stable (persisted by an earlier Ready) are applied while this
      // Ready's entries are being synced; the others only after (RawNode's order, steps 1-3).
      const firstNew = rd.entries.length > 0 ? rd.entries[0].index : Infinity;
      const stable = rd.committedEntries.filter((e) => e.index < firstNew);
      const rest = rd.committedEntries.filter((e) => e.index >= firstNew);
      // A leader's appends and heartbeats go out while it writes its own log (Raft thesis
      // §10.2.1): the core counts the leader's own entries toward commit only once `advance`
      // reports them stable, so a follower may hold them first without anything committing early.
      // Proposals and reads relayed to the leader depend on no write either. Everything else
      // (votes, a follower's acks) is sent only after the write.
      const leader = this.node.raft.state === StateType.Leader;
      const early = rd.messages.filter((m) => sendsBeforeWrite(m, leader));
      const late0 = early.length === 0 ? rd.messages : rd.messages.filter((m) => !sendsBeforeWrite(m, leader));
      // A Ready that installed a snapshot answers it (MsgAppResp at its index) before the heartbeat
      // responses stepped in the same turn: the leader, still sending this member a snapshot, takes
      // a heartbeat response as a lost transfer and sends its newest snapshot, which this member
      // would then install too although the log it needs is kept (docs/replication.md § Snapshots
      // and log compaction, *Catching up under load*).
      const late = rd.snapshot ? [...late0.filter((m) => m.type !== MessageType.HeartbeatResp), ...late0.filter((m) => m.type === MessageType.HeartbeatResp)] : late0;
      // The last index this member had persisted before this Ready (its entries replace the log
      // from their first index on): committed entries up to it may be applied during the sync.
      const persisted = Math.min(this.storage.lastIndex(), firstNew - 1);
      // A write's hops are written at once, not at the end of the turn with the rest: appends
      // (new entries, or a new commit index) and a proposal relayed to the leader, before this
      // member's apply starts, whose synchronous parts would delay them. Heartbeats and ReadIndex
      // traffic are left to the end of the turn, coalesced. A leader starts its own write first —
      // the save queues its write before it yields — and then writes its appends while the disk
      // works: its write is the slower of the quorum's two for a lone write (bench/README.md). A
      // follower's relayed proposal leaves before its write: its client's write waits for it. An
      // append that only tells a new commit index waits for the end of the turn too: clients send
      // their writes to the leader (docs/cluster.md § Where clients send requests), whose apply and
      // answers would otherwise wait behind those socket writes.
      const flushEarly = early.some(carriesWrite);
      if (!leader && early.length > 0) this.send(early, flushEarly);
      const written = this.storage.save(rd, { sync: this.options.sync !== false });
      if (leader && early.length > 0) this.send(early, flushEarly);
      const afterSync = this.options.afterSync;
      const saving = (afterSync ? written.then(async (synced) => { if (synced) await afterSync(); return synced; }) : written).then((synced) => {
        trace('saved', synced);
        if (synced) this.syncs++;
        // An acknowledgement of synced entries is what the leader's commit waits for: at once.
        this.send(late, synced);
        this.checkLogMemory();
      }); // (1) one atomic batch, synced when it must be; (2) then send
      const applying = this.applyAll(stable); // (3) + answers
      const [saved, applied] = await Promise.allSettled([
        saving,
        rd.entries.length > 0 && !rd.snapshot ? this.duringSync(saving, applying, persisted, leader ? node.raft.term : -1) : applying,
      ]);
      if (applied.status === 'rejected') throw applied.reason;
      if (saved.status === 'rejected') {
        if (!(this.options.isTransientLogError ?? isPassingIoError)(saved.reason)) throw saved.reason;
        this.logFailed(rd, saved.reason);
        return;
      }
      if (rd.snapshot) this.afterRestore(rd.snapshot.metadata.index);
      await this.applyAll(rest);
      trace('applied');
      node.advance(rd); // (4)
      this.unadvanced = [];
      this.afterAdvance(rd);
      // In a group whose only voter is this member, after persisting new entries, first apply
      // what they committed (all of them, at once: the very next Ready) and only then take new
      // proposals: the proposers answered now join the next batch, instead of every client
      // alternating between two half-full ones. With other voters nothing commits before their
      // acknowledgements, and a Ready almost always persists new entries (relayed proposals on
      // the leader, appends on a follower): holding there starved this member's own proposals
      // (bench/README.md), so they are taken every turn.
      const held = !feed;
      feed = rd.entries.length === 0 || !this.soleVoter();
      // Having just answered proposers, let one turn of the event loop pass: requests that are
      // already back are parsed and join the next batch instead of waiting a whole fsync.
      if (held && feed && this.answered > 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * While this member syncs a Ready's entries (`saving`): steps the messages that arrive, so that
   * a commit learnt meanwhile (a follower's acknowledgement on the leader, the leader's commit
   * index on a follower) is acted on at once instead of after the sync — the newly committed
   * entries this member had already persisted (up to `persisted`) are applied and their
   * proposers answered, and a leader sends the appends that carry the new commit index. Applies
   * stay in log order: each batch starts once the one before it (`applying`, the Ready's own)
   * has settled, so a refusal of an earlier entry pauses applying before a later one starts.
   * Reads are served meanwhile too: reads made during the sync send their ReadIndex request (a
   * leader's heartbeat round, a follower's relayed request), a leader answers followers' requests,
   * and a read whose index is confirmed is released once the applies before it have settled.
   * Messages that must follow a sync (acknowledgements, votes) stay queued for the next Ready, whose
   * own sync comes after this one; so do all messages of a member that is no longer the leader of
   * `leaderTerm` (-1: it was not the leader when the Ready was made), except a follower's relayed
   * proposals and read requests. Resolves when `saving` has settled and every batch is applied.
   */
  private async duringSync(saving: Promise<void>, applying: Promise<void>, persisted: number, leaderTerm: number): Promise<void> {
    let done = false;
    const settled = saving.then(() => { done = true; }, () => { done = true; });
    let chain = applying;
    this.noteSyncApplies(chain);
    try {
      for (;;) {
        await Promise.race([settled, new Promise<void>((resolve) => { this.wake = resolve; })]);
        this.wake = null;
        if (done || this.failure || this.closed || this.pause) break;
        this.stepInbound();
        const node = this.node;
        // Reads that arrived meanwhile ask for their read index now, not after the sync: a ReadIndex
        // request (a leader's heartbeat round, a follower's relayed request) depends on no write.
        if (!this.closed && this.readRequestDue()) this.requestReads();
        if (node.raft.state === StateType.Leader && node.raft.term === leaderTerm) {
          const out = node.takeMessages((m) => sendsBeforeWrite(m, true));
          if (out.length > 0) this.send(out, out.some(carriesWrite));
        } else if (node.raft.state === StateType.Follower) {
          if (this.loneProposals() && !this.closed && node.leader() !== None) {
            // Proposals made meanwhile on a follower that has none in flight: relayed to the leader
            // now (a relay depends on no write of this member's), not after this sync
            // (bench/README.md: a lone request arriving while this member synced another write's
            // entry waited up to the sync's end). With proposals in flight they wait for the sync and
            // go together, as many proposals' relays did before.
            this.feedProposals();
          }
          // The relayed proposals, and the read request made above: a proposal is written at once,
          // a read request at the end of the turn with the rest of its ReadIndex traffic.
          const out = node.takeMessages((m) => m.type === MessageType.Prop || m.type === MessageType.ReadIndex);
          if (out.length > 0) this.send(out, out.some((m) => m.type === MessageType.Prop));
        }
        // Read indexes confirmed meanwhile (a leader's own reads, a follower's answers from the
        // leader): released once the applies before them have settled, not after the sync.
        const readStates = node.takeReadStates();
        const ents = node.takeCommitted(persisted);
        if (readStates.length > 0) {
          this.noteReadStates(readStates);
          if (ents.length === 0) this.noteSyncApplies((chain = chain.then(() => this.releaseReads())));
        }
        if (ents.length === 0) continue;
        if (tracing) trace('commit-during-sync', ents[0].index, ents[ents.length - 1].index);
        this.noteSyncApplies((chain = chain.then(() => this.applyAll(ents)).then(() => this.releaseReads())));
      }
      await chain;
    } finally {
      this.syncApplies = null;
    }
  }

  /**
   * Records `chain` as the applies {@link duringSync} has in flight — only for a group given
   * `afterSync` (a simulator's syncs, which ask {@link applyingDuringSync}): the promise it adds
   * per batch is nothing a server needs.
   */
  private noteSyncApplies(chain: Promise<void>): void {
    if (!this.options.afterSync) return;
    const t = { settled: false, done: chain };
    t.done = chain.then(() => { t.settled = true; }, () => { t.settled = true; });
    this.syncApplies = t;
  }

  /**
   * True while this member waits for a log sync and applies it started meanwhile have not settled
   * (its Ready's own stable entries, entries committed during the sync); always false without
   * `afterSync` (not tracked). A simulator whose syncs
   * take virtual time waits for them ({@link duringSyncApplied}) before its next event, so that
   * a state machine doing real I/O (the full-stack simulation's engine) has finished what a
   * delivery started before virtual time moves on.
   */
  applyingDuringSync(): boolean {
    return this.syncApplies !== null && !this.syncApplies.settled;
  }

  /** Resolves once {@link applyingDuringSync} is false. */
  async duringSyncApplied(): Promise<void> {
    while (this.syncApplies !== null && !this.syncApplies.settled) await this.syncApplies.done;
  }

  /**
   * Hands `messages` to the transport; with `now`, has it write them at once (a transport
   * otherwise writes a turn's messages together at its end: ReadIndex traffic is coalesced so,
   * while a write's appends and acknowledgements do not wait for the rest of the turn).
   */
  private send(messages: Message[], now = false): void {
    // A Ready's acknowledgements of appends, one per leader and term (coalesce.ts): the highest says it all.
    let out = coalesceAppendAcks(messages);
    // A leader's commit-only appends wait a little for the next append to carry their commit index.
    if (this.noticeDelayMs > 0 && this.node.raft.state === StateType.Leader) out = this.holdNotices(out);
    traceMessages('tx', out);
    if (out.length === 0) return;
    this.transport.send(out);
    if (now) this.transport.flush?.();
  }

  /** `out` without the commit notices {@link notices} holds; arms or disarms the timer that sends them. */
  private holdNotices(out: readonly Message[]): readonly Message[] {
    const prs = this.node.raft.prs.progress;
    const kept = this.notices.pass(out, (m) => prs.get(m.to)?.state === ProgressState.Replicate);
    if (this.notices.size > 0 && this.noticeTimer === null) {
      this.noticeTimer = this.clock.setInterval(() => this.sendNotices(), this.noticeDelayMs);
    } else if (this.notices.size === 0) {
      this.disarmNotices();
    }
    return kept;
  }

  /** Stops the timer of the held notices, if one is armed. */
  private disarmNotices(): void {
    if (this.noticeTimer !== null) this.clock.clearInterval(this.noticeTimer);
    this.noticeTimer = null;
  }

  /** The held commit notices are due: sent now, written at once. */
  private sendNotices(): void {
    this.disarmNotices();
    const out = this.notices.take();
    if (out.length === 0 || this.closed || this.failure || this.node.raft.state !== StateType.Leader) return;
    traceMessages('tx', out);
    this.transport.send(out);
    this.transport.flush?.();
  }

  /** Forgets the held commit notices (this member stopped leading, or closes). */
  private dropNotices(): void {
    this.disarmNotices();
    this.notices.clear();
  }

  private noteSoftState(ss: SoftState): void {
    if (ss.lead === this.lastLeader) return;
    this.lastLeader = ss.lead;
    this.dropNotices();
    // A read the old leader had not confirmed will never be: refuse it now (reads have no effect,
    // so the client may simply retry).
    for (const [ctx, ws] of this.reads) {
      const open = ws.filter((w) => w.index === undefined);
      if (open.length === 0) continue;
      for (const w of open) w.reject(unavailable(`the leader changed (now ${ss.lead || 'none'}) before the read was confirmed`));
      const keep = ws.filter((w) => w.index !== undefined);
      if (keep.length === 0) this.reads.delete(ctx);
      else this.reads.set(ctx, keep);
    }
    for (const cb of this.leaderCallbacks) {
      try {
        cb(ss.lead);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  private noteReadStates(readStates: readonly ReadState[]): void {
    for (const rs of readStates) {
      const ws = this.reads.get(fromUtf8.decode(rs.requestCtx));
      if (ws) for (const w of ws) w.index ??= rs.index;
    }
  }

  /**
   * Resolves every read whose index is applied. While applying is paused in a group whose only
   * voter is this member, reads are served at the applied index: every entry after it was
   * refused to its proposer (indeterminate) and no other member applied it, so it may take effect
   * after the read (docs/replication.md § Write faults).
   */
  private releaseReads(): void {
    const upTo = this.pause && this.soleVoter() ? Infinity : this.applied;
    for (const [ctx, ws] of this.reads) {
      if (ws.some((w) => w.index === undefined || w.index > upTo)) {
        const keep = ws.filter((w) => (w.index !== undefined && w.index <= upTo ? (w.resolve(w.index), false) : true));
        this.reads.set(ctx, keep);
        continue;
      }
      for (const w of ws) w.resolve(w.index!);
      this.reads.delete(ctx);
    }
  }

  /** True when this member is the group's only voter (learners aside). */
  private soleVoter(): boolean {
    const cs = this.node.raft.prs.confState();
    return cs.voters.length === 1 && cs.voters[0] === this.id;
  }

  /**
   * Hands a received snapshot to the state machine before it is persisted. False when the state
   * machine failed: the node is rebuilt from the log as it is on disk (as after a restart; the
   * Ready was neither persisted nor sent) and the leader sends the snapshot again.
   */
  private async restoreSnapshot(snap: Snapshot): Promise<boolean> {
    if (!this.sm.restore) throw badState(`member ${this.id} was sent a snapshot at ${snap.metadata.index} but its state machine cannot restore one`);
    const from = this.node.leader();
    try {
      await this.sm.restore({ index: snap.metadata.index, term: snap.metadata.term, data: snap.data }, from);
      return true;
    } catch (err) {
      if (this.sm.isFatal(err)) throw err;
      this.node = this.newNode();
      this.unadvanced = [];
      this.lastLeader = None;
      return false;
    }
  }

  private afterAdvance(rd: Ready): void {
    let changed = rd.snapshot !== undefined;
    for (const e of rd.committedEntries) {
      if (e.type !== EntryType.ConfChange) continue;
      changed = true;
      const cc = decodeConfChange(e.data);
      this.noteRemoved(cc);
      for (let i = this.confWaiters.length - 1; i >= 0; i--) {
        const w = this.confWaiters[i];
        if (w.cc.type === cc.type && w.cc.nodeId === cc.nodeId) {
          this.confWaiters.splice(i, 1);
          w.resolve();
        }
      }
    }
    if (changed) this.updatePeers();
    if (this.campaignWhenAlone && !this.node.hasReady()) {
      this.campaignWhenAlone = false;
      const cs = this.node.raft.prs.confState();
      if (cs.voters.length === 1 && cs.voters[0] === this.id && cs.learners.length === 0 && this.node.raft.state !== StateType.Leader) this.node.campaign();
    }
    this.releaseReads();
    this.maybeSnapshot();
  }

  private noteRemoved(cc: ConfChange): void {
    if (cc.type === ConfChangeType.RemoveNode) this.rememberRemoved(cc.nodeId);
    else this.removed.delete(cc.nodeId);
    this.heard.delete(cc.nodeId);
    this.learnt.delete(cc.nodeId);
  }

  /** Adds `id` to {@link removed}, forgetting the oldest past {@link MAX_REMOVED_IDS}. */
  private rememberRemoved(id: number): void {
    this.removed.delete(id);
    this.removed.add(id);
    if (this.removed.size > MAX_REMOVED_IDS) this.removed.delete(this.removed.values().next().value!);
  }

  /** Adds the state machine's removed ids ({@link ReplicationGroupOptions.removedMembers}) to {@link removed}. */
  private noteDurablyRemoved(): void {
    for (const id of this.options.removedMembers?.() ?? []) this.noteRemoved({ type: ConfChangeType.RemoveNode, nodeId: id });
  }

  /**
   * The transport's question about a sender outside the peer set that named its address (an
   * authenticated stream handshake): admitted, as a heard peer with that address, unless it was
   * removed in this member's log or {@link MAX_HEARD_PEERS} are heard already.
   */
  private admitSender(peer: PeerAddress): boolean {
    if (this.closed || peer.id === this.id || this.removed.has(peer.id)) return false;
    if (!this.heard.has(peer.id) && this.heard.size >= MAX_HEARD_PEERS) return false;
    this.heard.add(peer.id);
    this.learnt.set(peer.id, peer);
    this.updatePeers();
    return this.peerIds.has(peer.id);
  }

  /** Tells the transport who the peers are: the members, and while this member is not one yet, the given peers. */
  private updatePeers(): void {
    if (this.closed) return;
    const cs = this.node.raft.prs.confState();
    const ids = new Set([...cs.voters, ...cs.learners]);
    if (!ids.has(this.id)) for (const p of this.options.peers ?? []) ids.add(p.id);
    for (const id of this.heard) if (!this.removed.has(id)) ids.add(id);
    ids.delete(this.id);
    this.peerIds = ids;
    const out: PeerAddress[] = [];
    for (const id of [...ids].sort((a, b) => a - b)) {
      const a = this.options.resolvePeer?.(id) ?? this.addresses.get(id) ?? this.learnt.get(id);
      if (a) out.push(a);
    }
    this.transport.setPeers(out);
  }

  /** With {@link ReplicationGroupOptions.snapshotEvery}: asks the state machine for a newer snapshot. */
  private maybeSnapshot(): void {
    if (this.snapshotEvery <= 0 || !this.sm.snapshot) return;
    const snapIndex = this.storage.snapshot().metadata.index;
    if (this.applied - snapIndex < this.snapshotEvery) return;
    const d = this.sm.snapshot();
    if (!d || d.index <= snapIndex || d.index > this.applied) return;
    this.storageOps.push({ run: () => this.recordSnapshot(d.index, d.data), fail: () => undefined });
  }

  /** The membership as of log index `index` (the snapshot's, then every change up to `index`). */
  private confStateAt(index: number): ConfState {
    const snap = this.storage.snapshot();
    let cs = snap.metadata.confState;
    // Entries kept behind the snapshot (the margin) are already in its membership.
    const first = Math.max(this.storage.firstIndex(), snap.metadata.index + 1);
    if (index < first) return cs;
    for (const e of this.storage.entries(first, index + 1, Infinity)) {
      if (e.type === EntryType.ConfChange) cs = applyConfChangeTo(cs, decodeConfChange(e.data));
    }
    return cs;
  }

  private async recordSnapshot(index: number, data: Uint8Array, keepFrom?: number): Promise<void> {
    const snapIndex = this.storage.snapshot().metadata.index;
    if (index <= snapIndex) return;
    if (index > this.storage.lastIndex()) throw badState(`snapshot at ${index} is beyond the log's last index ${this.storage.lastIndex()}`);
    await this.storage.createSnapshot(index, this.confStateAt(index), data);
    const maxBytes = this.options.compactMarginBytes ?? DEFAULT_COMPACT_MARGIN_BYTES;
    let upTo = this.storage.compactPoint(index, this.margin, maxBytes);
    // Never more than maxBytes kept behind the snapshot, whatever is held.
    const floor = this.storage.compactPoint(index, Infinity, maxBytes);
    if (keepFrom !== undefined) {
      // The margin counted from keepFrom.
      upTo = Math.max(Math.min(upTo, this.storage.compactPoint(keepFrom, this.margin, maxBytes)), floor);
    }
    const needed = this.neededByFollowers();
    if (needed !== undefined) upTo = Math.max(Math.min(upTo, needed - 1), floor);
    if (upTo >= this.storage.firstIndex()) await this.storage.compact(upTo);
  }

  /**
   * On a leader, the first log index a follower catching up still needs (see {@link snapshotAt}):
   * after the snapshot one is being sent, or after the match of one heard from recently that is
   * behind, when those entries are still in the log. Undefined when none (or not leading).
   */
  private neededByFollowers(): number | undefined {
    let need: number | undefined;
    const first = this.storage.firstIndex();
    for (const [id, p] of this.node.status().progress) {
      if (id === this.id) continue;
      let n: number | undefined;
      if (p.state === 'Snapshot' && p.pendingSnapshot > 0) n = p.pendingSnapshot + 1;
      else if (p.recentActive) n = p.match + 1;
      // Entries already compacted cannot be kept: such a follower needs a newer snapshot anyway.
      if (n !== undefined && n >= first && (need === undefined || n < need)) need = n;
    }
    return need;
  }

  /**
   * A Ready's write of the log failed for a passing reason: nothing of it counts (its messages
   * were not sent, its new entries are not applied); the proposers of its entries are answered
   * indeterminate (a partial write may hold them), the node is rebuilt from the log as it was
   * before, and the loop pauses until {@link reopenLog} succeeds.
   */
  private logFailed(rd: Ready, error: unknown): void {
    const from = rd.entries.length > 0 ? rd.entries[0].index : this.storage.lastIndex() + 1;
    const now = this.clock.now();
    const before = this.pause;
    // The pause first: a proposer's error mapping ({@link ReplicationGroup.propose}) sees it.
    this.pause = { component: 'log', index: from, error, attempts: 1, since: now, retryAt: now + APPLY_RETRY_BASE_MS };
    for (const e of rd.entries) {
      if (e.type !== EntryType.Normal || e.data.length === 0) continue;
      const id = decodeEntryPayload(e.data).id;
      const w = this.waiters.get(id);
      if (!w) continue;
      this.waiters.delete(id);
      w.reject(unavailable(`writing the log failed (${(error as Error)?.message ?? String(error)}); the entry may still be applied once the log is reopened`, error, true));
    }
    if (before?.component !== 'log') this.notePause();
    this.node = this.newNode();
    this.unadvanced = [];
    this.lastLeader = None;
  }

  /** Reopens the log after a failed write ({@link logFailed}); on success the group runs again (a lone voter campaigns at once). */
  private async reopenLog(): Promise<void> {
    const p = this.pause!;
    try {
      await this.storage.reopen(p.index);
    } catch (err) {
      const attempts = p.attempts + 1;
      this.pause = { ...p, error: err, attempts, retryAt: this.clock.now() + Math.min(APPLY_RETRY_MAX_MS, APPLY_RETRY_BASE_MS * 2 ** Math.min(attempts - 1, 16)) };
      return;
    }
    this.pause = null;
    this.notePause();
    this.node = this.newNode();
    this.unadvanced = [];
    this.ticks = 0;
    // The rebuilt node learns the membership from the committed entries it delivers again; a lone
    // voter then campaigns at once (as at open) instead of waiting an election timeout.
    this.campaignWhenAlone = true;
  }

  /** The applied index after a snapshot was installed (it moves a pause past the snapshot). */
  private afterRestore(index: number): void {
    this.noteDurablyRemoved();
    this.applied = Math.max(this.applied, index);
    this.committedTo = Math.max(this.committedTo, index);
    if (this.pause && this.pause.index <= index) {
      if (index >= this.committedTo) {
        this.pause = null;
        this.notePause();
      } else this.pause = { ...this.pause, index: index + 1 };
    }
  }

  /**
   * Applies committed entries (in log order) and answers their proposers; while applying is
   * paused they only wait behind the pause (their proposers are answered at once).
   */
  private async applyAll(entries: Entry[]): Promise<void> {
    if (entries.length > 0) this.committedTo = Math.max(this.committedTo, entries[entries.length - 1].index);
    if (this.pause) {
      for (const e of entries) if (e.index > this.applied) this.refuseWaiting(e, this.pause.index, this.pause.error);
      return;
    }
    await this.applyEntries(entries, undefined);
  }

  /** Applies again, in order, the entries waiting behind the pause (with the pause's attempt count). */
  private async retryApply(): Promise<void> {
    const p = this.pause!;
    const entries = p.index <= this.committedTo ? this.storage.entries(p.index, this.committedTo + 1, Infinity) : [];
    // Still paused while retrying (proposals stay refused, status shows it); a refusal sets a new pause.
    const retrying = { ...p, retryAt: Infinity };
    this.pause = retrying;
    await this.applyEntries(entries, p);
    this.unadvanced = []; // entries the node advanced past already: it holds their changes
    if (this.pause === retrying) {
      this.pause = null;
      this.notePause();
    }
  }

  /** Tells {@link ReplicationGroupOptions.onPause} the pause now in force (undefined: none). */
  private notePause(): void {
    try {
      this.options.onPause?.(this.applyPause());
    } catch {
      // a listener's failure is its own
    }
  }

  /** Answers the proposer of `e`, if it waits here, that its entry waits behind a pause (it is applied later). */
  private refuseWaiting(e: Entry, at: number, cause: unknown): void {
    if (e.type !== EntryType.Normal || e.data.length === 0) return;
    const id = decodeEntryPayload(e.data).id;
    const w = this.waiters.get(id);
    if (!w) return;
    this.waiters.delete(id);
    this.answered++;
    w.reject(unavailable(`not applied yet: applying is paused at log index ${at} (${(cause as Error)?.message ?? String(cause)}); the entry is in the log and is applied once the fault clears`, cause, true));
  }

  /**
   * Starts every entry's apply in log order, waits for all, answers their proposers. An entry
   * refused by a transient fault pauses applying at it: the entries after it are not answered
   * with their outcomes (the state machine refuses them too, or they are applied again anyway),
   * the state machine rolls back to before it, and the loop applies them again later.
   */
  private async applyEntries(entries: Entry[], previous: ApplyPause | undefined): Promise<void> {
    const started: Array<{ entry: Entry; id: string; p: Promise<O | LaterAnswer<O>> }> = [];
    for (const e of entries) {
      if (e.index <= this.applied) continue; // durable in the state machine before a restart
      this.applied = e.index;
      if (e.type === EntryType.ConfChange) {
        const cc = decodeConfChange(e.data);
        this.unadvanced.push(cc);
        this.sm.applyConfChange?.(e.index, cc);
      }
      if (e.type !== EntryType.Normal || e.data.length === 0) continue; // a leader's no-op, or a membership change (the node takes it in at `advance`)
      const { id, command } = decodeEntryPayload(e.data);
      if (tracing) trace('apply', e.index, id);
      const w = this.waiters.get(id);
      if (w) w.applying = true;
      const p = this.sm.apply(e.index, command);
      p.catch(() => undefined); // settled below, in order
      started.push({ entry: e, id, p });
    }
    let fatal: unknown = null;
    let paused: { index: number; error: unknown } | null = null;
    for (const { entry, id, p } of started) {
      let settled: { ok: true; outcome: O | LaterAnswer<O> } | { ok: false; error: unknown };
      try {
        settled = { ok: true, outcome: await p };
      } catch (error) {
        settled = { ok: false, error };
        // After a refusal, later entries' failures are not their outcomes: they are applied again.
        if (!paused) {
          if (this.sm.isTransient?.(error)) paused = { index: entry.index, error };
          else if (this.sm.isFatal(error)) fatal ??= error;
        }
      }
      if (paused) {
        // This entry, or one before it, was refused: it is applied again later.
        this.refuseWaiting(entry, paused.index, paused.error);
        continue;
      }
      const w = this.waiters.get(id);
      if (!w) continue;
      this.waiters.delete(id);
      this.answered++;
      if (tracing) trace('answer', id);
      if (settled.ok && settled.outcome instanceof LaterAnswer) {
        settled.outcome.answer.then(w.resolve, (error: unknown) => w.reject(this.sm.isFatal(error) ? unavailable(`not finished: ${(error as Error)?.message}`, error, true) : error));
      } else if (settled.ok) w.resolve(settled.outcome as O);
      else w.reject(this.sm.isFatal(settled.error) ? unavailable(`not applied: ${(settled.error as Error)?.message}`, settled.error, true) : settled.error);
    }
    if (fatal) throw fatal;
    if (!paused) return;
    // Everything from the refused entry on is applied again: the state machine forgets what those
    // applies recorded (it throws when one of them took effect, which would make the retry differ).
    this.applied = paused.index - 1;
    this.sm.rollback?.(paused.index);
    const attempts = (previous?.attempts ?? 0) + 1;
    const now = this.clock.now();
    this.pause = {
      component: 'apply',
      index: paused.index,
      error: paused.error,
      attempts,
      since: previous?.since ?? now,
      retryAt: now + Math.min(APPLY_RETRY_MAX_MS, APPLY_RETRY_BASE_MS * 2 ** Math.min(attempts - 1, 16)),
    };
    if (!previous) this.notePause();
  }
}

/**
 * Writes the bootstrap membership into an empty log, as etcd does: entry i is `AddNode(peer i)`
 * (peers sorted) at term 1, then one normal entry per command of `commands`, all committed. Every
 * bootstrap member writes the same entries, so their logs agree, and a member added later replays
 * the membership from the log.
 */
async function bootstrap(storage: WalStorage, ids: number[], commands: readonly Uint8Array[]): Promise<void> {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const entries: Entry[] = sorted.map((nodeId, i) => ({
    term: 1, index: i + 1, type: EntryType.ConfChange, data: encodeConfChange({ type: ConfChangeType.AddNode, nodeId }),
  }));
  // Nobody waits for these: their proposal ids only have to be the same on every member.
  commands.forEach((command, i) => entries.push({ term: 1, index: entries.length + 1, type: EntryType.Normal, data: encodeEntryPayload(`bootstrap-${i + 1}`, command) }));
  await storage.save({ entries, hardState: { term: 1, vote: 0, commit: entries.length }, mustSync: true });
}

