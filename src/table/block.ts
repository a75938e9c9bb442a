/**
 * Reads one block (layout in format.ts): a validated view over its contents and an
 * {@link InternalIterator} that binary-searches the restart points and decodes entries in place.
 * @module
 */
import { compareBytes } from '../../proofs/bytes.js';
import { CorruptionError } from '../errors.js';
import type { InternalIterator } from '../iterator.js';
import { compareInternalKeys, compareInternalPrefix, TRAILER_LEN } from '../keys.js';
import { getFixed32 } from '../util/coding.js';

/** The `nodes` of a block that stores none. */
const NO_NODES = new Uint8Array(0);

/** A key order: negative, zero or positive. */
export type Comparator = (a: Uint8Array, b: Uint8Array) => number;

/**
 * The decoded shape of one block: contents plus the restart array. Construction checks the
 * restart array; entries are checked as they are decoded.
 */
export class Block {
  /** Offset of the restart array inside `data` (= end of the entries). */
  readonly restartsOffset: number;
  /** Restart offsets, each the start of an entry with `shared = 0`. */
  readonly restarts: Uint32Array;

  /**
   * @param data block contents, without the trailer (already checksummed by the caller)
   * @param file file name for errors
   * @param fileOffset offset of the block in its file, for errors
   * @param nodes a data block's stored group roots (format 3, format.ts), `32 × G` bytes; empty
   *   when it stores none
   */
  constructor(
    readonly data: Uint8Array,
    readonly file: string,
    readonly fileOffset: number,
    readonly nodes: Uint8Array = NO_NODES,
  ) {
    const len = data.length;
    if (len < 4) throw new CorruptionError(file, `block too short (${len} bytes)`, fileOffset);
    const n = getFixed32(data, len - 4);
    if (n < 1 || n > (len - 4) / 4) throw new CorruptionError(file, `bad restart count ${n}`, fileOffset + len - 4);
    this.restartsOffset = len - 4 - 4 * n;
    this.restarts = new Uint32Array(n);
    let prev = -1;
    for (let i = 0; i < n; i++) {
      const r = getFixed32(data, this.restartsOffset + 4 * i);
      const bad = i === 0 ? r !== 0 : r <= prev || r >= this.restartsOffset;
      if (bad) throw new CorruptionError(file, `bad restart offset ${r} (#${i})`, fileOffset + this.restartsOffset + 4 * i);
      this.restarts[i] = r;
      prev = r;
    }
  }

  /** Bytes this block holds in memory (what a cache charges for it). */
  get charge(): number {
    return this.data.length + this.nodes.length + this.restarts.byteLength + 96;
  }

  /** A new iterator over the block, ordered by `cmp` (internal-key order by default). */
  iterator(cmp: Comparator = compareInternalKeys): BlockIterator {
    return new BlockIterator(this, cmp);
  }
}

/**
 * Iterator over one block. `key()` returns a view of a buffer reused across moves; `value()` a
 * view into the block. Malformed entries throw `CorruptionError`.
 */
export class BlockIterator implements InternalIterator {
  private data: Uint8Array;
  private end: number;
  private keyBuf = new Uint8Array(64);
  private keyLen = 0;
  /** Offset of the current entry, or -1 when invalid. */
  private cur = -1;
  /** Offset just past the current entry. */
  private nextOff = 0;
  /** Index of the restart region that holds `cur`. */
  private restartIdx = 0;
  private valStart = 0;
  private valLen = 0;
  /** Cursor of the slow-path varint decoder. */
  private vp = 0;
  /** Length of the key {@link restartKeyStart} found last. */
  private restartKeyLen = 0;

  constructor(
    /** The block iterated (another one after {@link reset}). */
    public block: Block,
    private readonly cmp: Comparator = compareInternalKeys,
  ) {
    this.data = block.data;
    this.end = block.restartsOffset;
  }

  /**
   * Points this iterator at `block` (same comparator), invalid until the next seek: lets a point
   * read reuse one iterator and its key buffer instead of allocating both per lookup.
   */
  reset(block: Block): this {
    this.block = block;
    this.data = block.data;
    this.end = block.restartsOffset;
    this.restartIdx = 0;
    this.invalidate();
    return this;
  }

  valid(): boolean {
    return this.cur >= 0;
  }

  key(): Uint8Array {
    return this.keyBuf.subarray(0, this.keyLen);
  }

  value(): Uint8Array {
    return this.data.subarray(this.valStart, this.valStart + this.valLen);
  }

  /**
   * The buffer holding the current key in its first {@link keyLength} bytes (no view is made;
   * overwritten by the next move). For hot loops that compare keys in place.
   */
  keyBuffer(): Uint8Array {
    return this.keyBuf;
  }

  /** Length of the current key in {@link keyBuffer}. */
  keyLength(): number {
    return this.keyLen;
  }

  /** Offset of the current entry within the block contents (for diagnostics and proofs). */
  offset(): number {
    return this.cur;
  }

  seekToFirst(): void {
    this.seekToRestart(0);
    this.parseNext();
  }

  seekToLast(): void {
    this.seekToRestart(this.block.restarts.length - 1);
    while (this.parseNext() && this.nextOff < this.end) {
      /* advance to the last entry */
    }
  }

  seek(target: Uint8Array): void {
    const restarts = this.block.restarts;
    // Last restart whose key is < target (or restart 0).
    let lo = 0;
    let hi = restarts.length - 1;
    const internal = this.cmp === compareInternalKeys;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      // Internal-key order (point reads) compares the restart key in place, without a view.
      const c = internal ? this.compareRestartKey(mid, target) : this.cmp(this.restartKey(mid), target);
      if (c < 0) lo = mid;
      else hi = mid - 1;
    }
    this.seekToRestart(lo);
    if (internal) {
      // Hot path of point reads: compare in place instead of making a key view per entry.
      while (this.parseNext()) {
        if (compareInternalPrefix(this.keyBuf, this.keyLen, target) >= 0) return;
      }
      return;
    }
    while (this.parseNext()) {
      if (this.cmp(this.key(), target) >= 0) return;
    }
  }

  next(): void {
    if (this.cur < 0) throw new Error('BlockIterator.next on an invalid iterator');
    this.parseNext();
  }

  prev(): void {
    const original = this.cur;
    if (original < 0) throw new Error('BlockIterator.prev on an invalid iterator');
    const restarts = this.block.restarts;
    let ri = this.restartIdx;
    while (restarts[ri] >= original) {
      if (ri === 0) {
        this.invalidate();
        return;
      }
      ri--;
    }
    this.seekToRestart(ri);
    while (this.parseNext() && this.nextOff < original) {
      /* advance to the entry just before `original` */
    }
  }

  private invalidate(): void {
    this.cur = -1;
    this.nextOff = this.end;
    this.keyLen = 0;
  }

  private seekToRestart(i: number): void {
    this.restartIdx = i;
    this.keyLen = 0;
    this.cur = -1;
    this.nextOff = this.block.restarts[i];
  }

  private corrupt(detail: string, at: number): never {
    throw new CorruptionError(this.block.file, detail, this.block.fileOffset + at);
  }

  /** `compareInternalKeys(restartKey(i), target)`, without making the view. */
  private compareRestartKey(i: number, target: Uint8Array): number {
    const start = this.restartKeyStart(i);
    const d = this.data;
    const al = this.restartKeyLen - TRAILER_LEN;
    if (al < 0) this.corrupt(`restart key of ${this.restartKeyLen} bytes, shorter than its trailer`, start);
    const bl = target.length - TRAILER_LEN;
    const n = al < bl ? al : bl;
    for (let j = 0; j < n; j++) {
      const c = d[start + j] - target[j];
      if (c !== 0) return c;
    }
    if (al !== bl) return al - bl;
    for (let j = 0; j < TRAILER_LEN; j++) {
      const c = target[bl + j] - d[start + al + j];
      if (c !== 0) return c;
    }
    return 0;
  }

  /** The full key stored at restart `i` (a view into the block). */
  private restartKey(i: number): Uint8Array {
    const p = this.restartKeyStart(i);
    return this.data.subarray(p, p + this.restartKeyLen);
  }

  /** Offset of the full key stored at restart `i`; its length goes to {@link restartKeyLen}. */
  private restartKeyStart(i: number): number {
    const d = this.data;
    const start = this.block.restarts[i];
    let p = start;
    let shared: number;
    let unshared: number;
    if (p + 3 <= this.end && (d[p] | d[p + 1] | d[p + 2]) < 0x80) {
      shared = d[p];
      unshared = d[p + 1];
      p += 3;
    } else {
      this.vp = p;
      shared = this.varint32();
      unshared = this.varint32();
      this.varint32();
      p = this.vp;
    }
    if (shared !== 0) this.corrupt(`restart entry with shared prefix ${shared}`, start);
    if (p + unshared > this.end) this.corrupt('restart key overruns block', start);
    this.restartKeyLen = unshared;
    return p;
  }

  /** Decodes a varint32 at `this.vp`, advancing it. */
  private varint32(): number {
    const d = this.data;
    let p = this.vp;
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      if (p >= this.end) this.corrupt('truncated varint', p);
      const b = d[p++];
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        this.vp = p;
        return result;
      }
      shift += 7;
    }
    this.corrupt('varint32 too long', p);
  }

  /** Decodes the entry at `nextOff`; returns false (and invalidates) at the end of the block. */
  private parseNext(): boolean {
    let p = this.nextOff;
    if (p >= this.end) {
      this.invalidate();
      return false;
    }
    const start = p;
    const d = this.data;
    let shared: number;
    let unshared: number;
    let valLen: number;
    // Fast path: three one-byte varints.
    if (p + 3 <= this.end && (d[p] | d[p + 1] | d[p + 2]) < 0x80) {
      shared = d[p];
      unshared = d[p + 1];
      valLen = d[p + 2];
      p += 3;
    } else {
      this.vp = p;
      shared = this.varint32();
      unshared = this.varint32();
      valLen = this.varint32();
      p = this.vp;
    }
    if (shared > this.keyLen) this.corrupt(`shared prefix ${shared} longer than previous key ${this.keyLen}`, start);
    if (p + unshared + valLen > this.end) this.corrupt('entry overruns block', start);
    const klen = shared + unshared;
    if (klen > this.keyBuf.length) {
      const grown = new Uint8Array(Math.max(klen, this.keyBuf.length * 2));
      grown.set(this.keyBuf.subarray(0, shared));
      this.keyBuf = grown;
    }
    const kb = this.keyBuf;
    if (unshared <= 32) for (let i = 0; i < unshared; i++) kb[shared + i] = d[p + i];
    else kb.set(d.subarray(p, p + unshared), shared);
    this.keyLen = klen;
    p += unshared;
    this.valStart = p;
    this.valLen = valLen;
    this.cur = start;
    this.nextOff = p + valLen;
    const restarts = this.block.restarts;
    while (this.restartIdx + 1 < restarts.length && restarts[this.restartIdx + 1] <= start) this.restartIdx++;
    return true;
  }
}


/** Reads every entry of a block ordered by plain bytes (metaindex, properties) into a map. */
export function readNamedBlock(block: Block): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const it = block.iterator(compareBytes);
  const dec = new TextDecoder('utf-8', { fatal: true });
  let prev: Uint8Array | undefined;
  for (it.seekToFirst(); it.valid(); it.next()) {
    const k = it.key();
    if (prev !== undefined && compareBytes(prev, k) >= 0) {
      throw new CorruptionError(block.file, 'named block keys out of order', block.fileOffset + it.offset());
    }
    prev = k.slice();
    let name: string;
    try {
      name = dec.decode(k);
    } catch {
      throw new CorruptionError(block.file, 'named block key is not UTF-8', block.fileOffset + it.offset());
    }
    out.set(name, it.value().slice());
  }
  return out;
}
