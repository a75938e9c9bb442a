import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../../src/errors.js';
import { BLOCK_SIZE, HEADER_SIZE, RecordType } from '../../src/journal/format.js';
import { formatRecords } from '../../src/journal/writer.js';
import { readJournal, type JournalContents } from '../../src/journal/reader.js';
import { bytesOf, concat, expectSameRecords, physical } from './harness.js';

const { FULL, FIRST, MIDDLE, LAST } = RecordType;

/** A journal of `payloads` with the ends of its records. */
function build(payloads: Uint8Array[]): { bytes: Uint8Array; ends: number[] } {
  const ends: number[] = [];
  const parts: Uint8Array[] = [];
  let len = 0;
  for (const p of payloads) {
    const b = formatRecords([p], len);
    parts.push(b);
    len += b.length;
    ends.push(len);
  }
  return { bytes: concat(...parts), ends };
}

function flip(bytes: Uint8Array, at: number, mask = 0xff): Uint8Array {
  const out = bytes.slice();
  out[at] ^= mask;
  return out;
}

function expectTail(got: JournalContents, want: Uint8Array[], validLength: number, fileLength: number): void {
  expectSameRecords(got.records, want);
  expect(got.validLength).toBe(validLength);
  expect(got.tornTail).toBe(validLength < fileLength);
}

function expectCorruption(bytes: Uint8Array, offset: number): void {
  let err: unknown;
  try {
    readJournal(bytes, '000007.log');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CorruptionError);
  expect((err as CorruptionError).file).toBe('000007.log');
  expect((err as CorruptionError).offset).toBe(offset);
}

describe('torn tails', () => {
  it('cut at every byte offset of the last record keeps the earlier records (small records)', () => {
    const ps = [bytesOf(10), bytesOf(0), bytesOf(200), bytesOf(57)];
    const { bytes, ends } = build(ps);
    const prev = ends[ends.length - 2];
    for (let cut = prev; cut <= bytes.length; cut++) {
      const want = cut === bytes.length ? ps : ps.slice(0, -1);
      expectTail(readJournal(bytes.subarray(0, cut), 't.log'), want, cut === bytes.length ? bytes.length : prev, cut);
    }
  });

  it('cut at every byte offset near the ends and block boundaries of a last record that crosses blocks (incl. trailer)', () => {
    // a leaves 3 trailer bytes in block 0; c starts in block 1 and spans into block 2.
    const ps = [bytesOf(BLOCK_SIZE - HEADER_SIZE - 3 - 40 - HEADER_SIZE), bytesOf(40), bytesOf(BLOCK_SIZE + 500)];
    const { bytes, ends } = build(ps);
    const prev = ends[1];
    expect(prev).toBe(BLOCK_SIZE - 3);
    const near = (c: number) => c - prev < 1500 || Math.abs(c - 2 * BLOCK_SIZE) < 1500 || bytes.length - c < 1500;
    for (let cut = prev; cut <= bytes.length; cut++) {
      if (!near(cut) && cut % 101 !== 0) continue;
      const got = readJournal(bytes.subarray(0, cut), 't.log');
      if (cut === bytes.length) expectTail(got, ps, bytes.length, cut);
      else expectTail(got, ps.slice(0, 2), prev, cut);
    }
  });

  it('cut inside a 100 KiB record (stride, and every offset around each block boundary)', () => {
    const ps = [bytesOf(1000), bytesOf(100 * 1024)];
    const { bytes, ends } = build(ps);
    const cuts = new Set<number>();
    for (let c = ends[0]; c < bytes.length; c += 997) cuts.add(c);
    for (let b = BLOCK_SIZE; b < bytes.length; b += BLOCK_SIZE) for (let d = -10; d <= 10; d++) cuts.add(b + d);
    for (const cut of cuts) expectTail(readJournal(bytes.subarray(0, cut), 't.log'), ps.slice(0, 1), ends[0], cut);
  });

  it('a flipped byte anywhere in the last (FULL) record is a torn tail', () => {
    const ps = [bytesOf(30), bytesOf(31), bytesOf(300)];
    const { bytes, ends } = build(ps);
    for (let at = ends[1]; at < bytes.length; at++) {
      for (const mask of [0xff, 0x01, 0x80]) {
        expectTail(readJournal(flip(bytes, at, mask), 't.log'), ps.slice(0, 2), ends[1], bytes.length);
      }
    }
  });

  it('zero fill after the last record is a harmless torn tail', () => {
    const ps = [bytesOf(100), bytesOf(5000)];
    const { bytes } = build(ps);
    for (const zeros of [1, 6, 7, 8, 100, BLOCK_SIZE - bytes.length, BLOCK_SIZE - bytes.length + 3, 3 * BLOCK_SIZE]) {
      const file = concat(bytes, new Uint8Array(zeros));
      expectTail(readJournal(file, 't.log'), ps, bytes.length, file.length);
    }
  });

  it('a partial trailer at the end of the file is a torn tail', () => {
    const a = bytesOf(BLOCK_SIZE - HEADER_SIZE - 5);
    const bytes = formatRecords([a]);
    const file = concat(bytes, new Uint8Array(2));
    expectTail(readJournal(file, 't.log'), [a], bytes.length, file.length);
  });

  it('FIRST and MIDDLE fragments without their LAST are a torn tail', () => {
    const a = bytesOf(20);
    const big = formatRecords([bytesOf(3 * BLOCK_SIZE)], 0);
    const head = formatRecords([a]);
    const file = formatRecords([a, bytesOf(3 * BLOCK_SIZE)]);
    // Drop the LAST fragment's block entirely.
    const cut = file.subarray(0, 3 * BLOCK_SIZE);
    expect(big.length).toBeGreaterThan(3 * BLOCK_SIZE);
    expectTail(readJournal(cut, 't.log'), [a], head.length, cut.length);
  });

  it('a record with a correct checksum but an unknown type at the tail is a torn tail', () => {
    const a = bytesOf(9);
    const file = concat(formatRecords([a]), physical(5, bytesOf(3)));
    expectTail(readJournal(file, 't.log'), [a], HEADER_SIZE + 9, file.length);
  });
});

describe('corruption in the middle', () => {
  it('a flipped byte anywhere in a middle record, with good records after it, throws', () => {
    const ps = [bytesOf(30), bytesOf(200), bytesOf(31), bytesOf(32)];
    const { bytes, ends } = build(ps);
    for (let at = ends[0]; at < ends[1]; at++) {
      for (const mask of [0xff, 0x01, 0x80]) expectCorruption(flip(bytes, at, mask), ends[0]);
    }
  });

  it('damage in one block with valid records in a later block throws (any damage, any block)', () => {
    const ps = [bytesOf(100), bytesOf(40000), bytesOf(10)];
    const { bytes } = build(ps);
    // Zero a whole page in the middle record's first fragment: the chain breaks, block 1 resyncs.
    const damaged = bytes.slice();
    damaged.fill(0, 4096, 8192);
    expectCorruption(damaged, ps[0].length + HEADER_SIZE);
    // Garbage over the header of the first record.
    const garbage = bytes.slice();
    garbage.set([0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0x09], 0);
    expectCorruption(garbage, 0);
  });

  it('a zero-filled hole followed by valid records in a later block throws', () => {
    const a = bytesOf(50);
    const file = concat(formatRecords([a]), new Uint8Array(BLOCK_SIZE - 57), formatRecords([bytesOf(5)], BLOCK_SIZE));
    expectCorruption(file, 57);
  });

  it('a damaged FIRST fragment of the last record throws, because its MIDDLE/LAST are intact', () => {
    const ps = [bytesOf(10), bytesOf(2 * BLOCK_SIZE)];
    const { bytes, ends } = build(ps);
    expectCorruption(flip(bytes, ends[0] + HEADER_SIZE + 100), ends[0]);
  });

  it('a MIDDLE or LAST without a FIRST throws, even at the end of the file', () => {
    for (const type of [MIDDLE, LAST]) {
      const file = concat(formatRecords([bytesOf(5)]), physical(type, bytesOf(6)));
      expectCorruption(file, HEADER_SIZE + 5);
    }
  });

  it('a FULL or FIRST inside an open logical record throws', () => {
    for (const type of [FULL, FIRST]) {
      const file = concat(physical(FIRST, bytesOf(5)), physical(type, bytesOf(6)), physical(LAST, bytesOf(1)));
      expectCorruption(file, HEADER_SIZE + 5);
    }
  });

  it('reports the file name and offset in the message', () => {
    const { bytes, ends } = build([bytesOf(3), bytesOf(4), bytesOf(5)]);
    expect(() => readJournal(flip(bytes, ends[0] + 8), '000009.log')).toThrow(
      /corruption in 000009\.log at offset 10: checksum mismatch, followed by a valid record at offset 21/,
    );
  });
});
