/**
 * Leaf reuse (src/compaction/leaf_cache.ts, docs/engine.md § Leaf reuse): a compaction given its
 * inputs' leaves writes the very tables it writes without them, takes every leaf it can from them,
 * and hands back its outputs' leaves equal to the leaves a fresh build computes; the cache keeps
 * its byte bound.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LeafCache } from '../../src/compaction/leaf_cache.js';
import { runCompaction, type TableShape } from '../../src/compaction/compact.js';
import { Kind } from '../../proofs/hash.js';
import { encodeInternalKey, encodeStoredValue } from '../../src/keys.js';
import { mulberry32 } from '../support/prng.js';
import { flushTable, tempDir } from './harness.js';

const SHAPE: TableShape = { blockSize: 512, blockRestartInterval: 16, bloomBitsPerKey: 10, targetFileSize: 8 * 1024, merkleGroup: 16 };
const te = new TextEncoder();

/** Sorted entries of `n` random keys out of 300, versions above `base`. */
function entries(seed: number, n: number, base: number): Array<[Uint8Array, Uint8Array]> {
  const r = mulberry32(seed);
  const keys = new Set<string>();
  while (keys.size < n) keys.add(`key-${String(Math.floor(r() * 300)).padStart(4, '0')}`);
  return [...keys].sort().map((k, i) => {
    const kind = r() < 0.1 ? Kind.DELETE : Kind.PUT;
    const value = kind === Kind.DELETE ? new Uint8Array(0) : te.encode('v'.repeat(Math.floor(r() * 150)) + i);
    return [encodeInternalKey(te.encode(k), base + i, base * 1000 + i, kind), encodeStoredValue(1_700_000_000_000 + base + i, value)];
  });
}

/** Writes table `number` of `ents` in `dir` (as a flush does); returns its kept leaves. */
function writeTable(dir: string, number: number, ents: Array<[Uint8Array, Uint8Array]>): Uint8Array {
  const out = flushTable(dir, number, ents, SHAPE, true);
  expect(out.leaves!.length).toBe(ents.length * 32);
  return out.leaves!;
}

/** The outputs' file bytes and metadata, for comparing two runs. */
function read(dir: string, outputs: ReturnType<typeof runCompaction>) {
  return outputs.map((o) => ({ meta: o.meta, bytes: fs.readFileSync(path.join(dir, o.tmpName)).toString('base64') }));
}

describe('leaf reuse in compactions', () => {
  it('writes byte-identical tables with and without the inputs’ leaves, reusing every leaf given', () => {
    const { dir, cleanup } = tempDir('proofkv-leaves-');
    try {
      const inputs = [1, 2, 3, 4];
      const leaves = inputs.map((n) => writeTable(dir, n, entries(n, 120 + 20 * n, n * 1000)));
      const total = leaves.reduce((s, l) => s + l.length / 32, 0);
      const plain = runCompaction({ dir, inputs, tmpPrefix: 'plain', shape: SHAPE, keepLeaves: true });
      // Only inputs 1 and 3 come with their leaves; 2 and 4 are hashed.
      const mixed = runCompaction({ dir, inputs, tmpPrefix: 'mixed', shape: SHAPE, keepLeaves: true, leaves: [leaves[0], null, leaves[2], null] });
      const reused = runCompaction({ dir, inputs, tmpPrefix: 'reused', shape: SHAPE, keepLeaves: true, leaves: leaves.map((l) => l.slice()) });
      expect(plain.length).toBeGreaterThan(1);
      expect(read(dir, mixed)).toEqual(read(dir, plain));
      expect(read(dir, reused)).toEqual(read(dir, plain));
      expect(plain.reduce((s, o) => s + (o.leavesReused ?? 0), 0)).toBe(0);
      expect(mixed.reduce((s, o) => s + (o.leavesReused ?? 0), 0)).toBe((leaves[0].length + leaves[2].length) / 32);
      expect(reused.reduce((s, o) => s + (o.leavesReused ?? 0), 0)).toBe(total);
      // The outputs' leaves are those a build computes, whether reused or hashed.
      expect(reused.map((o) => Buffer.from(o.leaves!).toString('hex'))).toEqual(plain.map((o) => Buffer.from(o.leaves!).toString('hex')));
      // Without keepLeaves none are returned.
      const none = runCompaction({ dir, inputs, tmpPrefix: 'none', shape: SHAPE, leaves });
      expect(none.every((o) => o.leaves === undefined)).toBe(true);
      expect(read(dir, none)).toEqual(read(dir, plain));
    } finally {
      cleanup();
    }
  });

  it('uses the leaves it is given as they are (a wrong leaf changes the root), and ignores leaves of the wrong length', () => {
    const { dir, cleanup } = tempDir('proofkv-leaves-');
    try {
      const inputs = [1, 2];
      const leaves = inputs.map((n) => writeTable(dir, n, entries(n + 10, 100, n * 1000)));
      const plain = runCompaction({ dir, inputs, tmpPrefix: 'plain', shape: SHAPE, singleOutput: true });
      const wrong = leaves[0].slice();
      wrong[5 * 32] ^= 1;
      const bad = runCompaction({ dir, inputs, tmpPrefix: 'bad', shape: SHAPE, singleOutput: true, leaves: [wrong, leaves[1]] });
      expect(Buffer.from(bad[0].meta.root).toString('hex')).not.toBe(Buffer.from(plain[0].meta.root).toString('hex'));
      const short = runCompaction({ dir, inputs, tmpPrefix: 'short', shape: SHAPE, singleOutput: true, leaves: [leaves[0].subarray(32), leaves[1]] });
      expect(short[0].leavesReused).toBe(leaves[1].length / 32);
      expect(read(dir, short)).toEqual(read(dir, plain));
    } finally {
      cleanup();
    }
  });
});

describe('LeafCache', () => {
  it('keeps its byte bound, dropping the oldest tables first, and hands each table’s leaves out once', () => {
    const c = new LeafCache(100);
    c.put(1, new Uint8Array(40));
    c.put(2, new Uint8Array(40));
    expect([c.bytes, c.count]).toEqual([80, 2]);
    c.put(3, new Uint8Array(40)); // 120 > 100: table 1 goes
    expect([c.bytes, c.count]).toEqual([80, 2]);
    expect(c.take(1)).toBeNull();
    expect(c.take(2)!.length).toBe(40);
    expect(c.take(2)).toBeNull();
    c.put(4, new Uint8Array(101)); // larger than the bound: not kept
    expect([c.bytes, c.count]).toEqual([40, 1]);
    c.put(3, new Uint8Array(8)); // replacing recharges
    expect([c.bytes, c.count]).toEqual([8, 1]);
    c.clear();
    expect([c.bytes, c.count]).toEqual([0, 0]);
    const off = new LeafCache(0);
    off.put(1, new Uint8Array(32));
    expect(off.count).toBe(0);
  });
});
