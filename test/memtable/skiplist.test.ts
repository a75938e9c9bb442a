/**
 * The memtable orders internal keys exactly as `compareInternalKeys` does. Its searches compare
 * stored 8-byte user-key prefixes before keys, so these tests aim at the prefixes' edges: user
 * keys shorter than 8 bytes (and than 4, and empty), zero bytes that padding could confuse with a
 * shorter key, bytes at and above 0x80 (the words' sign bit), keys that differ only past byte 8,
 * and one user key with many versions.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareInternalKeys, encodeInternalKey, seekKey, seqOf } from '../../src/keys.js';
import { Memtable } from '../../src/memtable/skiplist.js';

const byteArb = fc.constantFrom(0, 1, 0x7f, 0x80, 0xff);
const userKeyArb = fc.oneof(
  fc.uint8Array({ maxLength: 10 }).map((b) => b.map((x) => [0, 1, 0x7f, 0x80, 0xff][x % 5])),
  fc.array(byteArb, { minLength: 0, maxLength: 4 }).map((tail) => Uint8Array.from([0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, ...tail])),
);
const recArb = fc.record({ key: userKeyArb, version: fc.integer({ min: 1, max: 5 }), kind: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1> });

/**
 * A memtable of `recs` (seq = index + 1). `order` inserts them: `random` as given, `ascending`
 * sorted with every `swapEvery`-th pair swapped (the nearly ascending arrival that the insert's
 * finger serves, and the misses in between).
 */
function build(
  recs: { key: Uint8Array; version: number; kind: 0 | 1 }[],
  order: 'random' | 'ascending' = 'random',
  swapEvery = 5,
): { mem: Memtable; iks: Uint8Array[] } {
  const mem = new Memtable(4); // small: the link and prefix arrays grow many times
  const recIks = recs.map((r, i) => ({ ik: encodeInternalKey(r.key, r.version, i + 1, r.kind), seq: i + 1 }));
  if (order === 'ascending') {
    recIks.sort((a, b) => compareInternalKeys(a.ik, b.ik));
    for (let i = swapEvery; i < recIks.length; i += swapEvery) [recIks[i - 1], recIks[i]] = [recIks[i], recIks[i - 1]];
  }
  for (const r of recIks) mem.add(r.ik, Uint8Array.of(r.seq & 0xff), r.seq);
  return { mem, iks: recIks.map((r) => r.ik).sort(compareInternalKeys) };
}

describe('memtable order', () => {
  it('iterates in compareInternalKeys order; seek, prev and get agree with a sorted model', () => {
    fc.assert(
      fc.property(
        fc.array(recArb, { minLength: 1, maxLength: 120 }),
        fc.array(userKeyArb, { maxLength: 20 }),
        fc.constantFrom('random', 'ascending') as fc.Arbitrary<'random' | 'ascending'>,
        fc.integer({ min: 2, max: 1000 }),
        (recs, probes, order, swapEvery) => {
          const { mem, iks } = build(recs, order, swapEvery);
          const it = mem.iterator();
          const got: Uint8Array[] = [];
          for (it.seekToFirst(); it.valid(); it.next()) got.push(it.key());
          expect(got.map((k) => Buffer.from(k).toString('hex'))).toEqual(iks.map((k) => Buffer.from(k).toString('hex')));
          const back: Uint8Array[] = [];
          for (it.seekToLast(); it.valid(); it.prev()) back.push(it.key());
          expect(back.reverse()).toEqual(got);
          for (const uk of [...probes, ...recs.map((r) => r.key)]) {
            for (const [v, s] of [[Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], [2, recs.length], [3, Math.ceil(recs.length / 2)]]) {
              const target = seekKey(uk, v, s);
              it.seek(target);
              const want = iks.find((k) => compareInternalKeys(k, target) >= 0);
              expect(it.valid() ? Buffer.from(it.key()).toString('hex') : undefined).toBe(want && Buffer.from(want).toString('hex'));
              const hit = mem.get(uk, target, s);
              const model = iks.find(
                (k) => compareInternalKeys(k, target) >= 0 && Buffer.compare(k.subarray(0, k.length - 16), uk) === 0 && seqOf(k) <= s,
              );
              expect(hit && Buffer.from(hit[0]).toString('hex')).toBe(model && Buffer.from(model).toString('hex'));
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a duplicate of the last inserted key and of its successor (the finger path)', () => {
    const mem = new Memtable();
    const a = encodeInternalKey(Uint8Array.of(1), 1, 1, 1);
    const b = encodeInternalKey(Uint8Array.of(3), 1, 2, 1);
    const c = encodeInternalKey(Uint8Array.of(2), 1, 3, 1);
    mem.add(b, Uint8Array.of(2), 2);
    mem.add(a, Uint8Array.of(1), 1);
    expect(() => mem.add(a.slice(), Uint8Array.of(9), 1)).toThrow(/duplicate/);
    expect(() => mem.add(b.slice(), Uint8Array.of(9), 2)).toThrow(/duplicate/);
    mem.add(c, Uint8Array.of(3), 3); // after the last insert, before its successor
    const it = mem.iterator();
    const got: number[] = [];
    for (it.seekToFirst(); it.valid(); it.next()) got.push(it.value()[0]);
    expect(got).toEqual([1, 3, 2]);
    expect(mem.count).toBe(3);
  });

  it('refuses a duplicate internal key and keeps the entry it had', () => {
    const mem = new Memtable();
    const ik = encodeInternalKey(Uint8Array.of(0x80, 0, 0), 1, 7, 1);
    mem.add(ik, Uint8Array.of(1), 7);
    expect(() => mem.add(ik.slice(), Uint8Array.of(2), 7)).toThrow(/duplicate/);
    expect(mem.count).toBe(1);
    expect(mem.get(Uint8Array.of(0x80, 0, 0), seekKey(Uint8Array.of(0x80, 0, 0), 9, 9), 9)?.[1]).toEqual(Uint8Array.of(1));
  });
});
