/**
 * The Raft log: a stable prefix in {@link Storage} followed by an unstable suffix (entries and
 * possibly a snapshot) that the application has not yet persisted.
 * ```
 *   storage:   | snapshot | e(first) ... e(storage.last) |
 *   unstable:                       | e(offset) ... e(last) |   (may overwrite a storage suffix)
 *                                   ^ unstable.offset
 *   committed <= last; applied <= committed
 * ```
 * @module
 */

import type { Storage } from './storage.js';
import {
  RaftError, RaftErrorCode, invariant, isRaftError, limitSize,
  type Entry, type Snapshot,
} from './types.js';

/** Entries and a snapshot not yet written to storage. */
class Unstable {
  /** Incoming snapshot, if any; it precedes `entries`. */
  snapshot: Snapshot | undefined;
  /** Entries from `offset` on. */
  entries: Entry[] = [];
  /** Index of `entries[0]` (or where it would be). */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset].term;
  }

  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined) return;
    // Only stable if the term matches and the entry is in the unstable entries (not the snapshot).
    if (gt === t && i >= this.offset) {
      this.entries = this.entries.slice(i + 1 - this.offset);
      this.offset = i + 1;
    }
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0].index;
    if (after === this.offset + this.entries.length) {
      this.entries = this.entries.concat(ents);
    } else if (after <= this.offset) {
      // Replace everything unstable; the storage suffix from `after` is overwritten on persist.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    invariant(lo <= hi && lo >= this.offset && hi <= this.offset + this.entries.length,
      `unstable.slice[${lo},${hi}) out of bound [${this.offset},${this.offset + this.entries.length}]`);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

/** The log as the Raft core sees it. */
export class RaftLog {
  /** Stable entries since the last snapshot. */
  readonly storage: Storage;
  /** Entries and snapshot not yet persisted. */
  readonly unstable: Unstable;
  /** Highest index known to be committed. Invariant: applied <= committed <= lastIndex(). */
  committed: number;
  /** Highest index the application has applied. Invariant: applied <= committed. */
  applied: number;
  /** Byte limit of committed entries handed out per Ready. */
  readonly maxNextEntsSize: number;

  /** A log over `storage`; commit and applied start at the storage's snapshot index. */
  constructor(storage: Storage, maxNextEntsSize = Number.MAX_SAFE_INTEGER) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // Entries kept behind the snapshot are committed too (a storage may keep a margin before it).
    const start = Math.max(first - 1, storage.snapshot().metadata.index);
    this.committed = start;
    this.applied = start;
    this.maxNextEntsSize = maxNextEntsSize;
  }

  /** Index of the first entry still available. */
  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  /** Index of the last entry. */
  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term of the last entry. */
  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Term of entry `i`; throws `ERR_COMPACTED` / `ERR_UNAVAILABLE` outside [firstIndex-1, lastIndex]. */
  term(i: number): number {
    const dummyIndex = this.firstIndex() - 1;
    if (i < dummyIndex) throw new RaftError(RaftErrorCode.Compacted, `term(${i}) compacted`);
    if (i > this.lastIndex()) throw new RaftError(RaftErrorCode.Unavailable, `term(${i}) unavailable`);
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    return this.storage.term(i);
  }

  /**
   * True when `i` is outside [firstIndex-1, lastIndex], where {@link term} throws. Tested first
   * on the hot paths below (a follower checks every append's first new entry, which is beyond
   * its log): building and throwing an error there cost ~20 µs per append.
   */
  private outOfBounds(i: number): boolean {
    return i < this.firstIndex() - 1 || i > this.lastIndex();
  }

  /** Term of entry `i`, or 0 when it is compacted or beyond the log. */
  zeroTermOnOutOfBounds(i: number): number {
    if (this.outOfBounds(i)) return 0;
    try {
      return this.term(i);
    } catch (e) {
      if (isRaftError(e, RaftErrorCode.Compacted) || isRaftError(e, RaftErrorCode.Unavailable)) return 0;
      throw e;
    }
  }

  /** True when entry `i` exists with term `t`. */
  matchTerm(i: number, t: number): boolean {
    if (this.outOfBounds(i)) return false;
    try {
      return this.term(i) === t;
    } catch (e) {
      if (isRaftError(e, RaftErrorCode.Compacted) || isRaftError(e, RaftErrorCode.Unavailable)) return false;
      throw e;
    }
  }

  /**
   * The follower side of AppendEntries: if the entry at `index` has term `logTerm`, appends
   * `ents` (truncating at the first conflict), advances commit to min(committed, last new
   * index) and returns the last new index; otherwise returns undefined.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(ci > this.committed, `entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Appends entries to the unstable log and returns the new last index. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    invariant(after >= this.committed, `after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * Index of the first entry of `ents` whose term differs from ours (or which we lack); 0 when
   * all of them are present already.
   */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term`, with that term.
   * A leader probing at (index, term) can skip every entry of ours above the result.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    for (; index > 0; index--) {
      if (this.outOfBounds(index)) return [index, 0];
      let t: number;
      try {
        t = this.term(index);
      } catch (e) {
        if (isRaftError(e, RaftErrorCode.Compacted) || isRaftError(e, RaftErrorCode.Unavailable)) return [index, 0];
        throw e;
      }
      if (t <= term) return [index, t];
    }
    return [0, 0];
  }

  /** Entries not yet persisted. */
  unstableEntries(): Entry[] {
    return this.unstable.entries;
  }

  /**
   * Committed entries not yet applied, limited to `maxNextEntsSize` bytes: from `after + 1` (default
   * the applied index; a caller that handed out entries beyond it passes the last one handed out).
   */
  nextCommittedEnts(after = this.applied): Entry[] {
    const off = Math.max(after + 1, this.firstIndex());
    if (this.committed + 1 > off) return this.slice(off, this.committed + 1, this.maxNextEntsSize);
    return [];
  }

  /** True when {@link nextCommittedEnts} (from the same `after`) is non-empty. */
  hasNextCommittedEnts(after = this.applied): boolean {
    return this.committed + 1 > Math.max(after + 1, this.firstIndex());
  }

  /** The snapshot to persist (unstable) or the storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Entries from `i` to the end, at most `maxSize` bytes. */
  entries(i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  /** True when a candidate's log (lastIndex `i`, last term `t`) is at least as up to date (§5.4.1). */
  isUpToDate(i: number, t: number): boolean {
    const lt = this.lastTerm();
    return t > lt || (t === lt && i >= this.lastIndex());
  }

  /** Leader commit rule: commits `maxIndex` if it is newer and of the current `term` (§5.4.2). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.zeroTermOnOutOfBounds(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Raises the commit index (never lowers it). */
  commitTo(c: number): void {
    if (this.committed < c) {
      invariant(this.lastIndex() >= c, `tocommit(${c}) is out of range [lastIndex(${this.lastIndex()})]`);
      this.committed = c;
    }
  }

  /** Records that the application applied up to `i`. */
  appliedTo(i: number): void {
    if (i === 0) return;
    invariant(this.committed >= i && i >= this.applied, `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    this.applied = i;
  }

  /** Entries up to (i, t) were persisted. */
  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  /** The snapshot at `i` was persisted. */
  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Index of the last entry known persisted (entries above it are unstable). */
  lastStableIndex(): number {
    if (this.unstable.snapshot) return 0;
    return Math.min(this.unstable.offset - 1, this.lastIndex());
  }

  /** Replaces the log with a snapshot (follower installing). */
  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries in [lo, hi) at most `maxSize` bytes, from storage and unstable. */
  slice(lo: number, hi: number, maxSize: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    if (lo < this.unstable.offset) {
      const stored = this.storage.entries(lo, Math.min(hi, this.unstable.offset), maxSize);
      // Fewer than asked: size-limited.
      if (stored.length < Math.min(hi, this.unstable.offset) - lo) return stored;
      ents = stored;
    }
    if (hi > this.unstable.offset) {
      const u = this.unstable.slice(Math.max(lo, this.unstable.offset), hi);
      ents = ents.length > 0 ? ents.concat(u) : u;
    }
    return limitSize(ents, maxSize);
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    invariant(lo <= hi, `invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new RaftError(RaftErrorCode.Compacted, `slice lo ${lo} compacted (first ${fi})`);
    const length = this.lastIndex() + 1 - fi;
    invariant(hi <= fi + length, `slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }
}
