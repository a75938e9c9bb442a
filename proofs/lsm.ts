/**
 * The LSM structure as proofs see it: internal keys, entry order, table descriptors and the
 * MasterRoot. Isomorphic: no `node:` imports.
 *
 * ```
 * internal key = userKey || u64 version BE || u56 seq BE || u8 kind           (16-byte trailer)
 * descriptor   = H(0x15 || u8 level || u32 position || u32 len || smallest || u32 len || largest
 *                     || u64 entryCount || tableRoot[32])
 * masterRoot   = H(0x17 || u8 7 || u32 count[level 0..6] || masterTreeRoot[32])
 *                masterTreeRoot: tree (inner nodes 0x16) over the descriptors in read order —
 *                level 0 newest first, then levels 1..6 in key order; 32 zero bytes when empty.
 * ```
 * Entry order: user key ascending (bytewise), then version descending, then seq descending.
 * @module
 */
import { compareBytes, readU32BE, readU64BE, writeU32BE, writeU64BE } from './bytes.js';
import { Domain, HASH_LEN, type Hasher, type Kind } from './hash.js';

/** Number of LSM levels. */
export const NUM_LEVELS = 7;
/** Bytes after the user key in an internal key. */
export const INTERNAL_TRAILER_LEN = 16;

/** The fields of one entry leaf, as a proof reveals them. */
export interface EntryLeaf {
  key: Uint8Array;
  version: number;
  seq: number;
  /** Commit time, ms since the epoch (u64 in the leaf, after seq). */
  time: number;
  kind: Kind;
  /** `valueHash(value)`; the value itself travels only where it is an answer. */
  valueHash: Uint8Array;
}

/** An entry position in engine order, without the value. */
export interface EntryKey {
  key: Uint8Array;
  version: number;
  seq: number;
}

/** Parses an internal key; undefined if it is too short or its fields are out of range. */
export function parseInternalKey(ik: Uint8Array): (EntryKey & { kind: number }) | undefined {
  if (!(ik instanceof Uint8Array) || ik.length <= INTERNAL_TRAILER_LEN) return undefined;
  const o = ik.length - INTERNAL_TRAILER_LEN;
  const version = readU64BE(ik, o);
  const hi = readU32BE(ik, o + 8);
  const seq = hi * 0x1000000 + ((ik[o + 12] << 16) | (ik[o + 13] << 8) | ik[o + 14]);
  if (version === undefined || !Number.isSafeInteger(seq)) return undefined;
  return { key: ik.subarray(0, o), version, seq, kind: ik[o + 15] };
}

/** The internal key of an entry: `key || u64 version || u56 seq || u8 kind` (inverse of {@link parseInternalKey}). */
export function internalKeyOf(e: EntryKey & { kind: number }): Uint8Array {
  const o = e.key.length;
  const ik = new Uint8Array(o + INTERNAL_TRAILER_LEN);
  ik.set(e.key, 0);
  writeU64BE(ik, o, e.version);
  // u56 seq: the low 7 bytes of a u64, written big-endian, then the kind byte.
  const tmp = new Uint8Array(8);
  writeU64BE(tmp, 0, e.seq);
  ik.set(tmp.subarray(1), o + 8);
  ik[o + 15] = e.kind;
  return ik;
}

/** Engine order of two entries: negative if `a` comes first. */
export function compareEntries(a: EntryKey, b: EntryKey): number {
  const c = compareBytes(a.key, b.key);
  if (c !== 0) return c;
  if (a.version !== b.version) return b.version - a.version;
  return b.seq - a.seq;
}

/** A table as the MasterRoot commits to it. */
export interface TableDescriptor {
  level: number;
  /** Index within its level in read order. */
  position: number;
  /** Smallest internal key. */
  smallest: Uint8Array;
  /** Largest internal key. */
  largest: Uint8Array;
  entryCount: number;
  tableRoot: Uint8Array;
}

/** The descriptor leaf hash. */
export function descriptorHash(hasher: Hasher, d: TableDescriptor): Uint8Array {
  const buf = hasher.scratch(1 + 1 + 4 + 4 + d.smallest.length + 4 + d.largest.length + 8 + HASH_LEN);
  let o = 0;
  buf[o++] = Domain.TABLE_DESCRIPTOR;
  buf[o++] = d.level;
  writeU32BE(buf, o, d.position);
  o += 4;
  writeU32BE(buf, o, d.smallest.length);
  buf.set(d.smallest, o + 4);
  o += 4 + d.smallest.length;
  writeU32BE(buf, o, d.largest.length);
  buf.set(d.largest, o + 4);
  o += 4 + d.largest.length;
  writeU64BE(buf, o, d.entryCount);
  buf.set(d.tableRoot, o + 8);
  return hasher.digest(buf);
}

/** The MasterRoot from the per-level table counts and the master tree root. */
export function masterRootOf(hasher: Hasher, levelCounts: readonly number[], masterTreeRoot: Uint8Array): Uint8Array {
  const buf = hasher.scratch(1 + 1 + 4 * NUM_LEVELS + HASH_LEN);
  buf[0] = Domain.MASTER_ROOT;
  buf[1] = NUM_LEVELS;
  for (let l = 0; l < NUM_LEVELS; l++) writeU32BE(buf, 2 + 4 * l, levelCounts[l]);
  buf.set(masterTreeRoot, 2 + 4 * NUM_LEVELS);
  return hasher.digest(buf);
}

/** The MasterRoot of a whole table set, given its descriptors in read order (prover side). */
export function computeMasterRoot(hasher: Hasher, descriptors: readonly TableDescriptor[]): Uint8Array {
  const counts = new Array<number>(NUM_LEVELS).fill(0);
  for (const d of descriptors) counts[d.level]++;
  const treeRoot =
    descriptors.length === 0
      ? new Uint8Array(HASH_LEN)
      : hasher.treeRoot(
          Domain.MASTER_NODE,
          descriptors.map((d) => descriptorHash(hasher, d)),
        );
  return masterRootOf(hasher, counts, treeRoot);
}

/** First master-tree index of each level. */
export function levelOffsets(levelCounts: readonly number[]): number[] {
  const out: number[] = [];
  let n = 0;
  for (let l = 0; l < NUM_LEVELS; l++) {
    out.push(n);
    n += levelCounts[l];
  }
  return out;
}

