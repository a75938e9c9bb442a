/**
 * The state machine's snapshot hooks of {@link RaftWritePath} (issue 10, requirement 6;
 * docs/replication.md § Snapshots, "Wiring"): how the Raft log is compacted behind certified
 * checkpoints, and how a member behind the leader's compacted log catches up by installing the
 * leader's tables while its process keeps running.
 *
 * - **Capture.** When a `checkpoint` entry at log index i has been applied, the session table is
 *   exported as of i (`SessionStore.export` only reaches back to the store's base, which later
 *   flushes move past i, so it is captured now) and kept until a newer checkpoint is certified —
 *   in memory and on disk (`CaptureStore`), so that a member restarted before it saw the
 *   checkpoint certified still records it ({@link RaftSnapshots.loadCaptures}).
 * - **Record and compact.** Once that checkpoint is certified (at once in a one-member group, when
 *   a quorum's `cosign` entries are applied otherwise), its descriptor
 *   (`snapshotDescriptor`: certificate, table list, `CHECKPOINTS` prefix, the captured session
 *   table) is recorded as the Raft snapshot at i (`ReplicationGroup.snapshotAt`), and the log is
 *   compacted behind it, keeping the group's `compactMargin` entries — and, while a set-change
 *   checkpoint's certificate lacks signatures, the entries from that checkpoint's (`keepFrom`), so
 *   that members behind it apply and sign it instead of skipping it. Every certified checkpoint
 *   is recorded: a member serves only the tables of its latest certified checkpoint, so the Raft
 *   snapshot a leader sends must be that one.
 * - **Serve.** The peer listener answers chunk reads of the latest certified checkpoint, and of
 *   one a member is still fetching: the first chunk read of a snapshot holds its tables
 *   (`ProofDB.holdServedCheckpoint`) until no chunk of it was read for {@link SNAPSHOT_HOLD_MS}
 *   (at most {@link MAX_HELD_SNAPSHOTS} held), so that a transfer longer than the checkpoint
 *   interval completes instead of failing at every newer checkpoint.
 * - **Restore.** A member sent a Raft snapshot validates the session table in it, fetches the
 *   tables from the sender in ≤ 1 MiB chunks (`Transport.fetchSnapshotChunk`), and
 *   `installSnapshot` checks them against the certified MasterRoot, with the signer set this
 *   member knows as trust, before anything is replaced, and records the shape the sender tells
 *   (`src/replication/shape.ts`); the engine is swapped in place
 *   (`ProofDB.replaceFromSnapshot`: the routes keep their `ProofDB`), then the session table is
 *   imported. A failure leaves the old state and the group asks the leader again.
 *   A crash between the engine install and the session import is repaired at the next open
 *   ({@link recoverInstalledSessions}).
 * @module
 */
import type { ProofDB } from '../src/index.js';
import {
  decodeSnapshotDescriptor, decodeTable, installSnapshot, readInstalledSnapshot, readServedChunk, readSnapshotChunk, servedSnapshotOf, snapshotDescriptor,
  SnapshotError, SnapshotErrorCode, SHAPE_FILE, type ServedSnapshot,
  type Capture, type CaptureStore, type FetchChunk, type RestoreSnapshot, type SessionStore, type SnapshotTrust, type Transport,
} from '../src/replication/index.js';
import { decodeMembers } from '../src/replication/members.js';
import type { WriteCommand } from './write_path.js';
import { sameShape, shapeOf } from '../src/options.js';

/** Options of the snapshot wiring (`RaftWritePathOptions.snapshots`). */
export interface RaftSnapshotOptions {
  /**
   * Log entries kept behind a recorded snapshot, so that a member lagging by less catches up
   * from the log (the group's `compactMargin`; default `DEFAULT_COMPACT_MARGIN`, 5000).
   */
  compactMargin?: number;
  /** Bytes of the entries kept behind a recorded snapshot, at most (the group's `compactMarginBytes`; default 64 MiB). */
  compactMarginBytes?: number;
  /**
   * Bytes of log entries held in memory above which a checkpoint is proposed, so that its
   * certified snapshot compacts the log (the group's `maxLogMemoryBytes`; default 256 MiB).
   */
  maxLogMemoryBytes?: number;
  /**
   * Reads a chunk of snapshot file `name` of the snapshot at `index` from member `from`; `next` is
   * the default, the transport's `fetchSnapshotChunk`. Tests inject faults here.
   */
  fetchChunk?: (from: number, index: number, name: string, offset: number, length: number, next: ChunkFetcher) => Promise<Uint8Array>;
  /** How long an install waits for open iterators before it is refused (`ProofDB.replaceFromSnapshot`; default 5000 ms). */
  drainMs?: number;
  /** Called for each snapshot event (the node logs them). */
  onEvent?: (event: SnapshotEvent) => void;
}

/** Reads `length` bytes at `offset` of file `name` of the snapshot at `index` from member `from`. */
export type ChunkFetcher = (from: number, index: number, name: string, offset: number, length: number) => Promise<Uint8Array>;

/** What the wiring reports: a snapshot recorded (and the log compacted), installed, or refused. */
export type SnapshotEvent =
  | { type: 'recorded'; index: number; size: number }
  /**
   * `shape`: whether the installed manifest records the shape the serving member told (`'told'`)
   * or this member's own (`'own'`: a serving member of a release from before shapes were told);
   * `shapeChanged`: the member builds with another shape than before the install.
   */
  | { type: 'installed'; index: number; from: number; tables: number; bytes: number; reusedTables: number; reusedBytes: number; shape: 'told' | 'own'; shapeChanged: boolean }
  | { type: 'refused'; index: number; from: number; code: string; message: string }
  | { type: 'skipped'; index: number; message: string }
  /**
   * Captures read from disk at open (`loaded`: their indexes, newest first) and those refused
   * (damaged, torn or not as of their index: the member goes on without them).
   */
  | { type: 'captures'; loaded: number[]; refused: { file: string; reason: string }[] }
  /** A capture could not be written to or removed from disk (it stays in memory). */
  | { type: 'capture_failed'; message: string }
  /**
   * Checkpoint entries are being applied again while the group opens: nothing is recorded until
   * it is open (the next certified checkpoint is). Reported once per open, not per entry.
   */
  | { type: 'deferred'; index: number };

/**
 * Records the Raft snapshot at `index` (the group's `snapshotAt`); `keepFrom`, when set, is a log
 * index the compaction keeps entries for (an incomplete set change's checkpoint entry).
 */
export type RecordSnapshot = (index: number, data: Uint8Array, keepFrom?: number) => Promise<void>;

/** Counters of {@link RaftSnapshots}. */
export interface SnapshotCounters {
  /** Raft snapshots recorded at certified checkpoints. */
  recorded: number;
  /** Snapshots installed from another member. */
  installed: number;
  /** Snapshots refused or failed while installing (the leader sends them again). */
  refused: number;
  /** Log index of the latest recorded or installed snapshot (0: none). */
  index: number;
  /** Snapshots held now for members fetching them (at most {@link MAX_HELD_SNAPSHOTS}). */
  held: number;
  /** Bytes of the snapshots installed since start that were fetched from another member. */
  fetchedBytes: number;
  /** Bytes of the snapshots installed since start found in the data directory instead (tables verified, not fetched). */
  reusedBytes: number;
}

/** Session tables captured at checkpoints not yet recorded: the pending one and the latest certified. */
const MAX_CAPTURED = 2;

/**
 * How long a snapshot's tables stay held after the last chunk of it was read (ms): a member
 * fetching it reads chunk after chunk, so only a stalled or abandoned fetch lets it go.
 */
export const SNAPSHOT_HOLD_MS = 30_000;
/**
 * Snapshots held for fetching members at most (the oldest is let go for a newer one). Each keeps
 * the table files of one checkpoint on disk that compactions since would have deleted.
 */
export const MAX_HELD_SNAPSHOTS = 2;

/** A served snapshot held for fetching members. */
interface Held {
  served: ServedSnapshot;
  release: () => void;
  /** Clock time of the last chunk read of it. */
  last: number;
}

/** The snapshot hooks and the compaction behind certified checkpoints of one member. */
export class RaftSnapshots {
  /** Session tables exported as of checkpoint entries' indexes (at most {@link MAX_CAPTURED}, each bounded by the session budget). */
  private readonly captured = new Map<number, Uint8Array>();
  private latest: { index: number; data: Uint8Array } | undefined;
  /** A snapshot is being recorded (one at a time); `again`: a newer one may be certified meanwhile. */
  private recording = false;
  /** Member registries exported at the same checkpoints as {@link captured} (cluster members). */
  private readonly capturedMembers = new Map<number, Uint8Array>();
  private again = false;
  /** A `deferred` event was reported (once per open). */
  private deferredNoted = false;
  /** Snapshots held for members fetching them, by log index (at most {@link MAX_HELD_SNAPSHOTS}). */
  private readonly held = new Map<number, Held>();
  private readonly counters: SnapshotCounters = { recorded: 0, installed: 0, refused: 0, index: 0, held: 0, fetchedBytes: 0, reusedBytes: 0 };

  constructor(
    private readonly db: ProofDB,
    private readonly sessions: SessionStore,
    private readonly options: RaftSnapshotOptions & {
      /** Carries chunk reads both ways (absent in a one-member group: nothing is fetched). */
      transport?: Transport;
      /** The signers this member trusts: the certificate of an installed snapshot must meet them. */
      trust: () => SnapshotTrust;
      /** Byte budget of the session table (validates the table a snapshot carries). */
      maxSessionBytes: number;
      /** Where captures are kept across restarts (absent: in memory only). */
      captures?: CaptureStore;
      /** Clock time in ms (the group's clock: the simulator's is virtual; default `Date.now`); times the holds of served snapshots. */
      now?: () => number;
      /**
       * The member registry of a cluster member: exported into each snapshot as of its
       * checkpoint's index, imported with an installed one (a member that missed membership
       * changes while behind must not keep its old registry: its signer sets would differ).
       */
      members?: { export(index: number): Uint8Array | undefined; import(bytes: Uint8Array): number };
    },
  ) {
    options.transport?.onSnapshotRead((index, name, offset, length) => this.serveChunk(index, name, offset, length));
  }

  /**
   * A chunk read of snapshot `index` from a fetching member: the latest certified checkpoint's, or
   * one held since an earlier read of it (see the module comment); anything else is refused as
   * `readSnapshotChunk` refuses it.
   */
  private serveChunk(index: number, name: string, offset: number, length: number): Promise<Uint8Array> {
    if (name === SHAPE_FILE) return readSnapshotChunk(this.db, index, name, offset, length);
    const h = this.hold(index);
    // Neither held nor the one served now: refused (SNAPSHOT_UNAVAILABLE, or the database's error).
    if (!h) return readSnapshotChunk(this.db, index, name, offset, length);
    return readServedChunk(this.db, h.served, name, offset, length);
  }

  /**
   * The hold of snapshot `index`, taken now if it is the one served and not held yet, its time
   * renewed; undefined when it is neither held nor served (see the module comment).
   */
  private hold(index: number): Held | undefined {
    const now = this.now();
    this.expireHolds(now);
    let h = this.held.get(index);
    if (!h) {
      let served: ServedSnapshot | undefined;
      try {
        served = servedSnapshotOf(this.db);
      } catch {
        served = undefined;
      }
      if (served?.index !== index) return undefined;
      const hold = this.db.holdServedCheckpoint();
      if (!hold) return undefined;
      while (this.held.size >= MAX_HELD_SNAPSHOTS) this.letGo([...this.held.entries()].sort((a, b) => a[1].last - b[1].last)[0][0]);
      h = { served, release: hold.release, last: now };
      this.held.set(index, h);
    }
    h.last = now;
    return h;
  }

  /** Lets go of the held snapshots no chunk of which was read for {@link SNAPSHOT_HOLD_MS}. */
  private expireHolds(now: number): void {
    for (const [index, h] of [...this.held]) if (now - h.last >= SNAPSHOT_HOLD_MS) this.letGo(index);
  }

  private letGo(index: number): void {
    const h = this.held.get(index);
    if (!h) return;
    this.held.delete(index);
    h.release();
  }

  private now(): number {
    return this.options.now ? this.options.now() : Date.now();
  }

  /** Snapshots held now for members fetching them (their log indexes). */
  heldSnapshots(): number[] {
    return [...this.held.keys()];
  }

  /** What was recorded and installed so far. */
  stats(): Readonly<SnapshotCounters> {
    return { ...this.counters, held: this.held.size };
  }

  /**
   * After entry `index` (`cmd`) was applied: captures the session table at a checkpoint, and
   * records the latest certified checkpoint as the Raft snapshot through `record` once it is new.
   * `record` is undefined while the group is still opening (entries applied again from the log):
   * the capture happens, the recording waits for the next checkpoint or cosign entry, and one
   * `deferred` event says so (not a `skipped` warning per replayed entry).
   */
  afterApply(index: number, cmd: WriteCommand, record: (RecordSnapshot) | undefined): void {
    if (cmd.type === 'checkpoint') {
      try {
        this.captured.set(index, this.sessions.export(index));
        const members = this.options.members?.export(index);
        if (members) this.capturedMembers.set(index, members);
        this.pruneCaptured();
      } catch (err) {
        this.emit({ type: 'skipped', index, message: `session table not captured: ${(err as Error).message}` });
      }
    }
    if (cmd.type !== 'checkpoint' && cmd.type !== 'cosign') return;
    this.expireHolds(this.now());
    if (record) {
      this.recordCertified(record);
    } else if (!this.deferredNoted) {
      this.deferredNoted = true;
      this.emit({ type: 'deferred', index });
    }
  }

  /**
   * Called when a pipelined checkpoint's record is appended (its entry was handed to
   * {@link afterApply} at its freeze, before the record existed): records the latest certified
   * checkpoint if it is new (a one-member group certifies at the record).
   */
  afterRecord(record: (RecordSnapshot) | undefined): void {
    if (record) this.recordCertified(record);
  }

  /** Records the latest certified checkpoint if it is new; one recording at a time, the newest next. */
  private recordCertified(record: RecordSnapshot): void {
    if (this.recording) {
      this.again = true;
      return;
    }
    const d = this.certified();
    if (!d) return;
    this.recording = true;
    const keepFrom = this.setChangeHold(d.index);
    const settle = (): void => {
      this.recording = false;
      if (this.again) {
        this.again = false;
        this.recordCertified(record);
      }
    };
    record(d.index, d.data, keepFrom).then(
      () => {
        if (d.index > (this.latest?.index ?? 0)) {
          this.latest = d;
          for (const k of [...this.captured.keys()]) if (k < d.index) this.captured.delete(k);
          for (const k of [...this.capturedMembers.keys()]) if (k < d.index) this.capturedMembers.delete(k);
          this.persistCaptured();
          this.counters.recorded++;
          this.counters.index = Math.max(this.counters.index, d.index);
          this.emit({ type: 'recorded', index: d.index, size: d.data.length });
        }
        settle();
      },
      (err: unknown) => {
        // Tried again after the next checkpoint or cosign entry.
        this.emit({ type: 'skipped', index: d.index, message: `not recorded: ${(err as Error).message}` });
        settle();
      },
    );
  }

  /**
   * The log index the compaction behind a snapshot at `index` keeps entries for: the entry of the
   * earliest set-change checkpoint whose certificate still lacks a quorum of its set or of the
   * previous one (`ProofDB.incompleteSetChangeLogIndex`). A member of either set that is behind
   * it then applies that checkpoint from the log and signs it; one that skipped it through a
   * snapshot never could (docs/replication.md § Membership, *Set changes*).
   */
  private setChangeHold(index: number): number | undefined {
    try {
      const at = this.db.incompleteSetChangeLogIndex();
      return at !== undefined && at <= index ? at : undefined;
    } catch {
      return undefined;
    }
  }

  /** The latest certified checkpoint's descriptor when it is newer than {@link latest} and its session table was captured. */
  private certified(): { index: number; data: Uint8Array } | undefined {
    let index: number | undefined;
    try {
      index = this.db.servedCheckpointRecord()?.appliedIndex;
    } catch {
      return undefined; // diverged, or closed: nothing is served, nothing is recorded
    }
    if (index === undefined || index <= (this.latest?.index ?? 0)) return undefined;
    const sessions = this.captured.get(index);
    if (!sessions) return undefined;
    const members = this.capturedMembers.get(index);
    if (this.options.members && !members) return undefined;
    try {
      return snapshotDescriptor(this.db, { index, sessions, ...(members ? { members } : {}) });
    } catch (err) {
      this.emit({ type: 'skipped', index, message: (err as Error).message });
      return undefined;
    }
  }

  /**
   * True when the latest certified checkpoint is newer than every snapshot recorded (the group's
   * stored one is at `storedIndex`) and cannot be recorded: its session table was not captured,
   * because this member restarted between applying it and seeing it certified. Only the next
   * certified checkpoint is recorded then.
   */
  unrecordable(storedIndex: number): boolean {
    let index: number | undefined;
    try {
      index = this.db.servedCheckpointRecord()?.appliedIndex;
    } catch {
      return false;
    }
    return index !== undefined && index > Math.max(storedIndex, this.latest?.index ?? 0) && !this.captured.has(index);
  }

  /** `StateMachine.snapshot`: the latest certified checkpoint's descriptor (with its session table). */
  snapshot(): { index: number; data: Uint8Array } | undefined {
    return this.latest;
  }

  /**
   * `StateMachine.snapshotToSend`: what the leader sends as the Raft snapshot recorded at `index`.
   * - `index` is its latest certified checkpoint's: the descriptor built again with the
   *   certificates this member holds now (the session table and the registry are the recorded
   *   ones). A certificate gains co-signatures after the snapshot is recorded, and a member behind
   *   a signer-set change trusts the snapshot only through a certificate of that change signed by
   *   a quorum of the set before it: sent as recorded, the snapshot was refused by such a member
   *   until the next checkpoint was certified. The snapshot is held from now on, as a first chunk
   *   read holds it, so that a checkpoint certified before the member's first read does not take
   *   its tables away.
   * - A newer checkpoint is served, not yet recorded (its record follows its certification), and
   *   the one at `index` is not held for a member fetching it: undefined, nothing is sent — its
   *   tables are no longer served, and a member sent it would fetch and be refused
   *   (`SNAPSHOT_UNAVAILABLE`). The leader asks again at its next append or heartbeat; the answer
   *   costs no decoding (it can be asked at every append while the record is pending).
   * - Anything else (a snapshot held for a member fetching it, a descriptor that does not decode
   *   or is of another index, a database that serves nothing: diverged or closed): the recorded
   *   data.
   *
   * docs/replication.md § Snapshots, *Sent fresh*.
   */
  snapshotToSend(index: number, data: Uint8Array): Uint8Array | undefined {
    let served: number;
    try {
      served = servedSnapshotOf(this.db).index;
    } catch {
      return data;
    }
    if (index < served) {
      this.expireHolds(this.now());
      return this.held.has(index) ? data : undefined;
    }
    if (index !== served) return data;
    let fresh: Uint8Array;
    try {
      const d = decodeSnapshotDescriptor(data);
      if (d.index !== index) return data;
      fresh = snapshotDescriptor(this.db, { index, sessions: d.sessions, ...(d.members ? { members: d.members } : {}) }).data;
    } catch {
      return data;
    }
    this.hold(index);
    return fresh;
  }

  /**
   * `StateMachine.restore`: installs `snap` fetched from member `from` (see the module comment).
   * Rejects with a `SnapshotError` (or the session store's error) and changes nothing when the
   * descriptor, its certificate, a chunk or the session table is refused.
   */
  async restore(snap: RestoreSnapshot, from: number): Promise<void> {
    try {
      const d = decodeSnapshotDescriptor(snap.data);
      if (d.index !== snap.index) throw new SnapshotError(SnapshotErrorCode.Mismatch, `the descriptor is at log index ${d.index}, the Raft snapshot at ${snap.index}`);
      if (!(from > 0)) throw new SnapshotError(SnapshotErrorCode.Unavailable, 'no member to fetch the snapshot from');
      // The session table is checked before anything is replaced, so the import below cannot refuse it.
      let asOf: number;
      try {
        asOf = decodeTable(d.sessions, { maxBytes: this.options.maxSessionBytes }).asOf;
      } catch (err) {
        throw new SnapshotError(SnapshotErrorCode.Invalid, `snapshot session table: ${(err as Error).message}`, { cause: err });
      }
      if (asOf !== d.index) throw new SnapshotError(SnapshotErrorCode.Mismatch, `the session table is as of ${asOf}, the snapshot at ${d.index}`);
      const transport = this.options.transport;
      if (!transport) throw new SnapshotError(SnapshotErrorCode.Unavailable, 'no transport to fetch the snapshot with');
      const next: ChunkFetcher = (...a) => transport.fetchSnapshotChunk(...a);
      const inject = this.options.fetchChunk;
      const fetchChunk: FetchChunk = (name, offset, length) => (inject ? inject(from, snap.index, name, offset, length, next) : next(from, snap.index, name, offset, length));
      const before = shapeOf(this.db.options);
      // The tables held for fetching members are of the state being replaced.
      for (const index of [...this.held.keys()]) this.letGo(index);
      const installed = await this.db.replaceFromSnapshot(
        (dir, beforeCommit) => installSnapshot(dir, snap.data, fetchChunk, this.options.trust(), { beforeCommit }),
        { drainMs: this.options.drainMs },
      );
      await this.sessions.import(installed.sessions);
      if (installed.members && this.options.members) this.options.members.import(installed.members);
      this.captured.clear();
      this.captured.set(installed.index, installed.sessions);
      this.capturedMembers.clear();
      if (installed.members) this.capturedMembers.set(installed.index, installed.members);
      this.persistCaptured();
      this.latest = { index: snap.index, data: snap.data };
      this.counters.installed++;
      this.counters.index = Math.max(this.counters.index, snap.index);
      this.counters.fetchedBytes += installed.bytes - installed.reusedBytes;
      this.counters.reusedBytes += installed.reusedBytes;
      const { tables, bytes, reusedTables, reusedBytes } = installed;
      this.emit({ type: 'installed', index: snap.index, from, tables, bytes, reusedTables, reusedBytes, shape: installed.shapeFrom, shapeChanged: !sameShape(before, installed.shape) });
    } catch (err) {
      this.counters.refused++;
      const code = (err as { code?: unknown })?.code;
      this.emit({ type: 'refused', index: snap.index, from, code: typeof code === 'string' ? code : 'ERROR', message: (err as Error).message });
      throw err;
    }
  }

  /**
   * At open, before the group applies anything: takes the captures kept on disk (newest first, from
   * `CaptureStore.load`) whose session table is as of their index and whose registry decodes — a
   * cluster member's must have one — so that a checkpoint applied before a restart and certified
   * after it is recorded (docs/replication.md § Snapshots, "Wiring"). Reports what was loaded and
   * refused (a `captures` event) and removes the files not kept.
   */
  loadCaptures(found: { captures: readonly Capture[]; refused: readonly { file: string; reason: string }[] }): void {
    const refused = [...found.refused];
    for (const c of found.captures) {
      if (this.captured.size >= MAX_CAPTURED) break;
      try {
        const asOf = decodeTable(c.sessions, { maxBytes: this.options.maxSessionBytes }).asOf;
        if (asOf !== c.index) throw new Error(`session table as of ${asOf}`);
        if (this.options.members) {
          if (!c.members) throw new Error('no member registry');
          decodeMembers(c.members);
        }
      } catch (err) {
        refused.push({ file: `capture-${c.index}`, reason: (err as Error).message });
        continue;
      }
      this.captured.set(c.index, c.sessions);
      if (c.members && this.options.members) this.capturedMembers.set(c.index, c.members);
    }
    if (found.captures.length > 0 || refused.length > 0) this.emit({ type: 'captures', loaded: [...this.captured.keys()], refused });
    this.persistCaptured();
  }

  /** Waits for the captures being written or removed. */
  async close(): Promise<void> {
    for (const index of [...this.held.keys()]) this.letGo(index);
    await this.options.captures?.close();
  }

  /** Keeps the newest {@link MAX_CAPTURED} captures, and has the disk follow. */
  private pruneCaptured(): void {
    for (const k of [...this.capturedMembers.keys()].sort((a, b) => a - b).slice(0, -MAX_CAPTURED)) this.capturedMembers.delete(k);
    for (const k of [...this.captured.keys()].sort((a, b) => a - b).slice(0, -MAX_CAPTURED)) this.captured.delete(k);
    this.persistCaptured();
  }

  /** Has the capture files follow {@link captured} (written in the threadpool, one at a time). */
  private persistCaptured(): void {
    const store = this.options.captures;
    if (!store) return;
    store.want([...this.captured].map(([index, sessions]) => {
      const members = this.capturedMembers.get(index);
      return members ? { index, sessions, members } : { index, sessions };
    }));
  }

  private emit(e: SnapshotEvent): void {
    try {
      this.options.onEvent?.(e);
    } catch {
      // a listener's failure is its own
    }
  }
}

/**
 * At open, after a crash between a snapshot's engine install and its session import: when the
 * engine's durable log index is the installed snapshot's, the session table is the snapshot's,
 * so it is imported again (harmless when the import had happened: nothing after the snapshot is
 * durable in the engine, and the group applies those entries again). Returns whether it imported.
 */
export async function recoverInstalledSessions(db: ProofDB, sessions: SessionStore): Promise<boolean> {
  const installed = readInstalledSnapshot(db.location);
  if (!installed || installed.index !== db.logIndex().durable) return false;
  await sessions.import(installed.sessions);
  return true;
}
