/**
 * Allocation-lean Merkle hashing of data blocks, for the table builder's hot path, `verify()` and
 * the prover.
 *
 * Produces exactly the digests of proofs/hash.ts — `entryLeaf(userKey, version, seq, time, kind,
 * valueHash(value))` and `blockRootOfLeaves(leaves)` — but lays each hashed message out in a
 * reused scratch buffer instead of allocating one per hash, and writes every digest straight into
 * a buffer ({@link Sha256Into}): the value hash into the leaf's message, the leaves of a block and
 * the inner nodes of its tree into one flat array, reduced in place. Measured on Node 20: a fresh
 * typed array above 64 bytes gets an off-heap backing store, which cost more than the SHA-256 of a
 * 100-byte value itself, and so does a node:crypto digest returned as a Buffer. Tests pin the
 * equality with {@link Hasher} for both SHA-256 backends.
 * @module
 */
import { Domain, HASH_LEN, type Hasher } from '../../proofs/hash.js';
import { TIME_LEN, TRAILER_LEN } from '../keys.js';
import { type Sha256Into, sha256IntoOf } from './node_hasher.js';

/** Values longer than this are hashed through `Hasher.valueHash` (no scratch growth). */
const MAX_SCRATCH_VALUE = 64 * 1024;

/** Where a block's group roots go: the tree's nodes at height `log` (see {@link BlockHasher.blockRoot}). */
export interface GroupRoots {
  log: number;
  out: Uint8Array[];
}

/** Hashes entry leaves and block roots with reused buffers. Not re-entrant. */
export class BlockHasher {
  /** SHA-256 of a message into a buffer. */
  private readonly into: Sha256Into;
  /** The leaf message `0x10 || u32 keyLen || … || valueHash`, reused. */
  private leafMsg: Uint8Array = new Uint8Array(256);
  /** A view of the first `leafViewLen` bytes of {@link leafMsg} (one view per message length, not per hash). */
  private leafView: Uint8Array = this.leafMsg.subarray(0, 0);
  /** The value message `0x19 || value`, reused. */
  private valueMsg: Uint8Array = new Uint8Array(256);
  private valueView: Uint8Array = this.valueMsg.subarray(0, 0);
  /** `0x11 || left || right`, reused. */
  private readonly nodeMsg = new Uint8Array(1 + 2 * HASH_LEN);
  /** Leaves of the block being added ({@link addLeaf}), 32 bytes each, then its tree reduced in place. */
  private flat: Uint8Array = new Uint8Array(64 * HASH_LEN);
  private flatCount = 0;

  /**
   * @param hasher the hash layouts (and SHA-256 of anything not hashed through `into`).
   * @param into SHA-256 into a buffer; by default {@link sha256IntoOf}`(hasher)`, which must give
   *   the digests of `hasher.sha256`.
   */
  constructor(
    readonly hasher: Hasher,
    into?: Sha256Into,
  ) {
    this.into = into ?? sha256IntoOf(hasher);
    this.nodeMsg[0] = Domain.ENTRY_NODE;
    this.leafMsg[0] = Domain.ENTRY_LEAF;
    this.valueMsg[0] = Domain.VALUE;
  }

  /**
   * The leaf of the entry with internal key `ik` (see keys.ts) and stored value `stored`
   * (`u64 time || value`): `H(0x10 || u32 keyLen || userKey || u64 version || u64 seq || u64 time
   * || kind || H(0x19 || value))`. The internal key's trailer is `version u64 || seq u56 || kind`,
   * so the message is the internal key with one zero byte (the top byte of the u64 seq) inserted
   * before the seq and the stored time inserted before the kind. Returns a fresh array. Throws
   * RangeError when `stored` is shorter than its time.
   */
  leaf(ik: Uint8Array, stored: Uint8Array): Uint8Array {
    const out = new Uint8Array(HASH_LEN);
    this.leafInto(ik, stored, out, 0);
    return out;
  }

  /** {@link leaf}, written to `out[off, off + 32)`. */
  leafInto(ik: Uint8Array, stored: Uint8Array, out: Uint8Array, off: number): void {
    if (stored.length < TIME_LEN) throw new RangeError(`stored value of ${stored.length} bytes has no commit time`);
    const n = 1 + 4 + ik.length + 1 + TIME_LEN + HASH_LEN;
    if (this.leafView.length !== n) {
      if (this.leafMsg.length < n) {
        this.leafMsg = grown(this.leafMsg, n);
        this.leafMsg[0] = Domain.ENTRY_LEAF;
      }
      this.leafView = this.leafMsg.subarray(0, n);
    }
    const s = this.leafMsg;
    const vhAt = 6 + ik.length + TIME_LEN;
    const vLen = stored.length - TIME_LEN;
    if (vLen > MAX_SCRATCH_VALUE) s.set(this.hasher.valueHash(stored.subarray(TIME_LEN)), vhAt);
    else {
      if (this.valueView.length !== 1 + vLen) {
        if (this.valueMsg.length < 1 + vLen) {
          this.valueMsg = grown(this.valueMsg, 1 + vLen);
          this.valueMsg[0] = Domain.VALUE;
        }
        this.valueView = this.valueMsg.subarray(0, 1 + vLen);
      }
      const v = this.valueMsg;
      if (vLen <= 128) for (let i = 0; i < vLen; i++) v[1 + i] = stored[TIME_LEN + i];
      else v.set(stored.subarray(TIME_LEN), 1);
      this.into(this.valueView, s, vhAt);
    }
    const ukLen = ik.length - TRAILER_LEN;
    s[1] = ukLen >>> 24;
    s[2] = (ukLen >>> 16) & 0xff;
    s[3] = (ukLen >>> 8) & 0xff;
    s[4] = ukLen & 0xff;
    const verEnd = ukLen + 8; // end of userKey || version inside ik
    for (let i = 0; i < verEnd; i++) s[5 + i] = ik[i];
    s[5 + verEnd] = 0;
    const kindAt = ik.length - 1; // the seq's 7 bytes end here
    for (let i = verEnd; i < kindAt; i++) s[6 + i] = ik[i];
    for (let i = 0; i < TIME_LEN; i++) s[6 + kindAt + i] = stored[i];
    s[6 + kindAt + TIME_LEN] = ik[kindAt];
    this.into(this.leafView, out, off);
  }

  /** Hashes the leaf of the next entry of the block being built (see {@link finishBlock}). */
  addLeaf(ik: Uint8Array, stored: Uint8Array): void {
    const at = this.flatCount * HASH_LEN;
    if (at + HASH_LEN > this.flat.length) this.flat = grown(this.flat, at + HASH_LEN, at);
    this.leafInto(ik, stored, this.flat, at);
    this.flatCount++;
  }

  /**
   * Adds the leaf `src[off, off + 32)` — one computed before, by {@link leafInto} of the same
   * entry — as the next leaf of the block being built, without hashing (a compaction reusing its
   * inputs' leaves, src/compaction/leaf_cache.ts).
   */
  addLeafFrom(src: Uint8Array, off: number): void {
    const at = this.flatCount * HASH_LEN;
    if (at + HASH_LEN > this.flat.length) this.flat = grown(this.flat, at + HASH_LEN, at);
    const f = this.flat;
    for (let i = 0; i < HASH_LEN; i++) f[at + i] = src[off + i];
    this.flatCount++;
  }

  /** Leaves added since the last {@link finishBlock}. */
  get pendingLeaves(): number {
    return this.flatCount;
  }

  /**
   * The block root of the leaves added since the last call (at least one), as {@link blockRoot}
   * computes it (with the same `groups`), and starts the next block.
   */
  finishBlock(groups?: GroupRoots): Uint8Array {
    const count = this.flatCount;
    this.flatCount = 0;
    return this.rootOfFlat(count, groups);
  }

  /**
   * `hasher.blockRootOfLeaves(leaves)`, with one scratch buffer for every inner node. With
   * `groups`, also the block's group roots (format.ts): when there are more than `2^groups.log`
   * leaves, `groups.out` receives the tree's nodes at height `groups.log` — node `g` is the root of
   * leaves `[g·K, min((g+1)·K, n))` — and stays empty otherwise. Leaves added with
   * {@link addLeaf} and not yet finished are discarded.
   */
  blockRoot(leaves: readonly Uint8Array[], groups?: GroupRoots): Uint8Array {
    const count = leaves.length;
    if (this.flat.length < count * HASH_LEN) this.flat = grown(this.flat, count * HASH_LEN, 0);
    for (let i = 0; i < count; i++) this.flat.set(leaves[i], i * HASH_LEN);
    this.flatCount = 0;
    return this.rootOfFlat(count, groups);
  }

  /** The block root of the `count` leaves at the start of {@link flat}, reducing the tree there in place. */
  private rootOfFlat(count: number, groups: GroupRoots | undefined): Uint8Array {
    if (count === 0) throw new RangeError('a block root needs at least one leaf');
    const into = this.into;
    const msg = this.nodeMsg;
    const f = this.flat;
    // Bottom-up pairing with the odd last node promoted: the RFC 6962 tree shape, so after h
    // rounds node j covers leaves [j·2^h, min((j+1)·2^h, n)). Node j of the next level is written
    // over node j of this one, after nodes 2j and 2j + 1 (at or after it) were read.
    if (groups) groups.out.length = 0;
    let size = count;
    let height = 0;
    while (size > 1) {
      if (groups !== undefined && height === groups.log) {
        for (let i = 0; i < size; i++) groups.out.push(f.slice(i * HASH_LEN, (i + 1) * HASH_LEN));
      }
      let w = 0;
      for (let i = 0; i + 1 < size; i += 2) {
        const at = i * HASH_LEN;
        for (let j = 0; j < 2 * HASH_LEN; j++) msg[1 + j] = f[at + j];
        into(msg, f, w * HASH_LEN);
        w++;
      }
      if (size % 2 === 1) {
        f.copyWithin(w * HASH_LEN, (size - 1) * HASH_LEN, size * HASH_LEN);
        w++;
      }
      size = w;
      height++;
    }
    return this.hasher.blockRoot(count, f.subarray(0, HASH_LEN));
  }
}

/** A copy of `buf[0, keep)` in a buffer of at least `n` bytes (capacity doubled). */
function grown(buf: Uint8Array, n: number, keep = 0): Uint8Array {
  let cap = buf.length * 2;
  while (cap < n) cap *= 2;
  const next = new Uint8Array(cap);
  if (keep > 0) next.set(buf.subarray(0, keep));
  return next;
}
