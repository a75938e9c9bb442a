/**
 * Point reads (`TableReader.get`) on the paths a get takes: a table held in memory with its
 * checksums checked once (blocks are views of its bytes, not cached), a table read from its file
 * through the block cache, and one from bytes checked per read. The index search orders keys by a
 * four-byte prefix first, so the keys here are short binary keys that tie on it, are prefixes of
 * one another, and hold zero bytes (the prefix's padding value).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Kind } from '../../proofs/hash.js';
import { MAX_SEQ, MAX_VERSION } from '../../src/keys.js';
import { BlockCache } from '../../src/table/block_cache.js';
import { TableReader } from '../../src/table/table_reader.js';
import { build, modelGet, rec, type Rec, rng, sortRecs, tempDir } from './harness.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Binary keys of 1..6 bytes over {0x00, 0x01, 0x7f, 0xff}: many share a prefix or are prefixes of one another. */
function binaryHistory(seed: number, nKeys: number): Rec[] {
  const r = rng(seed);
  const alphabet = [0x00, 0x01, 0x7f, 0xff];
  const keys = new Map<string, Uint8Array>();
  while (keys.size < nKeys) {
    const k = Uint8Array.from({ length: 1 + Math.floor(r() * 6) }, () => alphabet[Math.floor(r() * 4)]);
    keys.set(Buffer.from(k).toString('hex'), k);
  }
  const recs: Rec[] = [];
  let seq = 10;
  for (const k of keys.values()) {
    let version = 0;
    for (let n = 1 + Math.floor(r() * 3); n > 0; n--) {
      version += 1 + Math.floor(r() * 2);
      const kind = r() < 0.2 ? Kind.DELETE : Kind.PUT;
      recs.push(rec(k, version, (seq += 1 + Math.floor(r() * 3)), kind, kind === Kind.DELETE ? new Uint8Array(0) : Uint8Array.of(seq & 0xff, version)));
    }
  }
  return sortRecs(recs);
}

/** The three readers of one table: memory (checked once), file (with a block cache), bytes (checked per read). */
function readers(bytes: Uint8Array, n: number): Array<[string, TableReader]> {
  return [
    ['memory, checked once', TableReader.fromBytes(bytes, { fileNumber: n, checksumOnce: true })],
    ['file + block cache', TableReader.open(tmp.file(`${n}.sst`, bytes), { fileNumber: n, cache: new BlockCache(1 << 12) })],
    ['bytes, checked per read', TableReader.fromBytes(bytes, { fileNumber: n })],
  ];
}

describe('TableReader.get on binary keys, every reader', () => {
  it('matches the model for every key, version and seq, and for absent keys', () => {
    let n = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 64, max: 600 }), fc.integer({ min: 1, max: 8 }), (seed, nKeys, blockSize, restartInterval) => {
        const recs = binaryHistory(seed, nKeys);
        const { bytes } = build(recs, { blockSize, restartInterval });
        const r = rng(seed ^ 0x5a5a);
        const queries: Array<[Uint8Array, number, number]> = [];
        for (const x of recs) {
          queries.push([x.key, MAX_VERSION, MAX_SEQ], [x.key, x.version, x.seq], [x.key, x.version - 1, MAX_SEQ], [x.key, MAX_VERSION, x.seq - 1]);
        }
        for (let q = 0; q < 40; q++) {
          const k = Uint8Array.from({ length: 1 + Math.floor(r() * 7) }, () => [0x00, 0x01, 0x7f, 0x80, 0xff][Math.floor(r() * 5)]);
          queries.push([k, MAX_VERSION, MAX_SEQ]);
        }
        for (const [name, t] of readers(bytes, ++n)) {
          for (const [k, v, s] of queries) {
            const want = modelGet(recs, k, v, s);
            const got = t.get(k, v, s);
            expect(got && { key: [...got.key], version: got.version, seq: got.seq, kind: got.kind, value: [...got.value] }, `${name}: ${Buffer.from(k).toString('hex')} @ ${v}/${s}`).toEqual(
              want && { key: [...want.key], version: want.version, seq: want.seq, kind: want.kind, value: [...want.value] },
            );
          }
          t.close();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('returns copies: changing an answer changes neither the table nor the next answer', () => {
    const recs = binaryHistory(3, 50);
    const { bytes } = build(recs, { blockSize: 128, restartInterval: 2 });
    const before = bytes.slice();
    for (const [name, t] of readers(bytes, 1000)) {
      for (const x of recs) {
        const a = t.get(x.key, x.version, x.seq)!;
        a.value.fill(0xee);
        a.key.fill(0xee);
        const b = t.get(x.key, x.version, x.seq)!;
        expect([...b.value], name).toEqual([...x.value]);
        expect([...b.key], name).toEqual([...x.key]);
      }
      t.close();
    }
    expect(bytes).toEqual(before);
  });

  it('a closed reader refuses a point read on every path', () => {
    const { bytes } = build(binaryHistory(5, 20), { blockSize: 128, restartInterval: 2 });
    for (const [, t] of readers(bytes, 2000)) {
      t.close();
      expect(() => t.get(Uint8Array.of(1), MAX_VERSION, MAX_SEQ)).toThrow();
    }
  });
});
