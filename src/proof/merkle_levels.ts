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
