/**
 * Builds one block: prefix-compressed entries with restart points (layout in format.ts).
 * The same format serves data, index, metaindex and properties blocks.
 * @module
 */
import { ByteWriter, putFixed32, putVarint } from '../util/coding.js';

/**
 * Accumulates sorted entries into block contents. The caller guarantees key order; the builder
 * only compresses. Reusable: `reset()` after `finish()`.
 */
export class BlockBuilder {
  private readonly w = new ByteWriter(8192);
  private restarts: number[] = [0];
  private counter = 0;
  private count = 0;
  private lastKey = new Uint8Array(64);
  private lastKeyLen = 0;
  private finished = false;

  /** `restartInterval` >= 1: entries between restart points (a restart stores its full key). */
  constructor(readonly restartInterval: number) {
    if (!Number.isInteger(restartInterval) || restartInterval < 1) {
      throw new RangeError(`restartInterval must be an integer >= 1, got ${restartInterval}`);
    }
  }

  /** Number of entries added since the last reset. */
  get entryCount(): number {
    return this.count;
  }

  /** True when no entry has been added since the last reset. */
  get empty(): boolean {
    return this.count === 0;
  }

  /** Size of the contents `finish()` would return now. */
  estimatedSize(): number {
    return this.w.length + this.restarts.length * 4 + 4;
  }

  /** Appends an entry; `key` must sort after the previous key (not checked here). */
  add(key: Uint8Array, value: Uint8Array): void {
    if (this.finished) throw new Error('BlockBuilder.add after finish (call reset)');
    let shared = 0;
    if (this.counter < this.restartInterval) {
      const n = Math.min(this.lastKeyLen, key.length);
      const last = this.lastKey;
      while (shared < n && last[shared] === key[shared]) shared++;
    } else {
      this.restarts.push(this.w.length);
      this.counter = 0;
    }
    const unshared = key.length - shared;
    const w = this.w;
    w.ensure(15 + unshared + value.length);
    let p = putVarint(w.buf, w.pos, shared);
    p = putVarint(w.buf, p, unshared);
    p = putVarint(w.buf, p, value.length);
    const buf = w.buf;
    if (unshared <= 32) for (let i = shared; i < key.length; i++) buf[p++] = key[i];
    else {
      buf.set(key.subarray(shared), p);
      p += unshared;
    }
    w.buf.set(value, p);
    w.pos = p + value.length;

    if (this.lastKey.length < key.length) {
      const next = new Uint8Array(Math.max(key.length, this.lastKey.length * 2));
      next.set(this.lastKey.subarray(0, shared));
      this.lastKey = next;
    }
    const last = this.lastKey;
    if (unshared <= 32) for (let i = shared; i < key.length; i++) last[i] = key[i];
    else last.set(key.subarray(shared), shared);
    this.lastKeyLen = key.length;
    this.counter++;
    this.count++;
  }

  /** The last key added (a view, valid until the next add or reset). */
  lastKeyView(): Uint8Array {
    return this.lastKey.subarray(0, this.lastKeyLen);
  }

  /** Appends the restart array; returns the contents (a view, valid until `reset()`). */
  finish(): Uint8Array {
    if (!this.finished) {
      const w = this.w;
      w.ensure(this.restarts.length * 4 + 4);
      for (const r of this.restarts) {
        putFixed32(w.buf, w.pos, r);
        w.pos += 4;
      }
      putFixed32(w.buf, w.pos, this.restarts.length);
      w.pos += 4;
      this.finished = true;
    }
    return this.w.view();
  }

  /** Empties the builder for the next block. */
  reset(): void {
    this.w.reset();
    this.restarts = [0];
    this.counter = 0;
    this.count = 0;
    this.lastKeyLen = 0;
    this.finished = false;
  }
}
