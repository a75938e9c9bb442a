/**
 * Domain-separated SHA-256 layouts for everything ProofKV hashes. Isomorphic: no `node:` imports.
 *
 * Every hashed message starts with one domain byte, and every variable-length field is
 * length-prefixed, so no message of one kind can be read as a message of another kind.
 * Integers are big-endian. `docs/proofs.md` specifies each layout byte by byte.
 *
 * ```
 * valueHash   = H(0x19 || value)
 * entryLeaf   = H(0x10 || u32 keyLen || key || u64 version || u64 seq || u64 time || u8 kind || valueHash[32])
 * entryNode   = H(0x11 || left[32] || right[32])          inner node of a data block's tree
 * blockRoot   = H(0x12 || u32 entryCount || entryTreeRoot[32])
 * blockNode   = H(0x13 || left[32] || right[32])          inner node of a table's tree of block roots
 * tableRoot   = H(0x14 || u32 blockCount || u64 entryCount || blockTreeRoot[32])
 * ```
 * Trees have the RFC 6962 shape (split at the largest power of two below the size); an odd node is
 * promoted, never duplicated, and each root is wrapped with its size so a tree commits to its size.
 * @module
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { writeU32BE, writeU64BE } from './bytes.js';
import { sha256 as jsSha256, sha256Node as jsSha256Node } from './sha256.js';

/**
 * A one-shot SHA-256 implementation: the built-in `sha256.ts` or noble in the isomorphic verifier,
 * `node:crypto` in Node.
 * Contract: returns a fresh 32-byte digest and does not keep `data` after it returns (the
 * {@link Hasher} reuses its message buffers between calls).
 */
export type Sha256 = (data: Uint8Array) => Uint8Array;

/** Domain-separation prefixes, one per kind of hashed message. */
export const Domain = {
  LOG_LEAF: 0x00,
  LOG_NODE: 0x01,
  ENTRY_LEAF: 0x10,
  ENTRY_NODE: 0x11,
  BLOCK_ROOT: 0x12,
  BLOCK_NODE: 0x13,
  TABLE_ROOT: 0x14,
  TABLE_DESCRIPTOR: 0x15,
  MASTER_NODE: 0x16,
  MASTER_ROOT: 0x17,
  CHECKPOINT: 0x18,
  VALUE: 0x19,
  SIGNER_SET: 0x1a,
} as const;

/** Record kinds, with LevelDB's numbering: a tombstone is 0, a value is 1. */
export const Kind = { DELETE: 0, PUT: 1 } as const;
/** A record kind. */
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Length of every digest. */
export const HASH_LEN = 32;
/**
 * Size of a {@link Hasher}'s reused message buffer (value hashes of values up to this minus one
 * byte, block and table roots, descriptor leaves with short keys); longer messages get a fresh buffer.
 */
export const MESSAGE_SCRATCH_LEN = 1024;
/** Length of an inner node's message: the domain byte and two digests. */
const NODE_MESSAGE_LEN = 1 + 2 * HASH_LEN;

/**
 * Longest key whose entry-leaf message a {@link Hasher} builds in its reused buffer (longer keys
 * get a fresh buffer): the buffer is 62 + this many bytes per hasher.
 */
export const LEAF_SCRATCH_KEY_LEN = 1024;

/** The fields an entry leaf commits to. */
export interface LeafFields {
  key: Uint8Array;
  version: number;
  seq: number;
  /** Commit time, ms since the epoch. */
  time: number;
  kind: Kind;
  valueHash: Uint8Array;
}

/**
 * The hash layouts, bound to one SHA-256 implementation. Both implementations must give identical
 * digests; a test cross-checks them.
 */
export class Hasher {
  /** Message buffer of {@link node}, reused: every inner node hashes exactly 65 bytes. */
  private readonly nodeBuf = new Uint8Array(NODE_MESSAGE_LEN);
  /** Message buffer of {@link entryLeaf} for keys up to {@link LEAF_SCRATCH_KEY_LEN} bytes, reused. */
  private readonly leafBuf = new Uint8Array(1 + 4 + LEAF_SCRATCH_KEY_LEN + 8 + 8 + 8 + 1 + HASH_LEN);

  /**
   * Messages shorter than this go to `proofs/sha256.ts` directly (inner nodes through its
   * `sha256Node`, which reads the two children without building the message); 0 when `sha256` is
   * an implementation of its own, which then hashes every message.
   */
  private readonly jsBelow: number;

  /**
   * @param sha256 the SHA-256 implementation.
   * @param options `jsBelow`: a promise that `sha256` hashes every message shorter than this many
   *   bytes with `proofs/sha256.ts` (as {@link jsHasher} and the Node entry points' hasher do), so the
   *   hasher may call it directly on its short messages; default 0 (always call `sha256`).
   */
  constructor(
    readonly sha256: Sha256,
    options: { jsBelow?: number } = {},
  ) {
    this.jsBelow = options.jsBelow ?? 0;
  }

  /** Message buffer of {@link valueHash} (values up to {@link MESSAGE_SCRATCH_LEN} − 1 bytes), {@link blockRoot}, {@link tableRoot} and {@link message} callers, reused. */
  private readonly msgBuf = new Uint8Array(MESSAGE_SCRATCH_LEN);

  /**
   * A scratch buffer of `len` bytes for a message about to be hashed with {@link digest} (reused:
   * valid until the next call on this hasher), or a fresh one when `len` exceeds
   * {@link MESSAGE_SCRATCH_LEN}.
   */
  scratch(len: number): Uint8Array {
    return len <= MESSAGE_SCRATCH_LEN ? this.msgBuf.subarray(0, len) : new Uint8Array(len);
  }

  /** `sha256(message)`, short messages straight to `proofs/sha256.ts` when the implementation allows it (`jsBelow`). */
  digest(message: Uint8Array): Uint8Array {
    return message.length < this.jsBelow ? jsSha256(message) : this.sha256(message);
  }

  /** `H(0x19 || value)`; a tombstone hashes the empty value. */
  valueHash(value: Uint8Array): Uint8Array {
    const buf = this.scratch(1 + value.length);
    buf[0] = Domain.VALUE;
    buf.set(value, 1);
    return this.digest(buf);
  }

  /** The leaf of one entry: `H(0x10 || u32 keyLen || key || u64 version || u64 seq || u64 time || u8 kind || valueHash)`. */
  entryLeaf(key: Uint8Array, version: number, seq: number, time: number, kind: Kind, valueHash: Uint8Array): Uint8Array {
    const len = 1 + 4 + key.length + 8 + 8 + 8 + 1 + HASH_LEN;
    const buf = key.length <= LEAF_SCRATCH_KEY_LEN ? this.leafBuf.subarray(0, len) : new Uint8Array(len);
    buf[0] = Domain.ENTRY_LEAF;
    writeU32BE(buf, 1, key.length);
    buf.set(key, 5);
    let off = 5 + key.length;
    writeU64BE(buf, off, version);
    writeU64BE(buf, off + 8, seq);
    writeU64BE(buf, off + 16, time);
    buf[off + 24] = kind;
    off += 25;
    buf.set(valueHash, off);
    return this.digest(buf);
  }

  /** An inner node: `H(domain || left || right)`. */
  node(domain: number, left: Uint8Array, right: Uint8Array): Uint8Array {
    if (this.jsBelow > NODE_MESSAGE_LEN && left.length === HASH_LEN && right.length === HASH_LEN) return jsSha256Node(domain, left, right);
    const buf = this.nodeBuf;
    buf[0] = domain;
    buf.set(left, 1);
    buf.set(right, 1 + HASH_LEN);
    return this.sha256(buf);
  }

  /** `H(0x12 || u32 entryCount || entryTreeRoot)`. */
  blockRoot(entryCount: number, entryTreeRoot: Uint8Array): Uint8Array {
    const buf = this.scratch(1 + 4 + HASH_LEN);
    buf[0] = Domain.BLOCK_ROOT;
    writeU32BE(buf, 1, entryCount);
    buf.set(entryTreeRoot, 5);
    return this.digest(buf);
  }

  /** `H(0x14 || u32 blockCount || u64 entryCount || blockTreeRoot)`. */
  tableRoot(blockCount: number, entryCount: number, blockTreeRoot: Uint8Array): Uint8Array {
    const buf = this.scratch(1 + 4 + 8 + HASH_LEN);
    buf[0] = Domain.TABLE_ROOT;
    writeU32BE(buf, 1, blockCount);
    writeU64BE(buf, 5, entryCount);
    buf.set(blockTreeRoot, 13);
    return this.digest(buf);
  }

  /**
   * Root of the RFC 6962-shaped tree over `leaves` with inner nodes in `domain`.
   * Requires at least one leaf. Computed bottom-up: pairing level by level and promoting a lone
   * last node gives exactly the RFC's split-at-largest-power-of-two tree.
   */
  treeRoot(domain: number, leaves: readonly Uint8Array[]): Uint8Array {
    if (leaves.length === 0) throw new RangeError('treeRoot requires at least one leaf');
    let level = leaves.slice();
    while (level.length > 1) {
      const next: Uint8Array[] = [];
      for (let i = 0; i + 1 < level.length; i += 2) next.push(this.node(domain, level[i], level[i + 1]));
      if (level.length % 2 === 1) next.push(level[level.length - 1]);
      level = next;
    }
    return level[0];
  }

  /** Root of a data block from its entries' leaf hashes. */
  blockRootOfLeaves(leaves: readonly Uint8Array[]): Uint8Array {
    return this.blockRoot(leaves.length, this.treeRoot(Domain.ENTRY_NODE, leaves));
  }

  /** Root of a table from its block roots and total entry count. */
  tableRootOfBlocks(blockRoots: readonly Uint8Array[], entryCount: number): Uint8Array {
    return this.tableRoot(blockRoots.length, entryCount, this.treeRoot(Domain.BLOCK_NODE, blockRoots));
  }
}

/** The hasher over noble's SHA-256: the reference the others are checked against. */
export const nobleHasher = new Hasher((d) => nobleSha256(d));

/**
 * The built-in hasher: `proofs/sha256.ts`, a one-shot SHA-256 without per-call allocation (3–5x
 * noble on the verifier's short messages). Used by default once it has given noble's digests on
 * the self-test messages at load (it falls back to {@link nobleHasher} otherwise).
 */
export const jsHasher = new Hasher(jsSha256, { jsBelow: Infinity });

/**
 * The hasher a verifier uses when it is given none: {@link jsHasher}, unless {@link installSha256}
 * installed another implementation (the Node entry points of `proofkv`, `proofkv/client`,
 * `proofkv/proofs` and `proofkv-client` install `node:crypto`'s).
 */
export function defaultHasher(): Hasher {
  return installedHasher;
}

/**
 * Self-test messages for {@link installSha256}: the empty message, `"abc"` (FIPS 180-2 B.1), and
 * the sizes the verifier hashes (65-byte inner nodes, 70-byte entry leaves of 16-byte keys, two
 * and more blocks), filled with a byte pattern. Checked against noble.
 */
const SELF_TEST_SIZES = [0, 3, 55, 56, 63, 64, 65, 70, 119, 128, 200] as const;

function selfTestMessage(n: number): Uint8Array {
  if (n === 3) return new Uint8Array([0x61, 0x62, 0x63]);
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = (i * 131 + n) & 0xff;
  return m;
}

/** Why `sha256` is not a usable implementation (a digest differs from noble's), or undefined. */
function selfTest(sha256: Sha256): string | undefined {
  if (typeof sha256 !== 'function') return 'sha256 must be a function';
  for (const n of SELF_TEST_SIZES) {
    const m = selfTestMessage(n);
    const want = nobleSha256(m);
    const got = sha256(m.slice());
    if (!(got instanceof Uint8Array) || got.length !== HASH_LEN || got.some((b, i) => b !== want[i])) {
      return `sha256 gives a wrong digest for a ${n}-byte message`;
    }
  }
  return undefined;
}

/** Whether `proofs/sha256.ts`'s inner-node entry gives noble's digest on a 65-byte message. */
function nodeSelfTest(): boolean {
  const m = selfTestMessage(NODE_MESSAGE_LEN);
  const want = nobleSha256(m);
  const got = jsSha256Node(m[0], m.subarray(1, 1 + HASH_LEN), m.subarray(1 + HASH_LEN));
  return got.length === HASH_LEN && got.every((b, i) => b === want[i]);
}

/** Whether `proofs/sha256.ts` (both entries) passed the self-test at load. */
const builtinOk = selfTest(jsSha256) === undefined && nodeSelfTest();
/** {@link jsHasher} if it passed the self-test at load, else {@link nobleHasher}. */
const builtinHasher: Hasher = builtinOk ? jsHasher : nobleHasher;
let installedHasher: Hasher = builtinHasher;

/**
 * Makes `sha256` the implementation behind {@link defaultHasher}, or restores the built-in one
 * ({@link jsHasher}) with `undefined`. The candidate must give noble's digests on a set of
 * self-test messages (sizes around the block boundaries and the verifier's message sizes);
 * otherwise it throws `TypeError` and the installed implementation is unchanged. A hasher passed explicitly (for example
 * `CheckpointExpectation.hasher`) is not affected. `options.jsBelow`: see the {@link Hasher}
 * constructor (ignored if `proofs/sha256.ts` failed its own self-test at load).
 */
export function installSha256(sha256: Sha256 | undefined, options: { jsBelow?: number } = {}): void {
  if (sha256 === undefined) {
    installedHasher = builtinHasher;
    return;
  }
  const bad = selfTest(sha256);
  if (bad) throw new TypeError(bad);
  installedHasher = new Hasher(sha256, { jsBelow: builtinOk ? options.jsBelow : 0 });
}
