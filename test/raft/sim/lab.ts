/**
 * A tester in the shape of the MIT 6.5840 Raft lab's `config` (one, checkOneLeader,
 * nCommitted, disconnect/connect, crash1/start1, unreliable, long reordering), running over
 * the deterministic {@link Cluster} in virtual time. Servers are numbered 1..n.
 *
 * The application records every applied command and checks, as the lab's applier does, that
 * no two servers apply different commands at the same index. Its snapshot is the whole
 * applied command list, as in the lab.
 */

import { Cluster, type StateMachine } from './cluster.js';
import { EntryType, StateType, type Entry } from '../../../src/raft/types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Lab's election timeout, in virtual ms (10 ticks of 100 ms). */
export const ELECTION_TIMEOUT = 1000;

class LabApp implements StateMachine {
  constructor(private readonly id: number, private readonly t: LabTester) {}
  apply(e: Entry): void {
    if (e.type !== EntryType.Normal || e.data.length === 0) return;
    this.t.record(this.id, e.index, dec.decode(e.data));
  }
  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify([...this.t.logs.get(this.id)!.entries()]));
  }
  restore(data: Uint8Array): void {
    const entries = JSON.parse(dec.decode(data)) as Array<[number, string]>;
    for (const [i, v] of entries) this.t.record(this.id, i, v);
  }
}

/** Options of {@link LabTester}. */
export interface LabOptions {
  seed: number;
  unreliable?: boolean;
  snapshot?: boolean;
  /** Virtual ms per tick (election timeout = 10 ticks); default 100. */
  tickMs?: number;
}

/** The lab tester. */
export class LabTester {
  readonly c: Cluster;
  readonly n: number;
  readonly logs = new Map<number, Map<number, string>>();
  private readonly connected = new Set<number>();
  applyErr: string | undefined;

  constructor(n: number, o: LabOptions) {
    this.n = n;
    for (let i = 1; i <= n; i++) {
      this.logs.set(i, new Map());
      this.connected.add(i);
    }
    this.c = new Cluster({
      seed: o.seed, n, newApp: (id) => new LabApp(id, this), tickMs: o.tickMs ?? 100, electionTick: 10, heartbeatTick: 1,
      compactEvery: o.snapshot ? 10 : 0, snapshotChunkSize: 256, maxSizePerMsg: 64 * 1024,
      net: { minDelay: 1, maxDelay: 5 },
    });
    this.setUnreliable(o.unreliable ?? false);
  }

  /** Records an applied command and cross-checks it against the other servers. */
  record(id: number, index: number, v: string): void {
    for (const [j, log] of this.logs) {
      const other = log.get(index);
      if (other !== undefined && other !== v) {
        this.applyErr ??= `commit index=${index} server=${id} ${v} != server=${j} ${other}`;
      }
    }
    this.logs.get(id)!.set(index, v);
  }

  private check(): void {
    if (this.applyErr) throw new Error(this.applyErr);
  }

  /** Lab: 10% message loss and random delays up to 27 ms. */
  setUnreliable(u: boolean): void {
    Object.assign(this.c.net, u ? { drop: 0.1, minDelay: 0, maxDelay: 27 } : { drop: 0, minDelay: 1, maxDelay: 5 });
  }

  /** Lab: most messages delayed by up to 2 s (far behind newer ones). */
  setLongReordering(on: boolean): void {
    Object.assign(this.c.net, on ? { longDelay: 0.66, longDelayMax: 2000 } : { longDelay: 0, longDelayMax: 0 });
  }

  /** Sleeps `ms` of virtual time. */
  sleep(ms: number): void {
    this.c.runFor(ms);
    this.check();
  }

  private relink(): void {
    this.c.heal();
    for (let i = 1; i <= this.n; i++) if (!this.connected.has(i)) this.c.isolate(i);
  }

  /** Detaches server i from the network. */
  disconnect(i: number): void {
    this.connected.delete(i);
    this.relink();
  }

  /** Attaches server i to the network. */
  connect(i: number): void {
    this.connected.add(i);
    this.relink();
  }

  /** True when server i is attached. */
  isConnected(i: number): boolean {
    return this.connected.has(i);
  }

  /** Crashes server i (unsynced writes are lost). */
  crash1(i: number): void {
    this.c.crash(i);
  }

  /** Restarts server i from what it synced. */
  start1(i: number): void {
    this.c.start(i);
  }

  /** Term and leadership of server i. */
  getState(i: number): { term: number; isLeader: boolean } {
    const rn = this.c.get(i).node;
    if (!rn) return { term: 0, isLeader: false };
    return { term: rn.raft.term, isLeader: rn.raft.state === StateType.Leader };
  }

  /** Lab's Start(): proposes at server i; the index is where the command will be if committed. */
  start(i: number, cmd: string): { index: number; term: number; isLeader: boolean } {
    const rn = this.c.get(i).node;
    if (!rn || rn.raft.state !== StateType.Leader) return { index: -1, term: rn?.raft.term ?? 0, isLeader: false };
    const index = rn.raft.raftLog.lastIndex() + 1;
    const term = rn.raft.term;
    const ok = this.c.withNode(i, (n) => n.propose(enc.encode(cmd)));
    return ok ? { index, term, isLeader: true } : { index: -1, term, isLeader: false };
  }

  /** Lab's checkOneLeader: exactly one leader per term among connected servers; returns the newest. */
  checkOneLeader(): number {
    for (let iters = 0; iters < 10; iters++) {
      this.sleep(450 + this.c.rand.int(100));
      const byTerm = new Map<number, number[]>();
      for (let i = 1; i <= this.n; i++) {
        if (!this.connected.has(i) || !this.c.get(i).up) continue;
        const s = this.getState(i);
        if (s.isLeader) byTerm.set(s.term, [...(byTerm.get(s.term) ?? []), i]);
      }
      let last = -1;
      for (const [term, ls] of byTerm) {
        if (ls.length > 1) throw new Error(`term ${term} has ${ls.length} (>1) leaders`);
        last = Math.max(last, term);
      }
      if (byTerm.size > 0) return byTerm.get(last)![0];
    }
    throw new Error('expected one leader, got none');
  }

  /** Lab's checkTerms: connected servers agree on the term. */
  checkTerms(): number {
    let term = -1;
    for (let i = 1; i <= this.n; i++) {
      if (!this.connected.has(i) || !this.c.get(i).up) continue;
      const t = this.getState(i).term;
      if (term === -1) term = t;
      else if (term !== t) throw new Error('servers disagree on term');
    }
    return term;
  }

  /** Lab's checkNoLeader. */
  checkNoLeader(): void {
    for (let i = 1; i <= this.n; i++) {
      if (this.connected.has(i) && this.getState(i).isLeader) throw new Error(`expected no leader among connected servers, but ${i} claims to be leader`);
    }
  }

  /** How many servers applied `index`, and the command (they must agree). */
  nCommitted(index: number): { count: number; cmd: string | undefined } {
    this.check();
    let count = 0;
    let cmd: string | undefined;
    for (const log of this.logs.values()) {
      const v = log.get(index);
      if (v === undefined) continue;
      if (count > 0 && v !== cmd) throw new Error(`committed values do not match: index ${index}, ${cmd}, ${v}`);
      count++;
      cmd = v;
    }
    return { count, cmd };
  }

  /** Waits until at least `n` servers applied `index`; returns its command (or undefined if the term moved on). */
  wait(index: number, n: number, startTerm: number): string | undefined {
    let to = 10;
    for (let iters = 0; iters < 30; iters++) {
      const { count } = this.nCommitted(index);
      if (count >= n) break;
      this.sleep(to);
      if (to < 1000) to *= 2;
      if (startTerm > -1) {
        for (let i = 1; i <= this.n; i++) if (this.getState(i).term > startTerm) return undefined;
      }
    }
    const { count, cmd } = this.nCommitted(index);
    if (count < n) throw new Error(`only ${count} decided for index ${index}; wanted ${n}`);
    return cmd;
  }

  /**
   * Lab's one(): submits `cmd` to whichever server is leader (retrying for 10 s of virtual
   * time) until `expected` servers applied it; returns the index.
   */
  one(cmd: string, expected: number, retry: boolean): number {
    const t0 = this.c.now;
    let starts = 1;
    while (this.c.now - t0 < 10_000) {
      let index = -1;
      for (let si = 0; si < this.n; si++) {
        starts = (starts % this.n) + 1;
        if (this.connected.has(starts) && this.c.get(starts).up) {
          const r = this.start(starts, cmd);
          if (r.isLeader) { index = r.index; break; }
        }
      }
      if (index !== -1) {
        const t1 = this.c.now;
        while (this.c.now - t1 < 2000) {
          const { count, cmd: got } = this.nCommitted(index);
          if (count > 0 && count >= expected && got === cmd) return index;
          this.sleep(20);
        }
        if (!retry) throw new Error(`one(${cmd}) failed to reach agreement`);
      } else {
        this.sleep(50);
      }
    }
    throw new Error(`one(${cmd}) failed to reach agreement`);
  }

  /** Request-type messages sent so far (the lab counts RPCs, not replies). */
  rpcTotal(): number {
    let n = 0;
    for (const [t, v] of this.c.sent) if (!t.endsWith('Resp')) n += v;
    return n;
  }

  /** Largest log (stable entries in storage) of any running server. */
  maxLogSize(): number {
    let m = 0;
    for (const node of this.c.nodes.values()) {
      if (node.up) m = Math.max(m, node.live.lastIndex() - node.live.firstIndex() + 1);
    }
    return m;
  }
}
