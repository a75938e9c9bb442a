/**
 * One compaction, as a pure function of its input tables and the shape options: merge the inputs
 * in internal-key order, keep every entry (versions and tombstones are history, never garbage),
 * and cut output tables at `targetFileSize`, only ever between two user keys so that one key's
 * versions stay in one table of a level. Runs inline or inside the compaction worker; outputs are
 * written under temporary names and numbered only when installed, so names are deterministic too.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeHasher } from '../table/node_hasher.js';
import { MergingIterator } from '../merging_iterator.js';
import { BlockCache } from '../table/block_cache.js';
import { TableBuilder } from '../table/table_builder.js';
import { TableReader } from '../table/table_reader.js';
import type { TableMeta } from '../version/edit.js';
import type { InternalIterator } from '../iterator.js';
import { LEAF_BYTES } from './leaf_cache.js';
import { ByteReader, ByteWriter } from '../util/coding.js';
import { files } from '../version/version_set.js';

/** Shape options a table build depends on. */
export interface TableShape {
  blockSize: number;
  blockRestartInterval: number;
  bloomBitsPerKey: number;
  targetFileSize: number;
  /** Entries per stored group root (table format 3); 0 writes table format 2. */
  merkleGroup: number;
}

/** A compaction to run. */
export interface CompactionJob {
  dir: string;
  /** Input table numbers (any order: the merge orders entries by key). */
  inputs: number[];
  /** Prefix of the temporary output names, unique per job. */
  tmpPrefix: string;
  shape: TableShape;
  /**
   * Write one output, never cut at `targetFileSize` (a merge within level 0: level 0 must hold no
   * more tables after it than the checkpoint allows; its size is bounded by the level-0 inputs,
   * under `checkpointLevel0Bytes`).
   */
  singleOutput?: boolean;
  /** Return every output's leaves ({@link CompactionOutput.leaves}). */
  keepLeaves?: boolean;
  /**
   * The leaves of the inputs, by position in `inputs` (null: hash that input's entries): each
   * `entryCount × 32` bytes in entry order, as its build kept them (leaf_cache.ts). Leaves of the
   * wrong length are ignored.
   */
  leaves?: (Uint8Array | null)[];
}

/** One output table, not yet numbered. */
export interface CompactionOutput {
  tmpName: string;
  meta: Omit<TableMeta, 'number'>;
  /** With `keepLeaves`: its entries' leaves, 32 bytes each, in entry order. */
  leaves?: Uint8Array;
  /** Entries whose leaf was taken from an input's leaves rather than hashed. */
  leavesReused?: number;
}

/** A memtable to write as one table: its entries packed as `lp internalKey, lp value` pairs. */
export interface FlushJob {
  dir: string;
  tmpName: string;
  shape: TableShape;
  /** Entries in internal-key order, each `varint len || internal key || varint len || value`. */
  packed: Uint8Array;
  /** Return the table's leaves ({@link CompactionOutput.leaves}). */
  keepLeaves?: boolean;
}

/** Packs sorted entries for a {@link FlushJob} (one copy, transferable to the worker). */
export function packEntries(it: { seekToFirst(): void; valid(): boolean; next(): void; key(): Uint8Array; value(): Uint8Array }, sizeHint: number): Uint8Array {
  const w = new ByteWriter(Math.max(1024, sizeHint));
  for (it.seekToFirst(); it.valid(); it.next()) {
    w.lengthPrefixed(it.key());
    w.lengthPrefixed(it.value());
  }
  return w.finish();
}

/** Builds and writes (synced) the table of a flush; returns its metadata. */
export function runFlush(job: FlushJob): CompactionOutput {
  const out = new OutputFile(job.dir, job.tmpName, job.shape, job.keepLeaves);
  try {
    const r = new ByteReader(job.packed);
    while (r.remaining > 0) {
      const key = r.lengthPrefixed();
      out.builder.add(key, r.lengthPrefixed());
    }
    return out.finish();
  } catch (err) {
    out.close();
    fs.rmSync(path.join(job.dir, job.tmpName), { force: true });
    throw err;
  }
}

/**
 * One output table written to its file as it is built (`TableBuilder.streamTo`): the file is
 * created at once, the blocks are written in chunks as they are cut, `finish` writes the rest,
 * syncs and closes. When the build fails, `close` closes it and {@link runFlush} or
 * {@link runCompaction} deletes the job's temporary files before passing the error on.
 */
class OutputFile {
  readonly builder: TableBuilder;
  private fd: number;

  constructor(dir: string, readonly tmpName: string, shape: TableShape, keepLeaves: boolean | undefined) {
    this.fd = fs.openSync(path.join(dir, tmpName), 'w');
    const fd = this.fd;
    this.builder = newTableBuilder(shape).streamTo((chunk) => writeAll(fd, chunk));
    if (keepLeaves) this.builder.keepLeaves();
  }

  /** Finishes the table, syncs and closes the file; returns it as an output. */
  finish(leavesReused?: number): CompactionOutput {
    const { meta, leaves } = this.builder.finishStreamed();
    fs.fsyncSync(this.fd);
    this.close();
    return {
      tmpName: this.tmpName,
      meta: { size: meta.size, entryCount: meta.entryCount, smallest: meta.smallest, largest: meta.largest, root: meta.root },
      ...(leaves ? { leaves } : {}),
      ...(leavesReused !== undefined ? { leavesReused } : {}),
    };
  }

  /** Closes the file if it is still open. */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    fs.closeSync(fd);
  }
}

/** Writes all of `bytes` at the file's position. */
function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

/**
 * A table's iterator that knows the ordinal of its current entry while it only moves forward from
 * the first (all a compaction does), so that the entry's leaf is found in the table's leaves.
 */
class LeafSource implements InternalIterator {
  /** The current entry's position in the table; -1 once a move other than forward was made. */
  ordinal = -1;

  constructor(
    private readonly inner: InternalIterator,
    /** The table's leaves, or null. */
    readonly leaves: Uint8Array | null,
  ) {}

  valid(): boolean {
    return this.inner.valid();
  }
  seekToFirst(): void {
    this.inner.seekToFirst();
    this.ordinal = 0;
  }
  seekToLast(): void {
    this.inner.seekToLast();
    this.ordinal = -1;
  }
  seek(target: Uint8Array): void {
    this.inner.seek(target);
    this.ordinal = -1;
  }
  next(): void {
    this.inner.next();
    if (this.ordinal >= 0) this.ordinal++;
  }
  prev(): void {
    this.inner.prev();
    this.ordinal = -1;
  }
  key(): Uint8Array {
    return this.inner.key();
  }
  value(): Uint8Array {
    return this.inner.value();
  }
}

/** A table builder with the shape's options and the node hasher. */
export function newTableBuilder(shape: TableShape): TableBuilder {
  return new TableBuilder({
    blockSize: shape.blockSize,
    restartInterval: shape.blockRestartInterval,
    bloomBitsPerKey: shape.bloomBitsPerKey,
    merkleGroup: shape.merkleGroup,
    hasher: nodeHasher,
  });
}

/** A compaction input's readahead window, bytes (`TableReaderOptions.readahead`)... */
export const COMPACTION_READAHEAD_BYTES = 256 * 1024;
/** ...while the windows of all its inputs stay within this many bytes (smaller windows for many inputs). */
export const COMPACTION_READAHEAD_TOTAL_BYTES = 4 * 1024 * 1024;

/** Runs a compaction synchronously; returns the outputs in key order. */
export function runCompaction(job: CompactionJob): CompactionOutput[] {
  const cache = new BlockCache(4 * 1024 * 1024);
  // Each input is read once, in order: one read call per window instead of one per block.
  const readahead = Math.min(COMPACTION_READAHEAD_BYTES, Math.floor(COMPACTION_READAHEAD_TOTAL_BYTES / Math.max(1, job.inputs.length)));
  const readers = job.inputs.map((n) =>
    TableReader.open(path.join(job.dir, files.table(n)), { fileNumber: n, cache, fileName: files.table(n), readahead }),
  );
  const outputs: CompactionOutput[] = [];
  let current: OutputFile | null = null;
  try {
    const sources = readers.map((r, i) => {
      const l = job.leaves?.[i] ?? null;
      return new LeafSource(r.iterator(), l !== null && l.length === r.entryCount * LEAF_BYTES ? l : null);
    });
    const it = new MergingIterator(sources);
    let reused = 0;
    const finishOutput = () => {
      if (!current) return;
      outputs.push(current.finish(reused));
      current = null;
      reused = 0;
    };
    for (it.seekToFirst(); it.valid(); it.next()) {
      const key = it.key();
      // Cut only between two user keys (compared in place with the builder's last key: no copy per entry).
      if (!job.singleOutput && current !== null && current.builder.estimatedSize >= job.shape.targetFileSize && !current.builder.continuesUserKey(key)) {
        finishOutput();
      }
      current ??= new OutputFile(job.dir, `${job.tmpPrefix}-${outputs.length}.tmp`, job.shape, job.keepLeaves);
      const builder = current.builder;
      const src = it.currentChild() as LeafSource;
      if (src.leaves !== null && src.ordinal >= 0) {
        builder.add(key, it.value(), src.leaves, src.ordinal * LEAF_BYTES);
        reused++;
      } else builder.add(key, it.value());
    }
    finishOutput();
  } catch (err) {
    // Nothing of a failed job is installed: its files go now, not at the next close.
    current?.close();
    for (let i = 0; i <= outputs.length; i++) fs.rmSync(path.join(job.dir, `${job.tmpPrefix}-${i}.tmp`), { force: true });
    throw err;
  } finally {
    for (const r of readers) r.close();
  }
  return outputs;
}
