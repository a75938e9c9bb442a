/**
 * The journal reader: turns the bytes of a journal file (LevelDB's log format, see
 * {@link ./format.ts}) back into logical records, for crash recovery.
 *
 * Recovery semantics:
 * - Records come back in file order, each exactly as it was added.
 * - A damaged or incomplete **tail** is expected after a crash: a record cut short by the end of
 *   the file, a header cut short, a bad checksum, length or type, zero fill (preallocated or
 *   never-written space), or the fragments of a logical record whose LAST fragment never made it.
 *   If no valid record follows the first problem, the result says `tornTail: true` and
 *   `validLength` is the end of the last complete logical record: the caller truncates the file
 *   there (and may continue writing at that length).
 * - Damage in the **middle** - a problem followed by any physical record whose checksum is
 *   correct and whose type is FULL, FIRST, MIDDLE or LAST - throws a {@link CorruptionError}
 *   naming the file and the offset of the damage. Nothing is ever skipped silently.
 * - A fragment sequence that a sequential writer can never produce (MIDDLE or LAST without a
 *   FIRST; FULL or FIRST while a FIRST is still open) between records with correct checksums is
 *   corruption too, wherever it is.
 *
 * "A valid record after the problem" is searched for where records can be found without trusting
 * damaged bytes: the record chain continuing after the damaged record, and the chain starting at
 * every later block boundary (each block starts with a header). The chain continues at the
 * damaged record's stored length if it fits, or at a repaired length: if the record's checksum
 * matches a length differing from the stored one in one byte, the length field itself was hit. A MIDDLE or LAST counts, not only a record that starts a logical record: a FIRST whose
 * checksum is damaged followed by an intact MIDDLE/LAST is a complete, acknowledged record that
 * has been damaged, not a torn write. The cost is one pass over the rest of the file.
 *
 * Unlike LevelDB's reader, a zero-type record in the middle of the file is not skipped: it is a
 * problem like any other, harmless only at the tail. Trailer bytes (the last < 7 bytes of a
 * block) are skipped without being checked, as LevelDB does.
 * @module
 */
import { concatBytes } from '../../proofs/bytes.js';
import { CorruptionError } from '../errors.js';
import { getFixed32 } from '../util/coding.js';
import { crc32c, crc32cExtend, unmaskCrc } from '../util/crc32c.js';
import { BLOCK_SIZE, HEADER_SIZE, MAX_RECORD_TYPE, RecordType } from './format.js';

/** What {@link readJournal} recovered from one journal file. */
export interface JournalContents {
  /**
   * The complete logical records, in order. A record held in one FULL fragment is a view into
   * the input bytes; a fragmented one is a fresh copy.
   */
  records: Uint8Array[];
  /** End offset of the last complete logical record: the length to truncate the file to. */
  validLength: number;
  /** Bytes after `validLength` exist (an incomplete or damaged tail, or zero fill). */
  tornTail: boolean;
}

/** Outcome of parsing the physical record at some offset. */
const enum Parse {
  /** A record with a correct checksum and a known non-zero type. */
  OK,
  /** The header or the payload runs past the end of the file. */
  TRUNCATED,
  /** The length runs past the end of the block. */
  BAD_LENGTH,
  /** Type 0 (zero fill). */
  ZERO,
  /** Checksum mismatch. */
  BAD_CRC,
  /** Correct checksum, unknown type. */
  BAD_TYPE,
}

const PROBLEM: Record<Parse, string> = {
  [Parse.OK]: 'ok',
  [Parse.TRUNCATED]: 'truncated record',
  [Parse.BAD_LENGTH]: 'bad record length',
  [Parse.ZERO]: 'zero-filled region',
  [Parse.BAD_CRC]: 'checksum mismatch',
  [Parse.BAD_TYPE]: 'unknown record type',
};

/**
 * Parses the physical record header at `pos` (which must leave at least `HEADER_SIZE` bytes in
 * its block). Returns the outcome; for OK, BAD_CRC and BAD_TYPE the length field fits the block
 * and the file.
 */
function parseAt(bytes: Uint8Array, pos: number): Parse {
  if (pos + HEADER_SIZE > bytes.length) return Parse.TRUNCATED;
  const length = bytes[pos + 4] | (bytes[pos + 5] << 8);
  const type = bytes[pos + 6];
  const blockEnd = pos - (pos % BLOCK_SIZE) + BLOCK_SIZE;
  if (pos + HEADER_SIZE + length > blockEnd) return type === RecordType.ZERO ? Parse.ZERO : Parse.BAD_LENGTH;
  if (pos + HEADER_SIZE + length > bytes.length) return type === RecordType.ZERO ? Parse.ZERO : Parse.TRUNCATED;
  if (type === RecordType.ZERO && length === 0) return Parse.ZERO;
  const expected = unmaskCrc(getFixed32(bytes, pos));
  if (crc32c(bytes, pos + 6, pos + HEADER_SIZE + length) !== expected) return Parse.BAD_CRC;
  if (type === RecordType.ZERO || type > MAX_RECORD_TYPE) return Parse.BAD_TYPE;
  return Parse.OK;
}

function recordLength(bytes: Uint8Array, pos: number): number {
  return bytes[pos + 4] | (bytes[pos + 5] << 8);
}

/**
 * For a damaged record at `pos` (complete header): if its checksum matches its type and payload
 * for a length that differs from the stored one in exactly one of its two bytes, the length field
 * was damaged and the record is otherwise intact; returns that length, or -1. One incremental
 * CRC pass over at most the rest of the block.
 */
function repairLength(bytes: Uint8Array, pos: number): number {
  const type = bytes[pos + 6];
  if (type === RecordType.ZERO || type > MAX_RECORD_TYPE) return -1;
  const stored = recordLength(bytes, pos);
  const blockEnd = pos - (pos % BLOCK_SIZE) + BLOCK_SIZE;
  const max = Math.min(blockEnd, bytes.length) - pos - HEADER_SIZE;
  const expected = unmaskCrc(getFixed32(bytes, pos));
  const start = pos + HEADER_SIZE;
  let crc = crc32c(bytes, pos + 6, start);
  let done = 0;
  for (let len = 0; len <= max; len++) {
    if (len === stored || ((len & 0xff) !== (stored & 0xff) && len >>> 8 !== stored >>> 8)) continue;
    crc = crc32cExtend(crc, bytes, start + done, start + len);
    done = len;
    if (crc === expected) return len;
  }
  return -1;
}

/**
 * Follows the chain of physical records from `pos` to the end of its block; returns the offset of
 * the first valid record found, or -1 if the chain breaks (or the block ends) before one. Damaged
 * records with a usable length are stepped over; a zero header steps 7 bytes.
 */
function findValidInChain(bytes: Uint8Array, pos: number): number {
  const blockEnd = Math.min(pos - (pos % BLOCK_SIZE) + BLOCK_SIZE, bytes.length);
  while (blockEnd - pos >= HEADER_SIZE) {
    const r = parseAt(bytes, pos);
    if (r === Parse.OK) return pos;
    if (r === Parse.BAD_CRC || r === Parse.BAD_TYPE) pos += HEADER_SIZE + recordLength(bytes, pos);
    else if (r === Parse.ZERO && recordLength(bytes, pos) === 0) pos += HEADER_SIZE;
    else return -1;
  }
  return -1;
}

/**
 * Looks for any valid physical record after a problem found at `pos` with outcome `problem`:
 * first along the chain after the damaged record (at its repaired length if its length field was
 * damaged, else at its stored length if that fits), then from every later block boundary.
 * Returns its offset or -1.
 */
function findValidAfter(bytes: Uint8Array, pos: number, problem: Parse): number {
  let next = -1;
  if (problem !== Parse.ZERO && pos + HEADER_SIZE <= bytes.length) {
    const repaired = repairLength(bytes, pos);
    if (repaired >= 0) next = pos + HEADER_SIZE + repaired;
  }
  if (next < 0) {
    if (problem === Parse.BAD_CRC || problem === Parse.BAD_TYPE) next = pos + HEADER_SIZE + recordLength(bytes, pos);
    else if (problem === Parse.ZERO && recordLength(bytes, pos) === 0) next = pos + HEADER_SIZE;
  }
  if (next >= 0) {
    const found = findValidInChain(bytes, next);
    if (found >= 0) return found;
  }
  for (let b = pos - (pos % BLOCK_SIZE) + BLOCK_SIZE; b < bytes.length; b += BLOCK_SIZE) {
    const found = findValidInChain(bytes, b);
    if (found >= 0) return found;
  }
  return -1;
}

const TYPE_NAME = ['ZERO', 'FULL', 'FIRST', 'MIDDLE', 'LAST'];

/**
 * Reads every logical record of a journal file. `fileName` is used in errors only.
 * Throws {@link CorruptionError} for damage followed by valid records (see the module comment);
 * a damaged tail is reported with `tornTail` and `validLength` instead.
 */
export function readJournal(bytes: Uint8Array, fileName: string): JournalContents {
  const records: Uint8Array[] = [];
  let validLength = 0;
  /** Fragments of the logical record being assembled, and where it started. */
  let parts: Uint8Array[] | null = null;
  let partsStart = 0;
  let pos = 0;

  const corrupt = (detail: string, at: number): never => {
    throw new CorruptionError(fileName, detail, at);
  };

  while (pos < bytes.length) {
    const blockLeft = BLOCK_SIZE - (pos % BLOCK_SIZE);
    if (blockLeft < HEADER_SIZE) {
      pos += blockLeft; // trailer
      continue;
    }
    const r = parseAt(bytes, pos);
    if (r !== Parse.OK) {
      const next = findValidAfter(bytes, pos, r);
      if (next >= 0) {
        corrupt(`${PROBLEM[r]}, followed by a valid record at offset ${next}`, pos);
      }
      break; // torn tail
    }
    const length = recordLength(bytes, pos);
    const type = bytes[pos + 6];
    const fragment = bytes.subarray(pos + HEADER_SIZE, pos + HEADER_SIZE + length);
    const end = pos + HEADER_SIZE + length;
    switch (type) {
      case RecordType.FULL:
        if (parts) corrupt(`FULL record inside a logical record that started at offset ${partsStart} (no LAST)`, pos);
        records.push(fragment);
        validLength = end;
        break;
      case RecordType.FIRST:
        if (parts) corrupt(`FIRST record inside a logical record that started at offset ${partsStart} (no LAST)`, pos);
        parts = [fragment];
        partsStart = pos;
        break;
      case RecordType.MIDDLE:
      case RecordType.LAST: {
        if (!parts) corrupt(`${TYPE_NAME[type]} record without a FIRST record`, pos);
        parts!.push(fragment);
        if (type === RecordType.LAST) {
          records.push(concatBytes(...parts!));
          parts = null;
          validLength = end;
        }
        break;
      }
    }
    pos = end;
  }
  return { records, validLength, tornTail: validLength < bytes.length };
}
