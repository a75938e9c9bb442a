/**
 * Writes a table (layout in format.ts) from entries added in engine order. The Merkle leaves of a
 * data block are hashed as its entries arrive and folded into the block root when the block is
 * cut, so `finish()` only hashes the small tree of block roots. The nodes of that fold at height
 * log2(K) — the block's group roots — are stored after the block, for the prover.
 * @module
 */
import { compareBytes, readU64BE } from '../../proofs/bytes.js';
import type { Hasher } from '../../proofs/hash.js';
import { ErrorCode, InvalidArgumentError } from '../errors.js';
import { kindOf, TIME_LEN, TRAILER_LEN } from '../keys.js';
import { ByteWriter } from '../util/coding.js';
import { BlockBuilder } from './block_builder.js';
import { BlockHasher } from './block_hasher.js';
import { bloomHash, buildBloom } from './bloom.js';
import {
  blockTrailer,
  type BlockHandle,
  DEFAULT_MERKLE_GROUP,
  encodeFooter,
  FORMAT_VERSION,
  GROUPS_FLAG,
  MAX_MERKLE_GROUP,
  handleBytes,
  META_FILTER,
  META_MERKLE,
  META_PROPERTIES,
  PROP,
} from './format.js';
import { nodeHasher } from './node_hasher.js';

/** How tables are cut into blocks, filtered and hashed. Part of the deterministic output. */
export interface TableOptions {
  /** Target size of a data block's contents in bytes (a block is cut once it reaches this). */
  blockSize: number;
  /** Entries between restart points in data blocks. */
  restartInterval: number;
  /** Bloom filter bits per distinct user key; 0 writes no filter. */
  bloomBitsPerKey: number;
  /**
   * Entries per stored group root (K, a power of two from 2 to 2^16): each data block stores the
   * roots of its entry tree's aligned K-entry subtrees (format.ts), so a proof hashes one group
   * instead of the whole block. Not part of any Merkle root. 0 writes the format-2 layout (no
   * group roots), which tests use to check that older tables still open and prove.
   */
  merkleGroup: number;
  /** Merkle hash layouts and SHA-256 implementation. */
  hasher: Hasher;
}

/**
 * Defaults: 4 KiB blocks, a restart every 16 entries, 10 bloom bits per key, a group root per 8
 * entries, node:crypto SHA-256.
 */
export const DEFAULT_TABLE_OPTIONS: Readonly<TableOptions> = Object.freeze({
  blockSize: 4096,
  restartInterval: 16,
  bloomBitsPerKey: 10,
  merkleGroup: DEFAULT_MERKLE_GROUP,
  hasher: nodeHasher,
});

/** What a finished table commits to, for the manifest and the MasterRoot. */
export interface TableMeta {
  entryCount: number;
  blockCount: number;
  /** First internal key. */
  smallest: Uint8Array;
  /** Last internal key. */
  largest: Uint8Array;
  /** Table root: `hasher.tableRootOfBlocks(blockRoots, entryCount)`. */
  root: Uint8Array;
  /** One root per data block, in order. */
  blockRoots: Uint8Array[];
  /** File size in bytes. */
  size: number;
}

/** A finished table: its file bytes and its metadata. */
export interface BuiltTable extends StreamedTable {
  bytes: Uint8Array;
}

/** A finished table whose bytes went to the sink given to {@link TableBuilder.streamTo}: its metadata. */
export interface StreamedTable {
  meta: TableMeta;
  /**
   * With {@link TableBuilder.keepLeaves}: every entry's Merkle leaf, 32 bytes each, in entry order
   * (`entryCount × 32` bytes, an array of its own).
   */
  leaves?: Uint8Array;
}

/** Default size of the pieces {@link TableBuilder.streamTo} hands its sink, bytes. */
export const STREAM_CHUNK_BYTES = 256 * 1024;

/**
 * Builds one table. `add` entries in strictly increasing internal-key order, then `finish()` once:
 * the table in memory. Or, after {@link streamTo}, `finishStreamed()`: the table's bytes go to a
 * sink as blocks are cut, through one buffer of about a chunk (what a flush or compaction writing
 * a file uses: a whole table in one growing buffer cost a doubling copy, a final copy and the page
 * faults of every fresh buffer). A table must hold at least one entry.
 */
export class TableBuilder {
  private readonly opts: TableOptions;
  private out = new ByteWriter(1 << 16);
  /** With {@link streamTo}: where full chunks go, the chunk size, and the bytes handed over so far. */
  private sink: ((chunk: Uint8Array) => void) | null = null;
  private chunkBytes = STREAM_CHUNK_BYTES;
  private streamed = 0;
  private readonly block: BlockBuilder;
  /** Holds the current block's leaves (hashed as entries arrive) until the block is cut. */
  private readonly blockHasher: BlockHasher;
  /** The current block's group roots, filled by the block hasher when the block is cut. */
  private readonly groups: { log: number; out: Uint8Array[] } | undefined;
  /** Bytes of group roots and their counts written so far (see {@link estimatedSize}). */
  private nodeBytes = 0;
  private readonly blockRoots: Uint8Array[] = [];
  private readonly indexKeys: Uint8Array[] = [];
  private readonly handles: BlockHandle[] = [];
  private bloomHashes = new Uint32Array(1024);
  private bloomCount = 0;
  private prevKey = new Uint8Array(64);
  private prevKeyLen = -1;
  private smallest: Uint8Array | undefined;
  private entries = 0;
  private rawKeySize = 0;
  private rawValueSize = 0;
  private maxTime = 0;
  private done = false;
  /** With {@link keepLeaves}: the leaves of every entry added, 32 bytes each (grown by doubling). */
  private kept: Uint8Array | null = null;

  constructor(options: Partial<TableOptions> = {}) {
    const o: TableOptions = { ...DEFAULT_TABLE_OPTIONS, ...options };
    if (!Number.isInteger(o.blockSize) || o.blockSize < 1) throw new RangeError(`bad blockSize ${o.blockSize}`);
    if (!Number.isInteger(o.restartInterval) || o.restartInterval < 1) {
      throw new RangeError(`bad restartInterval ${o.restartInterval}`);
    }
    if (!Number.isFinite(o.bloomBitsPerKey) || o.bloomBitsPerKey < 0) {
      throw new RangeError(`bad bloomBitsPerKey ${o.bloomBitsPerKey}`);
    }
    const k = o.merkleGroup;
    if (!Number.isInteger(k) || (k !== 0 && (k < 2 || k > MAX_MERKLE_GROUP || (k & (k - 1)) !== 0))) {
      throw new RangeError(`bad merkleGroup ${k} (0, or a power of two from 2 to ${MAX_MERKLE_GROUP})`);
    }
    this.groups = k === 0 ? undefined : { log: Math.log2(k), out: [] };
    this.opts = o;
    this.block = new BlockBuilder(o.restartInterval);
    this.blockHasher = new BlockHasher(o.hasher);
  }

  /**
   * Keeps every entry's leaf, for {@link BuiltTable.leaves}: a later compaction of this table can
   * take them instead of hashing its entries again (src/compaction/leaf_cache.ts). Call before
   * the first {@link add}. Changes nothing in the table.
   */
  keepLeaves(): this {
    if (this.entries > 0) throw new Error('TableBuilder.keepLeaves after add');
    this.kept = new Uint8Array(1024 * 32);
    return this;
  }

  /**
   * Hands the table's bytes to `sink` in order, in pieces of at least `chunkBytes` (the last one
   * smaller) as blocks are cut, instead of keeping them: finish with {@link finishStreamed}. Each
   * piece is a view of a buffer the builder reuses, valid only during the call (a file write
   * copies it). Call before the first {@link add}. The bytes are those `finish()` would return.
   */
  streamTo(sink: (chunk: Uint8Array) => void, chunkBytes = STREAM_CHUNK_BYTES): this {
    if (this.entries > 0) throw new Error('TableBuilder.streamTo after add');
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`bad chunkBytes ${chunkBytes}`);
    this.sink = sink;
    this.chunkBytes = chunkBytes;
    // Room for a chunk and the block that passes it (a block is cut at about blockSize).
    this.out = new ByteWriter(chunkBytes + 2 * this.opts.blockSize + 1024);
    return this;
  }

  /** Entries added so far. */
  get entryCount(): number {
    return this.entries;
  }

  /**
   * Bytes the file would have if the current block were cut now, excluding meta blocks and the
   * stored group roots (with their counts): what a compaction compares with its target file size,
   * so tables are cut where they would be without stored nodes, whatever K is.
   */
  get estimatedSize(): number {
    const size = this.streamed + this.out.length - this.nodeBytes;
    return this.block.empty ? size : size + this.block.estimatedSize() + 5;
  }

  /**
   * True when internal key `ik` has the user key of the last entry added (false before the first):
   * a compaction cuts its outputs only where this is false, so one key's versions stay in one table.
   */
  continuesUserKey(ik: Uint8Array): boolean {
    if (this.prevKeyLen < 0) return false;
    const n = this.prevKeyLen - TRAILER_LEN;
    if (ik.length - TRAILER_LEN !== n) return false;
    const prev = this.prevKey;
    for (let i = 0; i < n; i++) if (prev[i] !== ik[i]) return false;
    return true;
  }

  /**
   * Appends an entry. `internalKey` (see keys.ts) must be strictly greater than the previous one
   * and carry kind PUT or DELETE, and `value` is the stored value `u64 time || value` (keys.ts
   * `encodeStoredValue`); otherwise throws `InvalidArgumentError` and adds nothing.
   *
   * `leaf` (with `leafOff`): the entry's leaf, `leaf[leafOff, leafOff + 32)`, as the block hasher
   * computed it when the entry was first written; it is used as given, not checked (the caller
   * vouches that it is this entry's: src/compaction/leaf_cache.ts).
   */
  add(internalKey: Uint8Array, value: Uint8Array, leaf?: Uint8Array, leafOff = 0): void {
    if (this.done) throw new Error('TableBuilder.add after finish');
    const klen = internalKey.length;
    if (klen <= TRAILER_LEN) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `internal key too short (${klen} bytes)`);
    }
    if (value.length < TIME_LEN || readU64BE(value, 0) === undefined) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'stored value must start with a u64 commit time below 2^53');
    }
    const kind = kindOf(internalKey);
    if (kind !== 0 && kind !== 1) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `bad entry kind ${kind}`);
    const ukLen = klen - TRAILER_LEN;
    let newUserKey = true;
    if (this.prevKeyLen >= 0) {
      // Compare with the previous key in place (no views): user key ascending, trailer descending.
      const prev = this.prevKey;
      const pl = this.prevKeyLen - TRAILER_LEN;
      const n = pl < ukLen ? pl : ukLen;
      let c = 0;
      for (let i = 0; i < n && c === 0; i++) c = prev[i] - internalKey[i];
      if (c === 0) c = pl - ukLen;
      if (c === 0) {
        newUserKey = false;
        for (let i = 0; i < TRAILER_LEN && c === 0; i++) c = internalKey[ukLen + i] - prev[pl + i];
      }
      if (c >= 0) {
        throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'TableBuilder.add: keys must be strictly increasing');
      }
    } else {
      this.smallest = internalKey.slice();
    }
    if (this.prevKey.length < klen) this.prevKey = new Uint8Array(Math.max(klen, this.prevKey.length * 2));
    this.prevKey.set(internalKey);
    this.prevKeyLen = klen;

    if (newUserKey && this.opts.bloomBitsPerKey > 0) {
      if (this.bloomCount === this.bloomHashes.length) {
        const grown = new Uint32Array(this.bloomHashes.length * 2);
        grown.set(this.bloomHashes);
        this.bloomHashes = grown;
      }
      this.bloomHashes[this.bloomCount++] = bloomHash(internalKey, 0, ukLen);
    }

    const kept = this.kept;
    if (kept !== null) {
      const at = this.entries * 32;
      if (at + 32 > kept.length) {
        const next = new Uint8Array(kept.length * 2);
        next.set(kept);
        this.kept = next;
      }
      const k = this.kept as Uint8Array;
      if (leaf !== undefined) for (let i = 0; i < 32; i++) k[at + i] = leaf[leafOff + i];
      else this.blockHasher.leafInto(internalKey, value, k, at);
      this.blockHasher.addLeafFrom(k, at);
    } else if (leaf !== undefined) this.blockHasher.addLeafFrom(leaf, leafOff);
    else this.blockHasher.addLeaf(internalKey, value);
    this.block.add(internalKey, value);
    this.entries++;
    this.rawKeySize += klen;
    this.rawValueSize += value.length;
    const time = readU64BE(value, 0)!;
    if (time > this.maxTime) this.maxTime = time;
    if (this.block.estimatedSize() >= this.opts.blockSize) this.cutBlock();
  }

  /** Writes the meta blocks and footer; returns the file bytes and metadata. Call once. */
  finish(): BuiltTable {
    if (this.sink !== null) throw new Error('TableBuilder.finish after streamTo: use finishStreamed');
    const t = this.finishTable();
    return { bytes: this.out.finish(), ...t };
  }

  /** {@link finish} after {@link streamTo}: hands the last bytes to the sink; returns the metadata. */
  finishStreamed(): StreamedTable {
    if (this.sink === null) throw new Error('TableBuilder.finishStreamed without streamTo');
    const t = this.finishTable();
    this.drain(0);
    return t;
  }

  /** Writes the meta blocks and footer (the bytes stay in {@link out} or went to the sink). */
  private finishTable(): StreamedTable {
    if (this.done) throw new Error('TableBuilder.finish called twice');
    if (this.entries === 0) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'a table needs at least one entry');
    if (!this.block.empty) this.cutBlock();
    this.done = true;
    const h = this.opts.hasher;

    const meta: [string, BlockHandle][] = [];
    if (this.opts.bloomBitsPerKey > 0) {
      const filter = buildBloom(this.bloomHashes, this.bloomCount, this.opts.bloomBitsPerKey);
      meta.push([META_FILTER, this.writeRaw(filter)]);
    }

    const digest = h.tableRootOfBlocks(this.blockRoots, this.entries);
    const root = new Uint8Array(digest);
    const merkle = new Uint8Array(32 * (this.blockRoots.length + 1));
    this.blockRoots.forEach((r, i) => merkle.set(r, 32 * i));
    merkle.set(root, 32 * this.blockRoots.length);
    meta.push([META_MERKLE, this.writeRaw(merkle)]);

    const largest = this.prevKey.slice(0, this.prevKeyLen);
    const smallest = this.smallest as Uint8Array;
    const props = new BlockBuilder(1);
    const num = (v: number): Uint8Array => {
      const w = new ByteWriter(10);
      w.varint(v);
      return w.finish();
    };
    const enc = new TextEncoder();
    const propList: [string, Uint8Array][] = [
      [PROP.BLOCK_COUNT, num(this.blockRoots.length)],
      [PROP.ENTRY_COUNT, num(this.entries)],
      [PROP.FORMAT_VERSION, num(this.groups === undefined ? 2 : FORMAT_VERSION)],
      [PROP.LARGEST, largest],
      [PROP.MAX_TIME, num(this.maxTime)],
      [PROP.RAW_KEY_SIZE, num(this.rawKeySize)],
      [PROP.RAW_VALUE_SIZE, num(this.rawValueSize)],
      [PROP.SMALLEST, smallest],
    ];
    if (this.groups !== undefined && this.opts.merkleGroup !== DEFAULT_MERKLE_GROUP) propList.push([PROP.MERKLE_GROUP, num(this.opts.merkleGroup)]);
    propList.sort((a, b) => compareBytes(enc.encode(a[0]), enc.encode(b[0])));
    for (const [name, v] of propList) props.add(enc.encode(name), v);
    meta.push([META_PROPERTIES, this.writeRaw(props.finish())]);

    const metaindex = new BlockBuilder(1);
    meta.sort((a, b) => compareBytes(enc.encode(a[0]), enc.encode(b[0])));
    for (const [name, handle] of meta) metaindex.add(enc.encode(name), handleBytes(handle));
    const metaindexHandle = this.writeRaw(metaindex.finish());

    const index = new BlockBuilder(1);
    for (let i = 0; i < this.indexKeys.length; i++) index.add(this.indexKeys[i], handleBytes(this.handles[i]));
    const indexHandle = this.writeRaw(index.finish());

    this.out.bytes(encodeFooter({ metaindex: metaindexHandle, index: indexHandle }));
    const size = this.streamed + this.out.length;
    const leaves = this.kept === null ? undefined : this.kept.slice(0, this.entries * 32);
    this.kept = null;
    return {
      leaves,
      meta: {
        entryCount: this.entries,
        blockCount: this.blockRoots.length,
        smallest: smallest.slice(),
        largest,
        root,
        blockRoots: this.blockRoots.slice(),
        size,
      },
    };
  }

  /**
   * Writes the current data block followed by its group roots and their count (when it has more
   * than K entries), under one trailer, and records its index entry and Merkle root.
   */
  private cutBlock(): void {
    const lastKey = this.block.lastKeyView().slice();
    const root = this.blockHasher.finishBlock(this.groups);
    const out = this.out;
    const start = out.length;
    out.bytes(this.block.finish());
    if (this.groups !== undefined) {
      const groups = this.groups.out;
      if (groups.length > 0) {
        for (let i = 0; i < groups.length; i++) out.bytes(groups[i]);
        out.fixed32(GROUPS_FLAG + groups.length);
        this.nodeBytes += 32 * groups.length + 4;
        groups.length = 0;
      }
    }
    const handle = { offset: this.streamed + start, size: out.length - start };
    out.bytes(blockTrailer(out.buf, start, out.length));
    this.indexKeys.push(lastKey);
    this.handles.push(handle);
    // Plain Uint8Array (a node:crypto digest is a Buffer): a view, not a copy.
    this.blockRoots.push(root.constructor === Uint8Array ? root : new Uint8Array(root.buffer, root.byteOffset, root.length));
    this.block.reset();
    this.drain(this.chunkBytes);
  }

  /** Appends block contents and their trailer; returns the handle. */
  private writeRaw(contents: Uint8Array): BlockHandle {
    const handle = { offset: this.streamed + this.out.length, size: contents.length };
    this.out.bytes(contents);
    this.out.bytes(blockTrailer(contents));
    this.drain(this.chunkBytes);
    return handle;
  }

  /** When streaming: hands the buffered bytes to the sink once they reach `atLeast` (0: any). */
  private drain(atLeast: number): void {
    const out = this.out;
    if (this.sink === null || out.length === 0 || out.length < atLeast) return;
    this.sink(out.view());
    this.streamed += out.length;
    out.reset();
  }
}
