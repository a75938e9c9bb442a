/**
 * Range iteration over the database at one seq: latest values by default (tombstoned keys are
 * skipped), or every version with `allVersions`. The iterator pins the table set it started with,
 * so compactions cannot delete files under it; `close()` (or finishing a `for await`) unpins it.
 * @module
 */
import { compareBytes, toBytes } from '../../proofs/bytes.js';
import { Kind } from '../../proofs/hash.js';
import type { InternalIterator } from '../iterator.js';
import { encodeInternalKey, kindOf, MAX_SEQ, MAX_VERSION, seqOf, storedTime, storedUserValue, TRAILER_LEN, versionOf } from '../keys.js';
import { MergingIterator } from '../merging_iterator.js';
import { LevelIterator } from '../version/level_iterator.js';
import type { DBCore, ReadState } from './core.js';

/** Range and direction of an iteration. Bounds are user keys; strings are UTF-8. */
export interface IteratorOptions {
  gt?: Uint8Array | string;
  gte?: Uint8Array | string;
  lt?: Uint8Array | string;
  lte?: Uint8Array | string;
  /** Descending key order. */
  reverse?: boolean;
  /** Every version (tombstones included), newest first within a key; default: latest values only. */
  allVersions?: boolean;
  /** Stop after this many results. */
  limit?: number;
}

/** One result of an iteration. */
export interface VersionEntry {
  key: Uint8Array;
  version: number;
  seq: number;
  /** Commit time, ms since the epoch. */
  time: number;
  kind: 'put' | 'delete';
  /** The value; empty for a tombstone. */
  value: Uint8Array;
}

const FIRST_OF_KEY = (k: Uint8Array) => encodeInternalKey(k, MAX_VERSION, MAX_SEQ, 0xff as Kind);
const LAST_OF_KEY = (k: Uint8Array) => encodeInternalKey(k, 0, 0, 0 as Kind);

function sameUserKey(ik: Uint8Array, uk: Uint8Array): boolean {
  if (ik.length - TRAILER_LEN !== uk.length) return false;
  for (let i = 0; i < uk.length; i++) if (ik[i] !== uk[i]) return false;
  return true;
}

/** An async iterator over {@link VersionEntry} results. */
export class DBIterator implements AsyncIterableIterator<VersionEntry> {
  private readonly it: InternalIterator;
  private readonly lower?: { key: Uint8Array; inclusive: boolean };
  private readonly upper?: { key: Uint8Array; inclusive: boolean };
  private started = false;
  private done = false;
  private count = 0;

  constructor(
    private readonly core: DBCore,
    private readonly rs: ReadState,
    private readonly seq: number,
    private readonly opts: IteratorOptions,
  ) {
    core.refVersion(rs.version);
    core.openIterators++;
    const children: InternalIterator[] = [rs.mem.iterator()];
    for (const imm of rs.imms) children.push(imm.iterator());
    for (const t of rs.version.levels[0]) children.push(core.tables.get(t.number).iterator());
    for (let l = 1; l < rs.version.levels.length; l++) {
      if (rs.version.levels[l].length > 0) children.push(new LevelIterator(rs.version.levels[l], core.tables));
    }
    this.it = new MergingIterator(children);
    if (opts.gte !== undefined) this.lower = { key: toBytes(opts.gte), inclusive: true };
    if (opts.gt !== undefined) this.lower = { key: toBytes(opts.gt), inclusive: false };
    if (opts.lte !== undefined) this.upper = { key: toBytes(opts.lte), inclusive: true };
    if (opts.lt !== undefined) this.upper = { key: toBytes(opts.lt), inclusive: false };
  }

  private aboveLower(uk: Uint8Array): boolean {
    if (!this.lower) return true;
    const c = compareBytes(uk, this.lower.key);
    return this.lower.inclusive ? c >= 0 : c > 0;
  }

  private belowUpper(uk: Uint8Array): boolean {
    if (!this.upper) return true;
    const c = compareBytes(uk, this.upper.key);
    return this.upper.inclusive ? c <= 0 : c < 0;
  }

  private position(): void {
    const it = this.it;
    if (!this.opts.reverse) {
      if (this.lower) it.seek(this.lower.inclusive ? FIRST_OF_KEY(this.lower.key) : LAST_OF_KEY(this.lower.key));
      else it.seekToFirst();
      while (it.valid() && !this.aboveLower(it.key().subarray(0, it.key().length - TRAILER_LEN))) it.next();
    } else {
      if (this.upper) {
        it.seek(this.upper.inclusive ? LAST_OF_KEY(this.upper.key) : FIRST_OF_KEY(this.upper.key));
        if (it.valid()) {
          if (this.upper.inclusive && sameUserKey(it.key(), this.upper.key)) {
            // (upper, 0, 0, 0) itself is the last key of `upper`: keep it.
          } else it.prev();
        } else it.seekToLast();
      } else it.seekToLast();
      while (it.valid() && !this.belowUpper(it.key().subarray(0, it.key().length - TRAILER_LEN))) it.prev();
    }
  }

  /**
   * Forward iteration only: starts at `userKey`'s newest entry at or below `version`, skipping
   * newer versions without reading them (history queries).
   * @internal
   */
  seekVersion(userKey: Uint8Array, version: number): void {
    this.started = true;
    this.it.seek(encodeInternalKey(userKey, version, MAX_SEQ, 0xff as Kind));
    while (this.it.valid() && !this.aboveLower(this.it.key().subarray(0, this.it.key().length - TRAILER_LEN))) this.it.next();
  }

  /** The next result synchronously, or undefined at the end. */
  private step(): VersionEntry | undefined {
    const it = this.it;
    if (!this.started) {
      this.started = true;
      this.position();
    }
    if (this.opts.limit !== undefined && this.count >= this.opts.limit) return undefined;
    const reverse = !!this.opts.reverse;
    while (it.valid()) {
      const ik = it.key();
      const uk = ik.subarray(0, ik.length - TRAILER_LEN);
      if (reverse ? !this.aboveLower(uk) : !this.belowUpper(uk)) return undefined;
      if (this.opts.allVersions) {
        const s = seqOf(ik);
        const out = s <= this.seq ? toEntry(ik, it.value()) : undefined;
        if (reverse) it.prev();
        else it.next();
        if (out) {
          this.count++;
          return out;
        }
        continue;
      }
      if (!reverse) {
        // Entries of one key come newest first: the first with seq <= snapshot is the answer.
        const key = uk.slice();
        let found: VersionEntry | undefined;
        while (it.valid() && sameUserKey(it.key(), key)) {
          if (!found && seqOf(it.key()) <= this.seq) found = toEntry(it.key(), it.value());
          if (found) break;
          it.next();
        }
        // Skip the rest of this key: a few steps, then a seek past it.
        let steps = 0;
        while (it.valid() && sameUserKey(it.key(), key)) {
          if (++steps > 8) {
            it.seek(LAST_OF_KEY(key));
            if (it.valid() && sameUserKey(it.key(), key)) it.next();
            break;
          }
          it.next();
        }
        if (found && found.kind === 'put') {
          this.count++;
          return found;
        }
      } else {
        // Backwards, a key's entries come oldest first: the last one with seq <= snapshot wins.
        const key = uk.slice();
        let found: VersionEntry | undefined;
        while (it.valid() && sameUserKey(it.key(), key)) {
          if (seqOf(it.key()) <= this.seq) found = toEntry(it.key(), it.value());
          it.prev();
        }
        if (found && found.kind === 'put') {
          this.count++;
          return found;
        }
      }
    }
    return undefined;
  }

  /** Up to `n` results at once: cheaper than `next()` per entry for large scans. */
  async nextv(n: number): Promise<VersionEntry[]> {
    const out: VersionEntry[] = [];
    if (this.done) return out;
    while (out.length < n) {
      const e = this.step();
      if (!e) {
        this.close();
        break;
      }
      out.push(e);
    }
    return out;
  }

  /** Every remaining result. */
  async all(): Promise<VersionEntry[]> {
    const out: VersionEntry[] = [];
    for (;;) {
      const chunk = await this.nextv(1000);
      if (chunk.length === 0) return out;
      for (const e of chunk) out.push(e);
    }
  }

  async next(): Promise<IteratorResult<VersionEntry>> {
    if (this.done) return { done: true, value: undefined };
    const e = this.step();
    if (!e) {
      this.close();
      return { done: true, value: undefined };
    }
    return { done: false, value: e };
  }

  async return(): Promise<IteratorResult<VersionEntry>> {
    this.close();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<VersionEntry> {
    return this;
  }

  /** Releases the pinned table set. Idempotent. */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.core.openIterators--;
    this.core.unrefVersion(this.rs.version);
  }
}

function toEntry(ik: Uint8Array, stored: Uint8Array): VersionEntry {
  return {
    key: ik.slice(0, ik.length - TRAILER_LEN),
    version: versionOf(ik),
    seq: seqOf(ik),
    time: storedTime(stored),
    kind: kindOf(ik) === Kind.DELETE ? 'delete' : 'put',
    value: storedUserValue(stored).slice(),
  };
}
