import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nobleHasher, type Kind } from '../../proofs/hash.js';
import { encodeInternalKey, encodeStoredValue, MAX_SEQ, MAX_TIME, MAX_VERSION } from '../../src/keys.js';
import { BlockHasher } from '../../src/table/block_hasher.js';
import { nodeHasher } from '../../src/table/node_hasher.js';

const entryArb = fc.record({
  key: fc.uint8Array({ minLength: 1, maxLength: 80 }),
  version: fc.oneof(fc.nat(), fc.constant(MAX_VERSION), fc.constant(0x100000000)),
  seq: fc.oneof(fc.nat(), fc.constant(MAX_SEQ), fc.constant(0x100000000000)),
  time: fc.oneof(fc.nat(), fc.constant(MAX_TIME), fc.constant(1_700_000_000_123)),
  kind: fc.constantFrom(0, 1) as fc.Arbitrary<Kind>,
  value: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constant(new Uint8Array(70_000).fill(7))),
});

describe('block hasher', () => {
  for (const [name, h] of [
    ['noble', nobleHasher],
    ['node:crypto', nodeHasher],
  ] as const) {
    it(`leaf and block root equal the Hasher layouts (${name})`, () => {
      const bh = new BlockHasher(h);
      fc.assert(
        fc.property(fc.array(entryArb, { minLength: 1, maxLength: 40 }), (entries) => {
          const leaves = entries.map((e) => bh.leaf(encodeInternalKey(e.key, e.version, e.seq, e.kind), encodeStoredValue(e.time, e.value)));
          const want = entries.map((e) => h.entryLeaf(e.key, e.version, e.seq, e.time, e.kind, h.valueHash(e.value)));
          expect(leaves.map((l) => [...l])).toEqual(want.map((l) => [...l]));
          expect([...bh.blockRoot(leaves)]).toEqual([...h.blockRootOfLeaves(want)]);
        }),
        { numRuns: 60 },
      );
    });
  }

  it('addLeaf/finishBlock equal leaf/blockRoot, group roots included, across blocks of mixed key and value lengths', () => {
    const streamed = new BlockHasher(nodeHasher);
    const ref = new BlockHasher(nobleHasher);
    fc.assert(
      fc.property(fc.array(fc.array(entryArb, { minLength: 1, maxLength: 70 }), { minLength: 1, maxLength: 4 }), fc.constantFrom(1, 2, 3), (blocks, log) => {
        for (const entries of blocks) {
          const leaves: Uint8Array[] = [];
          for (const e of entries) {
            const ik = encodeInternalKey(e.key, e.version, e.seq, e.kind);
            const sv = encodeStoredValue(e.time, e.value);
            streamed.addLeaf(ik, sv);
            // A leaf() between two addLeaf() calls must not disturb the block being streamed.
            leaves.push(streamed.leaf(ik, sv));
          }
          expect(streamed.pendingLeaves).toBe(entries.length);
          const g1 = { log, out: [] as Uint8Array[] };
          const g2 = { log, out: [] as Uint8Array[] };
          const got = streamed.finishBlock(g1);
          expect([...got]).toEqual([...ref.blockRoot(leaves, g2)]);
          expect(g1.out.map((x) => [...x])).toEqual(g2.out.map((x) => [...x]));
          expect(streamed.pendingLeaves).toBe(0);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('refuses an empty block', () => {
    expect(() => new BlockHasher(nobleHasher).blockRoot([])).toThrow(RangeError);
    expect(() => new BlockHasher(nodeHasher).finishBlock()).toThrow(RangeError);
  });
});
