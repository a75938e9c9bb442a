/**
 * Merges sorted child iterators into one sorted stream, like LevelDB's MergingIterator.
 * Children are few (memtables, level-0 tables, one iterator per deeper level), so a linear scan
 * for the smallest or largest child beats a heap. Internal keys are unique, so ties never happen
 * between children.
 * @module
 */
import { compareInternalKeys } from './keys.js';
import type { InternalIterator } from './iterator.js';

const FORWARD = 0;
const REVERSE = 1;

/** An iterator over the union of `children`, in internal-key order. */
export class MergingIterator implements InternalIterator {
  private current: InternalIterator | null = null;
  private direction = FORWARD;

  constructor(private readonly children: InternalIterator[]) {}

  valid(): boolean {
    return this.current !== null && this.current.valid();
  }

  seekToFirst(): void {
    for (const c of this.children) c.seekToFirst();
    this.direction = FORWARD;
    this.findSmallest();
  }

  seekToLast(): void {
    for (const c of this.children) c.seekToLast();
    this.direction = REVERSE;
    this.findLargest();
  }

  seek(target: Uint8Array): void {
    for (const c of this.children) c.seek(target);
    this.direction = FORWARD;
    this.findSmallest();
  }

  next(): void {
    const cur = this.current as InternalIterator;
    if (this.direction !== FORWARD) {
      // Move every other child to the first entry after the current key.
      const key = cur.key().slice();
      for (const c of this.children) {
        if (c === cur) continue;
        c.seek(key);
        if (c.valid() && compareInternalKeys(c.key(), key) === 0) c.next();
      }
      this.direction = FORWARD;
    }
    cur.next();
    this.findSmallest();
  }

  prev(): void {
    const cur = this.current as InternalIterator;
    if (this.direction !== REVERSE) {
      // Move every other child to the last entry before the current key.
      const key = cur.key().slice();
      for (const c of this.children) {
        if (c === cur) continue;
        c.seek(key);
        if (c.valid()) c.prev();
        else c.seekToLast();
      }
      this.direction = REVERSE;
    }
    cur.prev();
    this.findLargest();
  }

  /** The child the current entry comes from (null when not `valid()`). */
  currentChild(): InternalIterator | null {
    return this.valid() ? this.current : null;
  }

  key(): Uint8Array {
    return (this.current as InternalIterator).key();
  }

  value(): Uint8Array {
    return (this.current as InternalIterator).value();
  }

  private findSmallest(): void {
    let best: InternalIterator | null = null;
    for (const c of this.children) {
      if (c.valid() && (best === null || compareInternalKeys(c.key(), best.key()) < 0)) best = c;
    }
    this.current = best;
  }

  private findLargest(): void {
    let best: InternalIterator | null = null;
    for (let i = this.children.length - 1; i >= 0; i--) {
      const c = this.children[i];
      if (c.valid() && (best === null || compareInternalKeys(c.key(), best.key()) > 0)) best = c;
    }
    this.current = best;
  }
}
