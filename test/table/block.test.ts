import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareBytes } from '../../proofs/bytes.js';
import { CorruptionError } from '../../src/errors.js';
import { Block, readNamedBlock } from '../../src/table/block.js';
import { BlockBuilder } from '../../src/table/block_builder.js';
import { putFixed32 } from '../../src/util/coding.js';

/** Sorted, distinct keys with many shared prefixes, and values (some empty, some large). */
const entriesArb = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.uint8Array({ minLength: 0, maxLength: 12 }),
        fc.constantFrom('aaaa', 'aaab', 'ab', 'user/1/', 'user/12/').chain((p) =>
          fc.uint8Array({ maxLength: 6 }).map((s) => new Uint8Array([...new TextEncoder().encode(p), ...s])),
        ),
      ),
      fc.oneof(
        { weight: 3, arbitrary: fc.uint8Array({ maxLength: 40 }) },
        { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
        { weight: 1, arbitrary: fc.integer({ min: 4097, max: 9000 }).map((n) => new Uint8Array(n).fill(n & 0xff)) },
      ),
    ),
    { minLength: 0, maxLength: 120 },
  )
  .map((xs) => {
    const sorted = xs.sort((a, b) => compareBytes(a[0], b[0]));
    return sorted.filter((x, i) => i === 0 || compareBytes(sorted[i - 1][0], x[0]) !== 0);
  });

function buildBlock(entries: [Uint8Array, Uint8Array][], restartInterval: number): Block {
  const b = new BlockBuilder(restartInterval);
  for (const [k, v] of entries) b.add(k, v);
  return new Block(b.finish().slice(), 'test', 0);
}

/** Index of the first model key >= target. */
function lowerBound(entries: [Uint8Array, Uint8Array][], target: Uint8Array): number {
  let i = 0;
  while (i < entries.length && compareBytes(entries[i][0], target) < 0) i++;
  return i;
}

describe('block', () => {
  it('round-trips entries forwards and backwards', () => {
    fc.assert(
      fc.property(entriesArb, fc.integer({ min: 1, max: 20 }), (entries, ri) => {
        const it = buildBlock(entries, ri).iterator(compareBytes);
        const fwd: [Uint8Array, Uint8Array][] = [];
        for (it.seekToFirst(); it.valid(); it.next()) fwd.push([it.key().slice(), it.value().slice()]);
        expect(fwd).toEqual(entries);
        const back: [Uint8Array, Uint8Array][] = [];
        for (it.seekToLast(); it.valid(); it.prev()) back.push([it.key().slice(), it.value().slice()]);
        expect(back).toEqual([...entries].reverse());
      }),
      { numRuns: 150 },
    );
  });

  it('seek/next/prev follow a sorted-array model', () => {
    fc.assert(
      fc.property(
        entriesArb,
        fc.integer({ min: 1, max: 20 }),
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('seek' as const), key: fc.uint8Array({ maxLength: 14 }) }),
            fc.record({ op: fc.constant('seekExisting' as const), i: fc.nat() }),
            fc.constantFrom({ op: 'next' as const }, { op: 'prev' as const }, { op: 'first' as const }, { op: 'last' as const }),
          ),
          { maxLength: 40 },
        ),
        (entries, ri, ops) => {
          const it = buildBlock(entries, ri).iterator(compareBytes);
          let pos = -1; // model position; -1 or entries.length = invalid
          const check = () => {
            const valid = pos >= 0 && pos < entries.length;
            expect(it.valid()).toBe(valid);
            if (valid) {
              expect(it.key()).toEqual(entries[pos][0]);
              expect(it.value()).toEqual(entries[pos][1]);
            }
          };
          for (const op of ops) {
            switch (op.op) {
              case 'seek':
                it.seek(op.key);
                pos = lowerBound(entries, op.key);
                break;
              case 'seekExisting':
                if (entries.length === 0) continue;
                pos = op.i % entries.length;
                it.seek(entries[pos][0]);
                break;
              case 'first':
                it.seekToFirst();
                pos = 0;
                break;
              case 'last':
                it.seekToLast();
                pos = entries.length - 1;
                break;
              case 'next':
                if (!it.valid()) continue;
                it.next();
                pos++;
                break;
              case 'prev':
                if (!it.valid()) continue;
                it.prev();
                pos--;
                break;
            }
            if (pos < 0 || pos >= entries.length) pos = -1;
            check();
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('places restarts every restartInterval entries with full keys', () => {
    const b = new BlockBuilder(4);
    for (let i = 0; i < 10; i++) b.add(new TextEncoder().encode(`key-${String(i).padStart(3, '0')}`), new Uint8Array([i]));
    const block = new Block(b.finish().slice(), 'test', 0);
    expect([...block.restarts].length).toBe(3);
    expect(block.restarts[0]).toBe(0);
  });

  it('reads a named block into a map', () => {
    const b = new BlockBuilder(1);
    const enc = new TextEncoder();
    b.add(enc.encode('a'), Uint8Array.of(1));
    b.add(enc.encode('b'), Uint8Array.of(2));
    const m = readNamedBlock(new Block(b.finish().slice(), 't', 0));
    expect([...m.keys()]).toEqual(['a', 'b']);
  });

  it('rejects malformed restart arrays and entries with CorruptionError', () => {
    const b = new BlockBuilder(2);
    for (let i = 0; i < 6; i++) b.add(Uint8Array.of(i, i), Uint8Array.of(i));
    const good = b.finish().slice();
    const mutate = (f: (d: Uint8Array) => void): Uint8Array => {
      const d = good.slice();
      f(d);
      return d;
    };
    const len = good.length;
    // restart count too large / zero
    expect(() => new Block(mutate((d) => putFixed32(d, len - 4, 1000)), 't', 0)).toThrow(CorruptionError);
    expect(() => new Block(mutate((d) => putFixed32(d, len - 4, 0)), 't', 0)).toThrow(CorruptionError);
    expect(() => new Block(new Uint8Array(3), 't', 0)).toThrow(CorruptionError);
    // restart offset beyond entries
    expect(() => new Block(mutate((d) => putFixed32(d, len - 8, 10_000)), 't', 0)).toThrow(CorruptionError);
    // first entry claims a shared prefix
    const bad = new Block(mutate((d) => (d[0] = 1)), 't', 0);
    expect(() => bad.iterator(compareBytes).seekToFirst()).toThrow(CorruptionError);
    // value length overruns the block
    const over = new Block(mutate((d) => (d[2] = 120)), 't', 0);
    expect(() => {
      const it = over.iterator(compareBytes);
      for (it.seekToFirst(); it.valid(); it.next());
    }).toThrow(CorruptionError);
  });
});
