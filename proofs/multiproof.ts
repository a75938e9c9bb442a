/**
 * Multi-leaf proofs for RFC 6962-shaped trees: any set of leaves at once, with the minimal set of
 * sibling hashes. Used for the master tree, where a proof reveals scattered table descriptors (all
 * of level 0, then one or two per deeper level).
 *
 * The proof lists, in left-to-right order, the roots of the maximal subtrees that contain no
 * revealed leaf. Prover and verifier walk the same recursion (split at the largest power of two),
 * so the order is implied and no indexes travel with the hashes. With one revealed leaf this is
 * the RFC 9162 inclusion path in reverse order; with a contiguous run it is a range proof.
 * @module
 */
import { HASH_LEN, type Hasher } from './hash.js';
import { fail, Reason, type Verified } from './errors.js';
import { _checkHasherDomain, _describe, splitPoint, type _SubtreeSource } from './tree.js';

/** Checks that `indexes` is strictly increasing and below `size`. */
function checkIndexes(indexes: readonly number[], size: number): string | undefined {
  for (let i = 0; i < indexes.length; i++) {
    const x = indexes[i];
    if (!Number.isSafeInteger(x) || x < 0 || x >= size) return `index ${_describe(x)} out of range for size ${_describe(size)}`;
    if (i > 0 && x <= indexes[i - 1]) return `indexes not strictly increasing at ${i}`;
  }
  return undefined;
}

/** Walks `[lo, hi)` calling `outside` for each maximal subtree without a revealed leaf. */
function walk(
  indexes: readonly number[],
  size: number,
  visit: { outside(lo: number, hi: number): void },
): void {
  // `from` is the first revealed index >= lo: indexes are sorted, so ranges are contiguous slices.
  const rec = (lo: number, hi: number, from: number, to: number): void => {
    if (from === to) {
      visit.outside(lo, hi);
      return;
    }
    if (hi - lo === 1) return;
    const mid = lo + splitPoint(hi - lo);
    let cut = from;
    while (cut < to && indexes[cut] < mid) cut++;
    rec(lo, mid, from, cut);
    rec(mid, hi, cut, to);
  };
  rec(0, size, 0, indexes.length);
}

/** Number of hashes in the multiproof of `indexes` (sorted, distinct) in a tree of `size` leaves. */
export function multiproofSize(indexes: readonly number[], size: number): number {
  return countOutside(indexes, 0, size, 0, indexes.length);
}

/** {@link walk}'s count of subtrees without a revealed leaf in `[lo, hi)`, without a callback (the verifiers' hot path). */
function countOutside(indexes: readonly number[], lo: number, hi: number, from: number, to: number): number {
  if (from === to) return 1;
  if (hi - lo === 1) return 0;
  const mid = lo + splitPoint(hi - lo);
  let cut = from;
  while (cut < to && indexes[cut] < mid) cut++;
  return countOutside(indexes, lo, mid, from, cut) + countOutside(indexes, mid, hi, cut, to);
}

/** Prover: the multiproof for the sorted, distinct `indexes`, with subtree roots from `src`. @internal */
export function _multiproof(src: _SubtreeSource, indexes: readonly number[], size: number): Uint8Array[] {
  const bad = checkIndexes(indexes, size);
  if (bad) throw new RangeError(bad);
  if (indexes.length === 0) throw new RangeError('a multiproof reveals at least one leaf');
  const out: Uint8Array[] = [];
  walk(indexes, size, { outside: (lo, hi) => out.push(src(lo, hi)) });
  return out;
}

/**
 * Verifier: the root implied by `leaves` (hashes at the sorted, distinct `indexes`) and the
 * multiproof `proof` in a tree of `size` leaves with inner nodes in `domain`. Never throws.
 */
export function rootFromMultiproof(
  hasher: Hasher,
  domain: number,
  size: number,
  indexes: readonly number[],
  leaves: readonly Uint8Array[],
  proof: readonly Uint8Array[],
): Verified<{ root: Uint8Array }> {
  const badArgs = _checkHasherDomain(hasher, domain);
  if (badArgs) return badArgs;
  if (!Number.isSafeInteger(size) || size <= 0) return fail(Reason.INVALID_SIZE, `tree size ${_describe(size)}`);
  if (!Array.isArray(indexes) || !Array.isArray(leaves) || !Array.isArray(proof)) {
    return fail(Reason.MALFORMED_INPUT, 'indexes, leaves and proof must be arrays');
  }
  if (indexes.length === 0 || indexes.length !== leaves.length) {
    return fail(Reason.MALFORMED_INPUT, `${indexes.length} indexes for ${leaves.length} leaves`);
  }
  const bad = checkIndexes(indexes, size);
  if (bad) return fail(Reason.INDEX_OUT_OF_RANGE, bad);
  for (const list of [leaves, proof]) {
    for (const h of list) {
      if (!(h instanceof Uint8Array) || h.length !== HASH_LEN) return fail(Reason.HASH_LENGTH, `hash must be ${HASH_LEN} bytes`);
    }
  }
  const want = multiproofSize(indexes, size);
  if (proof.length !== want) return fail(Reason.PROOF_SIZE, `wrong proof size ${proof.length}, want ${want}`);
  const w: MultiWalk = { hasher, domain, indexes, leaves, proof, next: 0 };
  return { ok: true, root: multiRoot(w, 0, size, 0, indexes.length) };
}

/** The state of {@link rootFromMultiproof}'s walk (a plain object, not a closure: the verifiers' hot path). */
interface MultiWalk {
  hasher: Hasher;
  domain: number;
  indexes: readonly number[];
  leaves: readonly Uint8Array[];
  proof: readonly Uint8Array[];
  /** Next unused hash of `proof`. */
  next: number;
}

/** The root of the subtree `[lo, hi)`, whose revealed leaves are `indexes[from..to)`. */
function multiRoot(w: MultiWalk, lo: number, hi: number, from: number, to: number): Uint8Array {
  if (from === to) return w.proof[w.next++];
  if (hi - lo === 1) return w.leaves[from];
  const mid = lo + splitPoint(hi - lo);
  let cut = from;
  while (cut < to && w.indexes[cut] < mid) cut++;
  const left = multiRoot(w, lo, mid, from, cut);
  return w.hasher.node(w.domain, left, multiRoot(w, mid, hi, cut, to));
}
