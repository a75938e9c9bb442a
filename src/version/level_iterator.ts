/**
 * Concatenates the tables of one sorted, disjoint level (>= 1) into one iterator, opening each
 * table's iterator only when the cursor enters it.
 * @module
 */
import type { InternalIterator } from '../iterator.js';
import { compareInternalKeys } from '../keys.js';
import type { TableMeta } from './edit.js';

/** Anything that hands out table readers by number. */
export interface TableSource {
  get(number: number): { iterator(): InternalIterator };
}

/** An iterator over one level's tables, in key order. */
export class LevelIterator implements InternalIterator {
  private index = -1;
  private cur: InternalIterator | null = null;

  constructor(
    private readonly tables: readonly TableMeta[],
    private readonly source: TableSource,
  ) {}

  private open(i: number): void {
    this.index = i;
    this.cur = i >= 0 && i < this.tables.length ? this.source.get(this.tables[i].number).iterator() : null;
  }

  valid(): boolean {
    return this.cur !== null && this.cur.valid();
  }

  seekToFirst(): void {
    this.open(0);
    this.cur?.seekToFirst();
    this.skipForward();
  }

  seekToLast(): void {
    this.open(this.tables.length - 1);
    this.cur?.seekToLast();
    this.skipBackward();
  }

  seek(target: Uint8Array): void {
    // First table whose largest key >= target.
    let lo = 0;
    let hi = this.tables.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareInternalKeys(this.tables[mid].largest, target) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.open(lo);
    this.cur?.seek(target);
    this.skipForward();
  }

  next(): void {
    this.cur!.next();
    this.skipForward();
  }

  prev(): void {
    this.cur!.prev();
    this.skipBackward();
  }

  key(): Uint8Array {
    return this.cur!.key();
  }

  value(): Uint8Array {
    return this.cur!.value();
  }

  private skipForward(): void {
    while (this.cur !== null && !this.cur.valid()) {
      if (this.index + 1 >= this.tables.length) {
        this.cur = null;
        return;
      }
      this.open(this.index + 1);
      this.cur!.seekToFirst();
    }
  }

  private skipBackward(): void {
    while (this.cur !== null && !this.cur.valid()) {
      if (this.index - 1 < 0) {
        this.cur = null;
        return;
      }
      this.open(this.index - 1);
      this.cur!.seekToLast();
    }
  }
}
