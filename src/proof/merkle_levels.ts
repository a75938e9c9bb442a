/**
 * Every level of an RFC 6962-shaped tree, built once bottom-up (a lone last node is promoted), so
 * that any aligned subtree root — which is all a proof ever asks for — is one array lookup.
 * Node `j` of level `h` covers leaves `[j·2^h, min((j+1)·2^h, n))`, and its hash is the RFC's
 * MTH of that range.
 * @module
 */
import { HASH_LEN, type Hasher } from '../../proofs/hash.js';

/**
 * Cached levels of one tree, each level one flat array of 32-byte hashes (no object per node: a
 * table's block tree has as many nodes as blocks, and the caches hold many). Hashes handed out are
 * views into these arrays.
 */
export class MerkleLevels {
  private readonly levels: Uint8Array[];

  constructor(hasher: Hasher, domain: number, leaves: readonly Uint8Array[]) {
    let count = leaves.length;
    let level = new Uint8Array(HASH_LEN * count);
    for (let i = 0; i < count; i++) level.set(leaves[i], HASH_LEN * i);
    this.levels = [level];
    while (count > 1) {
      const half = count >>> 1;
      const next = new Uint8Array(HASH_LEN * (count - half));
      for (let i = 0; i < half; i++) {
        const l = 2 * i * HASH_LEN;
        next.set(hasher.node(domain, level.subarray(l, l + HASH_LEN), level.subarray(l + HASH_LEN, l + 2 * HASH_LEN)), HASH_LEN * i);
      }
      if (count % 2 === 1) next.set(level.subarray(HASH_LEN * (count - 1)), HASH_LEN * half);
      this.levels.push(next);
      level = next;
      count -= half;
    }
  }

  /** Bytes held: every level's hashes. */
  get bytes(): number {
    let n = 0;
    for (const l of this.levels) n += l.length;
    return n;
  }

  /** The root. */
  root(): Uint8Array {
    return this.levels[this.levels.length - 1].subarray(0, HASH_LEN);
  }

  /** The root of the aligned subtree over leaves `[lo, hi)`. */
  readonly source = (lo: number, hi: number): Uint8Array => {
    let h = 0;
    while (1 << h < hi - lo) h++;
    const at = HASH_LEN * (lo >> h);
    return this.levels[h].subarray(at, at + HASH_LEN);
  };
}

/**
 * The entry tree of one data block as proofs read it, built from the block's stored group roots
 * (format 3, `src/table/format.ts`): the roots of the aligned subtrees over K entries each. Every
 * aligned subtree of the block's RFC 6962-shaped tree is either inside one K-entry group — hashed
 * from that group's leaves when a window first touches the group ({@link prepare}) — or a node of
 * the small tree over the group roots. A block without stored roots (a format-2 table, or at most
 * K entries) is one group of all its entries: the whole tree is hashed, as before format 3.
 */
export class GroupedTree {
  private upper: MerkleLevels | undefined;
  private readonly groups: (MerkleLevels | undefined)[] = [];
  /** Entries per group: K, or `count` when there are no stored roots. */
  private readonly span: number;

  /**
   * @param count the block's entries
   * @param k entries per group root (K)
   * @param roots the stored group roots (`ceil(count / K)` of them), or empty: one group
   */
  constructor(
    private readonly hasher: Hasher,
    private readonly domain: number,
    readonly count: number,
    k: number,
    private readonly roots: readonly Uint8Array[],
  ) {
    this.span = roots.length === 0 ? count : k;
  }

  /**
   * Hashes the groups a range proof of leaves `[lo, hi)` reads below the group roots: the ones
   * holding `lo` and `hi − 1` (every other node of the path is a whole group or above one).
   * `leaves(from, to)` returns the leaf hashes of entries `[from, to)`.
   */
  prepare(lo: number, hi: number, leaves: (from: number, to: number) => Uint8Array[]): void {
    this.group(Math.floor(lo / this.span), leaves);
    this.group(Math.floor((hi - 1) / this.span), leaves);
  }

  /**
   * The root of the aligned subtree over leaves `[lo, hi)`. A subtree inside a group needs that
   * group {@link prepare}d (a `RangeError` otherwise).
   */
  readonly source = (lo: number, hi: number): Uint8Array => {
    const span = this.span;
    const g = Math.floor(lo / span);
    const first = g * span;
    if (hi <= first + span) {
      if (lo === first && hi === Math.min(first + span, this.count) && this.roots.length > 0) return this.roots[g];
      const t = this.groups[g];
      if (t === undefined) throw new RangeError(`group ${g} of the entry tree was not prepared`);
      return t.source(lo - first, hi - first);
    }
    // Larger than a group: aligned subtrees of more than K leaves start on a group boundary.
    this.upper ??= new MerkleLevels(this.hasher, this.domain, this.roots);
    return this.upper.source(g, Math.ceil(hi / span));
  };

  private group(g: number, leaves: (from: number, to: number) => Uint8Array[]): void {
    if (this.groups[g] !== undefined) return;
    const first = g * this.span;
    this.groups[g] = new MerkleLevels(this.hasher, this.domain, leaves(first, Math.min(first + this.span, this.count)));
  }
}
