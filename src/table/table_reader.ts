/**
 * Reads a table (layout in format.ts) with synchronous positional reads: a read that hits the
 * block cache or the page cache never waits for the event loop. The footer, index, filter, Merkle
 * and properties blocks are read and checked at open; data blocks are read on demand, checksummed,
 * and cached decoded. Every checksum failure or malformed structure throws `CorruptionError`.
 * @module
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { equalBytes } from '../../proofs/bytes.js';
import { HASH_LEN, type Hasher, type Kind } from '../../proofs/hash.js';
import { CorruptionError, ErrorCode, OutdatedFormatError, ProofKVError } from '../errors.js';
import type { InternalIterator } from '../iterator.js';
import { compareInternalKeys, type Entry, kindOf, seekKey, seqOf, writeInternalTrailer, storedTime, storedUserValue, TRAILER_LEN, versionOf } from '../keys.js';
import { ByteReader } from '../util/coding.js';
import { crc32c } from '../util/crc32c.js';
import { Block, type BlockIterator, readNamedBlock } from './block.js';
import { BlockHasher } from './block_hasher.js';
import type { BlockCache } from './block_cache.js';
import { bloomMayContain } from './bloom.js';
import {
  BLOCK_TRAILER_LEN,
  type BlockHandle,
  decodeFooter,
  decodeHandle,
  DEFAULT_MERKLE_GROUP,
  FOOTER_LEN,
  FORMAT_VERSION,
  groupCount,
  MAX_MERKLE_GROUP,
  META_FILTER,
  MIN_FORMAT_VERSION,
  META_MERKLE,
  META_PROPERTIES,
  PROP,
  splitDataBlock,
  verifyBlock,
} from './format.js';
import { nodeHasher } from './node_hasher.js';
import type { OpenFiles, Reopenable } from './open_files.js';

/** How to open a table. */
export interface TableReaderOptions {
  /** The table's file number: with the block offset, the block cache key. */
  fileNumber: number;
  /** Shared block cache; without one every data block read goes to the file. */
  cache?: BlockCache;
  /** Name used in errors (defaults to the path, or `table-<fileNumber>` for in-memory tables). */
  fileName?: string;
  /** Hasher for the open-time table-root check and `verify()` (defaults to node:crypto). */
  hasher?: Hasher;
  /**
   * For {@link TableReader.fromBytes}: check every data block's checksum once at open, then serve
   * blocks from the bytes without checking again. The bytes are in memory and cannot rot the way a
   * file can; a damaged file still fails the open.
   */
  checksumOnce?: boolean;
  /**
   * For {@link TableReader.open}: the bound on open table files this reader's descriptor counts
   * against. The descriptor may then be closed between reads and reopened on the next one, which
   * first checks that the file is still this table (its size, and every byte after the data
   * blocks: meta blocks and footer) and throws `CorruptionError` if not.
   */
  openFiles?: OpenFiles;
  /**
   * For {@link TableReader.open}, a reader that goes through the file once in order (a
   * compaction's input): reads of fewer bytes than this are served from a window of this many
   * bytes read at once, the next window read where a read leaves it. One read call per window
   * instead of one per block; what each read returns is the same fresh array. 0 (the default):
   * every read goes to the file. Not with `openFiles` (ignored there).
   */
  readahead?: number;
}

/** Positional reads from a table's bytes. */
interface Source {
  readonly size: number;
  /** Exactly `len` bytes at `pos` in a fresh array (fewer only if the file is shorter). */
  read(pos: number, len: number): Uint8Array;
  close(): void;
}

/**
 * A table file read by descriptor. With an {@link OpenFiles} bound the descriptor may be closed
 * between reads (`release`); the next read reopens the file, checks its size and runs `onReopen`
 * (the reader's same-table check) before reading.
 */
class FileSource implements Source, Reopenable {
  readonly size: number;
  private fd = -1;
  private closed = false;
  /** Checks, after a reopen, that the file is still the table that was opened. */
  onReopen: (() => void) | undefined;

  /** With a readahead: the window's bytes (`windowLen` of them from file offset `windowPos`). */
  private window: Uint8Array | null = null;
  private windowPos = 0;
  private windowLen = 0;

  constructor(
    private readonly path: string,
    private readonly name: string,
    private readonly files: OpenFiles | undefined,
    private readonly readahead = 0,
  ) {
    this.openFd();
    try {
      this.size = fstatSync(this.fd).size;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openFd(): void {
    this.files?.admit(this);
    try {
      this.fd = openSync(this.path, 'r');
    } catch (e) {
      this.files?.forget(this);
      throw e;
    }
  }

  /** Reopens a released descriptor and checks the file is the same table. */
  private reopen(): void {
    if (this.closed) throw new Error(`table ${this.name} is closed`);
    try {
      this.openFd();
    } catch (e) {
      // The manifest still names this table: a missing file is lost data.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CorruptionError(this.name, 'table file disappeared while in use');
      throw new ProofKVError(ErrorCode.IO_ERROR, `reopening ${this.name}: ${(e as Error).message}`, { cause: e });
    }
    if (this.files) this.files.reopens++;
    try {
      const size = fstatSync(this.fd).size;
      if (size !== this.size) throw new CorruptionError(this.name, `table file changed since it was opened (${size} bytes, was ${this.size})`);
      this.onReopen?.();
    } catch (e) {
      this.files?.forget(this);
      this.release();
      throw e;
    }
  }

  read(pos: number, len: number): Uint8Array {
    if (this.fd < 0) this.reopen();
    else this.files?.touch(this);
    if (this.readahead > len && this.files === undefined) {
      if (pos < this.windowPos || pos + len > this.windowPos + this.windowLen) {
        this.window ??= new Uint8Array(this.readahead);
        this.windowPos = pos;
        this.windowLen = this.readInto(this.window, pos, Math.min(this.readahead, Math.max(0, this.size - pos)));
      }
      const at = pos - this.windowPos;
      return this.window!.slice(at, Math.min(at + len, this.windowLen));
    }
    const buf = new Uint8Array(len);
    const got = this.readInto(buf, pos, len);
    return got === len ? buf : buf.subarray(0, got);
  }

  /** Reads up to `len` bytes at `pos` into the start of `buf`; returns how many (fewer at the end of the file). */
  private readInto(buf: Uint8Array, pos: number, len: number): number {
    let got = 0;
    try {
      while (got < len) {
        const n = readSync(this.fd, buf, got, len - got, pos + got);
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      throw new ProofKVError(ErrorCode.IO_ERROR, `reading ${this.name} at ${pos}: ${(e as Error).message}`, { cause: e });
    }
    return got;
  }

  release(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  close(): void {
    this.closed = true;
    this.window = null;
    this.files?.forget(this);
    this.release();
  }
}

class MemorySource implements Source {
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(pos: number, len: number): Uint8Array {
    return this.bytes.slice(pos, Math.min(pos + len, this.bytes.length));
  }
  /** `read` without the copy: a view of the table's bytes. */
  view(pos: number, len: number): Uint8Array {
    return this.bytes.subarray(pos, Math.min(pos + len, this.bytes.length));
  }
  close(): void {}
}

/** An open table. Synchronous and not safe to use after `close()`. */
export class TableReader {
  /** Root of each data block, in order (views into the Merkle block). */
  readonly blockRoots: Uint8Array[];
  /** The table root. */
  readonly root: Uint8Array;
  /** Number of entries. */
  readonly entryCount: number;
  /** First internal key. */
  readonly smallest: Uint8Array;
  /** Last internal key. */
  readonly largest: Uint8Array;
  /** Last internal key of each data block (the index keys), in order. */
  readonly indexKeys: Uint8Array[];
  /** Sum of the internal key lengths (properties block). */
  readonly rawKeySize: number;
  /** Sum of the stored value lengths (properties block). */
  readonly rawValueSize: number;
  /** Largest commit time of the table's entries (properties block). */
  readonly maxTime: number;
  /** Size of the file in bytes. */
  readonly size: number;
  /** The table's format version (format.ts `FORMAT_VERSION`; 2 or 3). */
  readonly formatVersion: number;
  /**
   * Entries per stored group root (K) of the data blocks (format 3), or 0 for a format-2 table,
   * whose blocks store none.
   */
  readonly merkleGroup: number;
  /** Name used in errors. */
  readonly fileName: string;
  /** The file number (block cache key). */
  readonly fileNumber: number;
  private readonly handles: BlockHandle[];
  private readonly filter: Uint8Array | undefined;
  private readonly cache: BlockCache | undefined;
  private readonly hasher: Hasher;
  private closed = false;
  /** Where the data blocks end and the meta blocks begin. */
  private readonly dataEnd: number;

  /** Opens the table at `path`; reads and checks all meta blocks before returning. */
  static open(path: string, opts: TableReaderOptions): TableReader {
    const name = opts.fileName ?? path;
    const src = new FileSource(path, name, opts.openFiles, opts.readahead ?? 0);
    try {
      const r = new TableReader(src, opts, name);
      if (opts.openFiles) {
        const fingerprint = r.metaFingerprint();
        src.onReopen = () => r.checkSameTable(fingerprint);
      }
      return r;
    } catch (e) {
      src.close();
      throw e;
    }
  }

  /** Opens a table held in memory (e.g. received from a peer, before it is installed). */
  static fromBytes(bytes: Uint8Array, opts: TableReaderOptions): TableReader {
    const r = new TableReader(new MemorySource(bytes), opts, opts.fileName ?? `table-${opts.fileNumber}`);
    if (opts.checksumOnce) {
      for (const h of r.handles) r.loadContents(h);
      r.checked = true;
    }
    return r;
  }

  /** Every data block's checksum was verified at open (in-memory bytes): reads skip it. */
  private checked = false;
  /**
   * {@link userKeyPrefix} of each index key (4 bytes per data block): {@link findBlock} binary-searches
   * these contiguous integers and compares whole keys only where they tie.
   */
  private readonly indexPrefixes: Uint32Array;
  /** See {@link pointIterator}. */
  private pointIt: BlockIterator | undefined;

  private constructor(
    private readonly src: Source,
    opts: TableReaderOptions,
    fileName: string,
  ) {
    this.fileName = fileName;
    this.fileNumber = opts.fileNumber;
    this.cache = opts.cache;
    this.hasher = opts.hasher ?? nodeHasher;
    const file = fileName;
    const size = src.size;
    this.size = size;
    if (size < FOOTER_LEN) throw new CorruptionError(file, `file too short for a table (${size} bytes)`, 0);
    const footerAt = size - FOOTER_LEN;
    const footer = decodeFooter(src.read(footerAt, FOOTER_LEN), file, footerAt);

    // Metaindex and index.
    const metaindex = readNamedBlock(this.readMetaBlock(footer.metaindex, footerAt, 'metaindex'));
    const indexBlock = this.readMetaBlock(footer.index, footerAt, 'index');
    this.indexKeys = [];
    this.handles = [];
    const it = indexBlock.iterator(compareInternalKeys);
    let expectOffset = 0;
    for (it.seekToFirst(); it.valid(); it.next()) {
      const at = footer.index.offset + it.offset();
      const key = it.key().slice();
      if (key.length <= TRAILER_LEN) throw new CorruptionError(file, 'index key too short', at);
      const prev = this.indexKeys[this.indexKeys.length - 1];
      if (prev !== undefined && compareInternalKeys(prev, key) >= 0) throw new CorruptionError(file, 'index keys out of order', at);
      const v = it.value();
      const h = decodeHandle(v, file, at);
      if (h.offset !== expectOffset) throw new CorruptionError(file, `data block ${this.handles.length} at ${h.offset}, want ${expectOffset}`, at);
      expectOffset = h.offset + h.size + BLOCK_TRAILER_LEN;
      this.indexKeys.push(key);
      this.handles.push(h);
    }
    if (this.handles.length === 0) throw new CorruptionError(file, 'table has no data blocks', footer.index.offset);
    this.indexPrefixes = Uint32Array.from(this.indexKeys, userKeyPrefix);
    const dataEnd = expectOffset;
    this.dataEnd = dataEnd;
    if (footer.index.offset < dataEnd || footer.metaindex.offset < dataEnd) {
      throw new CorruptionError(file, 'index or metaindex block overlaps data blocks', footerAt);
    }

    const handleOf = (name: string, required: boolean): BlockHandle | undefined => {
      const raw = metaindex.get(name);
      if (raw === undefined) {
        if (required) throw new CorruptionError(file, `metaindex has no "${name}" block`, footer.metaindex.offset);
        return undefined;
      }
      const h = decodeHandle(raw, file, footer.metaindex.offset);
      if (h.offset < dataEnd) throw new CorruptionError(file, `"${name}" block overlaps data blocks`, footer.metaindex.offset);
      return h;
    };

    // Properties.
    const props = readNamedBlock(this.readMetaBlock(handleOf(META_PROPERTIES, true)!, footerAt, 'properties'));
    const propsAt = handleOf(META_PROPERTIES, true)!.offset;
    const prop = (name: string): Uint8Array => {
      const v = props.get(name);
      if (v === undefined) throw new CorruptionError(file, `missing property ${name}`, propsAt);
      return v;
    };
    const num = (name: string): number => {
      const v = prop(name);
      const r = new ByteReader(v);
      try {
        const n = r.varint();
        if (r.remaining !== 0) throw new RangeError('trailing bytes');
        return n;
      } catch (e) {
        throw new CorruptionError(file, `bad property ${name}: ${(e as Error).message}`, propsAt);
      }
    };
    const version = num(PROP.FORMAT_VERSION);
    if (version === 1) throw new OutdatedFormatError(file, 'is table format 1 (no commit times)');
    if (version < MIN_FORMAT_VERSION || version > FORMAT_VERSION) throw new CorruptionError(file, `unsupported table format version ${version}`, propsAt);
    this.formatVersion = version;
    this.merkleGroup = 0;
    if (version >= 3) {
      const k = props.has(PROP.MERKLE_GROUP) ? num(PROP.MERKLE_GROUP) : DEFAULT_MERKLE_GROUP;
      if (k < 2 || k > MAX_MERKLE_GROUP || (k & (k - 1)) !== 0) throw new CorruptionError(file, `bad merkle group size ${k}`, propsAt);
      this.merkleGroup = k;
    } else if (props.has(PROP.MERKLE_GROUP)) {
      throw new CorruptionError(file, `format ${version} table with a merkle group size`, propsAt);
    }
    this.entryCount = num(PROP.ENTRY_COUNT);
    this.rawKeySize = num(PROP.RAW_KEY_SIZE);
    this.rawValueSize = num(PROP.RAW_VALUE_SIZE);
    this.maxTime = num(PROP.MAX_TIME);
    const blockCount = num(PROP.BLOCK_COUNT);
    if (blockCount !== this.handles.length) {
      throw new CorruptionError(file, `properties say ${blockCount} blocks, index has ${this.handles.length}`, propsAt);
    }
    if (this.entryCount < blockCount) throw new CorruptionError(file, `${this.entryCount} entries in ${blockCount} blocks`, propsAt);
    this.smallest = prop(PROP.SMALLEST);
    this.largest = prop(PROP.LARGEST);
    if (
      this.smallest.length <= TRAILER_LEN ||
      !equalBytes(this.largest, this.indexKeys[blockCount - 1]) ||
      compareInternalKeys(this.smallest, this.largest) > 0 ||
      (blockCount > 1 && compareInternalKeys(this.smallest, this.indexKeys[0]) > 0)
    ) {
      throw new CorruptionError(file, 'smallest/largest keys disagree with the index', propsAt);
    }

    // Merkle block.
    const merkleHandle = handleOf(META_MERKLE, true)!;
    const merkle = this.readMetaContents(merkleHandle, footerAt, 'merkle');
    if (merkle.length !== HASH_LEN * (blockCount + 1)) {
      throw new CorruptionError(file, `merkle block is ${merkle.length} bytes, want ${HASH_LEN * (blockCount + 1)}`, merkleHandle.offset);
    }
    this.blockRoots = [];
    for (let i = 0; i < blockCount; i++) this.blockRoots.push(merkle.subarray(HASH_LEN * i, HASH_LEN * (i + 1)));
    this.root = merkle.subarray(HASH_LEN * blockCount);
    const root = this.hasher.tableRootOfBlocks(this.blockRoots, this.entryCount);
    if (!equalBytes(root, this.root)) throw new CorruptionError(file, 'table root does not match block roots', merkleHandle.offset);

    // Filter.
    const filterHandle = handleOf(META_FILTER, false);
    this.filter = filterHandle === undefined ? undefined : this.readMetaContents(filterHandle, footerAt, 'filter');
  }

  /** Number of data blocks. */
  get blockCount(): number {
    return this.handles.length;
  }

  /** Where data block `i` is (contents only, without the trailer). */
  blockHandle(i: number): BlockHandle {
    this.checkBlockIndex(i);
    return { ...this.handles[i] };
  }

  /** False when the bloom filter rules `userKey` out; true when it may be present. */
  mayContain(userKey: Uint8Array): boolean {
    this.checkOpen();
    return this.filter === undefined || bloomMayContain(this.filter, userKey);
  }

  /**
   * The newest entry of `userKey` with version <= `version` and seq <= `seq` (a tombstone is
   * returned as an entry of kind DELETE), or undefined. The returned arrays are copies.
   */
  get(userKey: Uint8Array, version: number, seq: number): Entry | undefined {
    if (!this.mayContain(userKey)) return undefined;
    const target = seekTarget(userKey, version, seq);
    const bi = this.findBlock(target);
    if (bi >= this.handles.length) return undefined;
    const it = this.pointIterator(this.pointBlock(bi));
    it.seek(target);
    return this.scanFrom(it, bi, userKey, version, seq);
  }

  /**
   * Data block `i` for a point read. A table held in memory whose checksums were checked at open
   * hands out a view of its bytes, neither copied nor cached: the block lives only inside the
   * synchronous read (values and keys leave it as copies), and parsing its restart array costs less
   * than the copy, the cache's bookkeeping and the garbage of a cached one. Other tables: {@link dataBlock}.
   */
  private pointBlock(i: number): Block {
    const src = this.src;
    if (!(this.checked && src instanceof MemorySource)) return this.dataBlock(i);
    this.checkOpen();
    const h = this.handles[i];
    return this.dataBlockOf(src.view(h.offset, h.size), h);
  }

  /**
   * Data block `i` (requires 0 <= i < blockCount) for a caller that copies whatever it keeps before
   * it returns, and never keeps the block: a view of the table's bytes when the table is held in
   * memory with its checksums checked at open (no copy, not cached), else {@link dataBlock}. The
   * prover decodes its blocks this way.
   */
  transientBlock(i: number): Block {
    return this.pointBlock(i);
  }

  /**
   * The iterator point reads reuse (one per reader, pointed at `block`): a get is synchronous and
   * keeps no iterator past its return, so one object and key buffer serve every lookup.
   */
  private pointIterator(block: Block): BlockIterator {
    if (this.pointIt === undefined) this.pointIt = block.iterator();
    else this.pointIt.reset(block);
    return this.pointIt;
  }

  /** A two-level iterator (index, then blocks) over the whole table. */
  iterator(): InternalIterator {
    this.checkOpen();
    return new TableIterator(this);
  }

  /** The decoded entries of data block `i` (copies), in order. */
  readBlock(i: number): Entry[] {
    this.checkBlockIndex(i);
    const out: Entry[] = [];
    const it = this.dataBlock(i).iterator();
    for (it.seekToFirst(); it.valid(); it.next()) {
      const k = it.key();
      out.push({
        key: k.slice(0, k.length - TRAILER_LEN),
        version: versionOf(k),
        seq: seqOf(k),
        time: this.timeOf(it.value()),
        kind: kindOf(k),
        value: storedUserValue(it.value()).slice(),
      });
    }
    return out;
  }

  /**
   * Re-reads every data block from the file (bypassing the cache), checks key order and the
   * index, recomputes every leaf, block root and the table root, and compares them with the
   * stored Merkle block, and (format 3) every block's stored group roots with the recomputed
   * ones. Throws `CorruptionError` on any mismatch. This is the check a table from elsewhere
   * (a snapshot, a backup) passes before it is used: its stored nodes are then the entries'.
   */
  verify(hasher: Hasher = this.hasher): void {
    this.checkOpen();
    const file = this.fileName;
    let prev: Uint8Array | undefined;
    let count = 0;
    const roots: Uint8Array[] = [];
    const bh = new BlockHasher(hasher);
    const k = this.merkleGroup;
    const groups = k === 0 ? undefined : { log: Math.log2(k), out: [] as Uint8Array[] };
    for (let i = 0; i < this.handles.length; i++) {
      const h = this.handles[i];
      const block = this.loadBlock(h);
      const it = block.iterator();
      const leaves: Uint8Array[] = [];
      for (it.seekToFirst(); it.valid(); it.next()) {
        const at = h.offset + it.offset();
        const k = it.key();
        if (k.length <= TRAILER_LEN) throw new CorruptionError(file, 'internal key too short', at);
        if (prev !== undefined && compareInternalKeys(prev, k) >= 0) throw new CorruptionError(file, 'keys out of order', at);
        const kind = kindOf(k);
        if (kind !== 0 && kind !== 1) throw new CorruptionError(file, `bad entry kind ${kind}`, at);
        if (count === 0 && !equalBytes(k, this.smallest)) throw new CorruptionError(file, 'first key is not the smallest property', at);
        prev = k.slice();
        leaves.push(bh.leaf(k, it.value()));
        count++;
      }
      if (leaves.length === 0) throw new CorruptionError(file, `data block ${i} is empty`, h.offset);
      if (!equalBytes(prev as Uint8Array, this.indexKeys[i])) {
        throw new CorruptionError(file, `last key of data block ${i} differs from its index key`, h.offset);
      }
      const root = bh.blockRoot(leaves, groups);
      if (!equalBytes(root, this.blockRoots[i])) throw new CorruptionError(file, `merkle root of data block ${i} mismatch`, h.offset);
      if (groups !== undefined) checkGroupRoots(block.nodes, groups.out, leaves.length, k, file, i, h.offset);
      roots.push(root);
    }
    if (count !== this.entryCount) throw new CorruptionError(file, `table has ${count} entries, properties say ${this.entryCount}`);
    if (!equalBytes(hasher.tableRootOfBlocks(roots, count), this.root)) throw new CorruptionError(file, 'table root mismatch');
  }

  /** Closes the file. Further calls throw. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.src.close();
  }

  /**
   * CRC-32C of everything after the data blocks: index, metaindex, properties, filter and Merkle
   * blocks and the footer — all that the open checked and keeps in memory.
   */
  private metaFingerprint(): number {
    return crc32c(this.src.read(this.dataEnd, this.size - this.dataEnd));
  }

  /**
   * After a reopen: the file must still be this table — the same bytes after the data blocks (the
   * Merkle block among them commits to every data block, and each data block is checksummed when
   * read). Throws `CorruptionError` otherwise.
   */
  private checkSameTable(fingerprint: number): void {
    if (this.metaFingerprint() !== fingerprint) {
      throw new CorruptionError(this.fileName, 'table file changed since it was opened (meta blocks or footer differ)', this.dataEnd);
    }
  }

  /** Index of the first data block whose last key is >= `target` (blockCount if none). */
  findBlock(target: Uint8Array): number {
    const keys = this.indexKeys;
    const prefixes = this.indexPrefixes;
    const tp = userKeyPrefix(target);
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      // Differing prefixes order the keys (see userKeyPrefix); equal ones need the full compare.
      const p = prefixes[mid];
      const c = p !== tp ? p - tp : compareInternalKeys(keys[mid], target);
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Data block `i` (requires 0 <= i < blockCount), from the cache or read, checksummed and cached. */
  dataBlock(i: number): Block {
    this.checkOpen();
    const h = this.handles[i];
    const cache = this.cache;
    if (cache !== undefined) {
      const hit = cache.get(this.fileNumber, h.offset);
      if (hit !== undefined) return hit;
    }
    const block = this.loadBlock(h);
    cache?.insert(this.fileNumber, h.offset, block);
    return block;
  }

  /** The commit time in front of a stored value; a value too short to hold one is corruption. */
  private timeOf(stored: Uint8Array): number {
    try {
      return storedTime(stored);
    } catch (e) {
      throw new CorruptionError(this.fileName, `entry value: ${(e as Error).message}`);
    }
  }

  /**
   * From `it` (in block `bi`), the first entry of `userKey` with seq <= `seq` and version <=
   * `version`, crossing block boundaries; stops at the first other user key.
   */
  private scanFrom(it: BlockIterator, bi: number, userKey: Uint8Array, version: number, seq: number): Entry | undefined {
    const ukLen = userKey.length;
    for (;;) {
      while (it.valid()) {
        // Compare in place: no key view per scanned entry.
        const k = it.keyBuffer();
        if (it.keyLength() - TRAILER_LEN !== ukLen) return undefined;
        for (let i = 0; i < ukLen; i++) if (k[i] !== userKey[i]) return undefined;
        const s = readSeqAt(k, ukLen + 8);
        const v = readU64At(k, ukLen);
        // Entries at or after the seek target have version <= `version`; skip writes after `seq`.
        if (s <= seq && v <= version) {
          const stored = it.value();
          return { key: k.slice(0, ukLen), version: v, seq: s, time: this.timeOf(stored), kind: k[ukLen + 15] as Kind, value: storedUserValue(stored).slice() };
        }
        it.next();
      }
      if (++bi >= this.handles.length) return undefined;
      it = this.pointIterator(this.pointBlock(bi));
      it.seekToFirst();
    }
  }

  /** Reads and checksums the contents of the block at `h`. */
  private loadContents(h: BlockHandle): Uint8Array {
    this.checkOpen();
    if (this.checked) return this.src.read(h.offset, h.size);
    const raw = this.src.read(h.offset, h.size + BLOCK_TRAILER_LEN);
    return verifyBlock(raw, h, this.fileName);
  }

  private loadBlock(h: BlockHandle): Block {
    return this.dataBlockOf(this.loadContents(h), h);
  }

  /** A data block from its checked contents: from format 3 on, its body with its group roots. */
  private dataBlockOf(contents: Uint8Array, h: BlockHandle): Block {
    if (this.merkleGroup === 0) return new Block(contents, this.fileName, h.offset);
    const parts = splitDataBlock(contents, this.fileName, h.offset);
    return new Block(parts.body, this.fileName, h.offset, parts.nodes);
  }

  /** Contents of a meta block, which must end before `limit` (the footer). */
  private readMetaContents(h: BlockHandle, limit: number, what: string): Uint8Array {
    if (h.offset + h.size + BLOCK_TRAILER_LEN > limit) {
      throw new CorruptionError(this.fileName, `${what} block handle out of bounds (${h.offset}+${h.size})`, h.offset);
    }
    return this.loadContents(h);
  }

  private readMetaBlock(h: BlockHandle, limit: number, what: string): Block {
    return new Block(this.readMetaContents(h, limit, what), this.fileName, h.offset);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`table ${this.fileName} is closed`);
  }

  private checkBlockIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.handles.length) {
      throw new RangeError(`block index ${i} out of range [0, ${this.handles.length})`);
    }
  }
}

/**
 * Throws `CorruptionError` unless the group roots `stored` in data block `i` (format 3) are
 * exactly `computed`, the ones its `entries` entries give with group size `k`.
 */
export function checkGroupRoots(stored: Uint8Array, computed: readonly Uint8Array[], entries: number, k: number, file: string, i: number, at: number): void {
  const g = groupCount(entries, k);
  if (stored.length !== g * HASH_LEN || computed.length !== g) {
    throw new CorruptionError(file, `data block ${i} stores ${stored.length / HASH_LEN} group roots, want ${g}`, at);
  }
  for (let j = 0; j < g; j++) {
    if (!equalBytes(stored.subarray(j * HASH_LEN, (j + 1) * HASH_LEN), computed[j])) {
      throw new CorruptionError(file, `stored group root ${j} of data block ${i} mismatch`, at);
    }
  }
}

/**
 * The first four bytes of an internal key's user key as an unsigned big-endian integer, zero-padded
 * when the user key is shorter. When two keys' prefixes differ they are ordered as their user keys
 * (a zero pad sorts a shorter key that is a prefix of the other first, as bytewise order does).
 */
function userKeyPrefix(ik: Uint8Array): number {
  const n = ik.length - TRAILER_LEN;
  if (n >= 4) return ((ik[0] << 24) | (ik[1] << 16) | (ik[2] << 8) | ik[3]) >>> 0;
  let p = 0;
  for (let i = 0; i < 4; i++) p = p * 256 + (i < n ? ik[i] : 0);
  return p;
}

/** Longest user key whose seek target {@link seekTarget} builds in its reused buffer. */
const SEEK_SCRATCH_KEY_LEN = 256;
/** The reused seek target of point reads: {@link SEEK_SCRATCH_KEY_LEN} + 16 bytes for the whole process. */
const seekScratch = new Uint8Array(SEEK_SCRATCH_KEY_LEN + TRAILER_LEN);

/**
 * `seekKey(userKey, version, seq)` in a buffer reused by every point read (valid until the next
 * call; a get is synchronous and keeps no target past its return), or a fresh one for a key longer
 * than {@link SEEK_SCRATCH_KEY_LEN}.
 */
function seekTarget(userKey: Uint8Array, version: number, seq: number): Uint8Array {
  const n = userKey.length;
  if (n > SEEK_SCRATCH_KEY_LEN) return seekKey(userKey, version, seq);
  const t = seekScratch.subarray(0, n + TRAILER_LEN);
  for (let i = 0; i < n; i++) t[i] = userKey[i];
  writeInternalTrailer(t, n, version, seq, 0xff as Kind);
  return t;
}

/** The u64 big-endian version at `off` (safe-integer range, as keys.ts writes it). */
function readU64At(b: Uint8Array, off: number): number {
  const hi = ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
  const lo = ((b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]) >>> 0;
  return hi * 0x100000000 + lo;
}

/** The u56 big-endian seq at `off`. */
function readSeqAt(b: Uint8Array, off: number): number {
  const hi = (b[off] << 16) | (b[off + 1] << 8) | b[off + 2];
  const lo = ((b[off + 3] << 24) | (b[off + 4] << 16) | (b[off + 5] << 8) | b[off + 6]) >>> 0;
  return hi * 0x100000000 + lo;
}

/** Two-level iterator: a position in the index plus an iterator over that data block. */
class TableIterator implements InternalIterator {
  private bi = -1;
  private it: BlockIterator | null = null;

  constructor(private readonly table: TableReader) {}

  valid(): boolean {
    return this.it !== null && this.it.valid();
  }

  seekToFirst(): void {
    this.load(0);
    this.it?.seekToFirst();
    this.skipForward();
  }

  seekToLast(): void {
    this.load(this.table.blockCount - 1);
    this.it?.seekToLast();
    this.skipBackward();
  }

  seek(target: Uint8Array): void {
    this.load(this.table.findBlock(target));
    this.it?.seek(target);
    this.skipForward();
  }

  next(): void {
    if (!this.valid()) throw new Error('TableIterator.next on an invalid iterator');
    this.it!.next();
    this.skipForward();
  }

  prev(): void {
    if (!this.valid()) throw new Error('TableIterator.prev on an invalid iterator');
    this.it!.prev();
    this.skipBackward();
  }

  key(): Uint8Array {
    return this.it!.key();
  }

  value(): Uint8Array {
    return this.it!.value();
  }

  private load(bi: number): void {
    this.bi = bi;
    this.it = bi >= 0 && bi < this.table.blockCount ? this.table.dataBlock(bi).iterator() : null;
  }

  private skipForward(): void {
    while (this.it !== null && !this.it.valid()) {
      this.load(this.bi + 1);
      this.it?.seekToFirst();
    }
  }

  private skipBackward(): void {
    while (this.it !== null && !this.it.valid()) {
      this.load(this.bi - 1);
      this.it?.seekToLast();
    }
  }
}
