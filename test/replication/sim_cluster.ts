/**
 * A cluster of real {@link ReplicationGroup}s (each with its own LevelStorage directory) on the
 * simulator's virtual clock and in-memory network, with a small replicated key-value state
 * machine and clients that record a history for the linearizability checker. Shared by the
 * `sim*` and `group*` tests.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { ConfChange } from '../../src/raft/index.js';
import { ReplicationError, ReplicationGroup, type RestoreSnapshot, type StateMachine } from '../../src/replication/index.js';
import { Simulation, type NetworkOptions, type SyncOptions } from '../../src/replication/sim/index.js';
import type { KvOp } from '../raft/linearizability.js';

const te = new TextEncoder();
const td = new TextDecoder();

/** Where the simulator's directories go: a RAM disk when there is one (fsync is free there). */
export function simTmpRoot(): string {
  if (process.env.SIM_TMPDIR) return process.env.SIM_TMPDIR;
  return fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}

/** What a member keeps across a crash besides its Raft log: the state machine's durable image. */
interface Disk {
  dir: string;
  image?: Uint8Array;
}

interface Image {
  applied: number;
  chain: string;
  kv: Array<[string, string]>;
}

/**
 * The replicated map. Each applied command extends a hash chain; `onApplied(index, chain)` lets
 * the cluster check that every member applies the same command at every index (state-machine
 * safety). `snapshot()` makes the state durable (the engine's certified checkpoint, in
 * miniature); `restore` installs a snapshot's state and makes it durable.
 */
export class KvMachine implements StateMachine<string> {
  kv = new Map<string, string>();
  applied = 0;
  chain = '';
  readonly restores: Array<{ index: number; from: number }> = [];

  constructor(private readonly disk: Disk, private readonly onApplied: (index: number, chain: string) => void) {
    if (disk.image) this.load(disk.image);
  }

  private load(data: Uint8Array): void {
    const img = JSON.parse(td.decode(data)) as Image;
    this.kv = new Map(img.kv);
    this.applied = img.applied;
    this.chain = img.chain;
  }

  private image(): Uint8Array {
    return te.encode(JSON.stringify({ applied: this.applied, chain: this.chain, kv: [...this.kv] } satisfies Image));
  }

  apply(index: number, command: Uint8Array): Promise<string> {
    if (index <= this.applied) throw new Error(`kv: entry ${index} applied after ${this.applied}`);
    const c = JSON.parse(td.decode(command)) as { k: string; v: string };
    this.kv.set(c.k, c.v);
    this.applied = index;
    this.chain = createHash('sha256').update(`${this.chain}|${index}|${c.k}=${c.v}`).digest('hex').slice(0, 16);
    this.onApplied(index, this.chain);
    return Promise.resolve(`${c.k}@${index}`);
  }

  isFatal(): boolean {
    return false;
  }

  snapshot(): { index: number; data: Uint8Array } | undefined {
    if (this.applied === 0) return undefined;
    const data = this.image();
    this.disk.image = data;
    return { index: this.applied, data };
  }

  restore(snapshot: RestoreSnapshot, from: number): Promise<void> {
    const img = JSON.parse(td.decode(snapshot.data)) as Image;
    if (img.applied > snapshot.index) throw new Error(`snapshot data at ${img.applied} beyond its index ${snapshot.index}`);
    this.load(snapshot.data);
    this.applied = Math.max(this.applied, snapshot.index);
    this.onApplied(img.applied, img.chain);
    this.disk.image = this.image();
    this.restores.push({ index: snapshot.index, from });
    return Promise.resolve();
  }
}

/** A member of the simulated cluster. */
export interface Member {
  id: number;
  disk: Disk;
  group?: ReplicationGroup<string>;
  sm?: KvMachine;
  /** Opened with join: true (added at runtime). */
  joiner: boolean;
}

/** Options of {@link SimCluster}. */
export interface SimClusterOptions {
  seed: number;
  /** Bootstrap voters 1..n. */
  n: number;
  net?: Partial<NetworkOptions>;
  tickMs?: number;
  electionTick?: number;
  heartbeatTick?: number;
  /** Group snapshot policy (0 = never). */
  snapshotEvery?: number;
  compactMargin?: number;
  /** The group's `compactMarginBytes` (default: the group's). */
  compactMarginBytes?: number;
  /** Log syncs that take virtual time (default: off, a sync completes at once). */
  syncs?: SyncOptions;
  /** The groups' `commitNoticeDelayMs` (default: the group's). */
  commitNoticeDelayMs?: number;
}

/** Several members on one {@link Simulation}. */
export class SimCluster {
  readonly sim: Simulation;
  readonly members = new Map<number, Member>();
  readonly root: string;
  /** index → chain after applying it, the first time any member applied it. */
  private readonly chains = new Map<number, string>();
  /** A violated invariant, thrown by {@link check}. */
  violation: string | undefined;
  readonly o: Required<Omit<SimClusterOptions, 'net' | 'syncs' | 'commitNoticeDelayMs' | 'compactMarginBytes'>> & Pick<SimClusterOptions, 'commitNoticeDelayMs' | 'compactMarginBytes'>;

  constructor(o: SimClusterOptions) {
    this.o = { tickMs: 10, electionTick: 10, heartbeatTick: 2, snapshotEvery: 0, compactMargin: 5, ...o };
    this.sim = new Simulation(o.seed, o.net);
    if (o.syncs) this.sim.syncs.options = o.syncs;
    this.root = fs.mkdtempSync(path.join(simTmpRoot(), `proofkv-sim-${o.seed}-`));
    for (let id = 1; id <= o.n; id++) this.members.set(id, { id, disk: { dir: path.join(this.root, `m${id}`) }, joiner: false });
    this.sim.afterEvent = () => this.checkLeaders();
  }

  private readonly leaderOfTerm = new Map<number, number>();

  /** Election safety: at most one leader per term, ever. */
  private checkLeaders(): void {
    for (const id of this.up()) {
      const s = this.members.get(id)!.group!.status();
      if (s.role !== 'leader') continue;
      const prev = this.leaderOfTerm.get(s.term);
      if (prev === undefined) this.leaderOfTerm.set(s.term, id);
      else if (prev !== id) this.violation ??= `t=${this.sim.now}: members ${prev} and ${id} both lead term ${s.term}`;
    }
  }

  /** Members removed from the group and stopped: no longer counted anywhere. */
  readonly retired = new Set<number>();

  /** Ids of all members (retired ones excluded). */
  ids(): number[] {
    return [...this.members.keys()].filter((id) => !this.retired.has(id));
  }

  /** Stops a member that was removed from the group and leaves it out of every check from now on. */
  async retire(id: number): Promise<void> {
    await this.crash(id);
    this.retired.add(id);
  }

  /** Ids of running members. */
  up(): number[] {
    return this.ids().filter((id) => this.members.get(id)!.group);
  }

  private onApplied(id: number, index: number, chain: string): void {
    if (this.sim.syncs.parked(id)) this.sim.syncs.counts.appliedDuringSync++;
    const seen = this.chains.get(index);
    if (seen === undefined) this.chains.set(index, chain);
    else if (seen !== chain) this.violation ??= `t=${this.sim.now}: member ${id} applied index ${index} with chain ${chain}, another member with ${seen}`;
  }

  /** Throws the first violated invariant. */
  check(): void {
    if (this.violation) throw new Error(this.violation);
  }

  /** Opens (or reopens) member `id` from its directory. */
  async start(id: number): Promise<void> {
    const m = this.members.get(id)!;
    if (m.group || this.retired.has(id)) return;
    const sm = new KvMachine(m.disk, (index, chain) => this.onApplied(id, index, chain));
    const peers = Array.from({ length: this.o.n }, (_, i) => ({ id: i + 1, peerUrl: `sim://${i + 1}` }));
    const syncs = this.sim.syncs.open(id);
    const group = await ReplicationGroup.open<string>(m.disk.dir, {
      stateMachine: sm, appliedIndex: sm.applied, id, peers, join: m.joiner,
      transport: this.sim.net.transport(id), resolvePeer: (p) => ({ id: p, peerUrl: `sim://${p}` }),
      tickMs: this.o.tickMs, electionTick: this.o.electionTick, heartbeatTick: this.o.heartbeatTick,
      seed: this.sim.rand.u32(), clock: this.sim.clock, snapshotEvery: this.o.snapshotEvery, compactMargin: this.o.compactMargin, ...(this.o.compactMarginBytes === undefined ? {} : { compactMarginBytes: this.o.compactMarginBytes }),
      afterSync: syncs.afterSync, commitNoticeDelayMs: this.o.commitNoticeDelayMs,
    });
    syncs.arm();
    m.group = group;
    m.sm = sm;
    this.sim.members.set(id, group as ReplicationGroup<unknown>);
  }

  /** Adds a member that will join at runtime (opened with join: true once started). */
  addJoiner(id: number): Member {
    const m: Member = { id, disk: { dir: path.join(this.root, `m${id}`) }, joiner: true };
    this.members.set(id, m);
    return m;
  }

  /** Crashes member `id`: its group is closed; its log and durable image stay. */
  async crash(id: number): Promise<void> {
    const m = this.members.get(id)!;
    if (!m.group) return;
    const g = m.group;
    m.group = undefined;
    m.sm = undefined;
    this.sim.members.delete(id);
    // A sync in progress completes (its write is on disk) and the group closes.
    this.sim.syncs.release(id);
    await g.close();
  }

  /** The running member that leads the highest term, if any. */
  leader(): number | undefined {
    let best: { id: number; term: number } | undefined;
    for (const id of this.up()) {
      const s = this.members.get(id)!.group!.status();
      if (s.role === 'leader' && (!best || s.term > best.term)) best = { id, term: s.term };
    }
    return best?.id;
  }

  /**
   * Proposes `cc` through the leader (any member when none is known), again after each refusal
   * or timeout, until it is applied there. Does not run the simulation (usable inside an event);
   * `done()` tells whether it was applied, `cancel()` stops retrying.
   */
  startChange(cc: ConfChange): { done: () => boolean; cancel: () => void } {
    let done = false;
    let stop = false;
    const attempt = (): void => {
      if (stop || done) return;
      const up = this.up();
      const via = this.leader() ?? up[this.sim.rand.int(Math.max(1, up.length))];
      const g = via === undefined ? undefined : this.members.get(via)?.group;
      if (!g) { this.sim.schedule(50, attempt); return; }
      g.proposeConfChange(cc, { timeoutMs: 1000 }).then(() => { done = true; }, () => this.sim.schedule(50, attempt));
    };
    attempt();
    return { done: () => done, cancel: () => { stop = true; } };
  }

  /** {@link startChange}, running the simulation until it is applied or `maxMs` pass; resolves whether it was. */
  async change(cc: ConfChange, maxMs = 10_000): Promise<boolean> {
    const ch = this.startChange(cc);
    const ok = await this.sim.runUntil(ch.done, maxMs);
    ch.cancel();
    return ok;
  }

  /** Group of a running member. */
  group(id: number): ReplicationGroup<string> {
    const g = this.members.get(id)?.group;
    if (!g) throw new Error(`member ${id} is not running`);
    return g;
  }

  /** True when every running member has applied the same index, that is the leader's commit. */
  converged(): boolean {
    const l = this.leader();
    if (l === undefined) return false;
    const commit = this.group(l).status().commit;
    return this.up().every((id) => {
      const s = this.group(id).status();
      return s.applied === commit && s.commit === commit && this.members.get(id)!.sm!.applied <= commit;
    });
  }

  /** Closes every member and removes the directories. */
  async close(): Promise<void> {
    for (const id of this.up()) await this.crash(id);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** Options of {@link Clients}. */
export interface ClientOptions {
  clients: number;
  keys: string[];
  /** Max think time between two operations of a client, ms. */
  thinkMs: number;
  /** Fraction of gets. */
  reads?: number;
}

/**
 * Clients issuing puts (through `propose`) and gets (through `readIndex`, then reading the
 * member's map) on random running members, recording each operation: a put that failed
 * definitely (never appended) is left out; one whose outcome is unknown gets `ret = ∞`; a failed
 * get is left out (it observed nothing).
 */
export class Clients {
  readonly history: KvOp[] = [];
  private running = true;
  private outstanding = 0;
  /** Counts by outcome. */
  readonly stats = { ok: 0, refused: 0, indeterminate: 0 };

  constructor(private readonly c: SimCluster, private readonly o: ClientOptions) {
    for (let cl = 1; cl <= o.clients; cl++) c.sim.schedule(c.sim.rand.int(o.thinkMs + 1), () => this.next(cl, 0));
  }

  /** Stops issuing operations. */
  stop(): void {
    this.running = false;
  }

  /** True when no operation is waiting. */
  idle(): boolean {
    return this.outstanding === 0;
  }

  private next(client: number, seq: number): void {
    if (!this.running) return;
    const sim = this.c.sim;
    const up = this.c.up();
    const again = () => sim.schedule(1 + sim.rand.int(this.o.thinkMs + 1), () => this.next(client, seq + 1));
    if (up.length === 0) { again(); return; }
    const target = up[sim.rand.int(up.length)];
    const m = this.c.members.get(target)!;
    const key = this.o.keys[sim.rand.int(this.o.keys.length)];
    const call = sim.now;
    this.outstanding++;
    if (sim.rand.float() < (this.o.reads ?? 0.5)) {
      m.group!.readIndex().then(
        () => {
          const sm = m.sm;
          if (sm) this.record({ client, kind: 'get', key, call, ret: sim.now, output: sm.kv.get(key) ?? '' });
          this.stats.ok++;
        },
        () => { this.stats.refused++; },
      ).finally(() => { this.outstanding--; again(); });
    } else {
      const value = `${client}.${seq}`;
      m.group!.propose(te.encode(JSON.stringify({ k: key, v: value }))).then(
        () => { this.record({ client, kind: 'put', key, value, call, ret: sim.now }); this.stats.ok++; },
        (err: unknown) => {
          if (err instanceof ReplicationError && !err.indeterminate) { this.stats.refused++; return; }
          this.record({ client, kind: 'put', key, value, call, ret: Infinity });
          this.stats.indeterminate++;
        },
      ).finally(() => { this.outstanding--; again(); });
    }
  }

  private record(op: KvOp): void {
    this.history.push(op);
  }
}
