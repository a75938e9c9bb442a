/**
 * The Merkle leaves of recently written tables, kept so that the compaction that rewrites a table
 * takes them instead of hashing its entries again.
 *
 * An entry's leaf (`H(0x10 || key || version || seq || time || kind || H(0x19 || value))`,
 * proofs/hash.ts) depends on the entry alone, not on the table or block it sits in, so it is the
 * same in every table the entry is ever written to. Checkpoints merge level 0 about once a second
 * under load (docs/engine.md § Checkpoints), and each merge used to hash every entry of its
 * inputs again: two SHA-256s per entry (its value's and its leaf's) of the three a table build
 * spends on it. A flush or compaction on the worker keeps the leaves it computed or was given
 * (`TableBuilder.keepLeaves`) and hands them back with its table; the engine keeps them here, by
 * table number, until a compaction takes its inputs' leaves with its job (`runCompaction`), or
 * until they are evicted, oldest table first, past the byte bound (`DBOptions.leafCacheSize`).
 *
 * The leaves only save work: a compaction's output is byte-identical with or without them
 * (test/engine/leaf_cache.test.ts), so replicas with different caches still build identical
 * tables. What a compaction no longer does with them is re-hash its inputs' entries as read back
 * from disk; those reads are still checked against each block's CRC-32C, and `ProofDB.verify`
 * re-hashes every table (docs/engine.md § Leaf reuse).
 * @module
 */

/** Bytes of one entry's leaf. */
export const LEAF_BYTES = 32;

/** The buffers of `leaves` (each an array of its own), to move them rather than copy. */
export function leafBuffers(leaves: readonly (Uint8Array | null | undefined)[] | undefined): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const l of leaves ?? []) if (l && l.byteOffset === 0 && l.byteLength === l.buffer.byteLength && !out.includes(l.buffer as ArrayBuffer)) out.push(l.buffer as ArrayBuffer);
  return out;
}

/** Leaves by table number, oldest first, within a byte bound. Not shared between databases. */
export class LeafCache {
  private readonly tables = new Map<number, Uint8Array>();
  private held = 0;

  /** @param capacity the most bytes of leaves held (0: none are kept). */
  constructor(readonly capacity: number) {}

  /** Bytes of leaves held now. */
  get bytes(): number {
    return this.held;
  }

  /** Tables whose leaves are held now. */
  get count(): number {
    return this.tables.size;
  }

  /**
   * Keeps the leaves of table `number` (`entryCount × 32` bytes, in entry order), then drops the
   * oldest tables' until the bound holds. Leaves larger than the whole bound are not kept.
   */
  put(number: number, leaves: Uint8Array): void {
    this.take(number);
    if (leaves.byteLength > this.capacity) return;
    this.tables.set(number, leaves);
    this.held += leaves.byteLength;
    for (const [n, l] of this.tables) {
      if (this.held <= this.capacity) break;
      this.tables.delete(n);
      this.held -= l.byteLength;
    }
  }

  /** Removes and returns the leaves of table `number`, or null (a compaction takes its inputs'). */
  take(number: number): Uint8Array | null {
    const l = this.tables.get(number);
    if (l === undefined) return null;
    this.tables.delete(number);
    this.held -= l.byteLength;
    return l;
  }

  /** Drops every table's leaves. */
  clear(): void {
    this.tables.clear();
    this.held = 0;
  }
}
