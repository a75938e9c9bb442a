/**
 * Systematic mutations of valid proofs: every one must be rejected, with a stable reason and
 * without throwing. (Style of transparency-dev/merkle's golden-data mutations.)
 */
import { describe, expect, it } from 'vitest';
import { Domain, nobleHasher } from '../../proofs/hash.js';
import { LogTree, verifyConsistency, verifyInclusion } from '../../proofs/log.js';
import { treeRangeProof, verifyTreeAdjacent, verifyTreeInclusion, verifyTreeRange, treeInclusionProof } from '../../proofs/tree.js';
import { Reason, type Verified } from '../../proofs/errors.js';
import { flipBit, leafHashesFor, nodeHasher, prng } from './helpers.js';

const h = nodeHasher; // both implementations are cross-checked elsewhere; node:crypto keeps this fast
const N = 64;
const leaves = leafHashesFor(N + 2, h);
const tree = LogTree.fromLeafHashes(leaves, h);
const roots = Array.from({ length: N + 3 }, (_, n) => tree.root(Math.min(n, tree.size)));
const rnd = prng(99);
const reasons = new Set<string>(Object.values(Reason));
const BITS = [0, 7, 100, 255];

/** Every mutation must fail with a known reason. */
function rejected(r: Verified, what: string): void {
  if (r.ok) throw new Error(`accepted a mutation: ${what}`);
  if (!reasons.has(r.reason) || typeof r.message !== 'string') throw new Error(`unknown reason ${r.reason}: ${what}`);
}

/** Proof mutations: each element bit-flipped, an element inserted or removed at each position. */
function* mutateProof(proof: Uint8Array[]): Generator<[string, Uint8Array[]]> {
  for (let i = 0; i < proof.length; i++) {
    for (const b of BITS) yield [`flip proof[${i}] bit ${b}`, proof.map((p, j) => (j === i ? flipBit(p, b) : p))];
    yield [`remove proof[${i}]`, proof.filter((_, j) => j !== i)];
    yield [`duplicate proof[${i}]`, [...proof.slice(0, i + 1), ...proof.slice(i)]];
  }
  for (let i = 0; i <= proof.length; i++) yield [`insert random at ${i}`, [...proof.slice(0, i), rnd(32), ...proof.slice(i)]];
  yield ['append garbage', [...proof, new Uint8Array(32)]];
  if (proof.length > 1) yield ['reverse', [...proof].reverse()];
  yield ['short element', proof.length ? [proof[0].subarray(0, 31), ...proof.slice(1)] : [new Uint8Array(31)]];
}

describe('inclusion proof mutations (every index, sizes 1..64)', () => {
  it('are all rejected', () => {
    let count = 0;
    for (let n = 1; n <= N; n++) {
      for (let m = 0; m < n; m++) {
        const proof = tree.inclusionProof(m, n);
        const leaf = leaves[m];
        const root = roots[n];
        expect(verifyInclusion(leaf, m, n, proof, root, h).ok).toBe(true);
        for (const [what, p] of mutateProof(proof)) {
          rejected(verifyInclusion(leaf, m, n, p, root, h), `${what} (m=${m}, n=${n})`);
          count++;
        }
        for (const b of BITS) {
          rejected(verifyInclusion(flipBit(leaf, b), m, n, proof, root, h), `leaf bit ${b}`);
          rejected(verifyInclusion(leaf, m, n, proof, flipBit(root, b), h), `root bit ${b}`);
        }
        for (const dm of [-1, 1]) if (m + dm >= 0) rejected(verifyInclusion(leaf, m + dm, n, proof, root, h), `index ${dm} (m=${m}, n=${n})`);
        // A log root does not commit to its size: the signed head pairs them. So a size mutation is
        // checked against the root that size really has.
        for (const dn of [-1, 1]) {
          if (n + dn >= 1) rejected(verifyInclusion(leaf, m, n + dn, proof, roots[n + dn], h), `size ${dn} (m=${m}, n=${n})`);
        }
        rejected(verifyInclusion(leaf, m, n, proof, roots[n === 1 ? 2 : n - 1], h), 'root of another size');
        rejected(verifyInclusion(leaves[(m + 1) % (N + 2)], m, n, proof, root, h), 'another leaf');
        count += 2 * BITS.length + 5;
      }
    }
    expect(count).toBeGreaterThan(30_000);
  });

  it('reasons are precise', () => {
    const proof = tree.inclusionProof(3, 8);
    expect(verifyInclusion(leaves[3], 3, 8, proof.slice(1), roots[8], h)).toEqual({
      ok: false,
      reason: 'PROOF_SIZE',
      message: 'wrong proof size 2, want 3',
    });
    expect(verifyInclusion(leaves[3], 8, 8, proof, roots[8], h)).toMatchObject({ reason: 'INDEX_OUT_OF_RANGE' });
    expect(verifyInclusion(leaves[3], 3, 8, [proof[0], proof[1].subarray(1), proof[2]], roots[8], h)).toMatchObject({ reason: 'HASH_LENGTH' });
    expect(verifyInclusion(leaves[3], 3, 8, proof, flipBit(roots[8], 3), h)).toMatchObject({ reason: 'ROOT_MISMATCH' });
    expect(verifyInclusion(leaves[3], -1, 8, proof, roots[8], h)).toMatchObject({ reason: 'MALFORMED_INPUT' });
    expect(verifyInclusion(leaves[3], 3.5, 8, proof, roots[8], h)).toMatchObject({ reason: 'MALFORMED_INPUT' });
    expect(verifyInclusion(leaves[3], 3, 2 ** 53, proof, roots[8], h)).toMatchObject({ reason: 'MALFORMED_INPUT' });
  });

  it('garbage of every type is rejected without throwing', () => {
    const junk: unknown[] = [undefined, null, 0, -1, 1.5, NaN, Infinity, 2n, 'abc', {}, [], [null], new Uint8Array(0), new Uint16Array(16), () => 1];
    const proof = tree.inclusionProof(1, 4);
    for (const j of junk) {
      const args: unknown[][] = [
        [j, 1, 4, proof, roots[4]],
        [leaves[1], j, 4, proof, roots[4]],
        [leaves[1], 1, j, proof, roots[4]],
        [leaves[1], 1, 4, j, roots[4]],
        [leaves[1], 1, 4, proof, j],
        [leaves[1], 1, 4, [...proof.slice(0, 1), j], roots[4]],
        [leaves[1], 1, 4, proof, roots[4], j],
      ];
      for (const a of args) {
        const r = (verifyInclusion as (...x: unknown[]) => Verified)(...a);
        if (j !== undefined || a.length === 5) expect(r.ok).toBe(false);
      }
      const c = (verifyConsistency as (...x: unknown[]) => Verified)(j, 4, [], roots[4], roots[4]);
      expect(c.ok).toBe(false);
    }
  });
});

describe('consistency proof mutations (every pair up to 48)', () => {
  it('are all rejected', () => {
    let count = 0;
    for (let n = 1; n <= 48; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = tree.consistencyProof(m, n);
        const r1 = roots[m];
        const r2 = roots[n];
        expect(verifyConsistency(m, n, proof, r1, r2, h).ok).toBe(true);
        for (const [what, p] of mutateProof(proof)) {
          rejected(verifyConsistency(m, n, p, r1, r2, h), `${what} (${m} -> ${n})`);
          count++;
        }
        for (const b of [0, 255]) {
          rejected(verifyConsistency(m, n, proof, flipBit(r1, b), r2, h), 'root1 bit');
          rejected(verifyConsistency(m, n, proof, r1, flipBit(r2, b), h), 'root2 bit');
        }
        if (m !== n) rejected(verifyConsistency(m, n, proof, r2, r1, h), 'swapped roots');
        for (const [dm, dn] of [[-1, 0], [1, 0], [0, -1], [0, 1]]) {
          const m2 = m + dm;
          const n2 = n + dn;
          if (m2 < 0 || n2 < 0) continue;
          rejected(verifyConsistency(m2, n2, proof, roots[m2], roots[n2], h), `sizes (${m2}, ${n2}) from (${m}, ${n})`);
        }
        count += 9;
      }
    }
    expect(count).toBeGreaterThan(10_000);
  });
});

describe('tree proofs (domain 0x11): mutations, adjacency, ranges', () => {
  const d = Domain.ENTRY_NODE;
  const n = 37;
  const lv = leaves.slice(0, n);
  const root = nobleHasher.treeRoot(d, lv);

  it('inclusion mutations are rejected', () => {
    for (let m = 0; m < n; m++) {
      const proof = treeInclusionProof(d, lv, m);
      expect(verifyTreeInclusion(nobleHasher, d, lv[m], m, n, proof, root)).toEqual({ ok: true });
      for (const [what, p] of mutateProof(proof)) rejected(verifyTreeInclusion(nobleHasher, d, lv[m], m, n, p, root), what);
      rejected(verifyTreeInclusion(nobleHasher, Domain.BLOCK_NODE, lv[m], m, n, proof, root), 'other domain');
      rejected(verifyTreeInclusion(nobleHasher, Domain.ENTRY_LEAF, lv[m], m, n, proof, root), 'leaf domain as node domain');
    }
  });

  it('adjacency: i and i+1 accepted; any other pair, swapped or mutated, rejected', () => {
    const proofs = lv.map((_, i) => ({ leaf: lv[i], index: i, path: treeInclusionProof(d, lv, i) }));
    for (let i = 0; i + 1 < n; i++) {
      expect(verifyTreeAdjacent(nobleHasher, d, n, root, proofs[i], proofs[i + 1])).toEqual({ ok: true });
      expect(verifyTreeAdjacent(nobleHasher, d, n, root, proofs[i + 1], proofs[i])).toMatchObject({ reason: 'NOT_ADJACENT' });
      if (i + 2 < n) expect(verifyTreeAdjacent(nobleHasher, d, n, root, proofs[i], proofs[i + 2])).toMatchObject({ reason: 'NOT_ADJACENT' });
      // claim the right leaf sits at i+1 while proving a leaf from elsewhere
      const liar = { ...proofs[(i + 5) % n], index: i + 1 };
      rejected(verifyTreeAdjacent(nobleHasher, d, n, root, proofs[i], liar), 'lying right index');
    }
  });

  it('range proofs: omitted, injected, swapped, shifted or mutated leaves are rejected', () => {
    for (let i = 0; i < n; i += 3) {
      for (const len of [1, 2, 5, 12]) {
        const j = Math.min(n, i + len);
        const proof = treeRangeProof(d, lv, i, j);
        const rl = lv.slice(i, j);
        expect(verifyTreeRange(nobleHasher, d, i, n, rl, proof, root)).toEqual({ ok: true });
        for (const [what, p] of mutateProof(proof)) rejected(verifyTreeRange(nobleHasher, d, i, n, rl, p, root), what);
        for (let k = 0; k < rl.length; k++) {
          rejected(verifyTreeRange(nobleHasher, d, i, n, rl.filter((_, x) => x !== k), proof, root), `omit ${k}`);
          rejected(verifyTreeRange(nobleHasher, d, i, n, [...rl.slice(0, k), rnd(32), ...rl.slice(k)], proof, root), `inject ${k}`);
          rejected(verifyTreeRange(nobleHasher, d, i, n, rl.map((x, y) => (y === k ? flipBit(x, 9) : x)), proof, root), `flip ${k}`);
          if (k + 1 < rl.length) {
            const sw = [...rl];
            [sw[k], sw[k + 1]] = [sw[k + 1], sw[k]];
            rejected(verifyTreeRange(nobleHasher, d, i, n, sw, proof, root), `swap ${k}`);
          }
        }
        for (const ds of [-1, 1]) if (i + ds >= 0) rejected(verifyTreeRange(nobleHasher, d, i + ds, n, rl, proof, root), `start ${ds}`);
        for (const dn of [-1, 1]) {
          const n2 = n + dn;
          rejected(verifyTreeRange(nobleHasher, d, i, n2, rl, proof, nobleHasher.treeRoot(d, leaves.slice(0, n2))), `size ${dn}`);
        }
        expect(verifyTreeRange(nobleHasher, d, i, n, [], [], root)).toMatchObject({ reason: 'INDEX_OUT_OF_RANGE' });
      }
    }
  });
});
