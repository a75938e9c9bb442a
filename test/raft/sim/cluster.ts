/**
 * A deterministic simulator of a Raft group: one virtual clock, one seeded PRNG, an in-process
 * network that can drop, delay (and so reorder) and duplicate messages and cut links, nodes
 * that crash (losing every write not yet synced), restart and pause.
 *
 * Each node is driven like a real server: a Ready is written to its storage, then the write is
 * "synced" after a random disk latency; only then are its messages sent, its committed entries
 * applied and `advance` called. While a write is in flight the node is busy and buffers input.
 * A crash throws away the live storage and keeps only what was synced.
 *
 * After every event the cluster checks election safety and basic bounds; every entry written to
 * any log is checked for log matching, every applied entry for state-machine safety, every new
 * leader for leader completeness, and every node for applied indexes that go backwards.
 */

import { RawNode, type Ready } from '../../../src/raft/rawnode.js';
import { EventHeap } from '../../../src/replication/sim/clock.js';
import type { NetworkOptions } from '../../../src/replication/sim/network.js';
import { SeededRand } from '../../../src/raft/rand.js';
import { MemoryStorage } from '../../../src/raft/storage.js';
import {
  EntryType, RaftErrorCode, StateType, isRaftError,
  type ConfState, type Entry, type Message, type ReadState,
} from '../../../src/raft/types.js';

/** The replicated state machine run on every node. */
export interface StateMachine {
  /** Applies a committed normal entry (conf changes and empty entries are passed too). */
  apply(e: Entry): void;
  /** Serializes the state. */
  snapshot(): Uint8Array;
  /** Replaces the state by a snapshot's. */
  restore(data: Uint8Array): void;
}

/** Network behaviour; probabilities per message (the replication simulator's). */
export type NetConfig = NetworkOptions;

/** Options of a cluster. */
export interface ClusterOptions {
  seed: number;
  /** Initial voters (ids 1..n). */
  n: number;
  /** Extra ids that exist as processes but start outside the group (for membership tests). */
  spare?: number;
  newApp: (id: number) => StateMachine;
  tickMs?: number;
  electionTick?: number;
  heartbeatTick?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /** Snapshot + compact once this many entries are applied beyond the first index (0 = never). */
  compactEvery?: number;
  snapshotChunkSize?: number;
  maxSizePerMsg?: number;
  maxInflight?: number;
  net?: Partial<NetConfig>;
  /** Disk sync latency range in ms. */
  diskMin?: number;
  diskMax?: number;
  /**
   * A deliberately broken driver that sends a Ready's messages before its write is synced.
   * Only for tests that show the simulator catches the bug.
   */
  unsafeSendBeforeSync?: boolean;
}

/** A violated invariant. */
export class SafetyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyViolation';
  }
}

/** One simulated server. */
export class SimNode {
  node: RawNode | undefined;
  live: MemoryStorage;
  durable: MemoryStorage;
  app: StateMachine;
  applied = 0;
  busy = false;
  paused = false;
  inbox: Message[] = [];
  generation = 0;
  /** Called after each applied entry. */
  onApply: ((id: number, e: Entry) => void) | undefined;
  /** Called after a Ready was handled, to serve `pendingReads` whose index is applied. */
  onReads: ((n: SimNode) => void) | undefined;
  /** Completed ReadIndex requests not yet served. */
  pendingReads: ReadState[] = [];

  constructor(readonly id: number, cs: ConfState, app: StateMachine) {
    this.live = new MemoryStorage(cs);
    this.durable = this.live.clone();
    this.app = app;
  }

  /** True when running (not crashed). */
  get up(): boolean {
    return this.node !== undefined;
  }
}

function dataKey(e: { type: string; data: Uint8Array }): string {
  return e.type + ':' + Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('latin1');
}

/** The simulated group. */
export class Cluster {
  readonly rand: SeededRand;
  now = 0;
  readonly nodes = new Map<number, SimNode>();
  readonly net: NetConfig;
  private readonly q = new EventHeap<() => void>();
  private seq = 0;
  private readonly cut = new Set<string>();
  private readonly o: Required<Omit<ClusterOptions, 'net'>>;
  /** Messages sent (delivered or not), by type. */
  readonly sent = new Map<string, number>();
  /** Events run so far, and the budget (a guard against message storms and livelock). */
  events = 0;
  maxEvents = 3_000_000;
  /** Total bytes of entry data sent in append messages. */
  bytesSent = 0;

  // ---- invariant state ----
  private leaderOfTerm = new Map<number, number>();
  private entryAt = new Map<string, { data: string; prevTerm: number }>();
  /** index → (term, data) of every applied entry: the committed log as observed. */
  readonly committed = new Map<number, { term: number; data: string }>();
  maxCommitted = 0;
  private leaderCommitMax = 0;
  private commitTerm = new Map<number, number>();
  private entryTermAt = new Map<number, number>();

  constructor(opts: ClusterOptions) {
    this.o = {
      tickMs: 10, electionTick: 10, heartbeatTick: 1, preVote: true, checkQuorum: true, compactEvery: 0,
      snapshotChunkSize: 64 * 1024, maxSizePerMsg: 4096, maxInflight: 64, diskMin: 0, diskMax: 2, spare: 0,
      unsafeSendBeforeSync: false,
      ...opts,
    };
    this.rand = new SeededRand(opts.seed);
    this.net = { drop: 0, dup: 0, minDelay: 1, maxDelay: 5, longDelay: 0, longDelayMax: 0, ...opts.net };
    const voters = Array.from({ length: opts.n }, (_, i) => i + 1);
    for (const id of voters) this.nodes.set(id, new SimNode(id, { voters, learners: [] }, opts.newApp(id)));
    for (let id = opts.n + 1; id <= opts.n + this.o.spare; id++) {
      this.nodes.set(id, new SimNode(id, { voters: [], learners: [] }, opts.newApp(id)));
    }
    for (const id of voters) this.start(id);
    for (const n of this.nodes.values()) {
      // Ticks at a random phase per node.
      this.schedule(1 + this.rand.int(this.o.tickMs), () => this.tickLoop(n));
    }
  }

  /** Ids of all processes. */
  ids(): number[] {
    return [...this.nodes.keys()];
  }

  /** Node `id`. */
  get(id: number): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  // ---- time ----------------------------------------------------------------------------------

  /** Runs `fn` at now + `delay`. */
  schedule(delay: number, fn: () => void): void {
    this.q.push({ time: this.now + Math.max(0, delay), seq: this.seq++, fn });
  }

  /** Runs events until `ms` of virtual time have passed. */
  runFor(ms: number): void {
    this.runUntil(this.now + ms);
  }

  /** Runs events until virtual time `t`. */
  runUntil(t: number): void {
    for (;;) {
      const next = this.q.peekTime();
      if (next === undefined || next > t) break;
      const e = this.q.pop()!;
      this.now = e.time;
      if (++this.events > this.maxEvents) throw new Error(`event storm: more than ${this.maxEvents} events by t=${this.now}ms`);
      e.fn();
      this.checkStep();
    }
    this.now = Math.max(this.now, t);
  }

  /** Runs until `cond` holds or `maxMs` pass; returns whether it held. */
  runUntilCond(cond: () => boolean, maxMs: number, stepMs = 10): boolean {
    const end = this.now + maxMs;
    while (this.now < end) {
      if (cond()) return true;
      this.runFor(stepMs);
    }
    return cond();
  }

  private tickLoop(n: SimNode): void {
    if (n.node && !n.busy && !n.paused) {
      n.node.tick();
      this.observeLeader(n);
      this.process(n);
    }
    this.schedule(this.o.tickMs, () => this.tickLoop(n));
  }

  // ---- nodes ---------------------------------------------------------------------------------

  /** (Re)starts node `id` from its durable storage. */
  start(id: number): void {
    const n = this.get(id);
    if (n.node) return;
    n.generation++;
    n.live = n.durable.clone();
    const snap = n.live.snapshot();
    n.app = this.o.newApp(id);
    if (snap.metadata.index > 0) n.app.restore(snap.data);
    n.applied = snap.metadata.index;
    n.busy = false;
    n.paused = false;
    n.inbox = [];
    n.pendingReads = [];
    n.node = new RawNode({
      id, storage: n.live, rand: this.rand.fork(), electionTick: this.o.electionTick,
      heartbeatTick: this.o.heartbeatTick, preVote: this.o.preVote, checkQuorum: this.o.checkQuorum,
      maxSizePerMsg: this.o.maxSizePerMsg, maxInflightMsgs: this.o.maxInflight,
      snapshotChunkSize: this.o.snapshotChunkSize, applied: snap.metadata.index,
    });
    const hs = n.live.getHardState();
    if (hs.commit < snap.metadata.index && hs.commit !== 0) this.fail(`node ${id}: durable commit ${hs.commit} behind snapshot ${snap.metadata.index}`);
    this.process(n);
  }

  /** Crashes node `id`: everything not synced is lost. */
  crash(id: number): void {
    const n = this.get(id);
    n.node = undefined;
    n.generation++;
    n.busy = false;
    n.inbox = [];
    n.pendingReads = [];
  }

  /** Pauses node `id` (it neither ticks nor handles input; messages queue). */
  pause(id: number): void {
    this.get(id).paused = true;
  }

  /** Resumes a paused node and lets it handle its queue. */
  resume(id: number): void {
    const n = this.get(id);
    if (!n.paused) return;
    n.paused = false;
    this.drain(n);
  }

  /** Runs `fn` against a node's RawNode and processes the result; returns false if it threw a RaftError. */
  withNode(id: number, fn: (rn: RawNode) => void): boolean {
    const n = this.get(id);
    if (!n.node || n.paused) return false;
    try {
      fn(n.node);
      this.observeLeader(n);
    } catch (e) {
      if (e instanceof Error && e.name === 'RaftError') {
        this.process(n);
        return false;
      }
      throw e;
    }
    this.process(n);
    return true;
  }

  private deliver(m: Message): void {
    const n = this.nodes.get(m.to);
    if (!n || !n.node) return;
    if (this.cut.has(`${m.from}>${m.to}`)) return;
    if (n.busy || n.paused) {
      n.inbox.push(m);
      return;
    }
    this.stepOne(n, m);
    this.process(n);
  }

  private stepOne(n: SimNode, m: Message): void {
    try {
      n.node!.step(m);
    } catch (e) {
      if (isRaftError(e, RaftErrorCode.StepPeerNotFound) || isRaftError(e, RaftErrorCode.ProposalDropped)) return;
      throw e;
    } finally {
      this.observeLeader(n);
    }
  }

  private drain(n: SimNode): void {
    while (n.node && !n.busy && !n.paused && n.inbox.length > 0) {
      const m = n.inbox.shift()!;
      this.stepOne(n, m);
      this.process(n);
    }
  }

  /** Handles a node's Ready, if any: write now, sync later, then send/apply/advance. */
  private process(n: SimNode): void {
    const rn = n.node;
    if (!rn || n.busy || n.paused || !rn.hasReady()) return;
    const rd = rn.ready();
    this.observeReady(n, rd);
    if (rd.snapshot) n.live.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) n.live.append(rd.entries);
    if (rd.hardState) n.live.setHardState(rd.hardState);
    const gen = n.generation;
    if (this.o.unsafeSendBeforeSync) {
      for (const m of rd.messages) this.send(m);
      rd.messages.length = 0;
    }
    const needsDisk = rd.snapshot !== undefined || rd.entries.length > 0 || rd.hardState !== undefined;
    const finish = (): void => {
      if (n.generation !== gen) return; // crashed meanwhile: the write is lost
      n.durable = n.live.clone();
      for (const m of rd.messages) this.send(m);
      if (rd.snapshot) {
        if (rd.snapshot.metadata.index <= n.applied) this.fail(`node ${n.id}: snapshot ${rd.snapshot.metadata.index} would move applied ${n.applied} backwards`);
        n.app.restore(rd.snapshot.data);
        n.applied = rd.snapshot.metadata.index;
      }
      for (const e of rd.committedEntries) this.applyEntry(n, e);
      n.pendingReads.push(...rd.readStates);
      rn.advance(rd);
      this.observeLeader(n);
      n.busy = false;
      this.serveReads(n);
      this.maybeCompact(n);
      this.process(n);
      this.drain(n);
    };
    if (needsDisk && rd.mustSync) {
      n.busy = true;
      this.schedule(this.o.diskMin + this.rand.int(this.o.diskMax - this.o.diskMin + 1), finish);
    } else {
      finish();
    }
  }

  private applyEntry(n: SimNode, e: Entry): void {
    if (e.index !== n.applied + 1) this.fail(`node ${n.id}: applied ${e.index} after ${n.applied} (gap or backwards)`);
    const k = dataKey(e);
    const prev = this.committed.get(e.index);
    if (prev && (prev.term !== e.term || prev.data !== k)) {
      this.fail(`state machine safety: node ${n.id} applied (${e.index}, t${e.term}) but (${e.index}, t${prev.term}) was applied elsewhere`);
    }
    if (!prev) this.committed.set(e.index, { term: e.term, data: k });
    this.maxCommitted = Math.max(this.maxCommitted, e.index);
    n.applied = e.index;
    n.app.apply(e);
    n.onApply?.(n.id, e);
  }

  private serveReads(n: SimNode): void {
    if (n.pendingReads.length > 0) n.onReads?.(n);
  }

  private maybeCompact(n: SimNode): void {
    const every = this.o.compactEvery;
    if (every <= 0 || !n.node) return;
    const first = n.live.firstIndex();
    if (n.applied - first + 1 < every) return;
    const cs = n.node.raft.prs.confState();
    n.live.createSnapshot(n.applied, cs, n.app.snapshot());
    // Keep a few entries behind the snapshot so that slightly lagging followers need no snapshot.
    const keep = Math.max(1, Math.floor(every / 4));
    if (n.applied - keep >= first) n.live.compact(n.applied - keep);
    n.durable = n.live.clone();
  }

  // ---- network -------------------------------------------------------------------------------

  private send(m: Message): void {
    this.sent.set(m.type, (this.sent.get(m.type) ?? 0) + 1);
    for (const e of m.entries) this.bytesSent += e.data.length;
    if (this.cut.has(`${m.from}>${m.to}`)) return;
    if (this.rand.chance(this.net.drop)) return;
    const copies = this.rand.chance(this.net.dup) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let d = this.net.minDelay + this.rand.int(Math.max(1, this.net.maxDelay - this.net.minDelay + 1));
      if (this.net.longDelay > 0 && this.rand.chance(this.net.longDelay)) d += this.rand.int(Math.max(1, this.net.longDelayMax));
      this.schedule(d, () => this.deliver(m));
    }
  }

  /** Total messages sent so far. */
  messageCount(): number {
    let n = 0;
    for (const v of this.sent.values()) n += v;
    return n;
  }

  /** Cuts the link both ways. */
  cutLink(a: number, b: number): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }

  /** Disconnects node `id` from everyone. */
  isolate(id: number): void {
    for (const o of this.nodes.keys()) if (o !== id) this.cutLink(id, o);
  }

  /** Reconnects node `id` to every node that is not itself isolated by other cuts. */
  connect(id: number): void {
    for (const o of this.nodes.keys()) {
      this.cut.delete(`${id}>${o}`);
      this.cut.delete(`${o}>${id}`);
    }
  }

  /** Partitions the nodes into groups; nodes in no group are isolated. */
  partition(...groups: number[][]): void {
    this.heal();
    const groupOf = new Map<number, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const a of this.nodes.keys()) {
      for (const b of this.nodes.keys()) {
        if (a !== b && (groupOf.get(a) === undefined || groupOf.get(a) !== groupOf.get(b))) this.cut.add(`${a}>${b}`);
      }
    }
  }

  /** Two sides that only the bridge node connects. */
  bridge(left: number[], bridgeNode: number, right: number[]): void {
    this.partition([...left, bridgeNode], [...right]);
    for (const r of right) {
      this.cut.delete(`${bridgeNode}>${r}`);
      this.cut.delete(`${r}>${bridgeNode}`);
    }
  }

  /** Removes every cut. */
  heal(): void {
    this.cut.clear();
  }

  /** True when a and b can talk. */
  linked(a: number, b: number): boolean {
    return !this.cut.has(`${a}>${b}`);
  }

  // ---- observation & invariants --------------------------------------------------------------

  /** Ids of running nodes that consider themselves leader, with their terms. */
  leaders(): Array<{ id: number; term: number }> {
    const out: Array<{ id: number; term: number }> = [];
    for (const n of this.nodes.values()) {
      if (n.node && n.node.raft.state === StateType.Leader) out.push({ id: n.id, term: n.node.raft.term });
    }
    return out;
  }

  private fail(msg: string): never {
    throw new SafetyViolation(`t=${this.now}ms: ${msg}`);
  }

  private observeReady(n: SimNode, rd: Ready): void {
    const r = n.node!.raft;
    // Log matching: the same (index, term) always carries the same data and the same previous
    // term, so by induction equal (index, term) means equal logs up to index.
    let prevTerm: number | undefined;
    for (let i = 0; i < rd.entries.length; i++) {
      const e = rd.entries[i];
      if (i > 0) prevTerm = rd.entries[i - 1].term;
      else prevTerm = r.raftLog.zeroTermOnOutOfBounds(e.index - 1);
      const key = `${e.index}:${e.term}`;
      const d = dataKey(e);
      const seen = this.entryAt.get(key);
      if (seen === undefined) this.entryAt.set(key, { data: d, prevTerm });
      else if (seen.data !== d || (prevTerm !== 0 && seen.prevTerm !== 0 && seen.prevTerm !== prevTerm)) {
        this.fail(`log matching: node ${n.id} has (${e.index}, t${e.term}) with different content or previous term (${prevTerm} vs ${seen.prevTerm})`);
      }
    }
    if (rd.snapshot) {
      const { index, term } = rd.snapshot.metadata;
      const c = this.committed.get(index);
      if (c && c.term !== term) this.fail(`node ${n.id} installs snapshot (${index}, t${term}) but (${index}, t${c.term}) was applied`);
    }
  }

  /**
   * Leader completeness (§5.4): an entry committed in term T is in the log of every leader of
   * a term > T. Commit terms are recorded as leaders advance their commit index (the first
   * leader to commit an index fixes its commit term).
   */
  private checkLeaderCompleteness(n: SimNode): void {
    const r = n.node!.raft;
    const l = r.raftLog;
    for (let i = Math.max(l.firstIndex(), 1); i <= this.leaderCommitMax; i++) {
      const ct = this.commitTerm.get(i);
      if (ct === undefined || ct >= r.term) continue;
      const t = l.zeroTermOnOutOfBounds(i);
      const want = this.entryTermAt.get(i)!;
      if (t !== want) this.fail(`leader completeness: leader ${n.id} (term ${r.term}) has t${t} at index ${i}, committed in term ${ct} with t${want}`);
    }
  }

  private recordLeaderCommit(n: SimNode): void {
    const r = n.node!.raft;
    const l = r.raftLog;
    while (this.leaderCommitMax < l.committed) {
      const i = ++this.leaderCommitMax;
      this.commitTerm.set(i, r.term);
      const t = l.zeroTermOnOutOfBounds(i) || this.committed.get(i)?.term;
      if (!t) this.fail(`leader ${n.id} (term ${r.term}) committed index ${i} that it cannot name a term for`);
      this.entryTermAt.set(i, t);
    }
  }

  /**
   * Election safety and commit-term bookkeeping for one node. Called after every input the
   * node handles (one event may feed it many buffered messages), and after every event.
   */
  private observeLeader(n: SimNode): void {
    const r = n.node?.raft;
    if (!r || r.state !== StateType.Leader) return;
    const prev = this.leaderOfTerm.get(r.term);
    if (prev === undefined) {
      this.leaderOfTerm.set(r.term, n.id);
      // Leader completeness, checked at the moment a node becomes leader.
      this.checkLeaderCompleteness(n);
    } else if (prev !== n.id) {
      this.fail(`election safety: nodes ${prev} and ${n.id} both lead term ${r.term}`);
    }
    this.recordLeaderCommit(n);
  }

  private checkStep(): void {
    for (const n of this.nodes.values()) {
      if (!n.node) continue;
      const r = n.node.raft;
      this.observeLeader(n);
      const l = r.raftLog;
      if (!(l.applied <= l.committed && l.committed <= l.lastIndex())) {
        this.fail(`node ${n.id}: applied ${l.applied} <= committed ${l.committed} <= last ${l.lastIndex()} broken`);
      }
      if (n.applied > l.committed) this.fail(`node ${n.id}: state machine applied ${n.applied} beyond commit ${l.committed}`);
    }
  }

  /** Checks that every running node's applied prefix agrees with the committed log. */
  checkConverged(): void {
    for (const n of this.nodes.values()) {
      if (!n.node) continue;
      const l = n.node.raft.raftLog;
      for (let i = Math.max(l.firstIndex(), 1); i <= l.committed; i++) {
        const c = this.committed.get(i);
        if (c && l.term(i) !== c.term) this.fail(`node ${n.id}: committed (${i}, t${l.term(i)}) differs from applied t${c.term}`);
      }
    }
  }
}
