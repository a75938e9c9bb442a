/**
 * The Raft state machine (Ongaro & Ousterhout, "In Search of an Understandable Consensus
 * Algorithm", 2014; Ongaro's thesis, 2014), in the style of etcd-io/raft. It is pure: input is
 * {@link Raft.step} (a message or proposal) and {@link Raft.tick}; output is `msgs`, the log's
 * unstable entries, committed entries and read states, collected by {@link RawNode}. No clock,
 * I/O or randomness except the seeded {@link Rand} in the config.
 *
 * Implemented: elections with randomized timeouts, PreVote and CheckQuorum (with leader
 * lease on votes); pipelined replication with an inflight window and fast backtracking by
 * conflict term/index; commit by counting only in the current term; chunked InstallSnapshot;
 * one-at-a-time membership changes applied on commit, learners; leadership transfer; ReadIndex.
 * @module
 */

import { RaftLog } from './log.js';
import { Progress, ProgressState, ProgressTracker, VoteResult } from './progress.js';
import type { Rand } from './rand.js';
import {
  ConfChangeType, EntryType, MessageType, None, RaftError, RaftErrorCode, StateType,
  decodeConfChange, invariant, isRaftError, newMessage, validateConfig,
  type ConfChange, type ConfState, type Config, type Entry, type HardState, type Message,
  type ReadState, type Snapshot, type SoftState,
} from './types.js';

const DEFAULT_MAX_SIZE_PER_MSG = 1 << 20;
const DEFAULT_MAX_INFLIGHT = 256;
const DEFAULT_SNAPSHOT_CHUNK = 64 * 1024;

interface PendingRead {
  index: number;
  req: Message;
  acks: Set<number>;
}

interface IncomingSnapshot {
  readonly index: number;
  readonly term: number;
  readonly parts: Uint8Array[];
  received: number;
}

function ctxKey(ctx: Uint8Array | undefined): string {
  // latin1 maps each byte to one character: as injective as hex, at half the length and cost.
  return ctx ? Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString('latin1') : '';
}

/** The consensus state machine of one node. Drive it through {@link RawNode}. */
export class Raft {
  /** This node's id. */
  readonly id: number;
  /** Current term. */
  term = 0;
  /** Vote in the current term, or None. */
  vote = None;
  /** Role. */
  state: StateType = StateType.Follower;
  /** Known leader, or None. */
  lead = None;
  /** The log. */
  readonly raftLog: RaftLog;
  /** Membership and per-peer progress. */
  readonly prs: ProgressTracker;
  /** True when this node is a learner. */
  isLearner = false;
  /** Messages to send (taken by RawNode.ready). */
  msgs: Message[] = [];
  /** Completed ReadIndex requests (taken by RawNode.ready). */
  readStates: ReadState[] = [];
  /** Leadership transferee, or None. */
  leadTransferee = None;
  /** Index of the last conf change in the log that may not be applied yet; only one may be pending. */
  pendingConfIndex = 0;

  private readonly maxMsgSize: number;
  private readonly snapChunk: number;
  private readonly snapshotToSend: ((snap: Snapshot) => Snapshot | undefined) | undefined;
  private readonly checkQuorum: boolean;
  private readonly preVote: boolean;
  private readonly heartbeatTimeout: number;
  private readonly electionTimeout: number;
  private randomizedElectionTimeout = 0;
  private readonly rand: Rand;
  /** Ticks since the last election timeout reset (or, for a leader, the last CheckQuorum). */
  electionElapsed = 0;
  private heartbeatElapsed = 0;
  private pendingReads = new Map<string, PendingRead>();
  private readQueue: string[] = [];
  /**
   * The key of the newest read request whose heartbeat round is in flight (sent, not yet
   * confirmed by a quorum), or undefined when none is: requests that arrive meanwhile wait for
   * the next round, which starts when this one is confirmed (or on the next heartbeat tick).
   */
  private readRound: string | undefined;
  /** Heartbeat rounds started for ReadIndex requests (a counter for benchmarks and tests). */
  readRounds = 0;
  private pendingReadIndexMessages: Message[] = [];
  private incoming: IncomingSnapshot | undefined;

  constructor(c: Config) {
    validateConfig(c);
    this.id = c.id;
    this.rand = c.rand;
    this.maxMsgSize = c.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG;
    this.snapChunk = c.snapshotChunkSize ?? DEFAULT_SNAPSHOT_CHUNK;
    this.snapshotToSend = c.snapshotToSend;
    this.checkQuorum = c.checkQuorum ?? true;
    this.preVote = c.preVote ?? true;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.raftLog = new RaftLog(c.storage, this.maxMsgSize);
    this.prs = new ProgressTracker(c.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT);
    const { hardState, confState } = c.storage.initialState();
    this.applyConfState(confState);
    if (hardState.term !== 0 || hardState.vote !== 0 || hardState.commit !== 0) this.loadState(hardState);
    if (c.applied && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, None);
  }

  // ---- state -------------------------------------------------------------------------------

  /** Hard state to persist. */
  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  /** Soft state (leader and role). */
  softState(): SoftState {
    return { lead: this.lead, state: this.state };
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new RaftError(RaftErrorCode.Corrupt, `hard state commit ${hs.commit} out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  /** True when this node may become leader: a voter with no pending snapshot. */
  promotable(): boolean {
    return this.prs.voters.has(this.id) && this.raftLog.unstable.snapshot === undefined;
  }

  // ---- transitions -------------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = None;
    }
    this.lead = None;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTimeout + this.rand.int(this.electionTimeout);
    this.leadTransferee = None;
    this.prs.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.prs.progress) {
      const np = new Progress(last + 1, this.prs.maxInflight, pr.isLearner);
      if (id === this.id) np.match = this.raftLog.lastStableIndex();
      this.prs.progress.set(id, np);
    }
    this.pendingConfIndex = 0;
    this.pendingReads.clear();
    this.readQueue = [];
    this.readRound = undefined;
  }

  /** Become a follower in `term` of leader `lead` (None if unknown). */
  becomeFollower(term: number, lead: number): void {
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
  }

  /** Start an election: new term, vote for self. */
  becomeCandidate(): void {
    invariant(this.state !== StateType.Leader, 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
  }

  /** Start a pre-vote round: neither term nor vote change. */
  becomePreCandidate(): void {
    invariant(this.state !== StateType.Leader, 'invalid transition [leader -> pre-candidate]');
    this.prs.resetVotes();
    this.lead = None;
    this.state = StateType.PreCandidate;
  }

  /** Take leadership: every peer is probed, and a no-op entry of the new term is appended. */
  becomeLeader(): void {
    invariant(this.state !== StateType.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    const self = this.prs.progress.get(this.id);
    if (self) self.becomeReplicate();
    // Conservatively, no conf change may be proposed until everything up to here is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    this.appendEntry([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
  }

  // ---- ticks -------------------------------------------------------------------------------

  /** Advances the logical clock by one tick. */
  tick(): void {
    if (this.state === StateType.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(newMessage({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(newMessage({ type: MessageType.CheckQuorum, from: this.id }));
      if (this.state === StateType.Leader && this.leadTransferee !== None) this.leadTransferee = None;
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: MessageType.Beat, from: this.id }));
    }
  }

  // ---- step --------------------------------------------------------------------------------

  /** Feeds one message into the state machine. Throws `ERR_PROPOSAL_DROPPED` for refused proposals. */
  step(m: Message): void {
    if (m.term === 0) {
      // local message or proposal
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const inLease = this.checkQuorum && this.lead !== None && this.electionElapsed < this.electionTimeout;
        if (!m.force && inLease) return; // §6 of the thesis: a node hearing from a leader ignores votes
      }
      if (m.type === MessageType.PreVote) {
        // never change term in response to a pre-vote
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // a granted pre-vote carries the future term; we'll bump it when we win
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, None);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // Tell a stale leader about the new term so that it steps down (it may be cut off
        // from everyone but us and would otherwise never learn).
        this.send(newMessage({ type: MessageType.AppResp, to: m.from }));
      } else if (m.type === MessageType.PreVote) {
        this.send(newMessage({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(false);
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote = this.vote === m.from || (this.vote === None && this.lead === None) ||
          (m.type === MessageType.PreVote && m.term > this.term);
        const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          this.send(newMessage({ type: respType, to: m.from, term: m.term }));
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send(newMessage({ type: respType, to: m.from, term: this.term, reject: true }));
        }
        return;
      }
    }
    switch (this.state) {
      case StateType.Leader: this.stepLeader(m); break;
      case StateType.Candidate:
      case StateType.PreCandidate: this.stepCandidate(m); break;
      case StateType.Follower: this.stepFollower(m); break;
    }
  }

  private hup(transfer: boolean): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) return;
    if (this.hasUnappliedConfChanges()) return;
    if (this.preVote && !transfer) this.campaign(true, false);
    else this.campaign(false, transfer);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    let lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
    const hi = this.raftLog.committed + 1;
    while (lo < hi) {
      const ents = this.raftLog.slice(lo, hi, this.maxMsgSize);
      for (const e of ents) if (e.type === EntryType.ConfChange) return true;
      lo += ents.length;
    }
    return false;
  }

  private campaign(pre: boolean, transfer: boolean): void {
    let term: number;
    let voteMsg: MessageType;
    if (pre) {
      this.becomePreCandidate();
      voteMsg = MessageType.PreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.Vote;
      term = this.term;
    }
    this.prs.recordVote(this.id, true);
    if (this.prs.tallyVotes().result === VoteResult.Won) {
      if (pre) this.campaign(false, transfer);
      else this.becomeLeader();
      return;
    }
    const index = this.raftLog.lastIndex();
    const logTerm = this.raftLog.lastTerm();
    for (const id of [...this.prs.voters].sort((a, b) => a - b)) {
      if (id === this.id) continue;
      this.send(newMessage({ type: voteMsg, to: id, term, index, logTerm, force: transfer || undefined }));
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.CheckQuorum:
        if (!this.prs.quorumActive(this.id)) {
          this.becomeFollower(this.term, None);
        }
        for (const [id, pr] of this.prs.progress) if (id !== this.id) pr.recentActive = false;
        return;
      case MessageType.Prop:
        this.proposeAsLeader(m);
        return;
      case MessageType.ReadIndex:
        if (this.prs.isSingleton() && this.prs.voters.has(this.id)) {
          this.respondRead(m, this.raftLog.committed);
        } else if (!this.committedEntryInCurrentTerm()) {
          // §6.4: a new leader first commits an entry of its term to learn the commit index.
          this.pendingReadIndexMessages.push(m);
        } else {
          this.startReadIndex(m);
        }
        return;
    }
    const pr = this.prs.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === ProgressState.Snapshot) this.sendSnapChunk(m.from, pr);
        else if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
        if (m.context && m.context.length > 0) this.recvReadAck(m.from, m.context);
        return;
      }
      case MessageType.SnapResp: {
        pr.recentActive = true;
        if (pr.state !== ProgressState.Snapshot || m.index !== pr.pendingSnapshot) return;
        const off = m.offset ?? 0;
        // Send the next chunk only when the follower's offset moves forward (or it lost the
        // transfer and asks to restart): duplicated or stale acks must not multiply traffic.
        // Lost chunks are resent on heartbeat responses.
        if (off > pr.snapOffset || (m.reject && off === 0 && pr.snapOffset !== 0)) {
          pr.snapOffset = off;
          this.sendSnapChunk(m.from, pr, off === 0);
        }
        return;
      }
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      case MessageType.TransferLeader: {
        if (pr.isLearner) return;
        const transferee = m.from;
        if (this.leadTransferee !== None) {
          if (this.leadTransferee === transferee) return;
          this.leadTransferee = None;
        }
        if (transferee === this.id) return;
        // The transfer must finish within an election timeout.
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return;
      }
    }
  }

  private proposeAsLeader(m: Message): void {
    if (m.entries.length === 0) throw new Error('raft: stepped empty proposal');
    if (!this.prs.progress.has(this.id)) throw dropped('leader was removed from the group');
    if (this.leadTransferee !== None) throw dropped(`leadership transfer to ${this.leadTransferee} in progress`);
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i];
      if (e.type !== EntryType.ConfChange) continue;
      if (this.pendingConfIndex > this.raftLog.applied) {
        throw dropped(`conf change pending at ${this.pendingConfIndex} (applied ${this.raftLog.applied})`);
      }
      this.checkConfChange(decodeConfChange(e.data));
      this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
    }
    this.appendEntry(m.entries);
    this.bcastAppend();
  }

  private checkConfChange(cc: ConfChange): void {
    const pr = this.prs.progress.get(cc.nodeId);
    switch (cc.type) {
      case ConfChangeType.AddNode:
        if (pr?.isLearner && pr.match < this.raftLog.committed) {
          throw dropped(`learner ${cc.nodeId} has not caught up (match ${pr.match} < commit ${this.raftLog.committed})`);
        }
        return;
      case ConfChangeType.AddLearner:
        // A voter made a learner (demoted) leaves the voters as RemoveNode would, and keeps
        // receiving the log.
        if (pr && !pr.isLearner && this.prs.voters.size === 1) throw dropped('cannot demote the last voter');
        return;
      case ConfChangeType.RemoveNode:
        if (this.prs.voters.has(cc.nodeId) && this.prs.voters.size === 1) throw dropped('cannot remove the last voter');
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    const updated = pr.maybeUpdate(m.index);
    if (pr.state === ProgressState.Snapshot &&
      (pr.match >= pr.pendingSnapshot || pr.match + 1 >= this.raftLog.firstIndex())) {
      // The snapshot (or a log catch-up) got the follower far enough: probe from its match.
      // If the log was compacted further meanwhile, probing starts a newer snapshot.
      pr.becomeProbe();
      pr.next = pr.match + 1;
      if (!updated) {
        this.sendAppend(m.from);
        return;
      }
    }
    if (updated) {
      if (pr.state === ProgressState.Probe) pr.becomeReplicate();
      else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index);

      if (this.maybeCommit()) {
        this.releasePendingReadIndexMessages();
        this.bcastAppend();
      } else {
        if (oldPaused) this.sendAppend(m.from);
        while (this.maybeSendAppend(m.from, false)) { /* pipeline until paused */ }
      }
      if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
        this.sendTimeoutNow(m.from);
      }
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp = this.state === StateType.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        throw dropped(`no leader at term ${this.term}`);
      case MessageType.ReadIndex:
        throw dropped(`no leader at term ${this.term} to serve a read`);
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.VoteResp:
      case MessageType.PreVoteResp: {
        if (m.type !== myVoteResp) return;
        this.prs.recordVote(m.from, !m.reject);
        const { result } = this.prs.tallyVotes();
        if (result === VoteResult.Won) {
          if (this.state === StateType.PreCandidate) {
            this.campaign(false, false);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === VoteResult.Lost) {
          this.becomeFollower(this.term, None);
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === None) throw dropped(`no leader at term ${this.term}`);
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === None) return;
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.TimeoutNow:
        // Leadership transfer: campaign at once, skipping pre-vote, overriding leases.
        this.hup(true);
        return;
      case MessageType.ReadIndex:
        if (this.lead === None) throw dropped(`no leader at term ${this.term} to serve a read`);
        // `logTerm` states this member's term as it forwards its own request: a leader of that
        // term counts the request as this member's acknowledgement of its leadership
        // (`forwarderConfirms`). A request relayed for another member states nothing (0): the
        // leader would count it as that member's word.
        this.send({ ...m, to: this.lead, logTerm: m.from === None || m.from === this.id ? this.term : 0 });
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context ?? new Uint8Array(0) });
        return;
    }
  }

  // ---- follower handlers -------------------------------------------------------------------

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      this.send(newMessage({ type: MessageType.AppResp, to: m.from, index: this.raftLog.committed }));
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(newMessage({ type: MessageType.AppResp, to: m.from, index: lastNew }));
      return;
    }
    // Fast backtracking: point the leader at the last index whose term is <= the probe's term.
    const hint = Math.min(m.index, this.raftLog.lastIndex());
    const [hintIndex, hintTerm] = this.raftLog.findConflictByTerm(hint, m.logTerm);
    this.send(newMessage({
      type: MessageType.AppResp, to: m.from, index: m.index, reject: true,
      rejectHint: hintIndex, logTerm: hintTerm,
    }));
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(Math.min(m.commit, this.raftLog.lastIndex()));
    this.send(newMessage({ type: MessageType.HeartbeatResp, to: m.from, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const c = m.snapshot;
    invariant(c !== undefined, 'MsgSnap without a chunk');
    const { index, term } = c.metadata;
    const inc = this.incoming;
    if (c.offset === 0 && !(inc && inc.index === index && inc.term === term && inc.received > 0)) {
      this.incoming = { index, term, parts: [], received: 0 };
    } else if (!inc || inc.index !== index || inc.term !== term || inc.received !== c.offset) {
      // Out of order, duplicated, or we restarted: tell the leader where we are.
      const have = inc && inc.index === index && inc.term === term ? inc.received : 0;
      this.send(newMessage({ type: MessageType.SnapResp, to: m.from, index, offset: have, reject: have === 0 }));
      return;
    }
    const cur = this.incoming!;
    cur.parts.push(c.data);
    cur.received += c.data.length;
    if (cur.received < c.total) {
      this.send(newMessage({ type: MessageType.SnapResp, to: m.from, index, offset: cur.received }));
      return;
    }
    this.incoming = undefined;
    const data = new Uint8Array(cur.received);
    let off = 0;
    for (const p of cur.parts) {
      data.set(p, off);
      off += p.length;
    }
    if (this.restore({ metadata: c.metadata, data })) {
      this.send(newMessage({ type: MessageType.AppResp, to: m.from, index: this.raftLog.lastIndex() }));
    } else {
      this.send(newMessage({ type: MessageType.AppResp, to: m.from, index: this.raftLog.committed }));
    }
  }

  /** Installs a snapshot received from the leader; false when it is stale or already covered. */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    invariant(this.state === StateType.Follower, `restore in state ${this.state}`);
    const cs = s.metadata.confState;
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We have the entry already: fast-forward commit instead of discarding our log.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    this.prs.voters.clear();
    this.prs.learners.clear();
    this.prs.progress.clear();
    this.applyConfState(cs);
    return true;
  }

  // ---- leader helpers ----------------------------------------------------------------------

  private appendEntry(es: Entry[]): void {
    let li = this.raftLog.lastIndex();
    const ents = es.map((e) => ({ ...e, term: this.term, index: ++li }));
    this.raftLog.append(ents);
    // The leader's own match advances when the entries are persisted (see stableTo).
  }

  /** The application persisted entries up to (index, term). */
  stableTo(index: number, term: number): void {
    this.raftLog.stableTo(index, term);
    if (this.state !== StateType.Leader) return;
    const self = this.prs.progress.get(this.id);
    if (!self) return;
    const stable = this.raftLog.lastStableIndex();
    if (self.maybeUpdate(Math.min(stable, index)) && this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    }
  }

  private maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.prs.committed(), this.term);
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnOutOfBounds(this.raftLog.committed) === this.term;
  }

  private send(m: Message): void {
    if (m.from === None) m.from = this.id;
    if (m.type === MessageType.Vote || m.type === MessageType.VoteResp || m.type === MessageType.PreVote ||
      m.type === MessageType.PreVoteResp) {
      invariant(m.term !== 0, `term should be set when sending ${m.type}`);
    } else {
      invariant(m.term === 0, `term should not be set when sending ${m.type} (was ${m.term})`);
      // Proposals and forwarded reads are local messages relayed to the leader: no term.
      if (m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex && m.type !== MessageType.TransferLeader) {
        m.term = this.term;
      }
    }
    this.msgs.push(m);
  }

  /** Sends an append (or starts a snapshot) to `to` if it is not paused. */
  sendAppend(to: number): void {
    this.maybeSendAppend(to, true);
  }

  private maybeSendAppend(to: number, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (!pr || to === this.id || pr.isPaused()) return false;
    let prevTerm: number;
    let ents: Entry[];
    try {
      prevTerm = this.raftLog.term(pr.next - 1);
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch (e) {
      if (!isRaftError(e, RaftErrorCode.Compacted) && !isRaftError(e, RaftErrorCode.Unavailable)) throw e;
      // The entries are gone: the follower needs a snapshot.
      if (!pr.recentActive) return false;
      let snap: Snapshot;
      try {
        snap = this.raftLog.snapshot();
      } catch (e2) {
        if (isRaftError(e2, RaftErrorCode.SnapshotTemporarilyUnavailable)) return false;
        throw e2;
      }
      invariant(snap.metadata.index > 0, 'need non-empty snapshot');
      const out = this.outgoing(snap);
      // Not sendable now (the application says so): asked again at the next append or heartbeat.
      if (!out) return false;
      pr.becomeSnapshot(out);
      this.sendSnapChunk(to, pr);
      return true;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    const prevIndex = pr.next - 1;
    if (ents.length > 0) {
      const last = ents[ents.length - 1].index;
      if (pr.state === ProgressState.Replicate) {
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      } else if (pr.state === ProgressState.Probe) {
        pr.probeSent = true;
      }
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
    this.send(newMessage({
      type: MessageType.App, to, index: prevIndex,
      logTerm: prevTerm, entries: ents, commit: this.raftLog.committed,
    }));
    return true;
  }

  /**
   * Sends the chunk of `pr`'s snapshot at its offset. `restart`: the follower asked to start the
   * transfer again, so it holds nothing of it.
   */
  private sendSnapChunk(to: number, pr: Progress, restart = false): void {
    let snap = pr.snap;
    if (!snap) return;
    if (pr.snapOffset === 0) {
      // (Re)starting a transfer: send the newest snapshot the storage holds. An older one may no
      // longer be installable (the application keeps only its latest snapshot's data), and a
      // follower that failed to install it would otherwise be sent the same one forever.
      try {
        const latest = this.raftLog.snapshot();
        const newer = latest.metadata.index > snap.metadata.index;
        // The follower holds no part of this transfer (it asked to start again, or the snapshot
        // is one chunk, which arrives whole or not at all): its data may be taken afresh, and a
        // snapshot sent again after the follower failed to install it goes out as it is now.
        const afresh = latest.metadata.index === snap.metadata.index && (restart || snap.data.length <= this.snapChunk);
        if (newer || afresh) {
          const out = this.outgoing(latest);
          // Not sendable now: nothing is sent; the next heartbeat response asks again.
          if (!out) return;
          if (newer) pr.becomeSnapshot(out);
          else pr.snap = out;
          snap = out;
        }
      } catch (e) {
        if (!isRaftError(e, RaftErrorCode.SnapshotTemporarilyUnavailable)) throw e;
      }
    }
    const total = snap.data.length;
    const offset = Math.min(pr.snapOffset, total);
    const data = snap.data.subarray(offset, Math.min(total, offset + this.snapChunk));
    this.send(newMessage({
      type: MessageType.Snap, to,
      snapshot: { metadata: snap.metadata, offset, total, data },
    }));
  }

  /** The snapshot a transfer that starts now sends, or undefined when none can be sent now ({@link Config.snapshotToSend}). */
  private outgoing(snap: Snapshot): Snapshot | undefined {
    if (!this.snapshotToSend) return snap;
    const out = this.snapshotToSend(snap);
    if (out === undefined) return undefined;
    invariant(out.metadata.index === snap.metadata.index && out.metadata.term === snap.metadata.term, 'snapshotToSend must keep the snapshot\'s index and term');
    return out;
  }

  /** Sends appends to every peer that is not paused. */
  bcastAppend(): void {
    for (const id of this.prs.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(): void {
    let ctx: Uint8Array | undefined;
    if (this.readQueue.length > 0) {
      // A heartbeat carries the newest queued read: its quorum of acks confirms every one.
      const newest = this.readQueue[this.readQueue.length - 1];
      ctx = this.pendingReads.get(newest)!.req.context;
      this.readRound = newest;
    }
    for (const [id, pr] of this.prs.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.raftLog.committed);
      this.send(newMessage({ type: MessageType.Heartbeat, to: id, commit, context: ctx }));
    }
  }

  private sendTimeoutNow(to: number): void {
    this.send(newMessage({ type: MessageType.TimeoutNow, to }));
  }

  // ---- ReadIndex (§6.4 of the thesis) --------------------------------------------------------

  /**
   * Queues a read at the current commit index and confirms it with a heartbeat round — at once
   * when no round is in flight; else with the round that starts when the one in flight is
   * confirmed, which then serves every request queued meanwhile (from this member and from every
   * follower) with one heartbeat and one ack per follower. Every request is still confirmed by a
   * round whose heartbeats were sent after it arrived (thesis §6.4).
   */
  private startReadIndex(m: Message): void {
    if (this.forwarderConfirms(m)) {
      this.respondRead(m, this.raftLog.committed);
      return;
    }
    const key = ctxKey(m.context);
    if (!this.pendingReads.has(key)) {
      this.pendingReads.set(key, { index: this.raftLog.committed, req: m, acks: new Set([this.id]) });
      this.readQueue.push(key);
    }
    if (this.readRound === undefined) this.startReadRound();
  }

  /**
   * True when a request forwarded by a follower confirms itself: the follower stated (in
   * `logTerm`) that it was in this leader's term when it forwarded the request, i.e. after its
   * reads arrived, and this leader and it form a quorum of voters (any follower of a 3-voter
   * group). Both were then in this term at a time after the reads began, so no member of that
   * quorum had voted in a later term, and no later leader — whose quorum would need one of them —
   * could have been elected and committed anything before the reads began: this leader's commit
   * index covers every write acknowledged before them, as a heartbeat round would show. The
   * follower's word covers only its own request (it says nothing about when reads queued here
   * began), so a request that needs more acknowledgements than these two takes the round.
   */
  private forwarderConfirms(m: Message): boolean {
    if (m.from === None || m.from === this.id || m.logTerm !== this.term) return false;
    return this.prs.hasQuorum(new Set([this.id, m.from]));
  }

  /** Sends the heartbeats of a round for the newest queued read (covering all queued before it). */
  private startReadRound(): void {
    this.readRounds++;
    this.bcastHeartbeat();
  }

  private recvReadAck(from: number, ctx: Uint8Array): void {
    const key = ctxKey(ctx);
    const rs = this.pendingReads.get(key);
    if (!rs) return;
    rs.acks.add(from);
    if (!this.prs.hasQuorum(rs.acks)) return;
    // This request and every one queued before it are confirmed.
    const pos = this.readQueue.indexOf(key);
    const done = this.readQueue.splice(0, pos + 1);
    for (const k of done) {
      const r = this.pendingReads.get(k)!;
      this.pendingReads.delete(k);
      this.respondRead(r.req, r.index);
    }
    if (this.readRound !== undefined && !this.pendingReads.has(this.readRound)) {
      // The round in flight is confirmed: the requests that arrived since share the next one.
      this.readRound = undefined;
      if (this.readQueue.length > 0) this.startReadRound();
    }
  }

  private respondRead(req: Message, index: number): void {
    if (req.from === None || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.context ?? new Uint8Array(0) });
    } else {
      this.send(newMessage({ type: MessageType.ReadIndexResp, to: req.from, index, context: req.context }));
    }
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.startReadIndex(m);
  }

  // ---- membership ----------------------------------------------------------------------------

  private applyConfState(cs: ConfState): void {
    const next = this.raftLog.lastIndex() + 1;
    for (const id of cs.voters) this.prs.set(id, false, next);
    for (const id of cs.learners) this.prs.set(id, true, next);
    this.isLearner = this.prs.learners.has(this.id);
  }

  /**
   * Applies a committed membership change (called by RawNode when the entry is applied) and
   * returns the new membership. A leader removed from the group steps down.
   */
  applyConfChange(cc: ConfChange): ConfState {
    const next = this.raftLog.lastIndex() + 1;
    switch (cc.type) {
      case ConfChangeType.AddNode:
        this.prs.set(cc.nodeId, false, next);
        break;
      case ConfChangeType.AddLearner:
        // A new learner, or a voter demoted (never the last voter: the same rule on every replica).
        if (!(this.prs.voters.has(cc.nodeId) && this.prs.voters.size === 1)) this.prs.set(cc.nodeId, true, next);
        break;
      case ConfChangeType.RemoveNode:
        this.prs.remove(cc.nodeId);
        break;
    }
    this.isLearner = this.prs.learners.has(this.id);
    if ((this.state === StateType.Candidate || this.state === StateType.PreCandidate) && !this.prs.voters.has(this.id)) {
      // Removed or demoted while campaigning: a non-voter must not win an election.
      this.becomeFollower(this.term, None);
    } else if (this.state === StateType.Leader) {
      if (!this.prs.voters.has(this.id)) {
        // Removed (or never a voter): hand over to the most up-to-date voter and step down.
        let best = None;
        let bestMatch = -1;
        for (const id of this.prs.voters) {
          const m = this.prs.progress.get(id)!.match;
          if (m > bestMatch) { best = id; bestMatch = m; }
        }
        if (best !== None && bestMatch === this.raftLog.lastIndex()) this.sendTimeoutNow(best);
        this.becomeFollower(this.term, None);
      } else {
        if (this.leadTransferee !== None && !this.prs.voters.has(this.leadTransferee)) this.leadTransferee = None;
        if (this.maybeCommit()) this.bcastAppend();
        else for (const id of this.prs.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
      }
    }
    return this.prs.confState();
  }
}

function dropped(why: string): RaftError {
  return new RaftError(RaftErrorCode.ProposalDropped, `proposal dropped: ${why}`);
}
