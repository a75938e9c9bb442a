/**
 * A small replicated key-value state machine with client sessions, and a client workload that
 * drives it through the simulated cluster while recording a history for the linearizability
 * checker.
 *
 * Writes (put, append) go through the log as `{c, s, op, k, v}`; the session table
 * (client → last applied seq) is part of the replicated state, so retries of the same
 * (client, seq) apply once. Reads use ReadIndex: the node asks for a read index and answers
 * from its state once it has applied up to it — on the leader or on a follower.
 */

import { EntryType, type Entry } from '../../../src/raft/types.js';
import type { KvOp } from '../linearizability.js';
import type { Cluster, SimNode, StateMachine } from './cluster.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Cmd {
  c: number;
  s: number;
  op: 'put' | 'append';
  k: string;
  v: string;
}

/** The replicated state. */
export class KvApp implements StateMachine {
  kv = new Map<string, string>();
  sessions = new Map<number, number>();

  apply(e: Entry): void {
    if (e.type !== EntryType.Normal || e.data.length === 0) return;
    const cmd = JSON.parse(dec.decode(e.data)) as Cmd;
    if ((this.sessions.get(cmd.c) ?? 0) >= cmd.s) return; // duplicate of an applied request
    this.sessions.set(cmd.c, cmd.s);
    const cur = this.kv.get(cmd.k) ?? '';
    this.kv.set(cmd.k, cmd.op === 'put' ? cmd.v : cur + cmd.v);
  }

  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify({ kv: [...this.kv], s: [...this.sessions] }));
  }

  restore(data: Uint8Array): void {
    const o = JSON.parse(dec.decode(data)) as { kv: Array<[string, string]>; s: Array<[number, number]> };
    this.kv = new Map(o.kv);
    this.sessions = new Map(o.s);
  }
}

/** Workload parameters. */
export interface WorkloadOptions {
  clients: number;
  keys: string[];
  /** A client resends to another node after this long without an answer. */
  retryMs: number;
  /** A client gives up on an operation (indeterminate) after this long. */
  timeoutMs: number;
  /** Think time between operations, max. */
  thinkMs: number;
}

interface Pending {
  client: number;
  s: number;
  kind: KvOp['kind'];
  key: string;
  value?: string;
  call: number;
  attempt: number;
  done: boolean;
  target: number;
}

/** Clients issuing put/get/append against the cluster, recording every operation. */
export class Workload {
  readonly history: KvOp[] = [];
  private readonly seq = new Map<number, number>();
  private readonly guess = new Map<number, number>();
  private readonly writes = new Map<string, Pending>(); // `${node}:${c}:${s}`
  private readonly reads = new Map<string, Pending>(); // ctx string
  private running = true;
  /** Operations completed with a response. */
  completed = 0;

  constructor(private readonly c: Cluster, private readonly o: WorkloadOptions) {
    for (const n of c.nodes.values()) {
      n.onApply = (id, e) => this.onApply(id, e);
      n.onReads = (node) => this.onReads(node);
    }
    for (let cl = 1; cl <= o.clients; cl++) c.schedule(c.rand.int(o.thinkMs + 1), () => this.next(cl));
  }

  /** Stops issuing new operations (outstanding ones finish or time out). */
  stop(): void {
    this.running = false;
  }

  /** True when no operation is outstanding. */
  idle(): boolean {
    return this.outstanding === 0;
  }

  private outstanding = 0;

  private next(client: number): void {
    if (!this.running) return;
    const s = (this.seq.get(client) ?? 0) + 1;
    this.seq.set(client, s);
    const r = this.c.rand.int(10);
    const kind: KvOp['kind'] = r < 4 ? 'get' : r < 7 ? 'append' : 'put';
    const key = this.o.keys[this.c.rand.int(this.o.keys.length)];
    const p: Pending = {
      client, s, kind, key, value: kind === 'get' ? undefined : `${client}.${s} `, call: this.c.now,
      attempt: 0, done: false, target: 0,
    };
    this.outstanding++;
    this.c.schedule(this.o.timeoutMs, () => this.timeout(p));
    this.attempt(p);
  }

  private pickTarget(p: Pending): number {
    const ids = this.c.ids();
    const g = this.guess.get(p.client);
    if (p.attempt === 0 && g !== undefined) return g;
    return ids[this.c.rand.int(ids.length)];
  }

  private attempt(p: Pending): void {
    if (p.done) return;
    p.attempt++;
    const target = this.pickTarget(p);
    p.target = target;
    const node = this.c.get(target);
    let ok = false;
    if (node.up && !node.paused) {
      if (p.kind === 'get') {
        const ctx = `${p.client}:${p.s}:${p.attempt}`;
        this.reads.set(ctx, p);
        ok = this.c.withNode(target, (rn) => rn.readIndex(enc.encode(ctx)));
        if (!ok) this.reads.delete(ctx);
      } else {
        const cmd: Cmd = { c: p.client, s: p.s, op: p.kind as Cmd['op'], k: p.key, v: p.value! };
        this.writes.set(`${target}:${p.client}:${p.s}`, p);
        ok = this.c.withNode(target, (rn) => rn.propose(enc.encode(JSON.stringify(cmd))));
        if (!ok) this.writes.delete(`${target}:${p.client}:${p.s}`);
        else {
          const lead = node.node?.leader();
          if (lead) this.guess.set(p.client, lead);
        }
      }
    }
    // Resend elsewhere if nothing comes back soon (or right away if refused).
    this.c.schedule(ok ? this.o.retryMs : 5 + this.c.rand.int(20), () => this.attempt(p));
  }

  private finish(p: Pending, output: string | undefined): void {
    if (p.done) return;
    p.done = true;
    this.outstanding--;
    this.completed++;
    this.history.push({ client: p.client, kind: p.kind, key: p.key, value: p.value, call: p.call, ret: this.c.now, output });
    this.guess.set(p.client, p.target);
    this.c.schedule(this.c.rand.int(this.o.thinkMs + 1), () => this.next(p.client));
  }

  private timeout(p: Pending): void {
    if (p.done) return;
    p.done = true;
    this.outstanding--;
    // Indeterminate: it may or may not have happened.
    this.history.push({ client: p.client, kind: p.kind, key: p.key, value: p.value, call: p.call, ret: Infinity, output: undefined });
    this.guess.delete(p.client);
    this.c.schedule(this.c.rand.int(this.o.thinkMs + 1), () => this.next(p.client));
  }

  private onApply(id: number, e: Entry): void {
    if (e.type !== EntryType.Normal || e.data.length === 0) return;
    const cmd = JSON.parse(dec.decode(e.data)) as Cmd;
    const k = `${id}:${cmd.c}:${cmd.s}`;
    const p = this.writes.get(k);
    if (!p) return;
    this.writes.delete(k);
    this.finish(p, undefined);
  }

  private onReads(n: SimNode): void {
    const app = n.app as KvApp;
    const keep = [];
    for (const rs of n.pendingReads) {
      if (rs.index > n.applied) { keep.push(rs); continue; }
      const ctx = dec.decode(rs.requestCtx);
      const p = this.reads.get(ctx);
      if (!p) continue;
      this.reads.delete(ctx);
      this.finish(p, app.kv.get(p.key) ?? '');
    }
    n.pendingReads = keep;
  }
}
