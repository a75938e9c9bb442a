/**
 * Inclusion, adjacency and range proofs for ProofKV's RFC 6962-shaped Merkle trees: the entry tree
 * of a data block (inner nodes 0x11), the block tree of a table (0x13), the master tree over table
 * descriptors (0x16) and the checkpoint log (0x01). Isomorphic: no `node:` imports.
 *
 * Shape (RFC 9162 §2.1.1): the tree over n leaves splits at k, the largest power of two smaller than
 * n; leaves are already hashes (each carries its own leaf domain byte) and are used as they are;
 * an inner node is `H(domain || left[32] || right[32])`; a lone last node is promoted, never
 * duplicated.
 *
 * ```
 *  n = 6, k = 4                       root
 *                                   /      \
 *                               n(0..4)   n(4..6)
 *                               /    \     /   \
 *                           n(0..2) n(2..4) L4  L5
 *                            /  \    /  \
 *                           L0  L1  L2  L3
 * ```
 * Inclusion paths run from the leaf towards the root (RFC 9162 §2.1.3.1). A range proof for the
 * leaves `[start, end)` lists, left to right, the roots of the maximal subtrees lying wholly outside
 * the range; with the range's leaves it determines the root (like a compact range in
 * transparency-dev/merkle).
 * @module
 */
import { Domain, HASH_LEN, Hasher, defaultHasher } from './hash.js';
import { equalBytes, toHex } from './bytes.js';
import { OK, Reason, fail, type Verified, type VerifyFailure } from './errors.js';

/** The inner-node domains of ProofKV's trees; tree functions accept only these. */
export const TREE_NODE_DOMAINS: readonly number[] = [
  Domain.LOG_NODE,
  Domain.ENTRY_NODE,
  Domain.BLOCK_NODE,
  Domain.MASTER_NODE,
];

/** A leaf with its inclusion path, as used by {@link verifyTreeAdjacent}. */
export interface LeafWithPath {
  /** The leaf hash (32 bytes). */
  leaf: Uint8Array;
  /** The leaf's index in the tree. */
  index: number;
  /** Inclusion path, leaf to root. */
  path: readonly Uint8Array[];
}

/**
 * Returns the hash of the subtree over leaves `[lo, hi)`; the ranges asked for are always subtrees
 * of the RFC 6962 shape (`lo` a multiple of a power of two `>= hi - lo`).
 * @internal
 */
export type _SubtreeSource = (lo: number, hi: number) => Uint8Array;

// ---------------------------------------------------------------------------------------------
// small checks, shared with log.ts and checkpoint.ts (underscore: not part of the public API)

/** Compares a recomputed root with the expected one (after checking the expected root's length). @internal */
export function _expectRoot(got: Verified<{ root: Uint8Array }>, root: Uint8Array): Verified {
  if (!got.ok) return got;
  const bad = _checkHash('root', root);
  if (bad) return bad;
  return equalBytes(got.root, root) ? OK : _rootMismatch('root', got.root, root);
}

/** True for a safe non-negative integer. @internal */
export function _isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A failure unless `v` is a safe non-negative integer. @internal */
export function _checkUint(name: string, v: unknown): VerifyFailure | undefined {
  if (_isUint(v)) return undefined;
  return fail(Reason.MALFORMED_INPUT, `${name} must be a safe non-negative integer, got ${_describe(v)}`);
}

/** A failure unless `h` is a 32-byte `Uint8Array`. @internal */
export function _checkHash(name: string, h: unknown): VerifyFailure | undefined {
  if (!(h instanceof Uint8Array)) return fail(Reason.MALFORMED_INPUT, `${name} must be a Uint8Array, got ${_describe(h)}`);
  if (h.length !== HASH_LEN) return fail(Reason.HASH_LENGTH, `${name} has length ${h.length}, want ${HASH_LEN}`);
  return undefined;
}

/** A failure unless `path` is an array of exactly `want` 32-byte hashes. @internal */
export function _checkPath(name: string, path: unknown, want: number): VerifyFailure | undefined {
  if (!Array.isArray(path)) return fail(Reason.MALFORMED_INPUT, `${name} must be an array, got ${_describe(path)}`);
  if (path.length !== want) return fail(Reason.PROOF_SIZE, `wrong ${name} size ${path.length}, want ${want}`);
  return checkHashes(name, path);
}

/** A failure unless every item of `list` is a 32-byte `Uint8Array`; names the item (`name[i]`) only when one is not. */
function checkHashes(name: string, list: readonly unknown[]): VerifyFailure | undefined {
  for (let i = 0; i < list.length; i++) {
    const h = list[i];
    if (!(h instanceof Uint8Array) || h.length !== HASH_LEN) return _checkHash(`${name}[${i}]`, h);
  }
  return undefined;
}

/** A failure unless `hasher` looks like a {@link Hasher} and `domain` is a tree node domain. @internal */
export function _checkHasherDomain(hasher: unknown, domain: unknown): VerifyFailure | undefined {
  if (!(hasher instanceof Hasher)) return fail(Reason.MALFORMED_INPUT, `hasher must be a Hasher, got ${_describe(hasher)}`);
  if (typeof domain !== 'number' || !TREE_NODE_DOMAINS.includes(domain)) {
    return fail(Reason.MALFORMED_INPUT, `domain ${_describe(domain)} is not a tree node domain`);
  }
  return undefined;
}

/** Root mismatch failure in got/want form. @internal */
export function _rootMismatch(what: string, got: Uint8Array, want: Uint8Array): VerifyFailure {
  return fail(Reason.ROOT_MISMATCH, `${what} mismatch: calculated ${toHex(got)}, want ${toHex(want)}`);
}

/** A short description of any value for failure messages; never throws (null-prototype objects, symbols). @internal */
export function _describe(v: unknown): string {
  if (v instanceof Uint8Array) return `Uint8Array(${v.length})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (v === null) return 'null';
  return typeof v;
}

// ---------------------------------------------------------------------------------------------
// shape

/**
 * The split point of a tree of `n > 1` leaves: the largest power of two smaller than `n`
 * (RFC 9162 §2.1.1, "k < n <= 2k").
 */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * Number of elements in the inclusion path of leaf `index` in a tree of `size` leaves
 * (RFC 9162 §2.1.3.1). Requires `index < size`.
 */
export function inclusionProofSize(index: number, size: number): number {
  let count = 0;
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) hi = lo + k;
    else lo += k;
    count++;
  }
  return count;
}

/** Inclusion path of leaf `index` in `[0, size)`, leaf to root (RFC 9162 §2.1.3.1). @internal */
export function _inclusionPath(src: _SubtreeSource, index: number, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      out.push(src(lo + k, hi));
      hi = lo + k;
    } else {
      out.push(src(lo, lo + k));
      lo += k;
    }
  }
  return out.reverse();
}

/**
 * Roots of the maximal subtrees of `[0, size)` wholly outside `[start, end)`, left to right.
 * With `src` undefined only counts them. @internal
 */
export function _rangePath(src: _SubtreeSource | undefined, start: number, end: number, size: number): Uint8Array[] | number {
  const out: Uint8Array[] = [];
  let count = 0;
  const walk = (lo: number, hi: number): void => {
    if (hi <= start || lo >= end) {
      if (src) out.push(src(lo, hi));
      count++;
      return;
    }
    if (start <= lo && hi <= end) return;
    const k = splitPoint(hi - lo);
    walk(lo, lo + k);
    walk(lo + k, hi);
  };
  walk(0, size);
  return src ? out : count;
}

/**
 * Number of elements in the range proof of leaves `[start, end)` in a tree of `size` leaves.
 * Requires `start < end <= size`.
 */
export function rangeProofSize(start: number, end: number, size: number): number {
  return countOutsideRange(start, end, 0, size);
}

/** {@link _rangePath}'s count for the subtree `[lo, hi)`, without a closure (the verifiers' hot path). */
function countOutsideRange(start: number, end: number, lo: number, hi: number): number {
  if (hi <= start || lo >= end) return 1;
  if (start <= lo && hi <= end) return 0;
  const k = splitPoint(hi - lo);
  return countOutsideRange(start, end, lo, lo + k) + countOutsideRange(start, end, lo + k, hi);
}

/** A subtree source over an array of leaves, hashing `[lo, hi)` bottom-up. @internal */
export function _arraySource(hasher: Hasher, domain: number, leaves: readonly Uint8Array[]): _SubtreeSource {
  return (lo, hi) => (hi - lo === 1 ? leaves[lo] : hasher.treeRoot(domain, leaves.slice(lo, hi)));
}

function assertProverArgs(domain: number, leaves: readonly Uint8Array[], hasher: Hasher): void {
  if (!(hasher instanceof Hasher)) throw new TypeError('hasher must be a Hasher');
  if (!TREE_NODE_DOMAINS.includes(domain)) throw new RangeError(`domain ${domain} is not a tree node domain`);
  if (!Array.isArray(leaves)) throw new TypeError('leaves must be an array');
  for (let i = 0; i < leaves.length; i++) {
    if (!(leaves[i] instanceof Uint8Array) || leaves[i].length !== HASH_LEN) {
      throw new RangeError(`leaves[${i}] must be a ${HASH_LEN}-byte hash`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// roots and inclusion

/**
 * Root of the tree over `leaves` with inner nodes in `domain` (RFC 9162 §2.1.1 MTH, with leaves
 * taken as already hashed). Requires at least one leaf; throws `RangeError` otherwise.
 * Same as `hasher.treeRoot`, with argument checks.
 */
export function treeRoot(domain: number, leaves: readonly Uint8Array[], hasher: Hasher = defaultHasher()): Uint8Array {
  assertProverArgs(domain, leaves, hasher);
  if (leaves.length === 0) throw new RangeError('a tree needs at least one leaf');
  return hasher.treeRoot(domain, leaves);
}

/**
 * Prover: the inclusion path of `leaves[index]`, leaf to root (RFC 9162 §2.1.3.1 PATH).
 * Throws `RangeError` for an index outside the tree. O(n) hashing; for repeated proofs over a
 * growing tree use {@link LogTree} from `log.ts`.
 */
export function treeInclusionProof(
  domain: number,
  leaves: readonly Uint8Array[],
  index: number,
  hasher: Hasher = defaultHasher(),
): Uint8Array[] {
  assertProverArgs(domain, leaves, hasher);
  if (!_isUint(index) || index >= leaves.length) {
    throw new RangeError(`index ${index} out of range for tree size ${leaves.length}`);
  }
  return _inclusionPath(_arraySource(hasher, domain, leaves), index, leaves.length);
}

/**
 * Verifier core: the root implied by an inclusion path, following RFC 9162 §2.1.3.2 with inner
 * nodes in `domain`. Checks every input first: `index < size`, the path length (got/want), every
 * hash 32 bytes. Never throws.
 */
export function rootFromTreeInclusion(
  hasher: Hasher,
  domain: number,
  leaf: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
): Verified<{ root: Uint8Array }> {
  const bad =
    _checkHasherDomain(hasher, domain) ??
    _checkUint('index', index) ??
    _checkUint('size', size) ??
    (index >= size ? fail(Reason.INDEX_OUT_OF_RANGE, `index ${index} out of range for tree size ${size}`) : undefined) ??
    _checkPath('proof', path, inclusionProofSize(index, size)) ??
    _checkHash('leaf hash', leaf);
  if (bad) return bad;
  // RFC 9162 §2.1.3.2, steps 2-5.
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return fail(Reason.PROOF_SIZE, 'proof longer than the path to the root');
    if (fn % 2 === 1 || fn === sn) {
      r = hasher.node(domain, p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = hasher.node(domain, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return fail(Reason.PROOF_SIZE, 'proof shorter than the path to the root');
  return { ok: true, root: r };
}

/**
 * Verifies that `leaf` is at `index` in the tree of `size` leaves with root `root`
 * (RFC 9162 §2.1.3.2, with inner nodes in `domain`). Never throws.
 */
export function verifyTreeInclusion(
  hasher: Hasher,
  domain: number,
  leaf: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
  root: Uint8Array,
): Verified {
  const got = rootFromTreeInclusion(hasher, domain, leaf, index, size, path);
  return _expectRoot(got, root);
}

/**
 * Verifies that two leaves are adjacent — at indexes `i` and `i + 1` — in the tree of `size` leaves
 * with root `root`: two inclusion proofs with checked indexes. Never throws.
 */
export function verifyTreeAdjacent(
  hasher: Hasher,
  domain: number,
  size: number,
  root: Uint8Array,
  left: LeafWithPath,
  right: LeafWithPath,
): Verified {
  if (typeof left !== 'object' || left === null || typeof right !== 'object' || right === null) {
    return fail(Reason.MALFORMED_INPUT, 'left and right must be objects');
  }
  const bad = _checkUint('left index', left.index) ?? _checkUint('right index', right.index);
  if (bad) return bad;
  if (right.index !== left.index + 1) {
    return fail(Reason.NOT_ADJACENT, `right index ${right.index}, want left index + 1 = ${left.index + 1}`);
  }
  const l = verifyTreeInclusion(hasher, domain, left.leaf, left.index, size, left.path, root);
  if (!l.ok) return fail(l.reason, `left leaf: ${l.message}`);
  const r = verifyTreeInclusion(hasher, domain, right.leaf, right.index, size, right.path, root);
  if (!r.ok) return fail(r.reason, `right leaf: ${r.message}`);
  return OK;
}

// ---------------------------------------------------------------------------------------------
// ranges

/**
 * Prover: the range proof for the contiguous leaves `[start, end)`: the roots of the maximal
 * subtrees wholly outside the range, left to right. Throws `RangeError` unless
 * `start < end <= leaves.length`.
 */
export function treeRangeProof(
  domain: number,
  leaves: readonly Uint8Array[],
  start: number,
  end: number,
  hasher: Hasher = defaultHasher(),
): Uint8Array[] {
  assertProverArgs(domain, leaves, hasher);
  if (!_isUint(start) || !_isUint(end) || start >= end || end > leaves.length) {
    throw new RangeError(`range [${start}, ${end}) out of range for tree size ${leaves.length}`);
  }
  return _rangePath(_arraySource(hasher, domain, leaves), start, end, leaves.length) as Uint8Array[];
}

/**
 * Verifier core: the root implied by the contiguous leaves `rangeLeaves` at `[start, start + len)`
 * in a tree of `size` leaves, and their range proof. Never throws.
 */
export function rootFromTreeRange(
  hasher: Hasher,
  domain: number,
  start: number,
  size: number,
  rangeLeaves: readonly Uint8Array[],
  proof: readonly Uint8Array[],
): Verified<{ root: Uint8Array }> {
  let bad = _checkHasherDomain(hasher, domain) ?? _checkUint('start', start) ?? _checkUint('size', size);
  if (bad) return bad;
  if (!Array.isArray(rangeLeaves)) return fail(Reason.MALFORMED_INPUT, 'leaves must be an array');
  const end = start + rangeLeaves.length;
  if (rangeLeaves.length === 0 || end > size) {
    return fail(Reason.INDEX_OUT_OF_RANGE, `range [${start}, ${end}) out of range for tree size ${size}`);
  }
  bad = _checkPath('proof', proof, rangeProofSize(start, end, size));
  if (bad) return bad;
  bad = checkHashes('leaves', rangeLeaves);
  if (bad) return bad;
  const walk: RangeWalk = { hasher, domain, start, end, leaves: rangeLeaves, proof, next: 0 };
  return { ok: true, root: rangeRoot(walk, 0, size) };
}

/** The state of {@link rootFromTreeRange}'s walk (a plain object, not a closure: this is the verifiers' hot path). */
interface RangeWalk {
  hasher: Hasher;
  domain: number;
  start: number;
  end: number;
  leaves: readonly Uint8Array[];
  proof: readonly Uint8Array[];
  /** Next unused hash of `proof`. */
  next: number;
}

/** The root of the subtree `[lo, hi)`: a proof hash outside the range, else a leaf or an inner node. */
function rangeRoot(w: RangeWalk, lo: number, hi: number): Uint8Array {
  if (hi <= w.start || lo >= w.end) return w.proof[w.next++];
  if (hi - lo === 1) return w.leaves[lo - w.start];
  const k = splitPoint(hi - lo);
  const l = rangeRoot(w, lo, lo + k);
  return w.hasher.node(w.domain, l, rangeRoot(w, lo + k, hi));
}

/**
 * Verifies that `rangeLeaves` are exactly the leaves at `[start, start + rangeLeaves.length)` of the
 * tree of `size` leaves with root `root`, none omitted or added. Never throws.
 */
export function verifyTreeRange(
  hasher: Hasher,
  domain: number,
  start: number,
  size: number,
  rangeLeaves: readonly Uint8Array[],
  proof: readonly Uint8Array[],
  root: Uint8Array,
): Verified {
  const got = rootFromTreeRange(hasher, domain, start, size, rangeLeaves, proof);
  return _expectRoot(got, root);
}
