/**
 * The storage interface the Raft core reads its stable log from, and {@link MemoryStorage},
 * an in-memory implementation used by tests, the simulator and as the cache of
 * {@link LevelStorage}.
 *
 * Layout of MemoryStorage (`ents[0]` is a dummy entry holding the snapshot's index and term):
 * ```
 *   snapshot.index = ents[0].index   first real entry = ents[1]   lastIndex = ents[ents.length-1].index
 *   | compacted ... | dummy | e(i+1) | e(i+2) | ... | e(last) |
 * ```
 * @module
 */

import {
  EntryType, RaftError, RaftErrorCode, invariant, limitSize,
  type ConfState, type Entry, type HardState, type Snapshot,
} from './types.js';

/** Hard state and membership recovered at start-up. */
export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

/**
 * Read access to the stable log. Methods throw {@link RaftError} with `ERR_COMPACTED` for
 * indexes before the first available one and `ERR_UNAVAILABLE` beyond the last.
 */
export interface Storage {
  /** Hard state and membership saved last. */
  initialState(): InitialState;
  /** Entries in [lo, hi), with payload at most `maxSize` bytes (always at least one). */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /** Term of entry `i`; valid for i in [firstIndex()-1, lastIndex()]. */
  term(i: number): number;
  /** Index of the last entry. */
  lastIndex(): number;
  /** Index of the first entry still available (the snapshot's index + 1). */
  firstIndex(): number;
  /** The most recent snapshot; may throw `ERR_SNAPSHOT_TEMPORARILY_UNAVAILABLE`. */
  snapshot(): Snapshot;
}

/** An empty membership. */
export const emptyConfState: ConfState = { voters: [], learners: [] };

/** Empty hard state. */
export const emptyHardState: HardState = { term: 0, vote: 0, commit: 0 };

/** A {@link Storage} in memory. Writes are immediate: the caller models durability. */
export class MemoryStorage implements Storage {
  private hardState: HardState = emptyHardState;
  private snap: Snapshot;
  // Invariant: ents[0] is a dummy entry at snap.metadata.index with its term; ents are contiguous.
  private ents: Entry[];

  /** An empty log, optionally with an initial membership (bootstrap at index 0). */
  constructor(confState: ConfState = emptyConfState) {
    this.snap = { metadata: { index: 0, term: 0, confState }, data: new Uint8Array(0) };
    this.ents = [dummy(0, 0)];
  }

  /** Convenience: an empty log whose membership is `voters` (and `learners`). */
  static withPeers(voters: number[], learners: number[] = []): MemoryStorage {
    return new MemoryStorage({ voters, learners });
  }

  /** @inheritdoc */
  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  /** Saves the hard state. */
  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  /** The saved hard state. */
  getHardState(): HardState {
    return this.hardState;
  }

  /** @inheritdoc */
  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw new RaftError(RaftErrorCode.Compacted, `index ${lo} is compacted (first ${offset + 1})`);
    if (hi > this.lastIndex() + 1) throw new RaftError(RaftErrorCode.Unavailable, `entries hi ${hi} is out of bound lastIndex ${this.lastIndex()}`);
    if (lo >= hi) return [];
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  /** @inheritdoc */
  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) throw new RaftError(RaftErrorCode.Compacted, `term of ${i} is compacted (offset ${offset})`);
    if (i - offset >= this.ents.length) throw new RaftError(RaftErrorCode.Unavailable, `term of ${i} is unavailable (last ${this.lastIndex()})`);
    return this.ents[i - offset].term;
  }

  /** @inheritdoc */
  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  /** @inheritdoc */
  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  /** @inheritdoc */
  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log by a snapshot (a follower installing one). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index < this.snap.metadata.index) {
      throw new RaftError(RaftErrorCode.SnapOutOfDate, `snapshot ${snap.metadata.index} older than ${this.snap.metadata.index}`);
    }
    this.snap = snap;
    this.ents = [dummy(snap.metadata.index, snap.metadata.term)];
  }

  /**
   * Right after {@link applySnapshot} at open: puts back the entries a compaction kept behind the
   * snapshot (its margin for slow followers), read from disk. `ents` are contiguous and end at the
   * snapshot's index with the snapshot's term (so, by the log matching property, they are the
   * committed prefix); the first becomes the dummy entry (its own term is known, the one before it
   * is not). Fewer than two entries change nothing.
   */
  restoreBehind(ents: readonly Entry[]): void {
    if (ents.length < 2) return;
    const snap = this.snap.metadata;
    const last = ents[ents.length - 1];
    invariant(this.ents[0].index === snap.index, `restoreBehind: the log does not start at the snapshot ${snap.index}`);
    invariant(last.index === snap.index && last.term === snap.term, `restoreBehind: entries end at ${last.index} (term ${last.term}), not at the snapshot ${snap.index} (term ${snap.term})`);
    for (let i = 1; i < ents.length; i++) invariant(ents[i].index === ents[0].index + i, `restoreBehind: gap at ${ents[0].index + i}`);
    this.ents = [dummy(ents[0].index, ents[0].term), ...ents.slice(1), ...this.ents.slice(1)];
  }

  /**
   * Records an application snapshot at `index` (at most the last index) with the membership
   * at that point; the log itself is not compacted (see {@link compact}).
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) {
      throw new RaftError(RaftErrorCode.SnapOutOfDate, `snapshot ${index} not newer than ${this.snap.metadata.index}`);
    }
    if (index > this.lastIndex()) {
      throw new RaftError(RaftErrorCode.Unavailable, `snapshot ${index} beyond last index ${this.lastIndex()}`);
    }
    this.snap = { metadata: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Discards entries before `compactIndex` (which becomes the dummy entry). */
  compact(compactIndex: number): void {
    const offset = this.ents[0].index;
    if (compactIndex <= offset) throw new RaftError(RaftErrorCode.Compacted, `compact ${compactIndex} already compacted`);
    invariant(compactIndex <= this.lastIndex(), `compact ${compactIndex} beyond last ${this.lastIndex()}`);
    const i = compactIndex - offset;
    const rest = this.ents.slice(i + 1);
    this.ents = [dummy(this.ents[i].index, this.ents[i].term), ...rest];
  }

  /** Appends entries, truncating any conflicting suffix. Entries before the first index are ignored. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return;
    let ents = entries as Entry[];
    if (first > ents[0].index) ents = ents.slice(first - ents[0].index);
    const offset = ents[0].index - this.ents[0].index;
    invariant(offset <= this.ents.length, `missing log entry [last: ${this.lastIndex()}, append at: ${ents[0].index}]`);
    // In place, as Go's `append(ms.ents[:offset], entries...)`: no reader holds this array (every
    // read returns a copy), and copying it whole per append cost O(entries held) per Ready — a
    // tenth of a busy leader's event loop with a few thousand entries mirrored (bench/README.md).
    if (offset < this.ents.length) this.ents.length = offset;
    for (let i = 0; i < ents.length; i++) this.ents.push(ents[i]);
  }

  /** A deep-enough copy (entries are immutable) — the simulator's model of what was synced. */
  clone(): MemoryStorage {
    const c = new MemoryStorage();
    c.hardState = this.hardState;
    c.snap = this.snap;
    c.ents = this.ents.slice();
    return c;
  }
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array(0) };
}
