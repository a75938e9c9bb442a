/**
 * The memtable: a skiplist of internal keys kept in flat arrays, in the spirit of goleveldb's
 * memdb. Node links live in one growable `Int32Array` (`MAX_HEIGHT` slots per node), keys and values
 * in two plain arrays, so an insert allocates almost nothing besides the key itself.
 *
 * Single writer, any number of readers: JavaScript runs one task at a time, so an iterator never
 * sees a half-linked node. Entries are never removed; a frozen memtable is flushed and dropped whole.
 * Node heights come from a fixed-seed generator, so the structure is the same on every run (it does
 * not reach table bytes either way: a table depends only on the sorted entries).
 *
 * Each node also keeps the first 8 bytes of its user key (zero-padded) as two biased 32-bit words
 * in typed arrays beside the links: a search compares those numbers first and reads the key itself
 * only when they tie. Key order is bytewise with a shorter key first, so keys whose padded 8-byte
 * prefixes differ are ordered as their prefixes are; the search then touches one typed array
 * instead of a key object and its bytes at most steps, which is what an insert into a large
 * memtable spends its time on (cache misses, bench/README.md § "Table builds and the apply per
 * write").
 * @module
 */
import { compareInternalKeys, seqOf, TRAILER_LEN } from '../keys.js';
import type { InternalIterator } from '../iterator.js';

const MAX_HEIGHT = 12;
const HEAD = 0;
const NIL = -1;

/** A sorted, append-only in-memory table of internal keys. */
export class Memtable {
  private keys: Uint8Array[] = [new Uint8Array(0)];
  private values: Uint8Array[] = [new Uint8Array(0)];
  private links: Int32Array;
  /** Per node: bytes 0–3 and 4–7 of its user key (zero-padded) as big-endian words with the top bit flipped, so signed order is byte order. */
  private prefixHi: Int32Array;
  private prefixLo: Int32Array;
  private height = 1;
  private rng = 0x2545f491;
  /** Bytes accounted for flush decisions: key + value + a fixed per-entry overhead. */
  approximateSize = 0;
  /** Number of entries. */
  count = 0;
  /** Highest sequence number inserted (0 when empty). */
  maxSeq = 0;
  /**
   * Latest version per user key (keyed by the key's latin1 string), so the write path resolves a
   * key's next version without a skiplist search.
   */
  readonly latest = new Map<string, number>();

  constructor(initialCapacity = 1024) {
    this.links = new Int32Array(initialCapacity * MAX_HEIGHT).fill(NIL);
    this.prefixHi = new Int32Array(initialCapacity);
    this.prefixLo = new Int32Array(initialCapacity);
  }

  private randomHeight(): number {
    let h = 1;
    // xorshift32; branching factor 4 like LevelDB.
    for (;;) {
      let x = this.rng;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.rng = x >>> 0;
      if (h < MAX_HEIGHT && (this.rng & 3) === 0) h++;
      else return h;
    }
  }

  /**
   * Finds the first node >= key. When `prev` is given, fills it with the last node < key at every
   * level (the insertion points).
   */
  private findGreaterOrEqual(key: Uint8Array, prev: Int32Array | null): number {
    return this.search(key, prefixWord(key, 0), prefixWord(key, 4), prev);
  }

  /** {@link findGreaterOrEqual} with the key's prefix words computed. */
  private search(key: Uint8Array, hi: number, lo: number, prev: Int32Array | null): number {
    const links = this.links;
    let x = HEAD;
    let level = this.height - 1;
    for (;;) {
      const next = links[x * MAX_HEIGHT + level];
      if (next !== NIL && this.lessThan(next, key, hi, lo)) {
        x = next;
      } else {
        if (prev) prev[level] = x;
        if (level === 0) return next;
        level--;
      }
    }
  }

  private findLessThan(key: Uint8Array): number {
    const hi = prefixWord(key, 0);
    const lo = prefixWord(key, 4);
    let x = HEAD;
    let level = this.height - 1;
    for (;;) {
      const next = this.links[x * MAX_HEIGHT + level];
      if (next !== NIL && this.lessThan(next, key, hi, lo)) x = next;
      else if (level === 0) return x;
      else level--;
    }
  }

  /** True when node's key < `key`, whose prefix words are `hi`, `lo`: by the words when they differ. */
  private lessThan(node: number, key: Uint8Array, hi: number, lo: number): boolean {
    const h = this.prefixHi[node];
    if (h !== hi) return h < hi;
    const l = this.prefixLo[node];
    if (l !== lo) return l < lo;
    return compareInternalKeys(this.keys[node], key) < 0;
  }

  private findLast(): number {
    let x = HEAD;
    let level = this.height - 1;
    for (;;) {
      const next = this.links[x * MAX_HEIGHT + level];
      if (next !== NIL) x = next;
      else if (level === 0) return x;
      else level--;
    }
  }

  private readonly prevScratch = new Int32Array(MAX_HEIGHT);
  /**
   * The insertion points an insert right after the last one would have: per level, the last
   * inserted node where it is linked, else the node it was linked after. Valid for any key greater
   * than the last inserted key whose level-0 successor there is not smaller (see {@link add}).
   */
  private readonly finger = new Int32Array(MAX_HEIGHT);
  /** The node inserted last, or NIL. */
  private lastNode = NIL;

  /**
   * Inserts an entry. Internal keys are unique (they contain the seq); a duplicate is a bug.
   *
   * Writes usually arrive in nearly ascending key order (a load, sequential keys, new versions of
   * keys written in order), so an insert first tries the last insert's points ({@link finger}): if
   * the key is greater than the last inserted key K and not greater than K's successor at level 0,
   * it belongs right after K on every level — a node's successor on a higher level is never before
   * its successor on level 0 — so two comparisons replace the search from the top.
   */
  add(internalKey: Uint8Array, value: Uint8Array, seq: number): void {
    const prev = this.prevScratch;
    const hi = prefixWord(internalKey, 0);
    const lo = prefixWord(internalKey, 4);
    let found: number;
    const last = this.lastNode;
    const after = last === NIL ? NIL : this.links[last * MAX_HEIGHT];
    if (last !== NIL && this.lessThan(last, internalKey, hi, lo) && (after === NIL || !this.lessThan(after, internalKey, hi, lo))) {
      for (let i = 0; i < this.height; i++) prev[i] = this.finger[i];
      found = after;
    } else {
      found = this.search(internalKey, hi, lo, prev);
    }
    if (found !== NIL && compareInternalKeys(this.keys[found], internalKey) === 0) {
      throw new Error('memtable: duplicate internal key');
    }
    const h = this.randomHeight();
    if (h > this.height) {
      for (let i = this.height; i < h; i++) prev[i] = HEAD;
      this.height = h;
    }
    const node = this.keys.length;
    if ((node + 1) * MAX_HEIGHT > this.links.length) {
      const grown = new Int32Array(this.links.length * 2).fill(NIL);
      grown.set(this.links);
      this.links = grown;
      const hi = new Int32Array(this.prefixHi.length * 2);
      hi.set(this.prefixHi);
      this.prefixHi = hi;
      const lo = new Int32Array(this.prefixLo.length * 2);
      lo.set(this.prefixLo);
      this.prefixLo = lo;
    }
    this.prefixHi[node] = hi;
    this.prefixLo[node] = lo;
    this.keys.push(internalKey);
    this.values.push(value);
    for (let i = 0; i < h; i++) {
      this.links[node * MAX_HEIGHT + i] = this.links[prev[i] * MAX_HEIGHT + i];
      this.links[prev[i] * MAX_HEIGHT + i] = node;
    }
    for (let i = 0; i < this.height; i++) this.finger[i] = i < h ? node : prev[i];
    this.lastNode = node;
    this.approximateSize += internalKey.length + value.length + 24;
    this.count++;
    if (seq > this.maxSeq) this.maxSeq = seq;
  }

  /**
   * The newest entry of `userKey` with version <= `version` and seq <= `seq`, as
   * `[internalKey, value]`, or undefined. `target` is `seekKey(userKey, version, seq)`.
   */
  get(userKey: Uint8Array, target: Uint8Array, seq: number): [Uint8Array, Uint8Array] | undefined {
    let node = this.findGreaterOrEqual(target, null);
    while (node !== NIL) {
      const k = this.keys[node];
      if (!hasUserKey(k, userKey)) return undefined;
      if (seqOf(k) <= seq) return [k, this.values[node]];
      node = this.links[node * MAX_HEIGHT];
    }
    return undefined;
  }

  /** An iterator over the entries in internal-key order. */
  iterator(): InternalIterator {
    return new MemtableIterator(this);
  }

  /** @internal */ _next(node: number): number {
    return this.links[node * MAX_HEIGHT];
  }
  /** @internal */ _key(node: number): Uint8Array {
    return this.keys[node];
  }
  /** @internal */ _value(node: number): Uint8Array {
    return this.values[node];
  }
  /** @internal */ _seek(key: Uint8Array): number {
    return this.findGreaterOrEqual(key, null);
  }
  /** @internal */ _prevOf(key: Uint8Array): number {
    const n = this.findLessThan(key);
    return n === HEAD ? NIL : n;
  }
  /** @internal */ _last(): number {
    const n = this.findLast();
    return n === HEAD ? NIL : n;
  }
}

class MemtableIterator implements InternalIterator {
  private node = NIL;
  constructor(private readonly mem: Memtable) {}

  valid(): boolean {
    return this.node !== NIL;
  }
  seekToFirst(): void {
    this.node = this.mem._next(HEAD);
  }
  seekToLast(): void {
    this.node = this.mem._last();
  }
  seek(target: Uint8Array): void {
    this.node = this.mem._seek(target);
  }
  next(): void {
    this.node = this.mem._next(this.node);
  }
  prev(): void {
    // No back links: search for the last node before the current key (O(log n)), as LevelDB does.
    this.node = this.mem._prevOf(this.mem._key(this.node));
  }
  key(): Uint8Array {
    return this.mem._key(this.node);
  }
  value(): Uint8Array {
    return this.mem._value(this.node);
  }
}

/**
 * Bytes `at` .. `at + 3` of internal key `ik`'s user key, zero past its end, as a big-endian word
 * with the top bit flipped (so that comparing the signed words compares the bytes).
 */
function prefixWord(ik: Uint8Array, at: number): number {
  const n = ik.length - TRAILER_LEN - at;
  if (n >= 4) return ((ik[at] << 24) | (ik[at + 1] << 16) | (ik[at + 2] << 8) | ik[at + 3]) ^ 0x80000000;
  let w = 0;
  for (let i = 0; i < 4; i++) w = (w << 8) | (i < n ? ik[at + i] : 0);
  return w ^ 0x80000000;
}

/** True when internal key `ik` has user key `userKey`. */
function hasUserKey(ik: Uint8Array, userKey: Uint8Array): boolean {
  if (ik.length - TRAILER_LEN !== userKey.length) return false;
  for (let i = 0; i < userKey.length; i++) if (ik[i] !== userKey[i]) return false;
  return true;
}
