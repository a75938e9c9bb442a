/**
 * Stored group roots (table format 3): every data block stores the roots of its entry tree's
 * aligned K-entry subtrees, and the prover hashes only the groups a window touches. Attacks:
 * the builder storing wrong or misplaced nodes (checked against a proofs/hash.ts recomputation
 * for blocks of 1, K − 1, K, K + 1 and odd entry counts), proofs from stored nodes differing by a
 * byte from proofs of whole rebuilt trees (format 2, the code path before format 3), format-2
 * tables no longer opening or proving, and damaged-but-CRC-valid nodes passing `verify()`.
 */
import { describe, expect, it } from 'vitest';
import { toHex } from '../../proofs/bytes.js';
import { Domain, nobleHasher as H } from '../../proofs/hash.js';
import { getFixed32 } from '../../src/util/coding.js';
import { ByteLru } from '../../src/util/byte_lru.js';
import { blockTrailer, FORMAT_VERSION, groupCount, GROUPS_FLAG, splitDataBlock } from '../../src/table/format.js';
import { BlockCache } from '../../src/table/block_cache.js';
import { nodeHasher } from '../../src/table/node_hasher.js';
import { TableReader } from '../../src/table/table_reader.js';
import { buildProof, buildScanProof, ProofContext } from '../../src/proof/prover.js';
import { Version } from '../../src/version/version.js';
import type { TableMeta } from '../../src/version/edit.js';
import { norm } from '../proofs/lsm_helpers.js';
import { build, history, rng, tempDir, type Rec } from './harness.js';

/** Leaf hashes of data block `b`, recomputed with proofs/hash.ts from the decoded entries. */
function refLeaves(t: TableReader, b: number): Uint8Array[] {
  return t.readBlock(b).map((e) => H.entryLeaf(e.key, e.version, e.seq, e.time, e.kind, H.valueHash(e.value)));
}

/** The raw contents (trailer excluded) of data block `b` in the table's bytes. */
function contentsOf(bytes: Uint8Array, t: TableReader, b: number): Uint8Array {
  const h = t.blockHandle(b);
  return bytes.subarray(h.offset, h.offset + h.size);
}

/** A ProofContext over one in-memory table at level 1. */
function contextOf(t: TableReader, number: number, size: number): ProofContext {
  const meta: TableMeta = { number, size, entryCount: t.entryCount, smallest: t.smallest, largest: t.largest, root: t.root };
  const levels: TableMeta[][] = Array.from({ length: 7 }, () => []);
  levels[1].push(meta);
  return new ProofContext(new Version(levels), nodeHasher, { get: () => t }, new ByteLru(1 << 20));
}

describe('stored group roots (format 3)', () => {
  it('the builder stores exactly the aligned K-entry subtree roots, for blocks of 1, K−1, K, K+1 and odd sizes', () => {
    for (const k of [2, 8, 16]) {
      const seen = new Set<number>();
      // Block sizes from one entry per block to several dozen: the entry counts cover the edges.
      const sizes = [1];
      for (let s = 40; s <= 2000; s += 45) sizes.push(s);
      for (const blockSize of sizes) {
        const recs = history(100 + blockSize, 120, 3, 24);
        const { bytes } = build(recs, { blockSize, merkleGroup: k });
        const t = TableReader.fromBytes(bytes, { fileNumber: 1 });
        expect(t.formatVersion).toBe(FORMAT_VERSION);
        expect(t.merkleGroup).toBe(k);
        for (let b = 0; b < t.blockCount; b++) {
          const leaves = refLeaves(t, b);
          const n = leaves.length;
          seen.add(n);
          const raw = contentsOf(bytes, t, b);
          const { body, nodes } = splitDataBlock(raw, 't', 0);
          const g = n > k ? Math.ceil(n / k) : 0;
          expect(nodes.length, `K=${k}, block of ${n}`).toBe(32 * g);
          // A block of at most K entries is its body alone; a larger one ends with G | 2^31.
          if (g === 0) expect(body.length).toBe(raw.length);
          else expect(getFixed32(raw, raw.length - 4)).toBe(GROUPS_FLAG + g);
          for (let j = 0; j < g; j++) {
            const want = H.treeRoot(Domain.ENTRY_NODE, leaves.slice(j * k, Math.min((j + 1) * k, n)));
            expect(toHex(nodes.subarray(32 * j, 32 * (j + 1))), `K=${k}, block of ${n}, group ${j}`).toBe(toHex(want));
          }
          // The block root is still the whole block's (format 2's) root.
          expect(toHex(t.blockRoots[b])).toBe(toHex(H.blockRootOfLeaves(leaves)));
        }
        t.verify(H);
      }
      for (const n of [1, k - 1, k, k + 1]) expect(seen.has(n), `K=${k}: some block holds ${n} entries (${[...seen].sort((a, b) => a - b)})`).toBe(true);
      expect([...seen].some((n) => n > 2 * k && n % 2 === 1 && n % k !== 0), `K=${k}: an odd block of several groups`).toBe(true);
    }
  });

  it('proofs from stored nodes equal proofs from whole rebuilt trees (format 2), byte for byte', () => {
    const r = rng(7);
    for (const [blockSize, k] of [[300, 2], [700, 8], [1500, 8], [4096, 16], [2500, 4]] as const) {
      const recs = history(blockSize * 3 + k, 400, 4, 60);
      const v3 = build(recs, { blockSize, merkleGroup: k });
      const v2 = build(recs, { blockSize, merkleGroup: 0 });
      expect(toHex(v3.meta.root)).toBe(toHex(v2.meta.root));
      expect(v3.bytes.length).toBeGreaterThan(v2.bytes.length);
      const t3 = TableReader.fromBytes(v3.bytes, { fileNumber: 1, checksumOnce: true });
      const t2 = TableReader.fromBytes(v2.bytes, { fileNumber: 2, checksumOnce: true });
      expect(t2.formatVersion).toBe(2);
      expect(t2.merkleGroup).toBe(0);
      // Every proof builds on fresh contexts and on the same warm contexts (groups hashed earlier reused).
      const warm3 = contextOf(t3, 1, v3.bytes.length);
      const warm2 = contextOf(t2, 2, v2.bytes.length);
      const keys: Rec[] = [];
      for (let i = 0; i < 60; i++) keys.push(recs[Math.floor(r() * recs.length)]);
      keys.push(recs[0], recs[recs.length - 1]);
      for (const x of keys) {
        for (const search of [{ kind: 'get' as const, version: Number.MAX_SAFE_INTEGER }, { kind: 'get' as const, version: x.version }, { kind: 'history' as const, min: 0, bound: Number.MAX_SAFE_INTEGER }]) {
          for (const edges of [false, true]) {
            const want = norm(buildProof(contextOf(t2, 2, v2.bytes.length), x.key, search, { edges }));
            expect(norm(buildProof(contextOf(t3, 1, v3.bytes.length), x.key, search, { edges }))).toEqual(want);
            expect(norm(buildProof(warm3, x.key, search, { edges }))).toEqual(norm(buildProof(warm2, x.key, search, { edges })));
          }
        }
        // Absent keys just after and before this one.
        for (const probe of [Uint8Array.of(...x.key, 0), x.key.subarray(0, x.key.length - 1)]) {
          if (probe.length === 0) continue;
          const s = { kind: 'get' as const, version: Number.MAX_SAFE_INTEGER };
          expect(norm(buildProof(warm3, probe, s))).toEqual(norm(buildProof(warm2, probe, s)));
        }
      }
      // Scans: windows of many entries across groups and blocks.
      for (let i = 0; i < 10; i++) {
        const start = recs[Math.floor(r() * recs.length)].key;
        const limit = 1 + Math.floor(r() * 60);
        expect(norm(buildScanProof(warm3, start, undefined, limit))).toEqual(norm(buildScanProof(warm2, start, undefined, limit)));
      }
    }
  });

  it('a format-2 table opens from its file, reads and verifies (no stored nodes)', () => {
    const recs = history(31, 300, 3, 40);
    const v2 = build(recs, { blockSize: 1024, merkleGroup: 0 });
    const d = tempDir();
    try {
      const t = TableReader.open(d.file('000001.sst', v2.bytes), { fileNumber: 1, cache: new BlockCache(1 << 20) });
      expect(t.formatVersion).toBe(2);
      t.verify(H);
      for (let b = 0; b < t.blockCount; b++) expect(t.dataBlock(b).nodes.length).toBe(0);
      for (const x of recs.slice(0, 50)) expect(t.get(x.key, x.version, x.seq)?.seq).toBe(x.seq);
      const p = buildProof(contextOf(t, 1, v2.bytes.length), recs[5].key, { kind: 'get', version: recs[5].version });
      expect(p.entries[0]?.seq).toBe(recs[5].seq);
      t.close();
    } finally {
      d.cleanup();
    }
  });

  it('a stored group root altered with its CRC fixed up opens, but verify() and a proof of that group refuse it', () => {
    const recs = history(41, 300, 3, 40);
    const { bytes } = build(recs, { blockSize: 2048, merkleGroup: 8 });
    const t = TableReader.fromBytes(bytes, { fileNumber: 1 });
    const b = [...Array(t.blockCount).keys()].find((i) => t.readBlock(i).length > 8)!;
    expect(b).toBeDefined();
    const h = t.blockHandle(b);
    const bad = bytes.slice();
    const raw = bad.subarray(h.offset, h.offset + h.size);
    const { nodes } = splitDataBlock(raw, 't', 0);
    nodes[3] ^= 0x40;
    bad.set(blockTrailer(raw), h.offset + h.size);
    expect(bad.length).toBe(bytes.length);
    // The CRC holds: the table opens and reads (only the Merkle check of verify() sees the change).
    const tampered = TableReader.fromBytes(bad, { fileNumber: 1, checksumOnce: true });
    expect(tampered.readBlock(b)).toEqual(t.readBlock(b));
    expect(() => tampered.verify(H)).toThrow(expect.objectContaining({ code: 'CORRUPTION', message: expect.stringMatching(/stored group root 0 of data block/) }));
    // A group count that disagrees with the block's entries is refused by verify() and by a proof.
    const wrongCount = bytes.slice();
    const raw2 = wrongCount.subarray(h.offset, h.offset + h.size);
    raw2[raw2.length - 4] -= 1; // one root fewer: the block's body would end inside its roots
    wrongCount.set(blockTrailer(raw2), h.offset + h.size);
    const t2 = TableReader.fromBytes(wrongCount, { fileNumber: 1 });
    expect(() => t2.verify(H)).toThrow(expect.objectContaining({ code: 'CORRUPTION' }));
    const key = t.readBlock(b)[0].key;
    expect(() => buildProof(contextOf(t2, 1, wrongCount.length), key, { kind: 'get', version: Number.MAX_SAFE_INTEGER })).toThrow(expect.objectContaining({ code: 'CORRUPTION' }));
  });

  it('groupCount and splitDataBlock refuse counts that do not fit', () => {
    expect([1, 7, 8, 9, 16, 17].map((n) => groupCount(n, 8))).toEqual([0, 0, 0, 2, 2, 3]);
    const raw = new Uint8Array(72);
    raw.set([3, 0, 0, 0x80], 68); // three roots would need 96 bytes
    expect(() => splitDataBlock(raw, 'f', 0)).toThrow(expect.objectContaining({ code: 'CORRUPTION' }));
    raw.set([1, 0, 0, 0x80], 68); // one group is never stored
    expect(() => splitDataBlock(raw, 'f', 0)).toThrow(expect.objectContaining({ code: 'CORRUPTION' }));
    raw.set([2, 0, 0, 0x80], 68);
    expect(splitDataBlock(raw, 'f', 0).body.length).toBe(4);
    expect(splitDataBlock(raw, 'f', 0).nodes.length).toBe(64);
    raw.set([1, 0, 0, 0], 68); // no flag: a body alone
    expect(splitDataBlock(raw, 'f', 0).body.length).toBe(72);
  });
});
