/**
 * The fast code against the RFC reference (reference.ts): every size 1..300, every leaf index, and
 * every consistency pair size1 <= size2 <= 300, none sampled.
 */
import { describe, expect, it } from 'vitest';
import { concatBytes, equalBytes, toHex } from '../../proofs/bytes.js';
import { Domain, nobleHasher } from '../../proofs/hash.js';
import {
  consistencyProof,
  consistencyProofSize,
  inclusionProof,
  LogTree,
  logLeafHash,
  logRoot,
  verifyConsistency,
  verifyInclusion,
} from '../../proofs/log.js';
import {
  inclusionProofSize,
  rangeProofSize,
  rootFromTreeInclusion,
  rootFromTreeRange,
  treeInclusionProof,
  treeRangeProof,
  verifyTreeRange,
} from '../../proofs/tree.js';
import { nodeHasher, prng } from './helpers.js';
import { RefTree } from './reference.js';

const N = 300;
const rnd = prng(6962);
const data: Uint8Array[] = [];
for (let i = 0; i < N; i++) data.push(rnd(i % 7 === 0 ? 0 : 1 + (i % 40)));
// The reference works on leaf data; the fast code on leaf hashes.
const ref = new RefTree(nodeHasher.sha256, data, (d) => nodeHasher.sha256(concatBytes(new Uint8Array([0]), d)), 0x01);
const leafHashes = data.map((d) => logLeafHash(d));
const tree = LogTree.fromLeafHashes(leafHashes, nodeHasher);
const hexes = (a: Uint8Array[]) => a.map(toHex);
const same = (a: Uint8Array[], b: Uint8Array[]) => a.length === b.length && a.every((x, i) => equalBytes(x, b[i]));

describe('log against the RFC reference', () => {
  it('MTH of every prefix 0..300 (logRoot, LogTree)', () => {
    for (let n = 0; n <= N; n++) {
      const want = toHex(ref.mth(0, n));
      expect(toHex(tree.root(n))).toBe(want);
      if (n <= 64 || n % 37 === 0) expect(toHex(logRoot(leafHashes.slice(0, n)))).toBe(want);
    }
  });

  it('PATH for every size 1..300 and every index: generated, sized and verified', () => {
    let checked = 0;
    for (let n = 1; n <= N; n++) {
      const root = ref.mth(0, n);
      for (let m = 0; m < n; m++) {
        const want = ref.path(m, 0, n);
        const got = tree.inclusionProof(m, n);
        if (!same(got, want)) expect(hexes(got), `PATH(${m}, ${n})`).toEqual(hexes(want));
        if (inclusionProofSize(m, n) !== want.length) expect(inclusionProofSize(m, n)).toBe(want.length);
        // alternate the two SHA-256 implementations
        const r = verifyInclusion(leafHashes[m], m, n, want, root, m % 2 ? nodeHasher : nobleHasher);
        if (!r.ok) throw new Error(`PATH(${m}, ${n}): ${r.message}`);
        checked++;
      }
    }
    expect(checked).toBe((N * (N + 1)) / 2);
  });

  it('array prover matches for sizes 1..64 and samples above', () => {
    for (let n = 1; n <= N; n += n < 64 ? 1 : 29) {
      const prefix = leafHashes.slice(0, n);
      for (let m = 0; m < n; m += n < 64 ? 1 : 7) {
        expect(hexes(inclusionProof(m, prefix))).toEqual(hexes(ref.path(m, 0, n)));
      }
    }
  });

  it('SUBPROOF for every pair 1 <= size1 <= size2 <= 300: generated, sized and verified', () => {
    let checked = 0;
    for (let n = 1; n <= N; n++) {
      const root2 = ref.mth(0, n);
      for (let m = 1; m <= n; m++) {
        const want = ref.proof(m, n);
        const got = tree.consistencyProof(m, n);
        if (!same(got, want)) expect(hexes(got), `PROOF(${m}, ${n})`).toEqual(hexes(want));
        if (consistencyProofSize(m, n) !== want.length) expect(consistencyProofSize(m, n)).toBe(want.length);
        const r = verifyConsistency(m, n, want, ref.mth(0, m), root2, m % 2 ? nodeHasher : nobleHasher);
        if (!r.ok) throw new Error(`${m} -> ${n}: ${r.message}`);
        checked++;
      }
    }
    expect(checked).toBe((N * (N + 1)) / 2);
  });

  it('array consistency prover matches for pairs up to 64', () => {
    for (let n = 1; n <= 64; n++) {
      for (let m = 1; m <= n; m++) expect(hexes(consistencyProof(m, n, leafHashes))).toEqual(hexes(ref.proof(m, n)));
    }
  });
});

describe('domain trees against the RFC reference', () => {
  // ProofKV's other trees take leaves that are already hashes: MTH({d}) = d.
  const leaves = leafHashes.map((h) => nobleHasher.sha256(h));
  for (const domain of [Domain.ENTRY_NODE, Domain.BLOCK_NODE, Domain.MASTER_NODE]) {
    it(`domain 0x${domain.toString(16)}: roots, paths and ranges for sizes 1..48`, () => {
      const r = new RefTree(nobleHasher.sha256, leaves, (d) => d, domain);
      for (let n = 1; n <= 48; n++) {
        const sub = leaves.slice(0, n);
        const root = r.mth(0, n);
        expect(toHex(nobleHasher.treeRoot(domain, sub))).toBe(toHex(root));
        for (let m = 0; m < n; m++) {
          const path = treeInclusionProof(domain, sub, m);
          expect(hexes(path)).toEqual(hexes(r.path(m, 0, n)));
          const got = rootFromTreeInclusion(nobleHasher, domain, sub[m], m, n, path);
          expect(got.ok && toHex(got.root)).toBe(toHex(root));
        }
        if (n > 24) continue;
        for (let i = 0; i < n; i++) {
          for (let j = i + 1; j <= n; j++) {
            const proof = treeRangeProof(domain, sub, i, j);
            expect(proof.length).toBe(rangeProofSize(i, j, n));
            const got = rootFromTreeRange(nobleHasher, domain, i, n, sub.slice(i, j), proof);
            expect(got.ok && toHex(got.root)).toBe(toHex(root));
            expect(verifyTreeRange(nobleHasher, domain, i, n, sub.slice(i, j), proof, root)).toEqual({ ok: true });
          }
        }
      }
    });
  }

  it('range proofs over 300 leaves: sampled ranges verify, size is at most 2 log n', () => {
    const r = new RefTree(nobleHasher.sha256, leaves, (d) => d, Domain.ENTRY_NODE);
    const root = r.mth(0, N);
    for (let i = 0; i < N; i += 13) {
      for (const len of [1, 2, 3, 8, 31, 100]) {
        const j = Math.min(N, i + len);
        const proof = treeRangeProof(Domain.ENTRY_NODE, leaves, i, j);
        expect(proof.length).toBeLessThanOrEqual(2 * 9);
        expect(verifyTreeRange(nobleHasher, Domain.ENTRY_NODE, i, N, leaves.slice(i, j), proof, root)).toEqual({ ok: true });
      }
    }
  });
});
