import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CorruptionError } from '../../src/errors.js';
import { Kind } from '../../proofs/hash.js';
import { BATCH_HEADER_SIZE, decodeBatch, encodeBatch, encodedBatchSize, type BatchOp } from '../../src/journal/batch.js';

const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);

describe('batch codec', () => {
  it('encodes LevelDB records exactly as a LevelDB WriteBatch (golden bytes)', () => {
    const bytes = encodeBatch(0x0102030405, [
      { kind: Kind.PUT, key: b('k'), value: b('vv') },
      { kind: Kind.DELETE, key: b('xy') },
    ]);
    expect(Array.from(bytes)).toEqual([
      0x05, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, // seq fixed64 LE
      2, 0, 0, 0, // count fixed32 LE
      0x01, 1, 0x6b, 2, 0x76, 0x76, // kTypeValue "k" "vv"
      0x00, 2, 0x78, 0x79, // kTypeDeletion "xy"
    ]);
  });

  it('encodes versioned records with tags 0x10 / 0x11 and a varint version (golden bytes)', () => {
    const bytes = encodeBatch(7, [
      { kind: Kind.PUT, key: b('a'), version: 300, value: b('z') },
      { kind: Kind.DELETE, key: b('a'), version: 301 },
    ]);
    expect(Array.from(bytes.subarray(BATCH_HEADER_SIZE))).toEqual([
      0x10, 1, 0x61, 0xac, 0x02, 1, 0x7a,
      0x11, 1, 0x61, 0xad, 0x02,
    ]);
  });

  it('encodes timed records with tags 0x12 / 0x13: version, then time varints (golden bytes); they round-trip', () => {
    const ops: BatchOp[] = [
      { kind: Kind.PUT, key: b('a'), version: 300, time: 1_700_000_000_000, value: b('z') },
      { kind: Kind.DELETE, key: b('a'), version: 301, time: 5 },
    ];
    const bytes = encodeBatch(7, ops);
    // 1_700_000_000_000 as a varint: 80 d0 95 ff bc 31.
    expect(Array.from(bytes.subarray(BATCH_HEADER_SIZE))).toEqual([
      0x12, 1, 0x61, 0xac, 0x02, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 1, 0x7a,
      0x13, 1, 0x61, 0xad, 0x02, 0x05,
    ]);
    expect(bytes.length).toBe(encodedBatchSize(ops));
    expect(decodeBatch(bytes, 'x')).toEqual({ seq: 7, ops });
    // A time needs a version, and is a safe non-negative integer.
    expect(() => encodeBatch(1, [{ kind: Kind.PUT, key: b('a'), time: 1, value: b('z') }])).toThrow(RangeError);
    expect(() => encodeBatch(1, [{ kind: Kind.PUT, key: b('a'), version: 1, time: -1, value: b('z') }])).toThrow(RangeError);
  });

  it('round-trips random batches mixing all four record kinds (property)', () => {
    const op: fc.Arbitrary<BatchOp> = fc.oneof(
      fc.record({ kind: fc.constant(Kind.PUT), key: fc.uint8Array({ maxLength: 40 }), value: fc.uint8Array({ maxLength: 300 }) }),
      fc.record({ kind: fc.constant(Kind.DELETE), key: fc.uint8Array({ maxLength: 40 }) }),
      fc.record({
        kind: fc.constant(Kind.PUT),
        key: fc.uint8Array({ maxLength: 40 }),
        version: fc.maxSafeNat(),
        value: fc.uint8Array({ maxLength: 300 }),
      }),
      fc.record({ kind: fc.constant(Kind.DELETE), key: fc.uint8Array({ maxLength: 40 }), version: fc.maxSafeNat() }),
    );
    fc.assert(
      fc.property(fc.nat(2 ** 40), fc.array(op, { maxLength: 50 }), (seq, ops) => {
        const bytes = encodeBatch(seq, ops);
        expect(bytes.length).toBe(encodedBatchSize(ops));
        const got = decodeBatch(bytes, 'b.log');
        expect(got.seq).toBe(seq);
        expect(got.ops).toEqual(ops);
      }),
      { numRuns: 300 },
    );
  });

  it('an empty batch is just the header', () => {
    const bytes = encodeBatch(5, []);
    expect(bytes.length).toBe(BATCH_HEADER_SIZE);
    expect(decodeBatch(bytes, 'b.log')).toEqual({ seq: 5, ops: [] });
  });

  describe('malformed payloads throw CorruptionError', () => {
    const good = encodeBatch(1, [
      { kind: Kind.PUT, key: b('key'), version: 1, value: b('value') },
      { kind: Kind.DELETE, key: b('k2') },
      { kind: Kind.PUT, key: b('k3'), value: b('v3') },
      { kind: Kind.DELETE, key: b('k4'), version: 1000000 },
    ]);
    const bad = (bytes: Uint8Array, re: RegExp) => {
      expect(() => decodeBatch(bytes, '000001.log')).toThrow(CorruptionError);
      expect(() => decodeBatch(bytes, '000001.log')).toThrow(re);
    };

    it('every truncation', () => {
      for (let n = 0; n < good.length; n++) bad(good.subarray(0, n), /000001\.log/);
    });
    it('trailing bytes', () => bad(Uint8Array.from([...good, 0]), /1 bytes after the 4 records/));
    it('a count larger than the records', () => {
      const x = good.slice();
      x[8] = 5;
      bad(x, /truncated|claims/);
    });
    it('a count smaller than the records', () => {
      const x = good.slice();
      x[8] = 3;
      bad(x, /bytes after the 3 records/);
    });
    it('an absurd count', () => {
      const x = good.slice();
      x.set([0xff, 0xff, 0xff, 0xff], 8);
      bad(x, /claims 4294967295 records/);
    });
    it('an unknown tag', () => {
      for (const tag of [0x02, 0x14, 0x7f, 0xff]) {
        const x = good.slice();
        x[BATCH_HEADER_SIZE] = tag;
        bad(x, /unknown tag/);
      }
    });
    it('a sequence number beyond 2^53 - 1', () => {
      const x = good.slice();
      x.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0);
      bad(x, /2\^53/);
    });
    it('a version varint that overflows', () => {
      const x = encodeBatch(1, [{ kind: Kind.DELETE, key: b('k'), version: 0 }]);
      const y = Uint8Array.from([...x.subarray(0, x.length - 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
      bad(y, /varint/);
    });
  });

  it('rejects malformed ops on encode', () => {
    expect(() => encodeBatch(-1, [])).toThrow(RangeError);
    expect(() => encodeBatch(1.5, [])).toThrow(RangeError);
    expect(() => encodeBatch(Number.MAX_SAFE_INTEGER, [{ kind: Kind.DELETE, key: b('a') }, { kind: Kind.DELETE, key: b('b') }])).toThrow(RangeError);
    expect(() => encodeBatch(1, [{ kind: Kind.PUT, key: b('a') }])).toThrow(TypeError);
    expect(() => encodeBatch(1, [{ kind: Kind.DELETE, key: b('a'), value: b('x') }])).toThrow(TypeError);
    expect(() => encodeBatch(1, [{ kind: 7 as Kind, key: b('a') }])).toThrow(RangeError);
    expect(() => encodeBatch(1, [{ kind: Kind.DELETE, key: b('a'), version: -1 }])).toThrow(RangeError);
  });
});
