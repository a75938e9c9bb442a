/**
 * A slow, obviously correct reference written straight from RFC 6962 §2.1 (= RFC 9162 §2.1),
 * used only to cross-check the fast code. Recursion exactly as in the RFC text; MTH of a range is
 * memoised per (lo, hi) over one fixed list so that exhaustive cross-checks stay fast.
 */
import { concatBytes } from '../../proofs/bytes.js';
import type { Sha256 } from '../../proofs/hash.js';

/** RFC 6962 §2.1: "the largest power of two smaller than n" (k < n <= 2k). */
function k(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p / 2;
}

/**
 * A reference tree over D[0:N]. `leaf(d)` is MTH({d}); inner nodes are `SHA-256(node || l || r)`.
 * For the log: leaf(d) = SHA-256(0x00 || d), node = 0x01. For ProofKV's other trees the leaves are
 * already hashes: leaf(d) = d.
 */
export class RefTree {
  private memo = new Map<string, Uint8Array>();
  constructor(
    private readonly sha256: Sha256,
    private readonly D: readonly Uint8Array[],
    private readonly leaf: (d: Uint8Array) => Uint8Array,
    private readonly nodePrefix: number,
  ) {}

  /** MTH(D[lo:hi]). */
  mth(lo: number, hi: number): Uint8Array {
    const n = hi - lo;
    if (n === 0) return this.sha256(new Uint8Array(0)); // MTH({}) = SHA-256()
    const key = `${lo},${hi}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    let out: Uint8Array;
    if (n === 1) out = this.leaf(this.D[lo]); // MTH({d(0)}) = SHA-256(0x00 || d(0))
    else {
      const kk = k(n); // MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
      out = this.sha256(concatBytes(new Uint8Array([this.nodePrefix]), this.mth(lo, lo + kk), this.mth(lo + kk, hi)));
    }
    this.memo.set(key, out);
    return out;
  }

  /** PATH(m, D[lo:hi]) (RFC 6962 §2.1.1). */
  path(m: number, lo: number, hi: number): Uint8Array[] {
    const n = hi - lo;
    if (n === 1) return []; // PATH(0, {d(0)}) = {}
    const kk = k(n);
    if (m < kk) return [...this.path(m, lo, lo + kk), this.mth(lo + kk, hi)]; // PATH(m, D[0:k]) : MTH(D[k:n])
    return [...this.path(m - kk, lo + kk, hi), this.mth(lo, lo + kk)]; // PATH(m - k, D[k:n]) : MTH(D[0:k])
  }

  /** PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (RFC 6962 §2.1.2). */
  proof(m: number, n: number): Uint8Array[] {
    return this.subproof(m, 0, n, true);
  }

  /** SUBPROOF(m, D[lo:hi], b). */
  subproof(m: number, lo: number, hi: number, b: boolean): Uint8Array[] {
    const n = hi - lo;
    if (m === n) return b ? [] : [this.mth(lo, hi)]; // SUBPROOF(m, D[m], true) = {}; false -> {MTH(D[m])}
    const kk = k(n);
    if (m <= kk) return [...this.subproof(m, lo, lo + kk, b), this.mth(lo + kk, hi)];
    return [...this.subproof(m - kk, lo + kk, hi, false), this.mth(lo, lo + kk)];
  }

  /** Brute force: is `leafHash` at `index` under `root`? Recomputes the path from the PATH definition. */
  rootFromPath(leafHash: Uint8Array, m: number, lo: number, hi: number, path: Uint8Array[]): Uint8Array {
    // Walk the same recursion as PATH, consuming the proof from its root end.
    const n = hi - lo;
    if (n === 1) return leafHash;
    const kk = k(n);
    const sibling = path[path.length - 1];
    const rest = path.slice(0, -1);
    const node = (l: Uint8Array, r: Uint8Array) => this.sha256(concatBytes(new Uint8Array([this.nodePrefix]), l, r));
    if (m < kk) return node(this.rootFromPath(leafHash, m, lo, lo + kk, rest), sibling);
    return node(sibling, this.rootFromPath(leafHash, m - kk, lo + kk, hi, rest));
  }
}
