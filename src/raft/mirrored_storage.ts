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

/** Bytes counted for one mirrored entry besides its data (object, index, term, type). */
export const MIRRORED_ENTRY_OVERHEAD = 64;

/** Bytes one mirrored entry is counted for: its data and {@link MIRRORED_ENTRY_OVERHEAD}. */
export function mirroredEntryBytes(e: Entry): number {
  return e.data.length + MIRRORED_ENTRY_OVERHEAD;
}

/**
 * The bytes of the entries a mirror holds after its dummy entry, index by index, kept alongside
 * it: O(1) per appended or dropped entry. When it no longer covers exactly the mirror's entries
 * (the mirror was filled at open, or changed by a path that does not report here) it is counted
 * again from the mirror, once.
 */
class MirrorBytes {
  /** Index of `sizes[head]`. */
  private first = 1;
  private sizes: number[] = [];
  private head = 0;
  total = 0;

  private get end(): number {
    return this.first + this.sizes.length - this.head;
  }

  /** Entries from `ents[0].index` on replace what was counted from there. */
  append(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const from = ents[0].index;
    if (from < this.first || from > this.end) return this.invalidate();
    while (this.end > from) this.total -= this.sizes.pop()!;
    for (const e of ents) {
      const n = mirroredEntryBytes(e);
      this.sizes.push(n);
      this.total += n;
    }
  }

  /** Entries up to `index` are gone. */
  dropUpTo(index: number): void {
    while (this.first <= index && this.head < this.sizes.length) {
      this.total -= this.sizes[this.head++];
      this.first++;
    }
    if (this.first <= index) this.first = index + 1;
    if (this.head > 1024 && this.head * 2 > this.sizes.length) {
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }

  /** No entries: the next one appended is at `after + 1` (a snapshot installed over the log). */
  reset(after: number): void {
    this.first = after + 1;
    this.sizes = [];
    this.head = 0;
    this.total = 0;
  }

  /** Counts `mem`'s entries again when the counts do not cover exactly them. */
  check(mem: MemoryStorage): void {
    const first = mem.firstIndex();
    const last = mem.lastIndex();
    if (this.first === first && this.end === last + 1) return;
    this.sizes = last >= first ? mem.entries(first, last + 1, Infinity).map(mirroredEntryBytes) : [];
    this.head = 0;
    this.first = first;
    this.total = this.sizes.reduce((a, b) => a + b, 0);
  }

  /** Counts nothing until {@link check} counts the mirror again. */
  private invalidate(): void {
    this.reset(-2);
  }

  /**
   * The compaction point for a snapshot at `index` that keeps at most `maxEntries` entries and
   * `maxBytes` bytes of them before it: the highest of `index - maxEntries` and the last index
   * whose dropping leaves the entries after it up to `index` within `maxBytes`.
   */
  compactPoint(index: number, maxEntries: number, maxBytes: number): number {
    let upTo = index - maxEntries;
    let bytes = 0;
    for (let i = Math.min(index, this.end - 1); i > Math.max(upTo, this.first - 1); i--) {
      bytes += this.sizes[this.head + i - this.first];
      if (bytes > maxBytes) {
        upTo = i;
        break;
      }
    }
    return upTo;
  }
}

/** A {@link Storage} whose reads come from a mirror in memory and whose writes go to disk. */
export abstract class MirroredStorage implements Storage {
  /** A commit-only hard state not yet written (see {@link save}). */
  protected pendingHard: HardState | null = null;
  private readonly bytes = new MirrorBytes();

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
    if (rd.snapshot) {
      this.mem.applySnapshot(rd.snapshot);
      this.bytes.reset(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) {
      this.mem.append(rd.entries);
      this.bytes.append(ents);
    }
    if (rd.hardState) this.mem.setHardState(rd.hardState);
    return sync;
  }

  /**
   * Bytes of the entries the mirror holds (after the compaction point): their data and
   * {@link MIRRORED_ENTRY_OVERHEAD} each. What bounds it is the caller's compaction: a snapshot
   * and {@link compactPoint} (docs/raft.md § Memory).
   */
  mirroredBytes(): number {
    this.bytes.check(this.mem);
    return this.bytes.total;
  }

  /**
   * Where to compact for a snapshot at `index` (at most the snapshot's index): keeping at most
   * `maxEntries` entries before it, and fewer when those would hold more than `maxBytes` bytes.
   */
  compactPoint(index: number, maxEntries: number, maxBytes = Infinity): number {
    this.bytes.check(this.mem);
    return this.bytes.compactPoint(index, maxEntries, maxBytes);
  }

  /** Drops the mirror's entries up to `index` (a compaction the storage has checked). */
  protected compactMirror(index: number): void {
    this.mem.compact(index);
    this.bytes.dropUpTo(index);
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
