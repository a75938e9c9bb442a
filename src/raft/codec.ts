/**
 * Byte codecs of the Raft log's records, shared by {@link WalStorage} (whose records frame them
 * with a length, a type and a CRC-32C) and {@link LevelStorage} (whose values end with one).
 * Integers are big-endian.
 * ```
 *   hard state  term:u64 | vote:u64 | commit:u64
 *   entry       term:u64 | type:u8 (0 normal, 1 conf change) | data …      (the index is kept apart)
 *   snapshot    index:u64 | term:u64 | nVoters:u32 | voter:u32 … | nLearners:u32 | learner:u32 … | data …
 * ```
 * @module
 */

import { crc32c } from '../util/crc32c.js';
import { EntryType, RaftError, RaftErrorCode, type Entry, type HardState, type Snapshot } from './types.js';

/** Writes `v` (a safe integer) as a big-endian u64 at `off`. */
export function putU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, Math.floor(v / 0x1_0000_0000));
  dv.setUint32(off + 4, v >>> 0);
}

/** Reads a big-endian u64 at `off`; throws `ERR_CORRUPT` beyond 2^53. */
export function getU64(dv: DataView, off: number): number {
  const hi = dv.getUint32(off);
  if (hi > 0x1f_ffff) throw new RaftError(RaftErrorCode.Corrupt, `integer at ${off} is beyond 2^53`);
  return hi * 0x1_0000_0000 + dv.getUint32(off + 4);
}

/** A DataView over exactly `b`. */
export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** `body || crc32c(body)`, the form of every value {@link LevelStorage} stores. */
export function withCrc(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 4);
  out.set(body);
  new DataView(out.buffer).setUint32(body.length, crc32c(body));
  return out;
}

/** Checks and strips the CRC that {@link withCrc} appended; throws `ERR_CORRUPT`. */
export function checkCrc(what: string, v: Uint8Array): Uint8Array {
  if (v.length < 4) throw new RaftError(RaftErrorCode.Corrupt, `${what}: value of ${v.length} bytes is too short`);
  const body = v.subarray(0, v.length - 4);
  const want = view(v).getUint32(v.length - 4);
  const got = crc32c(body);
  if (got !== want) throw new RaftError(RaftErrorCode.Corrupt, `${what}: checksum mismatch (got ${got}, want ${want})`);
  return body;
}

/** Encodes a hard state (24 bytes). */
export function hardStateBytes(hs: HardState): Uint8Array {
  const b = new Uint8Array(24);
  const dv = new DataView(b.buffer);
  putU64(dv, 0, hs.term);
  putU64(dv, 8, hs.vote);
  putU64(dv, 16, hs.commit);
  return b;
}

/** Decodes {@link hardStateBytes}; throws `ERR_CORRUPT`. */
export function parseHardState(b: Uint8Array): HardState {
  if (b.length !== 24) throw new RaftError(RaftErrorCode.Corrupt, `hard state: ${b.length} bytes, want 24`);
  const dv = view(b);
  return { term: getU64(dv, 0), vote: getU64(dv, 8), commit: getU64(dv, 16) };
}

/** Bytes of {@link entryBytes} before the data. */
export const ENTRY_HEADER = 9;

/** Encodes an entry's term, type and data into `out` at `off` (`ENTRY_HEADER + data.length` bytes). */
export function putEntry(out: Uint8Array, off: number, e: Entry): void {
  putU64(view(out), off, e.term);
  out[off + 8] = e.type === EntryType.ConfChange ? 1 : 0;
  out.set(e.data, off + ENTRY_HEADER);
}

/** Encodes an entry's term, type and data (the index is kept apart). */
export function entryBytes(e: Entry): Uint8Array {
  const b = new Uint8Array(ENTRY_HEADER + e.data.length);
  putEntry(b, 0, e);
  return b;
}

/** Decodes {@link entryBytes} as entry `index` (the data is copied); throws `ERR_CORRUPT`. */
export function parseEntry(index: number, b: Uint8Array): Entry {
  if (b.length < ENTRY_HEADER || b[8] > 1) throw new RaftError(RaftErrorCode.Corrupt, `entry ${index}: bad header`);
  return { index, term: getU64(view(b), 0), type: b[8] === 1 ? EntryType.ConfChange : EntryType.Normal, data: new Uint8Array(b.subarray(ENTRY_HEADER)) };
}

/** Encodes a snapshot (metadata and data). */
export function snapshotBytes(s: Snapshot): Uint8Array {
  const { voters, learners } = s.metadata.confState;
  const b = new Uint8Array(16 + 4 + 4 * voters.length + 4 + 4 * learners.length + s.data.length);
  const dv = new DataView(b.buffer);
  putU64(dv, 0, s.metadata.index);
  putU64(dv, 8, s.metadata.term);
  let off = 16;
  for (const list of [voters, learners]) {
    dv.setUint32(off, list.length);
    off += 4;
    for (const id of list) { dv.setUint32(off, id); off += 4; }
  }
  b.set(s.data, off);
  return b;
}

/** Decodes {@link snapshotBytes} (the data is copied); throws `ERR_CORRUPT`. */
export function parseSnapshot(b: Uint8Array): Snapshot {
  const bad = (): never => { throw new RaftError(RaftErrorCode.Corrupt, 'snapshot: truncated'); };
  if (b.length < 24) bad();
  const dv = view(b);
  const index = getU64(dv, 0);
  const term = getU64(dv, 8);
  let off = 16;
  const lists: number[][] = [];
  for (let l = 0; l < 2; l++) {
    if (off + 4 > b.length) bad();
    const n = dv.getUint32(off);
    off += 4;
    if (off + 4 * n > b.length) bad();
    const ids: number[] = [];
    for (let i = 0; i < n; i++) { ids.push(dv.getUint32(off)); off += 4; }
    lists.push(ids);
  }
  return { metadata: { index, term, confState: { voters: lists[0], learners: lists[1] } }, data: new Uint8Array(b.subarray(off)) };
}
