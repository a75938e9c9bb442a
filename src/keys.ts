/**
 * Internal keys: how a record's identity is laid out in memtables and tables.
 *
 * ```
 * internal key = userKey || version u64 BE || seq u56 BE || kind u8      (trailer: 16 bytes)
 * ```
 * Order: user key ascending (bytewise), then version descending, then seq descending. Because the
 * trailer is big-endian, "descending" is the bytewise comparison of the trailers, negated.
 * @module
 */
import { compareBytes, readU64BE, writeU64BE } from '../proofs/bytes.js';
import type { Kind } from '../proofs/hash.js';

/** Bytes after the user key in an internal key. */
export const TRAILER_LEN = 16;
/** Largest sequence number (seq is stored in 56 bits; JS numbers cap it at 2^53 - 1). */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;
/** Largest version (the field is a u64; JS numbers cap it at 2^53 - 1). */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER;

/** One versioned record as the engine stores it. */
export interface Entry {
  key: Uint8Array;
  version: number;
  seq: number;
  /** Commit time, ms since the epoch (docs/engine.md § Commit times). */
  time: number;
  kind: Kind;
  value: Uint8Array;
}

/**
 * Bytes of the commit time in front of every stored value. Memtables and tables store a record's
 * value as `u64 time BE || value` (docs/storage.md §7.5): the time travels with the value through
 * flushes and compactions untouched, and the block hasher reads it from there for the entry leaf.
 */
export const TIME_LEN = 8;
/** Largest commit time (the field is a u64; JS numbers cap it at 2^53 - 1). */
export const MAX_TIME = Number.MAX_SAFE_INTEGER;

/** Bytes of one slab of {@link encodeStoredValue}. */
export const STORED_VALUE_SLAB = 64 * 1024;
/** Stored values longer than this get an array of their own rather than a piece of a slab. */
export const STORED_VALUE_SLAB_MAX = 4 * 1024;

let slab = new Uint8Array(0);
let slabPos = 0;

/**
 * The stored form of a value: `u64 time BE || value`, in fresh bytes that nothing else writes.
 * Forms up to {@link STORED_VALUE_SLAB_MAX} bytes are views into a shared 64 KiB slab, cut one
 * after another, and a new slab is started when the current one is full: a fresh typed array above
 * 64 bytes gets an off-heap backing store of its own, which cost more than the rest of a
 * memtable insert's encoding (bench/README.md § "Table builds and the apply per write"). A slab
 * is freed once no view of it is left; since a memtable's values are cut in insertion order, a
 * slab is shared by at most the values written around the same time, and a value kept after its
 * memtable is gone keeps at most one slab (64 KiB) alive. Callers must not rely on `.buffer`
 * being the value's own.
 */
export function encodeStoredValue(time: number, value: Uint8Array): Uint8Array {
  const n = TIME_LEN + value.length;
  let out: Uint8Array;
  if (n > STORED_VALUE_SLAB_MAX) out = new Uint8Array(n);
  else {
    if (slabPos + n > slab.length) {
      slab = new Uint8Array(STORED_VALUE_SLAB);
      slabPos = 0;
    }
    out = slab.subarray(slabPos, slabPos + n);
    slabPos += n;
  }
  writeU64BE(out, 0, time);
  out.set(value, TIME_LEN);
  return out;
}

/** The commit time of a stored value (see {@link TIME_LEN}); throws RangeError when it is too short. */
export function storedTime(stored: Uint8Array): number {
  if (stored.length < TIME_LEN) throw new RangeError(`stored value of ${stored.length} bytes has no commit time`);
  const t = readU64BE(stored, 0);
  if (t === undefined) throw new RangeError('stored commit time exceeds 2^53 - 1');
  return t;
}

/** The user value of a stored value (a view). */
export function storedUserValue(stored: Uint8Array): Uint8Array {
  return stored.subarray(TIME_LEN);
}

/** Encodes an internal key. */
export function encodeInternalKey(userKey: Uint8Array, version: number, seq: number, kind: Kind): Uint8Array {
  const out = new Uint8Array(userKey.length + TRAILER_LEN);
  out.set(userKey, 0);
  writeInternalTrailer(out, userKey.length, version, seq, kind);
  return out;
}

/** Writes the 16-byte trailer at `off`. */
export function writeInternalTrailer(buf: Uint8Array, off: number, version: number, seq: number, kind: Kind): void {
  writeU64BE(buf, off, version);
  // seq in 7 bytes, then kind: write seq as u64 shifted by one byte.
  const hi = Math.floor(seq / 0x1000000); // top bits beyond 24
  const lo = seq % 0x1000000;
  // bytes off+8 .. off+14 hold seq (56 bits) big-endian
  buf[off + 8] = Math.floor(hi / 0x1000000) & 0xff;
  buf[off + 9] = Math.floor(hi / 0x10000) & 0xff;
  buf[off + 10] = Math.floor(hi / 0x100) & 0xff;
  buf[off + 11] = hi & 0xff;
  buf[off + 12] = (lo >>> 16) & 0xff;
  buf[off + 13] = (lo >>> 8) & 0xff;
  buf[off + 14] = lo & 0xff;
  buf[off + 15] = kind;
}

/** Compares two internal keys in engine order. */
export function compareInternalKeys(a: Uint8Array, b: Uint8Array): number {
  return compareInternalPrefix(a, a.length, b);
}

/** {@link compareInternalKeys} of `a.subarray(0, aLen)` and `b`, without making the view. */
export function compareInternalPrefix(a: Uint8Array, aLen: number, b: Uint8Array): number {
  const al = aLen - TRAILER_LEN;
  const bl = b.length - TRAILER_LEN;
  const n = al < bl ? al : bl;
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d;
  }
  if (al !== bl) return al - bl;
  for (let i = 0; i < TRAILER_LEN; i++) {
    const d = b[bl + i] - a[al + i];
    if (d !== 0) return d;
  }
  return 0;
}

/** The user key part (a view). */
export function userKeyOf(ik: Uint8Array): Uint8Array {
  return ik.subarray(0, ik.length - TRAILER_LEN);
}

/** `compareBytes(userKeyOf(ik), userKey)` without making the view (point reads compare table bounds this way). */
export function compareUserKeyOf(ik: Uint8Array, userKey: Uint8Array): number {
  const al = ik.length - TRAILER_LEN;
  const bl = userKey.length;
  const n = al < bl ? al : bl;
  for (let i = 0; i < n; i++) {
    const d = ik[i] - userKey[i];
    if (d !== 0) return d;
  }
  return al - bl;
}

/** Compares the user-key parts of two internal keys. */
export function compareUserKeysOf(a: Uint8Array, b: Uint8Array): number {
  return compareBytes(userKeyOf(a), userKeyOf(b));
}

/** Version of an internal key. */
export function versionOf(ik: Uint8Array): number {
  return readU64BE(ik, ik.length - TRAILER_LEN) as number;
}

/** Sequence number of an internal key. */
export function seqOf(ik: Uint8Array): number {
  const o = ik.length - 8;
  return (
    ik[o] * 0x1000000000000 +
    ik[o + 1] * 0x10000000000 +
    ik[o + 2] * 0x100000000 +
    ik[o + 3] * 0x1000000 +
    ik[o + 4] * 0x10000 +
    ik[o + 5] * 0x100 +
    ik[o + 6]
  );
}

/** Kind of an internal key. */
export function kindOf(ik: Uint8Array): Kind {
  return ik[ik.length - 1] as Kind;
}

/**
 * The smallest internal key of `userKey` that is visible at or below `version` and `seq`:
 * seeking to it lands on the newest qualifying record.
 */
export function seekKey(userKey: Uint8Array, version: number, seq: number): Uint8Array {
  return encodeInternalKey(userKey, version, seq, 0xff as Kind);
}
