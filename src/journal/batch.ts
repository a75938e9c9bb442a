/**
 * The write-batch payload carried by one journal record. It extends LevelDB's WriteBatch format,
 * so one decoder reads both the batches LevelDB writes and ProofKV's versioned ones.
 *
 * ```
 *  0         8        12
 *  +---------+--------+-----------+-----------+-----+
 *  | seq     | count  | record 0  | record 1  | ... |      count records, nothing after
 *  +---------+--------+-----------+-----------+-----+
 *  seq     u64 LE  sequence number of record 0; record i has seq + i
 *  count   u32 LE  number of records
 *
 *  record :=
 *    0x00  key                        LevelDB deletion          (Kind.DELETE, no version)
 *    0x01  key  value                 LevelDB value             (Kind.PUT,    no version)
 *    0x10  key  version  value        ProofKV versioned put     (Kind.PUT)
 *    0x11  key  version               ProofKV versioned delete  (Kind.DELETE)   before commit times
 *    0x12  key  version  time  value  ProofKV timed put         (Kind.PUT)
 *    0x13  key  version  time         ProofKV timed delete      (Kind.DELETE)
 *
 *  key, value   varstring: varint length, then the bytes
 *  version      varint (u64; at most 2^53 - 1 here)
 *  time         varint: commit time, ms since the epoch (at most 2^53 - 1)
 * ```
 * Varints are LevelDB's (little-endian base 128). The tags 0x00 and 0x01 are LevelDB's
 * `kTypeDeletion` and `kTypeValue` (numerically equal to {@link Kind}); ProofKV's versioned tags
 * are 0x10 for a put and 0x11 for a delete (note: not `0x10 | kind`), and 0x12 / 0x13 with the
 * commit time. The engine writes only 0x12 / 0x13; recovery refuses the others (a journal written
 * before commit times: docs/storage.md §5).
 * @module
 */
import { CorruptionError } from '../errors.js';
import { ByteReader, putFixed32, putFixed64, putVarint, varintLength } from '../util/coding.js';
import { Kind } from '../../proofs/hash.js';
import { MAX_SEQ } from '../keys.js';

/** Bytes before the first record: seq (8) and count (4). */
export const BATCH_HEADER_SIZE = 12;

/** Record tags. */
export const BatchTag = {
  /** LevelDB `kTypeDeletion`: key. */
  DELETE: 0x00,
  /** LevelDB `kTypeValue`: key, value. */
  PUT: 0x01,
  /** ProofKV versioned put: key, version, value. */
  VERSIONED_PUT: 0x10,
  /** ProofKV versioned delete (tombstone): key, version. */
  VERSIONED_DELETE: 0x11,
  /** ProofKV put with its commit time: key, version, time, value. */
  TIMED_PUT: 0x12,
  /** ProofKV delete (tombstone) with its commit time: key, version, time. */
  TIMED_DELETE: 0x13,
} as const;

/** One operation of a batch. */
export interface BatchOp {
  /** PUT or DELETE. */
  kind: Kind;
  /** The user key. */
  key: Uint8Array;
  /** The record's version; `undefined` for a LevelDB record (tags 0x00 / 0x01). */
  version?: number;
  /** The value of a PUT (required); `undefined` for a DELETE. */
  value?: Uint8Array;
  /** Commit time (ms); only with a version (tags 0x12 / 0x13). */
  time?: number;
}

/** A decoded batch: op `i` has sequence number `seq + i`. */
export interface Batch {
  /** Sequence number of the first op. */
  seq: number;
  /** The ops, in order. Keys and values are views into the decoded payload. */
  ops: BatchOp[];
}

function checkOp(op: BatchOp, i: number): void {
  if (op.kind !== Kind.PUT && op.kind !== Kind.DELETE) throw new RangeError(`op ${i}: unknown kind ${String(op.kind)}`);
  if (!(op.key instanceof Uint8Array)) throw new TypeError(`op ${i}: key must be a Uint8Array`);
  if (op.version !== undefined && !(Number.isSafeInteger(op.version) && op.version >= 0)) {
    throw new RangeError(`op ${i}: version must be a non-negative safe integer, got ${op.version}`);
  }
  if (op.time !== undefined && !(op.version !== undefined && Number.isSafeInteger(op.time) && op.time >= 0)) {
    throw new RangeError(`op ${i}: time must be a non-negative safe integer, on an op with a version`);
  }
  if (op.kind === Kind.PUT && !(op.value instanceof Uint8Array)) throw new TypeError(`op ${i}: a PUT needs a Uint8Array value`);
  if (op.kind === Kind.DELETE && op.value !== undefined) throw new TypeError(`op ${i}: a DELETE has no value`);
}

/** Exact encoded size of a batch of `ops`. */
export function encodedBatchSize(ops: readonly BatchOp[]): number {
  let n = BATCH_HEADER_SIZE;
  for (const op of ops) {
    n += 1 + varintLength(op.key.length) + op.key.length;
    if (op.version !== undefined) n += varintLength(op.version);
    if (op.time !== undefined) n += varintLength(op.time);
    if (op.kind === Kind.PUT) n += varintLength(op.value!.length) + op.value!.length;
  }
  return n;
}

/**
 * Encodes a batch whose first op gets sequence number `seq`. Ops without a version get LevelDB's
 * tags, ops with one get ProofKV's. Throws `RangeError`/`TypeError` on a malformed op or a
 * sequence range beyond 2^53 - 1.
 */
export function encodeBatch(seq: number, ops: readonly BatchOp[]): Uint8Array {
  if (!(Number.isSafeInteger(seq) && seq >= 0)) throw new RangeError(`seq must be a non-negative safe integer, got ${seq}`);
  if (ops.length > 0xffffffff) throw new RangeError('too many ops in one batch');
  if (ops.length > 0 && ops.length - 1 > MAX_SEQ - seq) throw new RangeError('batch sequence numbers exceed 2^53 - 1');
  ops.forEach(checkOp);
  const out = new Uint8Array(encodedBatchSize(ops));
  putFixed64(out, 0, seq);
  putFixed32(out, 8, ops.length);
  let pos = BATCH_HEADER_SIZE;
  for (const op of ops) {
    out[pos++] =
      op.version === undefined
        ? op.kind === Kind.PUT
          ? BatchTag.PUT
          : BatchTag.DELETE
        : op.time !== undefined
          ? op.kind === Kind.PUT
            ? BatchTag.TIMED_PUT
            : BatchTag.TIMED_DELETE
          : op.kind === Kind.PUT
            ? BatchTag.VERSIONED_PUT
            : BatchTag.VERSIONED_DELETE;
    pos = putVarint(out, pos, op.key.length);
    out.set(op.key, pos);
    pos += op.key.length;
    if (op.version !== undefined) pos = putVarint(out, pos, op.version);
    if (op.time !== undefined) pos = putVarint(out, pos, op.time);
    if (op.kind === Kind.PUT) {
      const v = op.value!;
      pos = putVarint(out, pos, v.length);
      out.set(v, pos);
      pos += v.length;
    }
  }
  return out;
}

/**
 * Decodes a batch payload. Throws {@link CorruptionError} naming `fileName` (the offset inside the
 * payload is in the message; the error's `offset` is unset, the caller knows the record's place) on
 * any malformation: a short header, truncation, an unknown tag, fewer or more records than
 * `count`, or a sequence range beyond 2^53 - 1.
 */
export function decodeBatch(payload: Uint8Array, fileName: string): Batch {
  const r = new ByteReader(payload);
  let tagAt = 0;
  try {
    if (payload.length < BATCH_HEADER_SIZE) {
      throw new CorruptionError(fileName, `batch of ${payload.length} bytes is shorter than its ${BATCH_HEADER_SIZE}-byte header`);
    }
    const seq = r.fixed64();
    const count = r.fixed32();
    if (count > 0 && count - 1 > MAX_SEQ - seq) throw new CorruptionError(fileName, 'batch sequence numbers exceed 2^53 - 1');
    // Each record takes at least 2 bytes: refuse absurd counts before allocating.
    if (count > r.remaining / 2) {
      throw new CorruptionError(fileName, `batch claims ${count} records in ${r.remaining} bytes`);
    }
    const ops: BatchOp[] = new Array(count);
    for (let i = 0; i < count; i++) {
      tagAt = r.pos;
      const tag = r.u8();
      const key = r.lengthPrefixed();
      switch (tag) {
        case BatchTag.DELETE:
          ops[i] = { kind: Kind.DELETE, key };
          break;
        case BatchTag.PUT:
          ops[i] = { kind: Kind.PUT, key, value: r.lengthPrefixed() };
          break;
        case BatchTag.VERSIONED_PUT: {
          const version = r.varint();
          ops[i] = { kind: Kind.PUT, key, version, value: r.lengthPrefixed() };
          break;
        }
        case BatchTag.VERSIONED_DELETE:
          ops[i] = { kind: Kind.DELETE, key, version: r.varint() };
          break;
        case BatchTag.TIMED_PUT: {
          const version = r.varint();
          const time = r.varint();
          ops[i] = { kind: Kind.PUT, key, version, time, value: r.lengthPrefixed() };
          break;
        }
        case BatchTag.TIMED_DELETE: {
          const version = r.varint();
          ops[i] = { kind: Kind.DELETE, key, version, time: r.varint() };
          break;
        }
        default:
          throw new CorruptionError(fileName, `batch record ${i} has unknown tag 0x${tag.toString(16).padStart(2, '0')} (payload offset ${tagAt})`);
      }
    }
    if (r.remaining !== 0) {
      throw new CorruptionError(fileName, `${r.remaining} bytes after the ${count} records of a batch (payload offset ${r.pos})`);
    }
    return { seq, ops };
  } catch (e) {
    if (e instanceof CorruptionError) throw e;
    if (e instanceof RangeError) throw new CorruptionError(fileName, `batch record at payload offset ${tagAt}: ${e.message}`);
    throw e;
  }
}
