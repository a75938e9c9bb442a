import { describe, expect, it } from 'vitest';
import { bloomHash, bloomMayContain, bloomProbes, buildBloom, levelHash } from '../../src/table/bloom.js';
import { rng } from './harness.js';

const SEED = 0xbc9f1d34;
const bytes = (...b: number[]) => Uint8Array.from(b);

function filterOf(keys: Uint8Array[], bitsPerKey: number): Uint8Array {
  return buildBloom(
    keys.map((k) => bloomHash(k)),
    keys.length,
    bitsPerKey,
  );
}

function intKey(i: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, i, true);
  return b;
}

describe('bloom', () => {
  it("matches LevelDB's Hash on its SignedUnsignedIssue vectors (bytes are unsigned)", () => {
    expect(levelHash(bytes(), SEED)).toBe(0xbc9f1d34);
    expect(levelHash(bytes(0x62), SEED)).toBe(0xef1345c4);
    expect(levelHash(bytes(0xc3, 0x97), SEED)).toBe(0x5b663814);
    expect(levelHash(bytes(0xe2, 0x99, 0xa5), SEED)).toBe(0x323c078f);
    expect(levelHash(bytes(0xe1, 0x80, 0xb9, 0x32), SEED)).toBe(0xed21633a);
  });

  it('agrees with published vectors for bytes below 0x80 (RocksDB hash_test, same seed)', () => {
    // RocksDB keeps the historical sign extension for bytes >= 0x80, so only low bytes compare.
    expect(levelHash(bytes(0x08), SEED)).toBe(422599524);
    expect(levelHash(bytes(0x4d, 0x76), SEED)).toBe(2447836956);
    expect(levelHash(bytes(0x30, 0x46, 0x0b), SEED)).toBe(3808221797);
    expect(levelHash(bytes(0x67, 0x53, 0x81, 0x1c), SEED)).toBe(118283265);
  });

  it('uses k = floor(bits * 0.69) probes, clamped to 1..30', () => {
    expect(bloomProbes(10)).toBe(6);
    expect(bloomProbes(1)).toBe(1);
    expect(bloomProbes(100)).toBe(30);
  });

  it('an empty filter matches nothing; a tiny filter is 64 bits', () => {
    const f = filterOf([], 10);
    expect(f.length).toBe(9);
    expect(bloomMayContain(f, bytes(1, 2, 3))).toBe(false);
    const g = filterOf([bytes(1), bytes(2)], 10);
    expect(g.length).toBe(9);
    expect(bloomMayContain(g, bytes(1))).toBe(true);
    expect(bloomMayContain(g, bytes(2))).toBe(true);
  });

  it('has no false negatives and a low false-positive rate at 10 bits/key', () => {
    const r = rng(42);
    for (const n of [1, 10, 100, 1000, 10_000]) {
      const keys = Array.from({ length: n }, (_, i) => intKey(i));
      const f = filterOf(keys, 10);
      for (const k of keys) expect(bloomMayContain(f, k)).toBe(true);
      let fp = 0;
      const trials = 10_000;
      for (let i = 0; i < trials; i++) if (bloomMayContain(f, intKey(1_000_000_000 + Math.floor(r() * 1e9)))) fp++;
      expect(fp / trials).toBeLessThan(0.02);
    }
  });
});
