/**
 * The journal's physical format: LevelDB's log format, byte for byte, so that the journal reader
 * also reads the `.log` files real LevelDB writes (and LevelDB's reader would read ours).
 *
 * A journal is a sequence of 32 KiB blocks; only the last block of a file may be partial.
 * Each block holds physical records, never split across a block boundary:
 *
 * ```
 * block    := record* trailer?
 *
 *  0       4       6   7                     7+length
 *  +-------+-------+---+----------------------+
 *  | crc   | length| t | payload fragment     |      record (header = 7 bytes)
 *  +-------+-------+---+----------------------+
 *  crc     u32 LE  maskCrc(crc32c(t || payload fragment))
 *  length  u16 LE  bytes of payload fragment (0 .. 32768 - 7)
 *  t       u8      FULL=1 | FIRST=2 | MIDDLE=3 | LAST=4     (0 = zero padding, never written)
 *
 *  trailer         when fewer than 7 bytes are left in a block, no record can start there: the
 *                  writer fills them with zeros and readers skip them.
 * ```
 *
 * A logical record (one write batch) is either one FULL record, or FIRST, MIDDLE*, LAST spread
 * over consecutive blocks. An empty logical record is a FULL record with length 0. If exactly 7
 * bytes are left in a block, a non-empty logical record starts with a FIRST record carrying zero
 * payload bytes there (this is what LevelDB does, and byte compatibility requires it).
 *
 * ```
 *  block k                                   block k+1            block k+2
 *  |..FULL a..|..FULL b..|FIRST c .........| |MIDDLE c .........| |LAST c|FULL d|..zero tail|
 * ```
 *
 * Continuing a file of length `L` resumes at block offset `L % BLOCK_SIZE`, so a journal can be
 * reopened and appended to after recovery truncates its torn tail.
 * @module
 */

/** Size of a journal block: physical records never cross a multiple of this offset. */
export const BLOCK_SIZE = 32768;

/** Bytes of a physical record header: masked CRC (4), length (2), type (1). */
export const HEADER_SIZE = 7;

/** Largest payload fragment one physical record can carry (a record filling a whole block). */
export const MAX_FRAGMENT = BLOCK_SIZE - HEADER_SIZE;

/** Physical record types, with LevelDB's numbering. */
export const RecordType = {
  /** Zero padding (preallocated or never-written space); never written as a record. */
  ZERO: 0,
  /** A whole logical record. */
  FULL: 1,
  /** The first fragment of a logical record spanning blocks. */
  FIRST: 2,
  /** An inner fragment. */
  MIDDLE: 3,
  /** The last fragment. */
  LAST: 4,
} as const;

/** One of {@link RecordType}. */
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** Largest record type this implementation understands. */
export const MAX_RECORD_TYPE = RecordType.LAST;
