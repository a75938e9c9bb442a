/**
 * What the leader knows about each peer: match/next indexes, the replication state machine
 * (probe → replicate, or snapshot) with its inflight window, and the group membership with
 * quorum arithmetic (commit index, vote tally, active quorum).
 * @module
 */

import { invariant, type ConfState, type Snapshot } from './types.js';

/** Replication state of one follower as seen by the leader. */
export const ProgressState = {
  /** One append at a time until the follower's position is found. */
  Probe: 'Probe',
  /** Appends pipelined optimistically, bounded by the inflight window. */
  Replicate: 'Replicate',
  /** A snapshot is being transferred in chunks; no appends. */
  Snapshot: 'Snapshot',
} as const;
/** One of {@link ProgressState}. */
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

/**
 * A sliding window of in-flight append messages, identified by the last index each carries.
 * Invariant: indexes are increasing; count <= size.
 */
export class Inflights {
  private readonly buf: number[];
  private start = 0;
  /** Number of messages in flight. */
  count = 0;

  /** A window of at most `size` messages. */
  constructor(readonly size: number) {
    this.buf = new Array<number>(size).fill(0);
  }

  /** Records a message whose last entry is `index`. */
  add(index: number): void {
    invariant(!this.full(), 'cannot add into a full inflights');
    this.buf[(this.start + this.count) % this.size] = index;
    this.count++;
  }

  /** Frees every message whose last index is <= `to` (they were acknowledged). */
  freeLE(to: number): void {
    while (this.count > 0 && this.buf[this.start] <= to) {
      this.start = (this.start + 1) % this.size;
      this.count--;
    }
    if (this.count === 0) this.start = 0;
  }

  /** True when no more messages may be sent. */
  full(): boolean {
    return this.count === this.size;
  }

  /** Empties the window. */
  reset(): void {
    this.count = 0;
    this.start = 0;
  }
}

/** The leader's view of one peer. */
export class Progress {
  /** Highest index known replicated on the peer. Invariant: match < next. */
  match = 0;
  /** Next index to send. */
  next: number;
  /** Replication state. */
  state: ProgressState = ProgressState.Probe;
  /** In snapshot state: index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** The snapshot being sent (snapshot state only). */
  snap: Snapshot | undefined;
  /** Bytes of `snap` the peer acknowledged. */
  snapOffset = 0;
  /** Heard from since the last CheckQuorum. */
  recentActive = false;
  /** In probe state: an append was sent and we wait for its answer (or a heartbeat reply). */
  probeSent = false;
  /** Append messages in flight (replicate state). */
  readonly inflights: Inflights;
  /** True for a learner. */
  isLearner: boolean;

  /** A peer probed from `next`, with an inflight window of `maxInflight` messages. */
  constructor(next: number, maxInflight: number, isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snap = undefined;
    this.snapOffset = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** Back to probing from just after `match` (or after the snapshot just sent). */
  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const ps = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, ps + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  /** Start pipelining from just after `match`. */
  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  /** Start sending snapshot `snap`. */
  becomeSnapshot(snap: Snapshot): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snap.metadata.index;
    this.snap = snap;
  }

  /** An ack for `n`: raises match (and next); returns false for a stale ack. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Optimistically advance next after pipelining entries up to `n`. */
  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * A rejection of the append at `rejected`, with the follower's hint `matchHint`: lowers next
   * and returns true, or returns false when the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** True when the leader should not send appends now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe: return this.probeSent;
      case ProgressState.Replicate: return this.inflights.full();
      case ProgressState.Snapshot: return true;
    }
  }
}

/** Result of counting votes. */
export const VoteResult = { Pending: 'Pending', Won: 'Won', Lost: 'Lost' } as const;
/** One of {@link VoteResult}. */
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/** Membership, per-peer progress and the votes of the current election. */
export class ProgressTracker {
  /** Voting members. */
  voters = new Set<number>();
  /** Non-voting members. Invariant: disjoint from voters. */
  learners = new Set<number>();
  /** Progress of every member (voters and learners). */
  progress = new Map<number, Progress>();
  /** Votes received in the current election. */
  votes = new Map<number, boolean>();

  /** An empty tracker whose peers get inflight windows of `maxInflight`. */
  constructor(readonly maxInflight: number) {}

  /** Current membership. */
  confState(): ConfState {
    return { voters: [...this.voters].sort((a, b) => a - b), learners: [...this.learners].sort((a, b) => a - b) };
  }

  /** Quorum size of the voters. */
  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  /** True when the group has exactly one voter, `id`. */
  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  /** Adds or updates a member. */
  set(id: number, isLearner: boolean, next: number): void {
    if (isLearner) {
      this.voters.delete(id);
      this.learners.add(id);
    } else {
      this.learners.delete(id);
      this.voters.add(id);
    }
    const pr = this.progress.get(id);
    if (pr) {
      pr.isLearner = isLearner;
    } else {
      const np = new Progress(next, this.maxInflight, isLearner);
      np.recentActive = true;
      this.progress.set(id, np);
    }
  }

  /** Removes a member. */
  remove(id: number): void {
    this.voters.delete(id);
    this.learners.delete(id);
    this.progress.delete(id);
    this.votes.delete(id);
  }

  /** The largest index replicated on a quorum of voters. */
  committed(): number {
    if (this.voters.size === 0) return Number.MAX_SAFE_INTEGER;
    const m: number[] = [];
    for (const id of this.voters) m.push(this.progress.get(id)?.match ?? 0);
    m.sort((a, b) => b - a);
    return m[this.quorum() - 1];
  }

  /** Clears the recorded votes. */
  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote (the first one from each node counts). */
  recordVote(id: number, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Tally of the votes among voters. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = this.quorum();
    let result: VoteResult = VoteResult.Pending;
    if (granted >= q) result = VoteResult.Won;
    else if (this.voters.size - rejected < q) result = VoteResult.Lost;
    return { granted, rejected, result };
  }

  /** True when a quorum of voters was recently active (counting `self` as active). */
  quorumActive(self: number): boolean {
    let n = 0;
    for (const id of this.voters) {
      if (id === self || this.progress.get(id)?.recentActive) n++;
    }
    return n >= this.quorum();
  }

  /** True when the acks in `acks` form a quorum of voters. */
  hasQuorum(acks: Set<number>): boolean {
    let n = 0;
    for (const id of this.voters) if (acks.has(id)) n++;
    return n >= this.quorum();
  }
}
