/**
 * The checkpoint log: an append-only Merkle log built exactly as RFC 9162 §2.1 (RFC 6962 §2.1)
 * builds one, so its inclusion and consistency proofs follow the RFC and check against the RFC's
 * published test vectors. Isomorphic: no `node:` imports.
 *
 * ```
 * leaf hash   = H(0x00 || data)              RFC 9162 §2.1.1, MTH({d0}) = HASH(0x00 || d0)
 * inner node  = H(0x01 || left[32] || right[32])
 * empty tree  = H()                          SHA-256 of the empty string
 * ```
 * The tree over n leaves splits at k, the largest power of two smaller than n. Proof elements run
 * from the leaf towards the root. For ProofKV the data of leaf i is the checkpoint message of
 * checkpoint i (see `checkpoint.ts`).
 *
 * Verifiers (`verifyInclusion`, `verifyConsistency`, `rootFromInclusionProof`) return a
 * {@link Verified} result and never throw. Provers (`inclusionProof`, `consistencyProof`,
 * {@link LogTree}) throw `RangeError`/`TypeError` on bad arguments: they run on the server.
 * @module
 */
import { Domain, HASH_LEN, Hasher, defaultHasher } from './hash.js';
import { equalBytes } from './bytes.js';
import { OK, Reason, fail, type Verified } from './errors.js';
import {
  _arraySource,
  _checkHash,
  _checkPath,
  _checkUint,
  _inclusionPath,
  _isUint,
  _rootMismatch,
  _expectRoot,
  type _SubtreeSource,
  rootFromTreeInclusion,
  splitPoint,
} from './tree.js';

/** `H(0x00 || data)`: the hash of one log leaf (RFC 9162 §2.1.1). */
export function logLeafHash(data: Uint8Array, hasher: Hasher = defaultHasher()): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError('leaf data must be a Uint8Array');
  const buf = new Uint8Array(1 + data.length);
  buf[0] = Domain.LOG_LEAF;
  buf.set(data, 1);
  return hasher.sha256(buf);
}

/** `H(0x01 || left || right)`: an inner node of the log (RFC 9162 §2.1.1). */
export function logNodeHash(left: Uint8Array, right: Uint8Array, hasher: Hasher = defaultHasher()): Uint8Array {
  return hasher.node(Domain.LOG_NODE, left, right);
}

/** The root of the empty log: SHA-256 of the empty string (RFC 9162 §2.1.1, MTH({}) = HASH()). */
export function emptyLogRoot(hasher: Hasher = defaultHasher()): Uint8Array {
  return hasher.sha256(new Uint8Array(0));
}

function checkLeafHashes(leafHashes: readonly Uint8Array[]): void {
  if (!Array.isArray(leafHashes)) throw new TypeError('leafHashes must be an array');
  for (let i = 0; i < leafHashes.length; i++) {
    if (!(leafHashes[i] instanceof Uint8Array) || leafHashes[i].length !== HASH_LEN) {
      throw new RangeError(`leafHashes[${i}] must be a ${HASH_LEN}-byte hash`);
    }
  }
}

/** The log root over `leafHashes` (RFC 9162 §2.1.1 MTH); the empty log has {@link emptyLogRoot}. */
export function logRoot(leafHashes: readonly Uint8Array[], hasher: Hasher = defaultHasher()): Uint8Array {
  checkLeafHashes(leafHashes);
  if (leafHashes.length === 0) return emptyLogRoot(hasher);
  return hasher.treeRoot(Domain.LOG_NODE, leafHashes);
}

/**
 * Prover: the inclusion proof of leaf `index` in the log of all `leafHashes`
 * (RFC 9162 §2.1.3.1 PATH), leaf to root. Requires `index < leafHashes.length`.
 */
export function inclusionProof(index: number, leafHashes: readonly Uint8Array[], hasher: Hasher = defaultHasher()): Uint8Array[] {
  checkLeafHashes(leafHashes);
  if (!_isUint(index) || index >= leafHashes.length) {
    throw new RangeError(`index ${index} out of range for tree size ${leafHashes.length}`);
  }
  return _inclusionPath(_arraySource(hasher, Domain.LOG_NODE, leafHashes), index, leafHashes.length);
}

/**
 * Number of elements in the consistency proof between sizes `size1` and `size2`
 * (RFC 9162 §2.1.4.1). Requires `0 < size1 <= size2`; it is 0 when the sizes are equal.
 */
export function consistencyProofSize(size1: number, size2: number): number {
  return _consistencyPath(undefined, size1, size2) as number;
}

/**
 * RFC 9162 §2.1.4.1 SUBPROOF(m, D[0:n], true), leaf to root; with `src` undefined only counts.
 * @internal
 */
export function _consistencyPath(src: _SubtreeSource | undefined, m: number, n: number): Uint8Array[] | number {
  const out: Uint8Array[] = [];
  let count = 0;
  const emit = (lo: number, hi: number): void => {
    if (src) out.push(src(lo, hi));
    count++;
  };
  const sub = (m: number, lo: number, hi: number, b: boolean): void => {
    if (m === hi - lo) {
      if (!b) emit(lo, hi);
      return;
    }
    const k = splitPoint(hi - lo);
    if (m <= k) {
      sub(m, lo, lo + k, b);
      emit(lo + k, hi);
    } else {
      sub(m - k, lo + k, hi, false);
      emit(lo, lo + k);
    }
  };
  if (m < n) sub(m, 0, n, true);
  return src ? out : count;
}

/**
 * Prover: the consistency proof between the log's first `size1` and first `size2` leaves
 * (RFC 9162 §2.1.4.1 PROOF). Requires `0 < size1 <= size2 <= leafHashes.length`; equal sizes give
 * the empty proof.
 */
export function consistencyProof(
  size1: number,
  size2: number,
  leafHashes: readonly Uint8Array[],
  hasher: Hasher = defaultHasher(),
): Uint8Array[] {
  checkLeafHashes(leafHashes);
  if (!_isUint(size1) || !_isUint(size2) || size1 === 0 || size1 > size2 || size2 > leafHashes.length) {
    throw new RangeError(`consistency proof needs 0 < size1 <= size2 <= ${leafHashes.length}, got ${size1}, ${size2}`);
  }
  return _consistencyPath(_arraySource(hasher, Domain.LOG_NODE, leafHashes), size1, size2) as Uint8Array[];
}

/**
 * The root implied by an inclusion proof for `leafHash` at `index` in a log of `treeSize` leaves
 * (RFC 9162 §2.1.3.2). Never throws.
 */
export function rootFromInclusionProof(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  hasher: Hasher = defaultHasher(),
): Verified<{ root: Uint8Array }> {
  return rootFromTreeInclusion(hasher, Domain.LOG_NODE, leafHash, index, treeSize, proof);
}

/**
 * Verifies that `leafHash` is the leaf at `index` of the log of `treeSize` leaves with root `root`
 * (RFC 9162 §2.1.3.2). Never throws; reasons: `MALFORMED_INPUT`, `INDEX_OUT_OF_RANGE`,
 * `PROOF_SIZE`, `HASH_LENGTH`, `ROOT_MISMATCH`.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
  hasher: Hasher = defaultHasher(),
): Verified {
  return _expectRoot(rootFromInclusionProof(leafHash, index, treeSize, proof, hasher), root);
}

function isPowerOfTwo(x: number): boolean {
  if (x < 1) return false;
  while (x % 2 === 0) x /= 2;
  return x === 1;
}

/**
 * Verifies that the log of `size2` leaves with root `root2` extends the log of `size1` leaves with
 * root `root1` (RFC 9162 §2.1.4.2). Requires `0 < size1 <= size2`; when the sizes are equal the
 * proof must be empty and the roots equal. Never throws; reasons: `MALFORMED_INPUT`,
 * `INVALID_SIZE`, `PROOF_SIZE`, `HASH_LENGTH`, `ROOT_MISMATCH`.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
  hasher: Hasher = defaultHasher(),
): Verified {
  let bad = _checkUint('size1', size1) ?? _checkUint('size2', size2);
  if (bad) return bad;
  if (!(hasher instanceof Hasher)) return fail(Reason.MALFORMED_INPUT, 'hasher must be a Hasher');
  if (size1 === 0) return fail(Reason.INVALID_SIZE, `size1 is 0 (size2 ${size2}): nothing to be consistent with`);
  if (size1 > size2) return fail(Reason.INVALID_SIZE, `size1 ${size1} is greater than size2 ${size2}`);
  bad = _checkPath('proof', proof, consistencyProofSize(size1, size2)) ?? _checkHash('root1', root1) ?? _checkHash('root2', root2);
  if (bad) return bad;
  if (size1 === size2) return equalBytes(root1, root2) ? OK : _rootMismatch('root2 (sizes equal)', root2, root1);

  // RFC 9162 §2.1.4.2, steps 2-8.
  const c = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = c[0];
  let sr = c[0];
  for (let i = 1; i < c.length; i++) {
    if (sn === 0) return fail(Reason.PROOF_SIZE, 'proof longer than the path to the root');
    if (fn % 2 === 1 || fn === sn) {
      fr = hasher.node(Domain.LOG_NODE, c[i], fr);
      sr = hasher.node(Domain.LOG_NODE, c[i], sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = hasher.node(Domain.LOG_NODE, sr, c[i]);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return fail(Reason.PROOF_SIZE, 'proof shorter than the path to the root');
  if (!equalBytes(fr, root1)) return _rootMismatch('root1', fr, root1);
  if (!equalBytes(sr, root2)) return _rootMismatch('root2', sr, root2);
  return OK;
}

// ---------------------------------------------------------------------------------------------

/**
 * An append-only log tree for the engine's persistent checkpoint log. It keeps every complete
 * subtree hash, level by level, in flat growable byte arrays (level 0 holds the leaf hashes,
 * level k holds floor(size / 2^k) hashes): about 2 * 32 bytes per leaf, one amortised inner hash
 * per append, and the root at any size or either proof in O(log n) hashes (RFC 9162 §2.1).
 *
 * ```
 * level 2:  [ n(0..4) ]
 * level 1:  [ n(0..2) | n(2..4) | n(4..6) ]
 * level 0:  [ L0 | L1 | L2 | L3 | L4 | L5 | L6 ]         size 7
 * ```
 * Returned hashes are copies. Throws `RangeError`/`TypeError` on bad arguments.
 */
export class LogTree {
  readonly #hasher: Hasher;
  /** levels[k]: hashes of complete subtrees of 2^k leaves. Invariant: used length = floor(size / 2^k) * 32. */
  #levels: Uint8Array[] = [];
  #size = 0;

  /** An empty log; `hasher` defaults to {@link defaultHasher} (the server passes a `node:crypto` one). */
  constructor(hasher: Hasher = defaultHasher()) {
    if (!(hasher instanceof Hasher)) throw new TypeError('hasher must be a Hasher');
    this.#hasher = hasher;
  }

  /** A log holding `leafHashes` in order. */
  static fromLeafHashes(leafHashes: Iterable<Uint8Array>, hasher: Hasher = defaultHasher()): LogTree {
    const t = new LogTree(hasher);
    for (const h of leafHashes) t.append(h);
    return t;
  }

  /** Number of leaves. */
  get size(): number {
    return this.#size;
  }

  /** Appends a leaf hash; returns its index. */
  append(leafHash: Uint8Array): number {
    if (!(leafHash instanceof Uint8Array) || leafHash.length !== HASH_LEN) {
      throw new RangeError(`leaf hash must be ${HASH_LEN} bytes`);
    }
    const index = this.#size;
    this.#put(0, index, leafHash);
    let idx = index;
    let level = 0;
    while (idx % 2 === 1) {
      const parent = this.#hasher.node(Domain.LOG_NODE, this.#node(level, idx - 1), this.#node(level, idx));
      idx = (idx - 1) / 2;
      level++;
      this.#put(level, idx, parent);
    }
    this.#size = index + 1;
    return index;
  }

  /** Appends `logLeafHash(data)`; returns its index. */
  appendData(data: Uint8Array): number {
    return this.append(logLeafHash(data, this.#hasher));
  }

  /** Drops every leaf at or after `size` (e.g. an uncommitted tail after a crash). */
  truncate(size: number): void {
    this.#checkSize('size', size, 0);
    this.#size = size;
  }

  /** The leaf hash at `index`. */
  leafHash(index: number): Uint8Array {
    if (!_isUint(index) || index >= this.#size) throw new RangeError(`index ${index} out of range for tree size ${this.#size}`);
    return this.#node(0, index).slice();
  }

  /** The root of the log's first `size` leaves (default: all). */
  root(size: number = this.#size): Uint8Array {
    this.#checkSize('size', size, 0);
    if (size === 0) return emptyLogRoot(this.#hasher);
    return this.#subtree(0, size).slice();
  }

  /** The inclusion proof of leaf `index` in the log's first `size` leaves (RFC 9162 §2.1.3.1). */
  inclusionProof(index: number, size: number = this.#size): Uint8Array[] {
    this.#checkSize('size', size, 1);
    if (!_isUint(index) || index >= size) throw new RangeError(`index ${index} out of range for tree size ${size}`);
    return _inclusionPath((lo, hi) => this.#subtree(lo, hi).slice(), index, size);
  }

  /** The consistency proof between the first `size1` and first `size2` leaves (RFC 9162 §2.1.4.1). */
  consistencyProof(size1: number, size2: number = this.#size): Uint8Array[] {
    this.#checkSize('size2', size2, 1);
    if (!_isUint(size1) || size1 === 0 || size1 > size2) {
      throw new RangeError(`consistency proof needs 0 < size1 <= size2, got ${size1}, ${size2}`);
    }
    return _consistencyPath((lo, hi) => this.#subtree(lo, hi).slice(), size1, size2) as Uint8Array[];
  }

  #checkSize(name: string, size: number, min: number): void {
    if (!_isUint(size) || size < min || size > this.#size) {
      throw new RangeError(`${name} ${size} out of range [${min}, ${this.#size}]`);
    }
  }

  /** View of node `idx` at `level`; valid until the next append. */
  #node(level: number, idx: number): Uint8Array {
    return this.#levels[level].subarray(idx * HASH_LEN, (idx + 1) * HASH_LEN);
  }

  #put(level: number, idx: number, h: Uint8Array): void {
    if (level === this.#levels.length) this.#levels.push(new Uint8Array(HASH_LEN * 64));
    let buf = this.#levels[level];
    const end = (idx + 1) * HASH_LEN;
    if (end > buf.length) {
      const grown = new Uint8Array(Math.max(end, buf.length * 2));
      grown.set(buf);
      this.#levels[level] = buf = grown;
    }
    buf.set(h, idx * HASH_LEN);
  }

  /**
   * MTH of leaves `[lo, hi)`, where `lo` is a multiple of a power of two `>= hi - lo` (every range
   * the RFC's recursion asks for): the complete subtrees of the binary decomposition of
   * `hi - lo`, largest first, folded from the right.
   */
  #subtree(lo: number, hi: number): Uint8Array {
    const pieces: Uint8Array[] = [];
    while (lo < hi) {
      let level = 0;
      let width = 1;
      while (lo % (width * 2) === 0 && lo + width * 2 <= hi) {
        width *= 2;
        level++;
      }
      pieces.push(this.#node(level, lo / width));
      lo += width;
    }
    let acc = pieces[pieces.length - 1];
    for (let i = pieces.length - 2; i >= 0; i--) acc = this.#hasher.node(Domain.LOG_NODE, pieces[i], acc);
    return acc;
  }
}
