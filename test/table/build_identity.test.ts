/**
 * The table builder's output is pinned byte for byte: tables, block roots, group roots and table
 * roots must not change when the builder's hashing is made faster (issue 10). Three attacks:
 * golden digests of whole tables recorded from the builder as it was before its digests were written into
 * buffers (node:crypto digests as Buffers, one array per leaf); random tables built with the
 * node:crypto hasher and with noble (the generic path) compared byte for byte; and every stored
 * Merkle node of random tables recomputed from the entries read back, with the layouts of
 * proofs/hash.ts alone.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Domain, HASH_LEN, nobleHasher } from '../../proofs/hash.js';
import { splitDataBlock } from '../../src/table/format.js';
import { nodeHasher } from '../../src/table/node_hasher.js';
import { TableBuilder, type TableOptions } from '../../src/table/table_builder.js';
import { TableReader } from '../../src/table/table_reader.js';
import { build, history, rec, rng, randomBytes, sortRecs, type Rec } from './harness.js';
import { encodeStoredValue } from '../../src/keys.js';

/** Records with a few long values: above 128 bytes (copied with `set`) and above 64 KiB (hashed through `valueHash`). */
function withLongValues(seed: number): Rec[] {
  const r = rng(seed);
  const enc = new TextEncoder();
  const recs: Rec[] = [];
  for (let i = 0; i < 60; i++) {
    const len = i % 20 === 7 ? 70_000 + i : i % 3 === 0 ? 129 + Math.floor(r() * 400) : Math.floor(r() * 130);
    recs.push(rec(enc.encode(`k/${'x'.repeat(i % 5)}${i}`), 1 + (i % 4), 100 + i, 1, randomBytes(r, len)));
  }
  return sortRecs(recs);
}

const GOLDEN: { name: string; recs: () => Rec[]; opts: Partial<TableOptions>; sha256: string }[] = [
  { name: 'history 300 keys, defaults', recs: () => history(1, 300, 4, 100), opts: {}, sha256: 'a88c013318d3df98af197fc793cd567b807650ab04a32c3bf270efd4ed56e2bb' },
  { name: 'history 200 keys, 512 B blocks, K=4', recs: () => history(2, 200, 3, 40), opts: { blockSize: 512, merkleGroup: 4 }, sha256: '7658d0cb0c9d7b1375b0cfeda7edf868ecc8510256617eae36f914caf44682d1' },
  { name: 'history 150 keys, format 2, no bloom', recs: () => history(3, 150, 5, 200), opts: { merkleGroup: 0, bloomBitsPerKey: 0 }, sha256: 'e298be8f23dc0a90707dca7d0b5c8e3dca5b0d9e707534321072992b6c1d5fe4' },
  { name: 'history 500 keys, 64 KiB blocks, K=64', recs: () => history(4, 500, 2, 100), opts: { blockSize: 65536, merkleGroup: 64, restartInterval: 4 }, sha256: '67ffa8436cbbcda9c1f1a7f7c1edb46dbfd59bfb791ae0dae6b933de1c8aae12' },
  { name: 'long values, 1 KiB blocks', recs: () => withLongValues(5), opts: { blockSize: 1024 }, sha256: 'f583ea152e51d70b37657398354c03f3a53983b206f90f9b8c915b7997b8a90a' },
];

/** Builds `recs` streamed to a sink in pieces of about `chunkBytes`; returns the pieces joined, the metadata and the pieces' sizes. */
function buildStreamed(recs: Rec[], opts: Partial<TableOptions>, chunkBytes: number, keepLeaves = false) {
  const b = new TableBuilder(opts);
  const pieces: Uint8Array[] = [];
  // A piece is a view of a buffer the builder reuses: copy it, as a file write does.
  b.streamTo((chunk) => pieces.push(chunk.slice()), chunkBytes);
  if (keepLeaves) b.keepLeaves();
  for (const x of recs) b.add(x.ik, encodeStoredValue(x.time, x.value));
  const t = b.finishStreamed();
  return { bytes: new Uint8Array(Buffer.concat(pieces)), sizes: pieces.map((p) => p.length), ...t };
}

describe('table builder output is unchanged', () => {
  for (const g of GOLDEN) {
    it(`golden table digest: ${g.name}`, () => {
      const { bytes } = build(g.recs(), g.opts);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(g.sha256);
    });
    it(`golden table digest, streamed in 1 KiB and 64 KiB pieces: ${g.name}`, () => {
      for (const chunk of [1024, 65536]) {
        const { bytes, meta } = buildStreamed(g.recs(), g.opts, chunk);
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(g.sha256);
        expect(meta.size).toBe(bytes.length);
      }
    });
  }

  it('a streamed table is the in-memory table: bytes, metadata, leaves and the size estimate, in pieces of at least the chunk', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1 << 30 }),
        fc.integer({ min: 1, max: 150 }),
        fc.integer({ min: 0, max: 300 }),
        fc.constantFrom(64, 256, 1024, 4096),
        fc.constantFrom(0, 4, 16),
        fc.constantFrom(1, 100, 4096, 1 << 20),
        (seed, nKeys, valueLen, blockSize, merkleGroup, chunkBytes) => {
          const recs = history(seed, nKeys, 3, valueLen);
          const opts = { blockSize, merkleGroup };
          const whole = new TableBuilder(opts).keepLeaves();
          const streamed = buildStreamed(recs, opts, chunkBytes, true);
          const b = new TableBuilder(opts);
          b.streamTo(() => undefined, chunkBytes);
          const estimates: number[][] = [[], []];
          for (const x of recs) {
            const v = encodeStoredValue(x.time, x.value);
            whole.add(x.ik, v);
            b.add(x.ik, v);
            estimates[0].push(whole.estimatedSize);
            estimates[1].push(b.estimatedSize);
          }
          expect(estimates[1]).toEqual(estimates[0]);
          const w = whole.finish();
          expect(Buffer.from(streamed.bytes).equals(w.bytes)).toBe(true);
          expect(streamed.meta).toEqual(w.meta);
          expect(streamed.leaves).toEqual(w.leaves);
          for (const n of streamed.sizes.slice(0, -1)) expect(n).toBeGreaterThanOrEqual(chunkBytes);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a streaming builder refuses finish(), and streamTo after an add', () => {
    const recs = history(9, 10, 1, 10);
    const b = new TableBuilder().streamTo(() => undefined);
    b.add(recs[0].ik, encodeStoredValue(recs[0].time, recs[0].value));
    expect(() => b.finish()).toThrow(/finishStreamed/);
    expect(() => b.streamTo(() => undefined)).toThrow(/after add/);
    expect(() => new TableBuilder().finishStreamed()).toThrow(/without streamTo/);
  });

  it('node:crypto and noble hashers build byte-identical tables, whose every Merkle node is the proofs/hash.ts layout', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1 << 30 }),
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 0, max: 300 }),
        fc.constantFrom(64, 256, 1024, 4096),
        fc.constantFrom(0, 2, 4, 8, 16),
        (seed, nKeys, valueLen, blockSize, merkleGroup) => {
          const recs = history(seed, nKeys, 4, valueLen);
          const opts = { blockSize, merkleGroup };
          const a = build(recs, { ...opts, hasher: nodeHasher });
          const b = build(recs, { ...opts, hasher: nobleHasher });
          expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
          expect(a.meta.root).toEqual(b.meta.root);
          checkMerkle(a.bytes, merkleGroup);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('TableBuilder.continuesUserKey', () => {
  it('is true only for the user key of the last entry added', () => {
    const enc = new TextEncoder();
    const b = new TableBuilder();
    const ik = (k: string, v: number, seq: number) => rec(enc.encode(k), v, seq, 1, new Uint8Array(0)).ik;
    expect(b.continuesUserKey(ik('ab', 1, 1))).toBe(false); // nothing added yet
    b.add(ik('ab', 2, 5), Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 1]));
    expect(b.continuesUserKey(ik('ab', 1, 1))).toBe(true);
    expect(b.continuesUserKey(ik('ab', 9, 9))).toBe(true);
    expect(b.continuesUserKey(ik('a', 1, 1))).toBe(false);
    expect(b.continuesUserKey(ik('abc', 1, 1))).toBe(false);
    expect(b.continuesUserKey(ik('ac', 1, 1))).toBe(false);
  });
});

/** Recomputes every block root, group root and the table root of `bytes` with noble's Hasher and compares with the stored ones. */
function checkMerkle(bytes: Uint8Array, k: number): void {
  const h = nobleHasher;
  const t = TableReader.fromBytes(bytes, { fileNumber: 1, hasher: h });
  const blockRoots: Uint8Array[] = [];
  let count = 0;
  for (let i = 0; i < t.blockCount; i++) {
    const leaves = t.readBlock(i).map((e) => h.entryLeaf(e.key, e.version, e.seq, e.time, e.kind, h.valueHash(e.value)));
    count += leaves.length;
    const root = h.blockRootOfLeaves(leaves);
    expect(t.blockRoots[i]).toEqual(root);
    blockRoots.push(root);
    const hd = t.blockHandle(i);
    const { nodes } = splitDataBlock(bytes.subarray(hd.offset, hd.offset + hd.size), 't', hd.offset);
    const want: number[] = [];
    if (k > 0 && leaves.length > k) {
      for (let g = 0; g * k < leaves.length; g++) want.push(...h.treeRoot(Domain.ENTRY_NODE, leaves.slice(g * k, (g + 1) * k)));
    }
    expect([...nodes]).toEqual(want);
    expect(nodes.length % HASH_LEN).toBe(0);
  }
  expect(count).toBe(t.entryCount);
  expect(t.root).toEqual(h.tableRootOfBlocks(blockRoots, count));
  t.close();
}
