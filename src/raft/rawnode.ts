/**
 * {@link RawNode}: the application's handle on a {@link Raft} state machine. Inputs are
 * `tick`, `step`, `propose`, `proposeConfChange`, `readIndex`, `transferLeader`; output is a
 * {@link Ready}, which the application must process in this order and then `advance`:
 *
 * 1. write `snapshot`, `entries` and `hardState` to stable storage and sync;
 * 2. send `messages` (they may depend on step 1 — never send them earlier);
 * 3. apply `committedEntries` to the state machine (they may include entries written in step 1);
 * 4. call `advance(rd)` — membership changes among `committedEntries` take effect here.
 * @module
 */

import { Raft } from './raft.js';
import {
  EntryType, MessageType, None, RaftError, RaftErrorCode, decodeConfChange, encodeConfChange,
  isLocalMessage, isResponseMessage, newMessage,
  type ConfChange, type ConfState, type Config, type Entry, type HardState, type Message,
  type ReadState, type Snapshot, type SoftState, StateType,
} from './types.js';

/** Everything the application must do after a batch of inputs. */
export interface Ready {
  /** New soft state, when it changed. */
  readonly softState?: SoftState;
  /** Hard state to persist, when it changed. */
  readonly hardState?: HardState;
  /** Completed ReadIndex requests. */
  readonly readStates: ReadState[];
  /** Entries to persist (before sending messages). */
  readonly entries: Entry[];
  /** Snapshot to persist and install, if any. */
  readonly snapshot?: Snapshot;
  /** Committed entries to apply (after persisting). */
  readonly committedEntries: Entry[];
  /** Messages to send after persisting. */
  readonly messages: Message[];
  /** True when the write of step 1 must be synced (entries, vote or term changed). */
  readonly mustSync: boolean;
}

/** A summary of the node for tests and status pages. */
export interface Status {
  readonly id: number;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: number;
  readonly confState: ConfState;
  /**
   * Leader only: every member's progress — match and next index, state (`Probe`, `Replicate`,
   * `Snapshot`), the index of the snapshot being sent (`Snapshot` state, else 0) and whether it
   * was heard from since the last quorum check.
   */
  readonly progress: ReadonlyMap<number, ProgressSummary>;
}

/** One member's progress as {@link Status} reports it. */
export interface ProgressSummary {
  readonly match: number;
  readonly next: number;
  readonly state: string;
  readonly pendingSnapshot: number;
  readonly recentActive: boolean;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** A Raft node without threads or timers; the caller drives it. Not safe for reentrant use. */
export class RawNode {
  /** The state machine (exposed for tests and invariant checks; do not mutate). */
  readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** Last committed index handed out by {@link ready}'s `committedEntries` (0: none yet). */
  private handed = 0;
  /** True when the committed entries of the Ready not yet advanced include a membership change. */
  private handedConf = false;
  /** Last index handed out by {@link takeCommitted} and not yet covered by an {@link advance} (0: none). */
  private taken = 0;

  /** Creates a node from its config; the storage's hard state and membership are loaded. */
  constructor(config: Config) {
    this.raft = new Raft(config);
    this.prevSoft = this.raft.softState();
    this.prevHard = this.raft.hardState();
  }

  /** Advances the logical clock by one tick. */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (for tests and bootstrapping). */
  campaign(): void {
    this.raft.step(newMessage({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Proposes data to be appended; throws `ERR_PROPOSAL_DROPPED` when it cannot be. */
  propose(data: Uint8Array): void {
    this.raft.step(newMessage({
      type: MessageType.Prop, from: this.raft.id,
      entries: [{ term: 0, index: 0, type: EntryType.Normal, data }],
    }));
  }

  /**
   * Proposes several entries in one step, in order: a leader appends them together and sends one
   * append per follower, a follower relays them in one message. Throws `ERR_PROPOSAL_DROPPED`
   * (none of them is appended) when they cannot be.
   */
  proposeAll(data: readonly Uint8Array[]): void {
    if (data.length === 0) return;
    this.raft.step(newMessage({
      type: MessageType.Prop, from: this.raft.id,
      entries: data.map((d) => ({ term: 0, index: 0, type: EntryType.Normal, data: d })),
    }));
  }

  /** Proposes a membership change; throws `ERR_PROPOSAL_DROPPED` when it cannot be. */
  proposeConfChange(cc: ConfChange): void {
    this.raft.step(newMessage({
      type: MessageType.Prop, from: this.raft.id,
      entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }],
    }));
  }

  /**
   * Feeds a message received from a peer. Throws `ERR_STEP_LOCAL_MSG` for local types and
   * `ERR_STEP_PEER_NOT_FOUND` for a response from a node outside the group.
   */
  step(m: Message): void {
    if (isLocalMessage(m.type)) throw new RaftError(RaftErrorCode.StepLocalMsg, `cannot step local message ${m.type}`);
    if (isResponseMessage(m.type) && !this.raft.prs.progress.has(m.from)) {
      throw new RaftError(RaftErrorCode.StepPeerNotFound, `response ${m.type} from unknown peer ${m.from}`);
    }
    this.raft.step(m);
  }

  /**
   * Requests a linearizable read point; the answer arrives as a {@link ReadState} with the
   * same `ctx` in a later Ready. Reads are safe once `applied >= readState.index`.
   */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(newMessage({ type: MessageType.ReadIndex, from: this.raft.id, context: ctx }));
  }

  /** Asks the leader to hand leadership to `transferee`. */
  transferLeader(transferee: number): void {
    this.raft.step(newMessage({ type: MessageType.TransferLeader, from: transferee, to: this.raft.id }));
  }

  /** Tells the leader that `id` could not be reached (its progress falls back to probing). */
  reportUnreachable(id: number): void {
    this.raft.step(newMessage({ type: MessageType.Unreachable, from: id }));
  }

  /** True when there is something to persist, send or apply. */
  hasReady(): boolean {
    const r = this.raft;
    const ss = r.softState();
    if (ss.lead !== this.prevSoft.lead || ss.state !== this.prevSoft.state) return true;
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHard)) return true;
    if (r.raftLog.unstable.snapshot !== undefined) return true;
    if (r.msgs.length > 0 || r.raftLog.unstableEntries().length > 0 || r.raftLog.hasNextCommittedEnts(Math.max(r.raftLog.applied, this.taken))) return true;
    return r.readStates.length > 0;
  }

  /**
   * Collects the pending work. Call {@link advance} with the result before the next `ready`.
   * Messages and read states are handed over (not returned again).
   */
  ready(): Ready {
    const r = this.raft;
    const ss = r.softState();
    const hs = r.hardState();
    const softChanged = ss.lead !== this.prevSoft.lead || ss.state !== this.prevSoft.state;
    const hardChanged = !hardStateEqual(hs, this.prevHard);
    const entries = r.raftLog.unstableEntries().slice();
    const committedEntries = r.raftLog.nextCommittedEnts(Math.max(r.raftLog.applied, this.taken));
    const rd: Ready = {
      softState: softChanged ? ss : undefined,
      hardState: hardChanged ? hs : undefined,
      readStates: r.readStates,
      entries,
      snapshot: r.raftLog.unstable.snapshot,
      committedEntries,
      messages: r.msgs,
      mustSync: entries.length > 0 || hs.vote !== this.prevHard.vote || hs.term !== this.prevHard.term,
    };
    r.msgs = [];
    r.readStates = [];
    if (committedEntries.length > 0) this.handed = committedEntries[committedEntries.length - 1].index;
    this.handedConf = committedEntries.some((e) => e.type === EntryType.ConfChange);
    if (softChanged) this.prevSoft = ss;
    if (hardChanged) this.prevHard = hs;
    return rd;
  }

  /**
   * Tells the node that `rd` was persisted, sent and applied. Membership changes among the
   * committed entries take effect now (Raft thesis §4.1 single-server changes, applied on commit).
   */
  advance(rd: Ready): void {
    const r = this.raft;
    if (rd.snapshot) r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      r.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      for (const e of rd.committedEntries) {
        r.raftLog.appliedTo(e.index);
        if (e.type === EntryType.ConfChange) r.applyConfChange(decodeConfChange(e.data));
      }
    }
    this.handedConf = false;
    if (this.taken > r.raftLog.applied) r.raftLog.appliedTo(this.taken);
    this.taken = 0;
  }

  /**
   * While the Ready last returned is being persisted (between {@link ready} and {@link advance}):
   * the committed entries after those it handed out, up to `upTo` — which the caller sets to the
   * last index already persisted in its own log before that Ready, so nothing returned waits for
   * a sync — for the caller to apply at once instead of after the sync (a commit learnt from a
   * peer while this member syncs its log). They are not returned again by the next Ready, and the
   * next {@link advance} counts them applied: the caller must have applied them by then.
   *
   * Membership changes stay on the ordinary path (they take effect in `advance`): none is
   * returned, nothing after one is returned, and nothing at all while the outstanding Ready's
   * committed entries hold one or a snapshot waits to be persisted. At most the log's
   * `maxNextEntsSize` bytes at a time.
   */
  takeCommitted(upTo: number): Entry[] {
    const log = this.raft.raftLog;
    if (this.handedConf || log.unstable.snapshot !== undefined) return [];
    const after = Math.max(log.applied, this.handed, this.taken);
    if (Math.min(log.committed, upTo) <= after) return [];
    const ents = log.nextCommittedEnts(after);
    let n = 0;
    while (n < ents.length && ents[n].index <= upTo && ents[n].type !== EntryType.ConfChange) n++;
    if (n === 0) return [];
    const out = ents.slice(0, n);
    this.taken = out[n - 1].index;
    return out;
  }

  /**
   * Hands over, between {@link ready} and {@link advance}, the queued messages that `accept`
   * takes (for instance a leader's appends that carry a commit learnt while it syncs); the others
   * stay for the next Ready, in order.
   */
  takeMessages(accept: (m: Message) => boolean): Message[] {
    const r = this.raft;
    const out: Message[] = [];
    const keep: Message[] = [];
    for (const m of r.msgs) (accept(m) ? out : keep).push(m);
    if (out.length > 0) r.msgs = keep;
    return out;
  }

  /**
   * Hands over, between {@link ready} and {@link advance}, the read states completed since that
   * Ready (a ReadIndex answer needs nothing persisted: its index is already committed); they are
   * not returned again.
   */
  takeReadStates(): ReadState[] {
    const r = this.raft;
    if (r.readStates.length === 0) return [];
    const out = r.readStates;
    r.readStates = [];
    return out;
  }

  /** A summary of the node. */
  status(): Status {
    const r = this.raft;
    const progress = new Map<number, ProgressSummary>();
    if (r.state === StateType.Leader) {
      for (const [id, pr] of r.prs.progress) progress.set(id, { match: pr.match, next: pr.next, state: pr.state, pendingSnapshot: pr.pendingSnapshot, recentActive: pr.recentActive });
    }
    return {
      id: r.id, hardState: r.hardState(), softState: r.softState(), applied: r.raftLog.applied,
      confState: r.prs.confState(), progress,
    };
  }

  /** The leader's id as this node knows it, or {@link None}. */
  leader(): number {
    return this.raft.lead ?? None;
  }
}
