/**
 * Small helpers for journal tests: a deliberately plain reference formatter written straight from
 * LevelDB's log_format.md (to cross-check the fast one), raw physical records for hand-built
 * files, and temp directories.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32c, maskCrc } from '../../src/util/crc32c.js';
import { BLOCK_SIZE, HEADER_SIZE } from '../../src/journal/format.js';

/** One physical record, header and all: masked crc32c(type || data), u16 LE length, type. */
export function physical(type: number, data: Uint8Array, crcOverride?: number): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + data.length);
  const t = new Uint8Array(1 + data.length);
  t[0] = type;
  t.set(data, 1);
  const crc = crcOverride ?? maskCrc(crc32c(t));
  new DataView(out.buffer).setUint32(0, crc, true);
  new DataView(out.buffer).setUint16(4, data.length, true);
  out[6] = type;
  out.set(data, HEADER_SIZE);
  return out;
}

/** Reference formatter: the spec's loop, written plainly (one chunk per header, trailer, fragment). */
export function referenceFormat(payloads: Uint8Array[], startLength = 0): Uint8Array {
  const out: Uint8Array[] = [];
  let off = startLength % BLOCK_SIZE;
  for (const p of payloads) {
    let left = p.length;
    let ptr = 0;
    let first = true;
    do {
      if (BLOCK_SIZE - off < HEADER_SIZE) {
        out.push(new Uint8Array(BLOCK_SIZE - off));
        off = 0;
      }
      const n = Math.min(left, BLOCK_SIZE - off - HEADER_SIZE);
      const last = n === left;
      const type = first && last ? 1 : first ? 2 : last ? 4 : 3;
      out.push(physical(type, p.subarray(ptr, ptr + n)));
      off += HEADER_SIZE + n;
      ptr += n;
      left -= n;
      first = false;
    } while (left > 0);
  }
  return concat(...out);
}

/** Byte equality (vitest's deep equality is slow on large typed arrays). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Asserts two lists of byte strings are equal, with a readable message on the first difference. */
export function expectSameRecords(got: Uint8Array[], want: Uint8Array[]): void {
  if (got.length !== want.length) throw new Error(`got ${got.length} records, want ${want.length}`);
  for (let i = 0; i < got.length; i++) {
    if (!sameBytes(got[i], want[i])) throw new Error(`record ${i} differs (got ${got[i].length} bytes, want ${want[i].length})`);
  }
}

/** Lists the physical records of a well-formed journal: [offset, type, length]. */
export function physicalLayout(bytes: Uint8Array): Array<[number, number, number]> {
  const res: Array<[number, number, number]> = [];
  let pos = 0;
  while (pos < bytes.length) {
    if (BLOCK_SIZE - (pos % BLOCK_SIZE) < HEADER_SIZE) {
      pos += BLOCK_SIZE - (pos % BLOCK_SIZE);
      continue;
    }
    const len = bytes[pos + 4] | (bytes[pos + 5] << 8);
    res.push([pos, bytes[pos + 6], len]);
    pos += HEADER_SIZE + len;
  }
  return res;
}

/** Deterministic pseudo-random bytes (xorshift), so failures replay. */
export function bytesOf(n: number, seed = n): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-journal-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Offsets where each logical record of `payloads` ends when formatted from offset 0. */
export function recordEnds(payloads: Uint8Array[]): number[] {
  const ends: number[] = [];
  const all: Uint8Array[] = [];
  for (const p of payloads) {
    all.push(p);
    ends.push(referenceFormat(all).length);
  }
  return ends;
}
