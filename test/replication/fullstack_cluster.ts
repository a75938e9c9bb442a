/**
 * The full-stack simulated cluster (see fullstack.test.ts): 3 or 5 members in one process, each a
 * real {@link ProofDB} in external-log mode under a real {@link RaftWritePath} (group + the
 * `CommandApplier` + the replicated session store + co-signing with the members as signer set,
 * majority quorum), on the seeded {@link Simulation} (virtual clock, in-memory network). Members
 * crash (everything closed; the memtable is lost, the Raft log and the engine's files stay) and
 * restart from the same directory. Every certification a member reports is compared with what
 * the other members certified at the same checkpoint-log size.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ProofDB, type DBOptions } from '../../src/index.js';
import type { SignedCheckpoint } from '../../src/proof/checkpointer.js';
import type { MemberInfo } from '../../src/replication/members.js';
import { SeededRand } from '../../src/raft/index.js';
import { signerSetHash } from '../../proofs/signer_set.js';
import { bootstrapSignerSet } from '../../server/cluster_config.js';
import { Simulation, type NetworkOptions, type SyncOptions } from '../../src/replication/sim/index.js';
import { RaftWritePath } from '../../server/raft_write_path.js';
import { TINY } from '../engine/harness.js';
import { simTmpRoot } from './sim_cluster.js';

/** Engine options that make a tiny database flush and compact often. */
export const FULLSTACK_DB: DBOptions = {
  ...TINY,
  writeAheadLog: 'external',
  blockCacheSize: 64 * 1024,
  tableMemoryBytes: 1024 * 1024,
};

/** Wall-clock origin of the simulation: commands carry `EPOCH + virtual time`. */
export const EPOCH = Date.UTC(2026, 0, 1);

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Refusals of snapshot installs whose text a run keeps (the count is kept in full). */
const MAX_REFUSALS_KEPT = 16;

/** Member `id`'s registry entry: distinct loopback origins (never dialled: the simulated network routes by id). */
export function memberInfo(id: number, publicKey: Uint8Array): MemberInfo {
  return { id, clientUrl: `http://127.0.0.1:${10000 + id}`, peerUrl: `http://127.0.0.1:${20000 + id}`, publicKey };
}

/** A certified head as comparable text: checkpoint, head and the certificate's signatures. */
export function certText(c: SignedCheckpoint): string {
  const k = c.checkpoint;
  return JSON.stringify({
    index: k.index, seq: k.seq, masterRoot: hex(k.masterRoot), time: k.time,
    signerSetHash: k.signerSetHash && hex(k.signerSetHash), prev: k.prevCheckpointHash && hex(k.prevCheckpointHash),
    head: { size: c.head.size, root: hex(c.head.root) },
    signatures: c.signatures.map((g) => hex(g.publicKey) + hex(g.signature)),
  });
}

/** One member: its directory and, while it runs, its engine and write path. */
export interface FullMember {
  id: number;
  dir: string;
  /** Added at runtime: opened with `join: true` (it learns the log from the leader). */
  joiner?: boolean;
  db?: ProofDB;
  wp?: RaftWritePath;
}

/** Options of {@link FullCluster}. */
export interface FullClusterOptions {
  seed: number;
  n: number;
  net?: Partial<NetworkOptions>;
  tickMs?: number;
  electionTick?: number;
  /** `RaftWritePathOptions.maxPendingSessionBytes`: small values make the session store ask for checkpoints. */
  maxPendingSessionBytes?: number;
  /** Log syncs that take virtual time (default: off, a sync completes at once). */
  syncs?: SyncOptions;
  /**
   * Entries kept behind a certified checkpoint's snapshot (`RaftSnapshotOptions.compactMargin`;
   * default the server's). Small values compact the log so that a member far behind, or one that
   * joins, installs a snapshot: the engine's tables, fetched in chunks from another member.
   */
  compactMargin?: number;
}

/** The cluster. Create with {@link FullCluster.open}; {@link check} throws the first violation. */
export class FullCluster {
  readonly sim: Simulation;
  readonly root: string;
  readonly members = new Map<number, FullMember>();
  /** The bootstrap members, as a cluster file lists them: the seed of every member's registry. */
  readonly initial: MemberInfo[] = [];
  /** The bootstrap signer set's hash (`cluster.json`'s `initialSignerSet`). */
  readonly initialSignerSet: Uint8Array;
  /** Members removed from the group and stopped: left out of everything from then on. */
  readonly retired = new Set<number>();
  /** Checkpoint-log size → the certified head (as {@link certText}) the first member reported. */
  readonly certified = new Map<number, { by: number; text: string }>();
  /** Certifications reported, and how many were compared with another member's. */
  readonly certStats = { reports: 0, compared: 0 };
  violation: string | undefined;
  /** Events of the run (certifications, crashes, restarts) for the determinism check. */
  readonly trace: string[] = [];
  /**
   * Not part of the trace: the engine's durable log index at each open, and engine work summed
   * over every open (flushes and compactions run on real time; see docs/replication.md § The
   * simulator for why what replicas compute does not depend on it).
   */
  readonly diag = { durableAtOpen: [] as string[], flushes: 0, compactions: 0 };
  /**
   * Snapshots installed (the engine's tables of a certified checkpoint) and refused over the run,
   * and the text of the first {@link MAX_REFUSALS_KEPT} refusals (a stuck install repeats one).
   */
  /** Snapshot installs and refusals; `tables` installed in all, `reusedTables` of them not fetched (the member held them). */
  readonly snapshots = { installed: 0, refused: 0, tables: 0, reusedTables: 0, refusals: [] as string[], installs: [] as string[] };
  private readonly keys = new Map<number, Uint8Array>();

  private constructor(private readonly o: FullClusterOptions) {
    this.sim = new Simulation(o.seed, o.net, 400_000);
    if (o.syncs) this.sim.syncs.options = o.syncs;
    this.root = fs.mkdtempSync(path.join(simTmpRoot(), `proofkv-fullsim-${o.seed}-`));
    for (let id = 1; id <= o.n; id++) {
      // Seeded node keys: a run's signatures (and so its log roots) are a function of the seed.
      const key = new Uint8Array(32);
      for (let i = 0; i < 32; i += 4) new DataView(key.buffer).setUint32(i, this.sim.rand.u32());
      this.keys.set(id, key);
      this.initial.push(memberInfo(id, ed25519.getPublicKey(key)));
      this.members.set(id, { id, dir: path.join(this.root, `m${id}`) });
    }
    this.initialSignerSet = signerSetHash(bootstrapSignerSet(this.initial));
  }

  /**
   * Adds member `id` to the simulation, to be added to the group at runtime: its key (seeded, from
   * a generator of its own so that no other draw moves) and directory; {@link start} opens it with
   * `join: true`. Returns what `POST /v1/cluster/members` would be given for it.
   */
  addJoiner(id: number): MemberInfo {
    const r = new SeededRand(this.o.seed ^ (0x7a11 + id));
    const key = new Uint8Array(32);
    for (let i = 0; i < 32; i += 4) new DataView(key.buffer).setUint32(i, r.u32());
    this.keys.set(id, key);
    this.members.set(id, { id, dir: path.join(this.root, `m${id}`), joiner: true });
    return memberInfo(id, ed25519.getPublicKey(key));
  }

  /** Stops a member removed from the group and leaves it out of every check from now on. */
  async retire(id: number): Promise<void> {
    this.retired.add(id);
    await this.crash(id);
    this.trace.push(`${this.sim.now} retired ${id}`);
  }

  static async open(o: FullClusterOptions): Promise<FullCluster> {
    const c = new FullCluster(o);
    for (const id of c.ids()) await c.start(id);
    return c;
  }

  /** Ids of every member (retired ones excluded). */
  ids(): number[] {
    return [...this.members.keys()].filter((id) => !this.retired.has(id));
  }

  /** Ids of running members. */
  up(): number[] {
    return this.ids().filter((id) => this.members.get(id)!.wp);
  }

  /** The running member that leads the highest term, if any. */
  leader(): number | undefined {
    let best: { id: number; term: number } | undefined;
    for (const id of this.up()) {
      const s = this.members.get(id)!.wp!.cluster();
      if (s.role === 'leader' && (!best || s.term > best.term)) best = { id, term: s.term };
    }
    return best?.id;
  }

  private fail(msg: string): void {
    this.violation ??= `t=${this.sim.now}: ${msg}`;
  }

  /** Throws the first violation seen. */
  check(): void {
    if (this.violation) throw new Error(this.violation);
  }

  /** Opens (or reopens) member `id` from its directory, as `proofkv serve --cluster` does. */
  async start(id: number): Promise<void> {
    const m = this.members.get(id)!;
    if (m.wp || this.retired.has(id)) return;
    if (!fs.existsSync(m.dir)) {
      fs.mkdirSync(m.dir, { recursive: true });
      fs.writeFileSync(path.join(m.dir, 'NODE_KEY'), this.keys.get(id)!, { mode: 0o600 });
    }
    const db = await ProofDB.open(m.dir, FULLSTACK_DB);
    const peers = this.ids().map((p) => ({ id: p, peerUrl: `sim://${p}` }));
    const syncs = this.sim.syncs.open(id);
    let wp: RaftWritePath | undefined;
    try {
      wp = await RaftWritePath.open(db, path.join(m.dir, 'raft'), {
        // Fire and forget, as the server does; a lost proposal is proposed again by the timer. It
        // follows a checkpoint's record (real I/O): the simulation runs it once every member is idle.
        proposeCosign: (cmd) => {
          const to = m.wp;
          if (to) this.sim.defer(id, () => void (m.wp === to ? to.propose(cmd).catch(() => undefined) : undefined));
        },
        onCosign: (_cmd, res) => {
          if (res.divergence) this.fail(`member ${id} diverged at size ${res.divergence.size}`);
          if (res.certified) this.onCertified(id, res.certified);
        },
        // As `serve --cluster` opens a member: the registry seeded from the cluster file's members
        // gives each checkpoint's signer set (it follows the membership changes in the log).
        cluster: { id, peers, transport: this.sim.net.transport(id), members: this.initial, join: m.joiner === true, initialSignerSet: this.initialSignerSet },
        tickMs: this.o.tickMs ?? 10,
        group: { clock: this.sim.clock, seed: this.sim.rand.u32(), electionTick: this.o.electionTick ?? 10, heartbeatTick: 1, afterSync: syncs.afterSync },
        // Writes applied while their member waited for a sync: counted (the run's summary).
        onApplied: () => { if (this.sim.syncs.parked(id)) this.sim.syncs.counts.appliedDuringSync++; },
        now: () => EPOCH + this.sim.now,
        afterEngineIo: (step) => this.sim.defer(id, step),
        ...(this.o.maxPendingSessionBytes === undefined ? {} : { maxPendingSessionBytes: this.o.maxPendingSessionBytes }),
        snapshots: {
          ...(this.o.compactMargin === undefined ? {} : { compactMargin: this.o.compactMargin }),
          onEvent: (e) => {
            // Counted, not traced: two members' installs in one settling round finish in the
            // order of their disks.
            if (e.type === 'installed') {
              this.snapshots.installed++;
              this.snapshots.tables += e.tables;
              this.snapshots.reusedTables += e.reusedTables;
              if (this.snapshots.installs.length < MAX_REFUSALS_KEPT) this.snapshots.installs.push(`${id}@${this.sim.now}: ${e.index} from ${e.from}`);
            }
            else if (e.type === 'refused') {
              this.snapshots.refused++;
              if (this.snapshots.refusals.length < MAX_REFUSALS_KEPT) this.snapshots.refusals.push(`${id}@${this.sim.now}: ${e.code} ${e.message}`);
            }
          },
        },
      });
    } catch (err) {
      await db.close();
      throw err;
    }
    syncs.arm();
    this.diag.durableAtOpen.push(`${id}@${this.sim.now}:${db.logIndex().durable}`);
    m.db = db;
    m.wp = wp;
    this.sim.members.set(id, wp);
    // Signatures proposed while the log was replayed at open went nowhere.
    wp.resumeCosign();
  }

  /** Crashes member `id`: the write path and the engine close; the memtable is lost. */
  async crash(id: number): Promise<void> {
    const m = this.members.get(id)!;
    if (!m.wp) return;
    const { wp, db } = m;
    m.wp = undefined;
    m.db = undefined;
    this.sim.members.delete(id);
    // A sync in progress completes (its write is on disk) and the write path closes.
    this.sim.syncs.release(id);
    await wp.close();
    const st = db!.stats();
    await db!.close();
    this.diag.flushes += st.flushes;
    this.diag.compactions += st.compactions;
  }

  /** Every member that certifies a head of size s holds the same checkpoint, head and certificate. */
  private onCertified(id: number, c: SignedCheckpoint): void {
    this.certStats.reports++;
    const text = certText(c);
    const seen = this.certified.get(c.head.size);
    if (!seen) {
      this.certified.set(c.head.size, { by: id, text });
      this.trace.push(`${this.sim.now} certified ${c.head.size} ${text}`);
    } else {
      this.certStats.compared++;
      if (seen.text !== text) this.fail(`member ${id} certified head ${c.head.size} as ${text}, member ${seen.by} as ${seen.text}`);
    }
    // What the member serves is that certificate.
    const served = this.members.get(id)!.db;
    if (served && served.certification().certifiedSize === c.head.size && certText(served.latestCheckpoint()) !== text) {
      this.fail(`member ${id} serves ${certText(served.latestCheckpoint())} after certifying ${text}`);
    }
  }

  /** Closes every member and removes the directories. */
  async close(): Promise<void> {
    for (const id of this.up()) await this.crash(id);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
