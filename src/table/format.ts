/**
 * The on-disk layout of a ProofKV sorted table (SSTable), and the small pieces every table reader
 * and writer shares: block handles, the block trailer and the footer.
 *
 * ```
 * table file
 * +---------------------+
 * | data block 0        |  entries of internal keys in engine order (see block_builder.ts)
 * | trailer (5 B)       |
 * +---------------------+
 * | ...                 |
 * +---------------------+
 * | data block n-1      |
 * | trailer (5 B)       |
 * +---------------------+
 * | filter block        |  one bloom filter over the table's distinct user keys (bloom.ts)
 * | trailer (5 B)       |
 * +---------------------+
 * | merkle block        |  blockRoot[0] .. blockRoot[n-1] (32 B each), tableRoot (32 B)
 * | trailer (5 B)       |
 * +---------------------+
 * | properties block    |  block format: sorted name -> value (see properties below)
 * | trailer (5 B)       |
 * +---------------------+
 * | metaindex block     |  block format: "filter" | "merkle" | "properties" -> block handle
 * | trailer (5 B)       |
 * +---------------------+
 * | index block         |  block format: last internal key of data block i (full) -> handle i
 * | trailer (5 B)       |
 * +---------------------+
 * | footer (48 B)       |
 * +---------------------+
 *
 * block handle  = offset varint64 || size varint64        (size excludes the 5-byte trailer)
 *
 * block trailer = type u8 (0 = uncompressed, the only type) ||
 *                 mask(crc32c(block contents || type)) fixed32 LE       (exactly LevelDB's)
 *
 * footer (48 B) = metaindex handle || index handle || zero padding to 40 B || magic (8 B)
 *                 (handle varints in shortest form; the footer has no checksum, so a reader
 *                 rejects any other byte pattern)
 *                 magic = 8b 50 4b 56 54 42 4c 31   ("\x8bPKVTBL1")
 *
 * block contents (data, index, metaindex, properties):
 *   entry*        shared varint32 || unshared varint32 || valueLen varint32 ||
 *                 key[shared..] (unshared bytes) || value (valueLen bytes)
 *   restarts      restartOffset fixed32 LE x numRestarts   (entries with shared = 0)
 *   numRestarts   fixed32 LE                                 (>= 1)
 *
 * data block contents from format 3 on: the block above (its "body"), then, only when the
 * block's n entries exceed K, its stored Merkle nodes, all covered by the block's CRC:
 *   groupRoot[32] x G   G = ceil(n / K); root g is the root of the entry tree's aligned subtree
 *                       over entries [gK, min(gK+K, n))
 *   G | 2^31      fixed32 LE (a body ends with numRestarts, always below 2^31: the top bit tells)
 *   A block of at most K entries is its body alone, byte for byte as in format 2.
 *   K = "proofkv.merkle-group", or DEFAULT_MERKLE_GROUP when that property is absent.
 *
 * properties (all values varint64 unless noted; names sorted bytewise):
 *   "proofkv.block-count", "proofkv.entry-count", "proofkv.format-version",
 *   "proofkv.largest" (raw internal key), "proofkv.max-time" (largest commit time),
 *   "proofkv.merkle-group" (K; format 3, only when not DEFAULT_MERKLE_GROUP), "proofkv.raw-key-size", "proofkv.raw-value-size",
 *   "proofkv.smallest" (raw internal key)
 * ```
 * Merkle roots: blockRoot[i] = hasher.blockRootOfLeaves(leaves of block i), with one leaf per
 * entry, `entryLeaf(userKey, version, seq, time, kind, valueHash(value))`, in block order (a
 * stored value is `u64 time || value`);
 * tableRoot = hasher.tableRootOfBlocks(blockRoots, entryCount). See proofs/hash.ts.
 *
 * Nothing in a table depends on the clock at build, machine or file number: the same entries with the same
 * options give byte-identical files.
 * @module
 */
import { CorruptionError } from '../errors.js';
import { ByteReader, ByteWriter, getFixed32, putFixed32, varintLength } from '../util/coding.js';
import { crc32cExtend, maskCrc, unmaskCrc } from '../util/crc32c.js';

/**
 * Version of the table format written by this code (stored in the properties block). 2: every
 * stored value starts with its u64 commit time, and the entry leaf commits to it. 3: every data
 * block also stores the roots of its entry tree's aligned K-entry subtrees (its "group roots"), so
 * a proof hashes only the groups its window touches. Format 2 tables are still read (their proofs
 * rebuild whole block trees); format 1 (before commit times) is refused with `OutdatedFormatError`.
 */
export const FORMAT_VERSION = 3;
/** The oldest table format still read (format 2: no stored group roots). */
export const MIN_FORMAT_VERSION = 2;
/**
 * Entries per stored group root (K) in the tables this code writes: a power of two. Chosen by
 * measurement (bench/README.md § "Stored group roots"): 4 B per entry on disk.
 */
export const DEFAULT_MERKLE_GROUP = 8;
/** Top bit of a data block's last word: set when group roots precede it (format 3). */
export const GROUPS_FLAG = 0x80000000;
/** Largest K a table may declare (a group tree is at most this many leaves). */
export const MAX_MERKLE_GROUP = 1 << 16;
/** Bytes after every block: compression type + masked CRC32C. */
export const BLOCK_TRAILER_LEN = 5;
/** Fixed size of the footer. */
export const FOOTER_LEN = 48;
/** The only block compression type: none. */
export const COMPRESSION_NONE = 0;
/** The last 8 bytes of every ProofKV table. */
export const TABLE_MAGIC: Uint8Array = Uint8Array.of(0x8b, 0x50, 0x4b, 0x56, 0x54, 0x42, 0x4c, 0x31);
/** Metaindex name of the bloom filter block (absent when the table has no filter). */
export const META_FILTER = 'filter';
/** Metaindex name of the Merkle block (block roots, then the table root). */
export const META_MERKLE = 'merkle';
/** Metaindex name of the properties block. */
export const META_PROPERTIES = 'properties';
/** Properties names (sorted bytewise, as the properties block stores them). */
export const PROP = {
  BLOCK_COUNT: 'proofkv.block-count',
  ENTRY_COUNT: 'proofkv.entry-count',
  FORMAT_VERSION: 'proofkv.format-version',
  LARGEST: 'proofkv.largest',
  MAX_TIME: 'proofkv.max-time',
  MERKLE_GROUP: 'proofkv.merkle-group',
  RAW_KEY_SIZE: 'proofkv.raw-key-size',
  RAW_VALUE_SIZE: 'proofkv.raw-value-size',
  SMALLEST: 'proofkv.smallest',
} as const;

/** Where a block lives in a table file: `size` excludes the block trailer. */
export interface BlockHandle {
  offset: number;
  size: number;
}

/** Appends a handle (two varints). */
export function encodeHandle(w: ByteWriter, h: BlockHandle): void {
  w.varint(h.offset);
  w.varint(h.size);
}

/** Encodes a handle into a fresh array. */
export function handleBytes(h: BlockHandle): Uint8Array {
  const w = new ByteWriter(20);
  encodeHandle(w, h);
  return w.finish();
}

/**
 * Decodes a handle that must span exactly `buf[start, end)` when `exact`; throws
 * `CorruptionError` on a malformed handle.
 */
export function decodeHandle(
  buf: Uint8Array,
  file: string,
  at: number,
  start = 0,
  end = buf.length,
  exact = true,
): BlockHandle {
  const r = new ByteReader(buf, start, end);
  try {
    const offset = r.varint();
    const size = r.varint();
    if (exact && r.remaining !== 0) throw new RangeError('trailing bytes after block handle');
    return { offset, size };
  } catch (e) {
    throw new CorruptionError(file, `bad block handle: ${(e as Error).message}`, at);
  }
}

/** The 5-byte trailer of `contents`: type byte and masked CRC32C over contents || type. */
export function blockTrailer(contents: Uint8Array, start = 0, end = contents.length): Uint8Array {
  const t = new Uint8Array(BLOCK_TRAILER_LEN);
  t[0] = COMPRESSION_NONE;
  const crc = crc32cExtend(crc32cExtend(0, contents, start, end), t, 0, 1);
  putFixed32(t, 1, maskCrc(crc));
  return t;
}

/**
 * Checks the trailer that follows `raw[0, size)` (so `raw.length` must be `size + 5`) and returns
 * the block contents as a view. Throws `CorruptionError` on a checksum or type mismatch.
 */
export function verifyBlock(raw: Uint8Array, handle: BlockHandle, file: string): Uint8Array {
  const size = handle.size;
  if (raw.length !== size + BLOCK_TRAILER_LEN) {
    throw new CorruptionError(file, `short block read: ${raw.length} of ${size + BLOCK_TRAILER_LEN} bytes`, handle.offset);
  }
  const type = raw[size];
  const stored = unmaskCrc(getFixed32(raw, size + 1));
  const actual = crc32cExtend(crc32cExtend(0, raw, 0, size), raw, size, size + 1);
  if (stored !== actual) {
    throw new CorruptionError(
      file,
      `block checksum mismatch: stored ${stored.toString(16)}, computed ${actual.toString(16)}`,
      handle.offset,
    );
  }
  if (type !== COMPRESSION_NONE) throw new CorruptionError(file, `unknown block type ${type}`, handle.offset + size);
  return raw.subarray(0, size);
}

/** Table footer: where the metaindex and index blocks are. */
export interface Footer {
  metaindex: BlockHandle;
  index: BlockHandle;
}

/** Encodes the 48-byte footer. */
export function encodeFooter(f: Footer): Uint8Array {
  const w = new ByteWriter(FOOTER_LEN);
  encodeHandle(w, f.metaindex);
  encodeHandle(w, f.index);
  const out = new Uint8Array(FOOTER_LEN);
  out.set(w.view(), 0);
  out.set(TABLE_MAGIC, FOOTER_LEN - TABLE_MAGIC.length);
  return out;
}

/**
 * Decodes a footer read from `fileOffset`; checks the magic, that the handles' varints are in
 * shortest form and that the padding is zero (so no byte of the footer, which has no checksum, can
 * change unnoticed). Throws `CorruptionError`.
 */
export function decodeFooter(buf: Uint8Array, file: string, fileOffset: number): Footer {
  if (buf.length !== FOOTER_LEN) throw new CorruptionError(file, `footer is ${buf.length} bytes, want ${FOOTER_LEN}`, fileOffset);
  const magicAt = FOOTER_LEN - TABLE_MAGIC.length;
  for (let i = 0; i < TABLE_MAGIC.length; i++) {
    if (buf[magicAt + i] !== TABLE_MAGIC[i]) throw new CorruptionError(file, 'bad table magic (not a ProofKV table)', fileOffset + magicAt);
  }
  const r = new ByteReader(buf, 0, magicAt);
  let metaindex: BlockHandle;
  let index: BlockHandle;
  // Varints must be canonical (shortest form), so no footer byte can change without notice.
  const canonical = (): number => {
    const at = r.pos;
    const v = r.varint();
    if (r.pos - at !== varintLength(v)) throw new RangeError('non-canonical varint');
    return v;
  };
  try {
    metaindex = { offset: canonical(), size: canonical() };
    index = { offset: canonical(), size: canonical() };
  } catch (e) {
    throw new CorruptionError(file, `bad footer handle: ${(e as Error).message}`, fileOffset);
  }
  for (let i = r.pos; i < magicAt; i++) {
    if (buf[i] !== 0) throw new CorruptionError(file, 'non-zero footer padding', fileOffset + i);
  }
  return { metaindex, index };
}

/**
 * Number of group roots a format-3 data block of `entries` entries stores with group size `k`:
 * `ceil(entries / k)` when `entries > k`, else 0 (a block of at most K entries is one group, and
 * its root is what the block root wraps, so it stores nothing).
 */
export function groupCount(entries: number, k: number): number {
  return entries > k ? Math.ceil(entries / k) : 0;
}

/** A format-3 data block split into the block proper and its stored group roots. */
export interface DataBlockParts {
  /** The block (entries, restarts): what `Block` parses. */
  body: Uint8Array;
  /** `32 × G` bytes of group roots (a view; empty when G = 0). */
  nodes: Uint8Array;
}

/**
 * Splits format-3 data block contents (already checksummed) into body and group roots. Throws
 * `CorruptionError` when the group count does not fit the contents.
 */
export function splitDataBlock(contents: Uint8Array, file: string, at: number): DataBlockParts {
  const len = contents.length;
  const last = len >= 4 ? getFixed32(contents, len - 4) : 0;
  if (last < GROUPS_FLAG) return { body: contents, nodes: contents.subarray(len, len) };
  const g = last - GROUPS_FLAG;
  // Roots of at least two groups, and a body that keeps at least its restart count (4 bytes).
  if (g < 2 || g > (len - 8) / 32) throw new CorruptionError(file, `bad group root count ${g}`, at + len - 4);
  const bodyEnd = len - 4 - 32 * g;
  return { body: contents.subarray(0, bodyEnd), nodes: contents.subarray(bodyEnd, len - 4) };
}
