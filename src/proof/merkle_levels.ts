/**
 * Every level of an RFC 6962-shaped tree, built once bottom-up (a lone last node is promoted), so
 * that any aligned subtree root — which is all a proof ever asks for — is one array lookup.
 * Node `j` of level `h` covers leaves `[j·2^h, min((j+1)·2^h, n))`, and its hash is the RFC's
 * MTH of that range.
 * @module
 */
import type { Hasher } from '../../proofs/hash.js';

/** Cached levels of one tree. */
export class MerkleLevels {
  private readonly levels: Uint8Array[][];

  constructor(hasher: Hasher, domain: number, leaves: readonly Uint8Array[]) {
    this.levels = [leaves.slice()];
    let level = this.levels[0];
    while (level.length > 1) {
      const next: Uint8Array[] = [];
      for (let i = 0; i + 1 < level.length; i += 2) next.push(hasher.node(domain, level[i], level[i + 1]));
      if (level.length % 2 === 1) next.push(level[level.length - 1]);
      this.levels.push(next);
      level = next;
    }
  }

  /** The root. */
  root(): Uint8Array {
    return this.levels[this.levels.length - 1][0];
  }

  /** The root of the aligned subtree over leaves `[lo, hi)`. */
  readonly source = (lo: number, hi: number): Uint8Array => {
    let h = 0;
    while (1 << h < hi - lo) h++;
    return this.levels[h][lo >> h];
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
