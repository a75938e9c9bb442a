import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BLOCK_SIZE, HEADER_SIZE, MAX_FRAGMENT, RecordType } from '../../src/journal/format.js';
import { formatRecords } from '../../src/journal/writer.js';
import { readJournal } from '../../src/journal/reader.js';
import { bytesOf, concat, expectSameRecords, physicalLayout, referenceFormat, sameBytes } from './harness.js';

const { FULL, FIRST, MIDDLE, LAST } = RecordType;

function roundTrip(payloads: Uint8Array[]): Uint8Array {
  const bytes = formatRecords(payloads);
  expect(sameBytes(bytes, referenceFormat(payloads))).toBe(true);
  const got = readJournal(bytes, 'rt.log');
  expect(got.tornTail).toBe(false);
  expect(got.validLength).toBe(bytes.length);
  expectSameRecords(got.records, payloads);
  return bytes;
}

describe('journal format round trips', () => {
  it('reads an empty file as no records', () => {
    expect(readJournal(new Uint8Array(0), 'e.log')).toEqual({ records: [], validLength: 0, tornTail: false });
  });

  it('writes an empty record as one FULL header with length 0', () => {
    const bytes = roundTrip([new Uint8Array(0)]);
    expect(bytes.length).toBe(HEADER_SIZE);
    expect(physicalLayout(bytes)).toEqual([[0, FULL, 0]]);
  });

  it('pins the header bytes of a one-byte record (masked crc32c of type||data, LE length, type)', () => {
    const bytes = roundTrip([Uint8Array.of(0x61)]);
    expect(Array.from(bytes.subarray(4))).toEqual([1, 0, FULL, 0x61]);
  });

  for (const size of [1, MAX_FRAGMENT - 1, MAX_FRAGMENT, MAX_FRAGMENT + 1, BLOCK_SIZE - 6, BLOCK_SIZE, 2 * MAX_FRAGMENT, 2 * MAX_FRAGMENT + 1, 100 * 1024]) {
    it(`round-trips one record of ${size} bytes`, () => {
      roundTrip([bytesOf(size)]);
    });
  }

  it('fills a block exactly with one FULL record', () => {
    const bytes = roundTrip([bytesOf(MAX_FRAGMENT), bytesOf(5)]);
    expect(physicalLayout(bytes)).toEqual([
      [0, FULL, MAX_FRAGMENT],
      [BLOCK_SIZE, FULL, 5],
    ]);
  });

  it('splits a record one byte larger than a block into FIRST + LAST', () => {
    const bytes = roundTrip([bytesOf(MAX_FRAGMENT + 1)]);
    expect(physicalLayout(bytes)).toEqual([
      [0, FIRST, MAX_FRAGMENT],
      [BLOCK_SIZE, LAST, 1],
    ]);
  });

  it('emits FIRST / MIDDLE / LAST for a 100 KiB record', () => {
    const bytes = roundTrip([bytesOf(100 * 1024)]);
    const types = physicalLayout(bytes).map((r) => r[1]);
    expect(types).toEqual([FIRST, MIDDLE, MIDDLE, LAST]);
  });

  it('with exactly 7 bytes left in a block, starts the next record with an empty FIRST', () => {
    const a = bytesOf(BLOCK_SIZE - 2 * HEADER_SIZE); // leaves 7 bytes
    const bytes = roundTrip([a, bytesOf(10)]);
    expect(physicalLayout(bytes)).toEqual([
      [0, FULL, a.length],
      [BLOCK_SIZE - HEADER_SIZE, FIRST, 0],
      [BLOCK_SIZE, LAST, 10],
    ]);
  });

  it('with exactly 7 bytes left, an empty record is a FULL that ends the block', () => {
    const a = bytesOf(BLOCK_SIZE - 2 * HEADER_SIZE);
    const bytes = roundTrip([a, new Uint8Array(0), bytesOf(3)]);
    expect(physicalLayout(bytes)).toEqual([
      [0, FULL, a.length],
      [BLOCK_SIZE - HEADER_SIZE, FULL, 0],
      [BLOCK_SIZE, FULL, 3],
    ]);
  });

  for (const left of [1, 6]) {
    it(`with ${left} bytes left in a block, zero-fills the trailer and starts the next block`, () => {
      const a = bytesOf(BLOCK_SIZE - HEADER_SIZE - left);
      const bytes = roundTrip([a, bytesOf(10)]);
      expect(physicalLayout(bytes)).toEqual([
        [0, FULL, a.length],
        [BLOCK_SIZE, FULL, 10],
      ]);
      expect(Array.from(bytes.subarray(BLOCK_SIZE - left, BLOCK_SIZE))).toEqual(new Array(left).fill(0));
    });
  }

  it('continues a file at any existing length exactly as one-shot formatting would', () => {
    const ps = [bytesOf(30000), bytesOf(2760), bytesOf(1), bytesOf(70000), new Uint8Array(0), bytesOf(32761)];
    const whole = formatRecords(ps);
    for (let k = 0; k <= ps.length; k++) {
      const head = formatRecords(ps.slice(0, k));
      const tail = formatRecords(ps.slice(k), head.length);
      expect(sameBytes(concat(head, tail), whole)).toBe(true);
    }
  });

  it('round-trips thousands of random records (property)', () => {
    const payload = fc.oneof(
      { weight: 6, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      { weight: 3, arbitrary: fc.uint8Array({ minLength: 32700, maxLength: 32800 }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 70000 }) },
    );
    fc.assert(
      fc.property(fc.array(payload, { maxLength: 40 }), fc.nat(BLOCK_SIZE - 1), (ps, start) => {
        const bytes = formatRecords(ps);
        expect(sameBytes(bytes, referenceFormat(ps))).toBe(true);
        const got = readJournal(bytes, 'p.log');
        expect(got.tornTail).toBe(false);
        expectSameRecords(got.records, ps);
        // Continuing at an arbitrary block offset matches the reference too.
        expect(sameBytes(formatRecords(ps, start), referenceFormat(ps, start))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('round-trips 5000 small random records in one file', () => {
    const ps = fc.sample(fc.uint8Array({ maxLength: 300 }), { numRuns: 5000, seed: 42 });
    roundTrip(ps);
  });
});
