/** LogTree at scale (100k+ leaves), truncation, copies, and agreement with the plain functions. */
import { describe, expect, it } from 'vitest';
import { equalBytes, toHex } from '../../proofs/bytes.js';
import { Domain, nobleHasher } from '../../proofs/hash.js';
import { LogTree, consistencyProof, inclusionProof, logRoot, verifyConsistency, verifyInclusion } from '../../proofs/log.js';
import { leafHashesFor, nodeHasher, prng } from './helpers.js';

describe('LogTree', () => {
  it('holds 131,075 leaves; roots, inclusion and consistency proofs verify at sampled sizes', () => {
    const n = 131_075;
    const leaves = leafHashesFor(n, nodeHasher);
    const t = new LogTree(nodeHasher);
    for (const l of leaves) t.append(l);
    expect(t.size).toBe(n);
    // the root at full size equals the bottom-up root of hash.ts
    expect(toHex(t.root())).toBe(toHex(nodeHasher.treeRoot(Domain.LOG_NODE, leaves)));
    const r = prng(5);
    const rand = (max: number) => (((r(4)[0] << 16) | (r(4)[1] << 8) | r(4)[2]) >>> 0) % max;
    for (let i = 0; i < 300; i++) {
      const size = 1 + rand(n);
      const index = rand(size);
      const root = t.root(size);
      const proof = t.inclusionProof(index, size);
      expect(proof.length).toBeLessThanOrEqual(18);
      const ok = verifyInclusion(leaves[index], index, size, proof, root, nobleHasher);
      if (!ok.ok) throw new Error(`index ${index} size ${size}: ${ok.message}`);
      const size1 = 1 + rand(size);
      const c = verifyConsistency(size1, size, t.consistencyProof(size1, size), t.root(size1), root, nobleHasher);
      if (!c.ok) throw new Error(`${size1} -> ${size}: ${c.message}`);
    }
    // sizes at powers of two and their neighbours
    for (let p = 1; p < n; p *= 2) {
      for (const s of [p - 1, p, p + 1]) {
        if (s < 1) continue;
        expect(verifyInclusion(leaves[s - 1], s - 1, s, t.inclusionProof(s - 1, s), t.root(s), nodeHasher).ok).toBe(true);
        expect(verifyConsistency(s, n, t.consistencyProof(s, n), t.root(s), t.root(), nodeHasher).ok).toBe(true);
      }
    }
  });

  it('agrees with the array functions, and fromLeafHashes with append', () => {
    const leaves = leafHashesFor(100, nobleHasher, 3);
    const t = LogTree.fromLeafHashes(leaves);
    for (let size = 1; size <= 100; size += 9) {
      expect(toHex(t.root(size))).toBe(toHex(logRoot(leaves.slice(0, size))));
      for (let i = 0; i < size; i += 5) expect(t.inclusionProof(i, size).map(toHex)).toEqual(inclusionProof(i, leaves.slice(0, size)).map(toHex));
      for (let m = 1; m <= size; m += 7) expect(t.consistencyProof(m, size).map(toHex)).toEqual(consistencyProof(m, size, leaves).map(toHex));
    }
  });

  it('truncate then append gives the same tree as building afresh', () => {
    const a = leafHashesFor(70, nobleHasher, 1);
    const b = leafHashesFor(70, nobleHasher, 2);
    const t = LogTree.fromLeafHashes(a);
    for (const cut of [69, 64, 33, 1, 0]) {
      t.truncate(cut);
      for (let i = cut; i < 70; i++) t.append(b[i]);
      const want = LogTree.fromLeafHashes([...a.slice(0, cut), ...b.slice(cut)]);
      for (let s = 0; s <= 70; s += 3) expect(toHex(t.root(s))).toBe(toHex(want.root(s)));
      for (let i = 0; i < 70; i += 4) expect(t.inclusionProof(i).map(toHex)).toEqual(want.inclusionProof(i).map(toHex));
      t.truncate(0);
      for (const l of a) t.append(l);
    }
  });

  it('returns copies, and the empty log has the RFC empty root', () => {
    const leaves = leafHashesFor(5, nobleHasher);
    const t = LogTree.fromLeafHashes(leaves);
    const before = t.root();
    t.root().fill(0);
    t.leafHash(2).fill(0);
    t.inclusionProof(0)[0].fill(0);
    expect(equalBytes(t.root(), before)).toBe(true);
    expect(equalBytes(t.leafHash(2), leaves[2])).toBe(true);
    expect(toHex(new LogTree().root())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('refuses bad arguments with RangeError/TypeError', () => {
    const t = LogTree.fromLeafHashes(leafHashesFor(5, nobleHasher));
    expect(() => t.append(new Uint8Array(31))).toThrow(RangeError);
    expect(() => t.root(6)).toThrow(RangeError);
    expect(() => t.inclusionProof(5)).toThrow(RangeError);
    expect(() => t.inclusionProof(0, 0)).toThrow(RangeError);
    expect(() => t.consistencyProof(0, 5)).toThrow(RangeError);
    expect(() => t.consistencyProof(4, 3)).toThrow(RangeError);
    expect(() => t.truncate(6)).toThrow(RangeError);
    expect(() => t.leafHash(-1)).toThrow(RangeError);
    expect(() => new LogTree({} as never)).toThrow(TypeError);
  });
});
