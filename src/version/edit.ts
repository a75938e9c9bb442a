/**
 * Version edits: the records of the manifest. Each edit is one journal-format record whose
 * payload is a list of tagged fields (varints, length-prefixed bytes), in the manner of LevelDB:
 *
 * ```
 * tag 1  logNumber          varint   oldest journal still needed for recovery
 * tag 2  nextTableNumber    varint
 * tag 3  flushedSeq         varint   every record with seq <= this is in a table
 * tag 4  compactPointer     varint level, lp key      where the next compaction of a level starts
 * tag 5  deletedTable       varint level, varint number
 * tag 6  newTable           varint level, varint number, varint size, varint entryCount,
 *                           lp smallest, lp largest, root[32]
 * tag 7  nextJournalNumber  varint
 * tag 8  comparator         lp name  (must be "proofkv.internal.v1")
 * tag 9  lastSeq            varint   highest seq ever assigned (>= flushedSeq)
 * tag 10 appliedIndex       varint   external-log mode: every entry of the external (Raft) log
 *                                   with index <= this has its effect in the tables
 * tag 11 checkpointIndex    varint   external-log mode: the table set of the checkpoint taken at
 *                                   this log index is complete (its CHECKPOINTS record may not be)
 * tag 12 lastTime           varint   commit time (ms) of the latest write whose effect is in the
 *                                   tables; written in every edit of a manifest made with commit
 *                                   times (its absence marks a directory from before them)
 * tag 13 shape              varint n (11), then n varints: writeBufferSize, blockSize,
 *                                   blockRestartInterval, bloomBitsPerKey, targetFileSize,
 *                                   level0CompactionTrigger, checkpointLevel0Tables,
 *                                   maxBytesForLevelBase, merkleGroup, checkpointLevel0Bytes,
 *                                   checkpointLevel0SizeRatio — the shape
 *                                   options the database runs with, from its creation on; the
 *                                   latest wins (no edit with one: created before shapes were
 *                                   recorded). A record of 8 (before merkleGroup was a shape
 *                                   option) has merkleGroup 0: such a database wrote table format
 *                                   2; a record of 8 or 9 (before checkpointLevel0Bytes) has
 *                                   checkpointLevel0Bytes 0: checkpoints compact level 0 into
 *                                   level 1, never merge it within level 0; a record of 8 to 10
 *                                   (before checkpointLevel0SizeRatio) has it 0: a checkpoint's
 *                                   merge takes all of level 0
 * lp = varint length || bytes
 * ```
 * Unknown tags are corruption: an edit from a newer format is refused, not half-read.
 * @module
 */
import { CorruptionError } from '../errors.js';
import { SHAPE_OPTIONS, type Shape } from '../options.js';
import { ByteReader, ByteWriter } from '../util/coding.js';

/** Options in a shape record written before `merkleGroup` joined the shape (it is then 0: table format 2). */
const SHAPE_OPTIONS_BEFORE_MERKLE_GROUP = 8;
/** Options in a shape record written before `checkpointLevel0Bytes` joined the shape (it is then 0: off). */
const SHAPE_OPTIONS_BEFORE_CHECKPOINT_LEVEL0_BYTES = 9;
/** Options in a shape record written before `checkpointLevel0SizeRatio` joined the shape (it is then 0: merges take all of level 0). */
const SHAPE_OPTIONS_BEFORE_CHECKPOINT_LEVEL0_SIZE_RATIO = 10;

/** What the manifest knows about one table. */
export interface TableMeta {
  number: number;
  size: number;
  entryCount: number;
  /** Smallest internal key. */
  smallest: Uint8Array;
  /** Largest internal key. */
  largest: Uint8Array;
  /** Table Merkle root (32 bytes). */
  root: Uint8Array;
}

/** A change to the table set and counters; fields left undefined are unchanged. */
export interface VersionEdit {
  comparator?: string;
  logNumber?: number;
  nextTableNumber?: number;
  nextJournalNumber?: number;
  flushedSeq?: number;
  lastSeq?: number;
  /** External-log mode: highest log index whose effects are all in the tables. */
  appliedIndex?: number;
  /** External-log mode: log index of a checkpoint whose table set this edit completes. */
  checkpointIndex?: number;
  /** Commit time (ms) of the latest write whose effect is in the tables (never decreases). */
  lastTime?: number;
  /** The shape options the database runs with (recorded at creation and when an open changes them). */
  shape?: Shape;
  compactPointers?: Array<[level: number, key: Uint8Array]>;
  deleted?: Array<[level: number, number: number]>;
  added?: Array<[level: number, meta: TableMeta]>;
}

/** Comparator name recorded in every manifest. */
export const COMPARATOR_NAME = 'proofkv.internal.v1';

const enum Tag {
  LogNumber = 1,
  NextTableNumber = 2,
  FlushedSeq = 3,
  CompactPointer = 4,
  DeletedTable = 5,
  NewTable = 6,
  NextJournalNumber = 7,
  Comparator = 8,
  LastSeq = 9,
  AppliedIndex = 10,
  CheckpointIndex = 11,
  LastTime = 12,
  Shape = 13,
}

/** Encodes an edit. */
export function encodeEdit(e: VersionEdit): Uint8Array {
  const w = new ByteWriter(256);
  if (e.comparator !== undefined) {
    w.varint(Tag.Comparator);
    w.lengthPrefixed(new TextEncoder().encode(e.comparator));
  }
  const num = (tag: Tag, v: number | undefined) => {
    if (v !== undefined) {
      w.varint(tag);
      w.varint(v);
    }
  };
  num(Tag.LogNumber, e.logNumber);
  num(Tag.NextTableNumber, e.nextTableNumber);
  num(Tag.NextJournalNumber, e.nextJournalNumber);
  num(Tag.FlushedSeq, e.flushedSeq);
  num(Tag.LastSeq, e.lastSeq);
  num(Tag.AppliedIndex, e.appliedIndex);
  num(Tag.CheckpointIndex, e.checkpointIndex);
  num(Tag.LastTime, e.lastTime);
  if (e.shape !== undefined) writeShapeRecord(w, e.shape, SHAPE_OPTIONS.length);
  for (const [level, key] of e.compactPointers ?? []) {
    w.varint(Tag.CompactPointer);
    w.varint(level);
    w.lengthPrefixed(key);
  }
  for (const [level, number] of e.deleted ?? []) {
    w.varint(Tag.DeletedTable);
    w.varint(level);
    w.varint(number);
  }
  for (const [level, m] of e.added ?? []) {
    w.varint(Tag.NewTable);
    w.varint(level);
    w.varint(m.number);
    w.varint(m.size);
    w.varint(m.entryCount);
    w.lengthPrefixed(m.smallest);
    w.lengthPrefixed(m.largest);
    w.bytes(m.root);
  }
  return w.finish();
}

/** Decodes an edit; any malformation is a `CorruptionError` naming `file`. */
export function decodeEdit(payload: Uint8Array, file: string): VersionEdit {
  const r = new ByteReader(payload);
  const e: VersionEdit = {};
  try {
    while (r.remaining > 0) {
      const tag = r.varint();
      switch (tag) {
        case Tag.Comparator:
          e.comparator = new TextDecoder().decode(r.lengthPrefixed());
          break;
        case Tag.LogNumber:
          e.logNumber = r.varint();
          break;
        case Tag.NextTableNumber:
          e.nextTableNumber = r.varint();
          break;
        case Tag.NextJournalNumber:
          e.nextJournalNumber = r.varint();
          break;
        case Tag.FlushedSeq:
          e.flushedSeq = r.varint();
          break;
        case Tag.LastSeq:
          e.lastSeq = r.varint();
          break;
        case Tag.AppliedIndex:
          e.appliedIndex = r.varint();
          break;
        case Tag.CheckpointIndex:
          e.checkpointIndex = r.varint();
          break;
        case Tag.LastTime:
          e.lastTime = r.varint();
          break;
        case Tag.Shape: {
          const n = r.varint();
          if (
            n !== SHAPE_OPTIONS.length &&
            n !== SHAPE_OPTIONS_BEFORE_CHECKPOINT_LEVEL0_SIZE_RATIO &&
            n !== SHAPE_OPTIONS_BEFORE_CHECKPOINT_LEVEL0_BYTES &&
            n !== SHAPE_OPTIONS_BEFORE_MERKLE_GROUP
          ) {
            throw new CorruptionError(file, `shape with ${n} options, want ${SHAPE_OPTIONS.length}`);
          }
          const shape = { merkleGroup: 0, checkpointLevel0Bytes: 0, checkpointLevel0SizeRatio: 0 } as Shape;
          for (const k of SHAPE_OPTIONS.slice(0, n)) shape[k] = r.varint();
          e.shape = shape;
          break;
        }
        case Tag.CompactPointer:
          (e.compactPointers ??= []).push([r.varint(), r.lengthPrefixed().slice()]);
          break;
        case Tag.DeletedTable:
          (e.deleted ??= []).push([r.varint(), r.varint()]);
          break;
        case Tag.NewTable: {
          const level = r.varint();
          const meta: TableMeta = {
            number: r.varint(),
            size: r.varint(),
            entryCount: r.varint(),
            smallest: r.lengthPrefixed().slice(),
            largest: r.lengthPrefixed().slice(),
            root: r.bytes(32).slice(),
          };
          (e.added ??= []).push([level, meta]);
          break;
        }
        default:
          throw new CorruptionError(file, `unknown version edit tag ${tag}`);
      }
    }
  } catch (err) {
    if (err instanceof CorruptionError) throw err;
    throw new CorruptionError(file, `malformed version edit: ${(err as Error).message}`);
  }
  return e;
}

/** Writes a shape record (tag 13) of the first `n` options of `shape`. */
function writeShapeRecord(w: ByteWriter, shape: Shape, n: number): void {
  w.varint(Tag.Shape);
  w.varint(n);
  for (const k of SHAPE_OPTIONS.slice(0, n)) w.varint(shape[k]);
}

/**
 * An edit holding only a shape record of the first `n` options of `shape`, as the release whose
 * shape had `n` options wrote it (`src/replication/shape.ts` tells a shape so).
 */
export function encodeShapeRecord(shape: Shape, n: number): Uint8Array {
  const w = new ByteWriter(16 + 10 * n);
  writeShapeRecord(w, shape, n);
  return w.finish();
}
