/**
 * Options for {@link ProofDB.open}, with defaults. Validated up front: a bad option is an
 * `InvalidArgumentError` and nothing is opened.
 * @module
 */
import { ErrorCode, InvalidArgumentError } from './errors.js';

/** Options that shape the database. Those marked "shape" must be equal on replicas. */
export interface DBOptions {
  /** Create the directory and an empty database if missing (default true). */
  createIfMissing?: boolean;
  /** Fail if a database already exists (default false). */
  errorIfExists?: boolean;
  /** Largest key, bytes (default 65536). */
  maxKeySize?: number;
  /** Largest value, bytes (default 1 MiB). */
  maxValueSize?: number;
  /** Shape: memtable size that triggers a flush, bytes (default 16 MiB; 4 MiB before issue 13). */
  writeBufferSize?: number;
  /** Shape: target data block size, bytes (default 4096). */
  blockSize?: number;
  /** Shape: entries between restart points (default 16). */
  blockRestartInterval?: number;
  /** Shape: bloom filter bits per key (default 10). */
  bloomBitsPerKey?: number;
  /** Shape: target table file size, bytes (default 16 MiB; 2 MiB before issue 13). */
  targetFileSize?: number;
  /** Shape: level-0 table count that triggers a compaction (default 4). */
  level0CompactionTrigger?: number;
  /**
   * Shape: the most level-0 tables a checkpoint leaves (default 2; 1 before issue 10's tenth
   * session, which a database created before keeps). When the checkpoint's flush leaves more, the
   * checkpoint merges level-0 tables within level 0 (`checkpointLevel0SizeRatio`) or compacts level
   * 0 into level 1 (`checkpointLevel0Bytes`) before it signs, so a proof against it pays for at
   * most this many overlapping level-0 tables (each costs a window). 0 compacts level 0 into level
   * 1 at every checkpoint that has a level-0 table.
   */
  checkpointLevel0Tables?: number;
  /**
   * Shape: level 0's byte bound at checkpoints, bytes (default 16 MiB, one default memtable; 0 =
   * none, the rule before, which a database created before this option keeps). A checkpoint that
   * finds more than `checkpointLevel0Tables` (at least 1) level-0 tables merges them into **one**
   * level-0 table while they hold fewer bytes than this and than level 1, instead of rewriting
   * level 1; otherwise (or with 0) it compacts level 0 into level 1 (docs/engine.md § Checkpoints).
   */
  checkpointLevel0Bytes?: number;
  /**
   * Shape: which level-0 tables a checkpoint's merge within level 0 takes, a percentage (default
   * 200; 0 = all of them, the rule before, which a database created before this option keeps).
   * R > 0 merges **size-tiered** (RocksDB's universal compaction): the newest tables, as few as
   * leave `checkpointLevel0Tables`, then each next older table while its bytes are at most R % of
   * the bytes taken so far. With `checkpointLevel0Tables` 1 every merge takes all of level 0
   * whatever R is; with 2 a small recent table grows beside the large old one instead of rewriting
   * it at every other checkpoint (docs/engine.md § Checkpoints).
   */
  checkpointLevel0SizeRatio?: number;
  /**
   * Shape: entries per stored group root in a data block (table format 3, docs/storage.md §7.5):
   * a power of two from 2 to 65536, default 8. 0 writes table format 2 (no stored roots), which a
   * database created before table format 3 keeps, so that its tables' bytes — and so the
   * compactions its replicas pick — stay those of its peers.
   */
  merkleGroup?: number;
  /** Shape: size limit of level 1, bytes; each deeper level is 10x (default 64 MiB; 10 MiB before issue 13). */
  maxBytesForLevelBase?: number;
  /**
   * Frozen memtables that may wait for their flush installs before a write that fills the memtable
   * waits too (default 2; 1 is the behaviour before issue 13). Not a shape option: it changes when
   * writers wait, never what is written. Memory: up to `(1 + maxFrozenMemtables) x writeBufferSize`
   * of memtables (docs/engine.md § Compaction scheduling).
   */
  maxFrozenMemtables?: number;
  /** Block cache capacity, bytes (default 8 MiB). */
  blockCacheSize?: number;
  /** Byte budget of the decoded blocks proofs use, with their entry trees (default 32 MiB). */
  proofBlockCacheBytes?: number;
  /**
   * Byte budget of the per-table block trees proofs use (default 32 MiB). A table's tree is about
   * 2 × blocks × 32 bytes, 1.6 % of its bytes with 4 KiB blocks: 32 MiB holds every table's tree
   * up to about 2 GiB of tables (~14M entries of 16-byte keys and 100-byte values). A proof from a
   * table whose tree is not held rebuilds it from the table's block roots (a 16 MiB table: 4,095
   * hashes, about 4 ms).
   */
  blockTreeCacheBytes?: number;
  /**
   * Byte budget of the Merkle leaves of recently built tables, 32 bytes per entry (default 32 MiB;
   * 0 keeps none). A compaction takes its inputs' leaves instead of hashing their entries again;
   * its output is the same either way (docs/engine.md § Leaf reuse). 32 MiB holds the leaves of
   * about 1M entries: level 0 and level 1 of the default shape with 100-byte values.
   */
  leafCacheSize?: number;
  /**
   * Table files up to this many bytes in total are read into memory when first opened, so block
   * reads need no system call — the role LevelDB gives to mmap'ed table files (default 256 MiB;
   * 0 reads every block from its file). A table read into memory has every block checksum verified
   * once, when it is read; blocks read from files are verified on every read.
   */
  tableMemoryBytes?: number;
  /**
   * Most table files open at once (default 1000, LevelDB's `max_open_files` default: with 16 MiB
   * tables that keeps ~16 GiB of tables beyond `tableMemoryBytes` open without reopening; ~2 GiB
   * with the 2 MiB tables of a database created before issue 13). Tables
   * held in memory need no descriptor and do not count. Past the bound the least recently read
   * table's descriptor is closed; its next block read reopens the file and checks that it is the
   * same table (its size and its meta blocks and footer), failing with `CORRUPTION` if not. Iterators and
   * proofs are unaffected. Minimum 1.
   */
  maxOpenTables?: number;
  /** Where compactions run: a worker thread (default) or inline on the caller's thread. */
  compactionThread?: 'worker' | 'inline';
  /**
   * Heap limit of each compaction and flush worker thread, bytes (default 64 MiB, rounded up to
   * whole MiB; minimum 1 MiB): the V8 old generation of the worker's isolate
   * (`resourceLimits.maxOldGenerationSizeMb`); its young generation is bounded at 8 MiB. A job
   * that needs more ends the worker: the job fails like any compaction failure (a recoverable
   * write fault, retried; nothing written is lost) and the next job starts a new worker. Workers
   * are shared by the databases of a process that have the same limit.
   */
  compactionWorkerHeapBytes?: number;
  /**
   * Test hook: called before a compaction's result is handed back, to vary its timing.
   * Only honoured with `compactionThread: 'inline'`. Never affects what is written.
   */
  compactionDelay?: () => Promise<void>;
  /** Sync the journal on every write unless a write says otherwise (default false). */
  sync?: boolean;
  /**
   * Where writes are made durable (default `'journal'`). With `'external'` the engine writes no
   * journal: an external log (the Raft log) is the write-ahead log. Every write and checkpoint
   * then carries the index of the log entry it comes from (`WriteOptions.logIndex`), each flush
   * records the highest applied index in the manifest, and after a crash the caller replays its
   * log from `ProofDB.logIndex().durable + 1`. The memtable is lost at a crash by design.
   */
  writeAheadLog?: 'journal' | 'external';
  /**
   * Start with a new node key even though a checkpoint log exists: a key rotation, recorded as a
   * signed statement in `KEY_ROTATIONS` (default false: a missing `NODE_KEY` beside a checkpoint
   * log refuses to open, and an existing key is kept).
   */
  rotateKey?: boolean;
}

/** {@link DBOptions} with every default filled in. */
export type ResolvedOptions = Required<Omit<DBOptions, 'compactionDelay'>> & Pick<DBOptions, 'compactionDelay'>;

/** Default of {@link DBOptions.maxOpenTables}: LevelDB's `max_open_files` default. */
export const DEFAULT_MAX_OPEN_TABLES = 1000;

/** Default of {@link DBOptions.compactionWorkerHeapBytes}. */
export const DEFAULT_COMPACTION_WORKER_HEAP_BYTES = 64 * 1024 * 1024;

/**
 * The options that decide what the engine writes: table bytes, where memtables are frozen, which
 * compactions are picked. Two engines given the same writes build the same tables only if these
 * are equal. They are recorded in the manifest (the shape a database was created with, or last
 * opened with explicitly), and a reopen that does not set them takes the recorded ones, not this
 * release's defaults (docs/engine.md § Shape options).
 */
export const SHAPE_OPTIONS = [
  'writeBufferSize',
  'blockSize',
  'blockRestartInterval',
  'bloomBitsPerKey',
  'targetFileSize',
  'level0CompactionTrigger',
  'checkpointLevel0Tables',
  'maxBytesForLevelBase',
  'merkleGroup',
  'checkpointLevel0Bytes',
  'checkpointLevel0SizeRatio',
] as const;

/** The shape options' values, as recorded in the manifest. */
export type Shape = { [K in (typeof SHAPE_OPTIONS)[number]]: number };

/**
 * The shape a new database gets (issue 13: 16 MiB memtables and tables, a 64 MiB level 1; chosen by
 * measurement between LevelDB's sizes and RocksDB's, docs/engine.md § Shape options).
 */
export const DEFAULT_SHAPE: Readonly<Shape> = Object.freeze({
  writeBufferSize: 16 * 1024 * 1024,
  blockSize: 4096,
  blockRestartInterval: 16,
  bloomBitsPerKey: 10,
  targetFileSize: 16 * 1024 * 1024,
  level0CompactionTrigger: 4,
  checkpointLevel0Tables: 2,
  maxBytesForLevelBase: 64 * 1024 * 1024,
  merkleGroup: 8,
  checkpointLevel0Bytes: 16 * 1024 * 1024,
  checkpointLevel0SizeRatio: 200,
});

/**
 * The defaults before issue 13 (LevelDB's sizes). A database whose manifest records no shape was
 * created before shapes were recorded, with these defaults unless its opener passed others: it
 * keeps them, so that an upgraded replica goes on building the tables its peers build.
 */
export const LEGACY_SHAPE: Readonly<Shape> = Object.freeze({
  writeBufferSize: 4 * 1024 * 1024,
  blockSize: 4096,
  blockRestartInterval: 16,
  bloomBitsPerKey: 10,
  targetFileSize: 2 * 1024 * 1024,
  level0CompactionTrigger: 4,
  checkpointLevel0Tables: 1,
  maxBytesForLevelBase: 10 * 1024 * 1024,
  merkleGroup: 0,
  checkpointLevel0Bytes: 0,
  checkpointLevel0SizeRatio: 0,
});

/** True when `a` and `b` are the same shape. */
export function sameShape(a: Shape | undefined, b: Shape | undefined): boolean {
  return a !== undefined && b !== undefined && SHAPE_OPTIONS.every((k) => a[k] === b[k]);
}

/** The shape options of `o`. */
export function shapeOf(o: Shape): Shape {
  const s = {} as Shape;
  for (const k of SHAPE_OPTIONS) s[k] = o[k];
  return s;
}

/**
 * The options a database opens with, given the shape recorded in its manifest: a shape option the
 * caller sets explicitly wins (and is recorded); one it leaves unset is the recorded value, not
 * the default of this release. `recorded` undefined with `existing` true is a database from before
 * shapes were recorded: an unset option is then {@link LEGACY_SHAPE}'s, the default it was created
 * with. A new database takes `resolved` as it is.
 */
export function withRecordedShape(resolved: ResolvedOptions, explicit: DBOptions, recorded: Shape | undefined, existing: boolean): ResolvedOptions {
  if (!existing) return resolved;
  const out = { ...resolved };
  for (const k of SHAPE_OPTIONS) out[k] = explicit[k] ?? (recorded ?? LEGACY_SHAPE)[k];
  return out;
}

/** Number of levels (0..6), as in LevelDB. */
export const NUM_LEVELS = 7;

const positive = (name: string, v: number, min = 1): void => {
  if (!Number.isSafeInteger(v) || v < min) {
    throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `option ${name} must be an integer >= ${min}, got ${v}`);
  }
};

/** Fills defaults and validates. */
export function resolveOptions(o: DBOptions = {}): ResolvedOptions {
  const r: ResolvedOptions = {
    createIfMissing: o.createIfMissing ?? true,
    errorIfExists: o.errorIfExists ?? false,
    maxKeySize: o.maxKeySize ?? 65536,
    maxValueSize: o.maxValueSize ?? 1024 * 1024,
    writeBufferSize: o.writeBufferSize ?? DEFAULT_SHAPE.writeBufferSize,
    blockSize: o.blockSize ?? DEFAULT_SHAPE.blockSize,
    blockRestartInterval: o.blockRestartInterval ?? DEFAULT_SHAPE.blockRestartInterval,
    bloomBitsPerKey: o.bloomBitsPerKey ?? DEFAULT_SHAPE.bloomBitsPerKey,
    targetFileSize: o.targetFileSize ?? DEFAULT_SHAPE.targetFileSize,
    level0CompactionTrigger: o.level0CompactionTrigger ?? DEFAULT_SHAPE.level0CompactionTrigger,
    checkpointLevel0Tables: o.checkpointLevel0Tables ?? DEFAULT_SHAPE.checkpointLevel0Tables,
    maxBytesForLevelBase: o.maxBytesForLevelBase ?? DEFAULT_SHAPE.maxBytesForLevelBase,
    merkleGroup: o.merkleGroup ?? DEFAULT_SHAPE.merkleGroup,
    checkpointLevel0Bytes: o.checkpointLevel0Bytes ?? DEFAULT_SHAPE.checkpointLevel0Bytes,
    checkpointLevel0SizeRatio: o.checkpointLevel0SizeRatio ?? DEFAULT_SHAPE.checkpointLevel0SizeRatio,
    maxFrozenMemtables: o.maxFrozenMemtables ?? 2,
    blockCacheSize: o.blockCacheSize ?? 8 * 1024 * 1024,
    proofBlockCacheBytes: o.proofBlockCacheBytes ?? 32 * 1024 * 1024,
    blockTreeCacheBytes: o.blockTreeCacheBytes ?? 32 * 1024 * 1024,
    leafCacheSize: o.leafCacheSize ?? 32 * 1024 * 1024,
    tableMemoryBytes: o.tableMemoryBytes ?? 256 * 1024 * 1024,
    maxOpenTables: o.maxOpenTables ?? DEFAULT_MAX_OPEN_TABLES,
    compactionThread: o.compactionThread ?? 'worker',
    compactionWorkerHeapBytes: o.compactionWorkerHeapBytes ?? DEFAULT_COMPACTION_WORKER_HEAP_BYTES,
    compactionDelay: o.compactionDelay,
    sync: o.sync ?? false,
    writeAheadLog: o.writeAheadLog ?? 'journal',
    rotateKey: o.rotateKey ?? false,
  };
  positive('maxKeySize', r.maxKeySize);
  if (r.maxKeySize > 65536) {
    throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'option maxKeySize cannot exceed 65536');
  }
  positive('maxValueSize', r.maxValueSize, 0);
  positive('writeBufferSize', r.writeBufferSize, 1024);
  positive('blockSize', r.blockSize, 64);
  positive('blockRestartInterval', r.blockRestartInterval);
  positive('bloomBitsPerKey', r.bloomBitsPerKey, 0);
  positive('targetFileSize', r.targetFileSize, 1024);
  positive('level0CompactionTrigger', r.level0CompactionTrigger, 2);
  positive('checkpointLevel0Tables', r.checkpointLevel0Tables, 0);
  positive('maxBytesForLevelBase', r.maxBytesForLevelBase, 1024);
  positive('maxFrozenMemtables', r.maxFrozenMemtables);
  positive('checkpointLevel0Bytes', r.checkpointLevel0Bytes, 0);
  if (r.checkpointLevel0Bytes !== 0 && r.checkpointLevel0Bytes < 1024) {
    throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `option checkpointLevel0Bytes must be 0 or an integer >= 1024, got ${r.checkpointLevel0Bytes}`);
  }
  positive('checkpointLevel0SizeRatio', r.checkpointLevel0SizeRatio, 0);
  positive('merkleGroup', r.merkleGroup, 0);
  if (r.merkleGroup !== 0 && (r.merkleGroup < 2 || r.merkleGroup > 65536 || (r.merkleGroup & (r.merkleGroup - 1)) !== 0)) {
    throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `option merkleGroup must be 0 or a power of two from 2 to 65536, got ${r.merkleGroup}`);
  }
  positive('blockCacheSize', r.blockCacheSize, 0);
  positive('proofBlockCacheBytes', r.proofBlockCacheBytes, 0);
  positive('blockTreeCacheBytes', r.blockTreeCacheBytes, 0);
  positive('leafCacheSize', r.leafCacheSize, 0);
  positive('tableMemoryBytes', r.tableMemoryBytes, 0);
  positive('maxOpenTables', r.maxOpenTables);
  positive('compactionWorkerHeapBytes', r.compactionWorkerHeapBytes, 1024 * 1024);
  if (r.writeAheadLog !== 'journal' && r.writeAheadLog !== 'external') {
    throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `option writeAheadLog must be 'journal' or 'external'`);
  }
  if (r.compactionThread !== 'worker' && r.compactionThread !== 'inline') {
    throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `option compactionThread must be 'worker' or 'inline'`);
  }
  return r;
}
