/**
 * The physical format of {@link WalStorage}'s segment files, and the scan that reads one back and
 * applies the repair rule. Pure: bytes in, records out.
 *
 * A segment is a sequence of frames, then zeros up to its preallocated size. **One frame is one
 * write** (one `save`, one snapshot, one compaction, or the state that begins a segment), so a
 * write is atomic: its CRC covers all of it, and a write torn anywhere reads as one bad frame.
 * ```
 *   frame   = crc:u32 | length:u32 | kind:u8 (1) | records (length bytes)       big-endian
 *   crc     = masked CRC-32C of length | kind | records
 *   record  = type:u8 | length:u32 | body
 *   type    1 segment  seq:u64                                            first record of every segment
 *           2 entry    index:u64 | term:u64 | entryType:u8 | data …
 *           3 hard     term:u64 | vote:u64 | commit:u64
 *           4 snapshot kind:u8 (0 base, 1 created, 2 installed) | snapshot (see codec.ts)
 *           5 compact  index:u64                                          entries before it are gone
 * ```
 * **Repair rule** (applied by {@link scanSegment}): frames are read from the start until the first
 * one that is not whole — too short for its header or its length, a kind that does not exist, a
 * CRC that does not match (the preallocated zeros are such a frame: kind 0). If any whole frame
 * starts anywhere after that point, the bad frame is *before a good one*: corruption,
 * `ERR_CORRUPT`, nothing is changed (writes are sequential and each is awaited before the next, so
 * a write that began after the bad one found it complete). Otherwise it is the torn tail of the last
 * write (only the newest segment may have one that is not zeros) and the log ends there: the open
 * cuts it back by overwriting it with zeros. A whole frame whose records do not parse is corruption.
 * @module
 */

import { crc32c, maskCrc } from '../util/crc32c.js';
import { ENTRY_HEADER, getU64, putEntry, putU64, view } from './codec.js';
import { RaftError, RaftErrorCode, type Entry, type HardState, type Snapshot } from './types.js';

/** Bytes of a frame's header: crc, length, kind. */
export const RECORD_HEADER = 9;
/** The kind byte of a frame (the only one). */
export const FRAME_WRITE = 1;
/** Bytes of a record's header inside a frame: type, length. */
const INNER_HEADER = 5;

/** Record types. */
export enum RecordType {
  Segment = 1,
  Entry = 2,
  HardState = 3,
  Snapshot = 4,
  Compact = 5,
}

/** How a snapshot record changes the log on replay. */
export enum SnapshotKind {
  /** Written first in every segment: the snapshot as it stood; the log is not touched. */
  Base = 0,
  /** {@link WalStorage.createSnapshot}: recorded over the log it summarizes (the log is kept). */
  Created = 1,
  /** A snapshot received from the leader: it replaces the whole log. */
  Installed = 2,
}

/** One record read back: its type, its body (a view into the segment's bytes) and where its frame starts. */
export interface WalRecord {
  readonly type: RecordType;
  readonly body: Uint8Array;
  readonly offset: number;
}

/**
 * A record to frame: its type and body, or a log entry — an entry record (`index | term |
 * entryType | data`) written in place, without a body of its own first.
 */
export type RecordToWrite = readonly [RecordType, Uint8Array] | Entry;

/** Bytes of an entry record's body before the entry's data: index, then term and type. */
const ENTRY_RECORD_HEADER = 8 + ENTRY_HEADER;

/** Bytes of the frame {@link encodeRecords} makes of `records`. */
export function framedSize(records: ReadonlyArray<RecordToWrite>): number {
  let n = RECORD_HEADER;
  for (const r of records) n += INNER_HEADER + (Array.isArray(r) ? (r as readonly [RecordType, Uint8Array])[1].length : ENTRY_RECORD_HEADER + (r as Entry).data.length);
  return n;
}

/** Frames a list of records as one write: one buffer, one CRC. */
export function encodeRecords(records: ReadonlyArray<RecordToWrite>): Uint8Array {
  const n = framedSize(records);
  const out = new Uint8Array(n);
  const dv = new DataView(out.buffer);
  let off = RECORD_HEADER;
  for (const r of records) {
    if (Array.isArray(r)) {
      const [type, body] = r as readonly [RecordType, Uint8Array];
      out[off] = type;
      dv.setUint32(off + 1, body.length);
      out.set(body, off + INNER_HEADER);
      off += INNER_HEADER + body.length;
    } else {
      const e = r as Entry;
      out[off] = RecordType.Entry;
      dv.setUint32(off + 1, ENTRY_RECORD_HEADER + e.data.length);
      putU64(dv, off + INNER_HEADER, e.index);
      putEntry(out, off + INNER_HEADER + 8, e);
      off += INNER_HEADER + ENTRY_RECORD_HEADER + e.data.length;
    }
  }
  dv.setUint32(4, n - RECORD_HEADER);
  out[8] = FRAME_WRITE;
  dv.setUint32(0, maskCrc(crc32c(out, 4, n)));
  return out;
}

/** The length of the whole frame at `off` in `b[0, end)`, or -1 when none starts there. */
export function recordAt(b: Uint8Array, off: number, end = b.length): number {
  if (off + RECORD_HEADER > end) return -1;
  if (b[off + 8] !== FRAME_WRITE) return -1;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const len = dv.getUint32(off + 4);
  if (len > end - off - RECORD_HEADER) return -1;
  const stop = off + RECORD_HEADER + len;
  if (maskCrc(crc32c(b, off + 4, stop)) !== dv.getUint32(off)) return -1;
  return RECORD_HEADER + len;
}

/** The records of the whole frame `b[off, off + n)`; undefined when they do not parse. */
function recordsOf(b: Uint8Array, off: number, n: number): WalRecord[] | undefined {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: WalRecord[] = [];
  const stop = off + n;
  for (let p = off + RECORD_HEADER; p < stop;) {
    if (p + INNER_HEADER > stop) return undefined;
    const type = b[p];
    const len = dv.getUint32(p + 1);
    if (type < RecordType.Segment || type > RecordType.Compact || len > stop - p - INNER_HEADER) return undefined;
    out.push({ type, body: b.subarray(p + INNER_HEADER, p + INNER_HEADER + len), offset: off });
    p += INNER_HEADER + len;
  }
  return out;
}

/** What {@link scanSegment} found in one segment. */
export interface ScannedSegment {
  readonly records: WalRecord[];
  /** Where the records end (the next write goes here). */
  readonly end: number;
  /** One past the last byte that is not zero after `end` (`end` when the rest is zeros): the torn tail to zero. */
  readonly dirtyEnd: number;
}

const ZEROS = new Uint8Array(64 * 1024);

/** One past the last non-zero byte of `b[from, to)`, or `from` when they are all zero. */
export function lastNonZero(b: Uint8Array, from: number, to: number): number {
  let hi = to;
  // Whole chunks of zeros are skipped by a native compare.
  while (hi - from >= ZEROS.length && Buffer.compare(b.subarray(hi - ZEROS.length, hi), ZEROS) === 0) hi -= ZEROS.length;
  while (hi > from && b[hi - 1] === 0) hi--;
  return hi;
}

/**
 * Reads the records of segment `seq` (its first must be a segment record naming `seq`) and finds
 * where they end, by the repair rule of this module. `last` is false for a segment that is not the
 * newest: its tail must then be zeros (it was synced before the next one was begun), and any other
 * bad record is corruption. Throws `ERR_CORRUPT` (naming the segment and offset); changes nothing.
 */
export function scanSegment(name: string, seq: number, b: Uint8Array, last: boolean): ScannedSegment {
  const corrupt = (off: number, why: string): never => {
    throw new RaftError(RaftErrorCode.Corrupt, `Raft log segment ${name}: ${why} at offset ${off}`);
  };
  const records: WalRecord[] = [];
  let off = 0;
  for (;;) {
    const n = recordAt(b, off);
    if (n < 0) break;
    const recs = recordsOf(b, off, n);
    if (!recs) corrupt(off, 'a whole frame whose records do not parse');
    records.push(...recs!);
    off += n;
  }
  const dirtyEnd = lastNonZero(b, off, b.length);
  if (dirtyEnd > off) {
    for (let p = off + 1; p < dirtyEnd; p++) {
      if (recordAt(b, p, b.length) > 0) corrupt(off, `a bad frame before a whole one (at offset ${p})`);
    }
    if (!last) corrupt(off, 'a bad frame (not zeros) at the end of a segment that is not the newest');
  }
  if (records.length === 0) {
    // The newest segment may be empty (a crash after it was begun, or in its first write).
    if (!last) corrupt(0, 'no records in a segment that is not the newest');
  } else {
    const body = records[0].body;
    const got = records[0].type === RecordType.Segment && body.length === 8 ? getU64(view(body), 0) : -1;
    if (got !== seq) corrupt(0, `the first record is not the header of segment ${seq}`);
  }
  return { records, end: off, dirtyEnd };
}

/** The state a log replays to, and the contents of a new log (see `WalStorage.open`). */
export interface LogImage {
  readonly snapshot: Snapshot;
  readonly hardState: HardState;
  /** The dummy entry's index: entries before it are gone (0 for none). */
  readonly compactedTo: number;
  /** Contiguous entries; those up to the snapshot's index are the margin kept behind it. */
  readonly entries: readonly Entry[];
}
