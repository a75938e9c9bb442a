/**
 * {@link MirroredStorage}: what the disk storages ({@link WalStorage}, {@link LevelStorage}) share —
 * reads served from an in-memory {@link MemoryStorage} mirror (so the core's synchronous
 * {@link Storage} interface never waits for I/O), and the rules of `save` and `createSnapshot`
 * that decide what goes to disk; each storage only writes it.
 * @module
 */

import { MemoryStorage, type InitialState, type Storage } from './storage.js';
import { RaftError, RaftErrorCode, invariant, type ConfState, type Entry, type HardState, type Snapshot } from './types.js';

/** What {@link MirroredStorage.save} persists: the parts of a Ready that go to disk. */
export interface PersistRequest {
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot;
  /**
   * False when the write need not be synced: only the commit index changed (a Ready's
   * `mustSync`, as in etcd). Such a hard state alone is not written now but with the next
   * write or at close. Default true.
   */
  readonly mustSync?: boolean;
}

/** One write a save asks of the disk. */
export interface StagedWrite {
  /** A snapshot that replaces the log (a follower installing one). */
  readonly snapshot?: Snapshot;
  /** The entries to append (those before the log's first index dropped); they replace any suffix from their first index. */
  readonly entries: readonly Entry[];
  /** The hard state to write (the Ready's, else a pending commit-only one). */
  readonly hardState: HardState | null;
  /** The log's first and last index before this write. */
  readonly prevFirst: number;
  readonly prevLast: number;
}

/** A {@link Storage} whose reads come from a mirror in memory and whose writes go to disk. */
export abstract class MirroredStorage implements Storage {
  /** A commit-only hard state not yet written (see {@link save}). */
  protected pendingHard: HardState | null = null;

  protected constructor(protected readonly mem: MemoryStorage) {}

  /** @inheritdoc */
  initialState(): InitialState { return this.mem.initialState(); }
  /** @inheritdoc */
  entries(lo: number, hi: number, maxSize: number): Entry[] { return this.mem.entries(lo, hi, maxSize); }
  /** @inheritdoc */
  term(i: number): number { return this.mem.term(i); }
  /** @inheritdoc */
  lastIndex(): number { return this.mem.lastIndex(); }
  /** @inheritdoc */
  firstIndex(): number { return this.mem.firstIndex(); }
  /** @inheritdoc */
  snapshot(): Snapshot { return this.mem.snapshot(); }

  /**
   * Writes a Ready's snapshot, entries and hard state in one write and syncs it. Only after this
   * resolves may the Ready's messages be sent. With `mustSync` false and nothing but a hard state,
   * the hard state (only its commit index moved) is written with the next write or at close: a
   * crash may lose it, and the commit index is then recomputed. A Ready with nothing to persist
   * (no snapshot, entries or hard state) writes nothing and resolves at once. `options.sync:
   * false` writes without fdatasync even when the Ready must be synced (the group's `sync: false`,
   * `proofkv serve --no-sync`): the write survives a crash of the process, not a power loss.
   * Resolves true when the write was synced.
   */
  async save(rd: PersistRequest, options: { sync?: boolean } = {}): Promise<boolean> {
    if (!rd.snapshot && rd.entries.length === 0) {
      // Nothing new (a Ready of messages or reads only): nothing to write; a commit-only hard
      // state still pending waits for the next write, as it would have without this Ready.
      if (!rd.hardState) return false;
      if (rd.mustSync === false) {
        this.pendingHard = rd.hardState;
        this.mem.setHardState(rd.hardState);
        return false;
      }
    }
    const prevFirst = this.mem.firstIndex();
    const prevLast = this.mem.lastIndex();
    const first = rd.snapshot ? rd.snapshot.metadata.index + 1 : prevFirst;
    const last = rd.snapshot ? rd.snapshot.metadata.index : prevLast;
    let ents = rd.entries;
    if (ents.length > 0 && ents[0].index < first) ents = ents.slice(first - ents[0].index);
    if (ents.length > 0) invariant(ents[0].index <= last + 1, `entries start at ${ents[0].index} after last ${last}`);
    const sync = rd.mustSync !== false && options.sync !== false;
    const wrote = await this.write({ snapshot: rd.snapshot, entries: ents, hardState: rd.hardState ?? this.pendingHard, prevFirst, prevLast }, sync);
    if (!wrote) return false;
    this.pendingHard = null;
    if (rd.snapshot) this.mem.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) this.mem.append(rd.entries);
    if (rd.hardState) this.mem.setHardState(rd.hardState);
    return sync;
  }

  /** Writes `w` (synced when `sync`); resolves false when there was nothing to write. */
  protected abstract write(w: StagedWrite, sync: boolean): Promise<boolean>;

  /**
   * Records an application snapshot at `index` (synced), with a pending commit-only hard state in
   * the same write: a snapshot at `index` on disk needs a stored commit of at least `index`.
   */
  async createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    const prev = this.mem.snapshot().metadata.index;
    if (index <= prev) throw new RaftError(RaftErrorCode.SnapOutOfDate, `snapshot ${index} not newer than ${prev}`);
    if (index > this.mem.lastIndex()) throw new RaftError(RaftErrorCode.Unavailable, `snapshot ${index} beyond last index ${this.mem.lastIndex()}`);
    const snap: Snapshot = { metadata: { index, term: this.mem.term(index), confState }, data };
    await this.writeSnapshot(snap, this.pendingHard);
    this.pendingHard = null;
    return this.mem.createSnapshot(index, confState, data);
  }

  /** Writes a snapshot recorded over the log (and a pending hard state, when not null), synced. */
  protected abstract writeSnapshot(snap: Snapshot, pendingHard: HardState | null): Promise<void>;

  /** Checks that a compaction up to `index` is not beyond the snapshot. */
  protected checkCompact(index: number): void {
    const snapIndex = this.mem.snapshot().metadata.index;
    if (index > snapIndex) throw new RaftError(RaftErrorCode.Unavailable, `compact ${index} beyond snapshot ${snapIndex}`);
  }
}
