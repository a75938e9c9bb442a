/**
 * Leaf/node confusion and odd-node duplication attacks. Each attack is first shown to work on a
 * naive tree (no domain separation, Bitcoin-style duplication), then shown to fail on ProofKV's.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { concatBytes, equalBytes } from '../../proofs/bytes.js';
import { Domain, nobleHasher as h } from '../../proofs/hash.js';
import { LogTree, logLeafHash, logRoot, verifyInclusion } from '../../proofs/log.js';
import { rootFromTreeInclusion, treeInclusionProof, verifyTreeInclusion } from '../../proofs/tree.js';
import { leafHashesFor, prng } from './helpers.js';

const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

/** A naive Merkle tree: leaf = H(d), node = H(l || r), an odd node is paired with itself. */
function naiveLevels(data: Uint8Array[]): Uint8Array[][] {
  const levels: Uint8Array[][] = [data.map((d) => sha(d))];
  while (levels[levels.length - 1].length > 1) {
    const cur = levels[levels.length - 1];
    const next: Uint8Array[] = [];
    for (let i = 0; i < cur.length; i += 2) next.push(sha(concatBytes(cur[i], cur[i + 1] ?? cur[i])));
    levels.push(next);
  }
  return levels;
}

const rnd = prng(1234);
const data = Array.from({ length: 8 }, () => rnd(20));

describe('leaf/node confusion (second preimage)', () => {
  it('works against the naive tree: an inner node passes as a leaf of a shorter tree', () => {
    const levels = naiveLevels(data);
    const root = levels[levels.length - 1][0];
    // Claim: the data "left || right" of node (level 1, index 0) is leaf 0 of a 4-leaf tree.
    const forged = concatBytes(levels[0][0], levels[0][1]);
    const forgedLeaf = sha(forged);
    const r = sha(concatBytes(sha(concatBytes(forgedLeaf, levels[1][1])), levels[2][1]));
    expect(equalBytes(r, root)).toBe(true);
  });

  it('fails against the log: every inner node of trees up to 16, as leaf data at its level', () => {
    for (let n = 2; n <= 16; n++) {
      const d = Array.from({ length: n }, () => rnd(8));
      const leaves = d.map((x) => logLeafHash(x));
      const tree = LogTree.fromLeafHashes(leaves);
      const root = tree.root();
      for (let w = 2; w <= n; w *= 2) {
        // the complete subtrees of width w: claim their children's concatenation as leaf data
        for (let j = 0; (j + 1) * w <= n; j++) {
          const half = w / 2;
          const left = logRoot(leaves.slice(j * w, j * w + half));
          const right = logRoot(leaves.slice(j * w + half, (j + 1) * w));
          const claimedSize = Math.ceil(n / w);
          const upper = Array.from({ length: claimedSize }, (_, k) => logRoot(leaves.slice(k * w, Math.min(n, (k + 1) * w))));
          // the node itself is a valid "leaf hash" at the upper level — shape alone cannot tell...
          const path = LogTree.fromLeafHashes(upper).inclusionProof(j);
          expect(verifyInclusion(upper[j], j, claimedSize, path, root).ok).toBe(true);
          // ...but a verifier hashes the leaf data itself, and H(0x00 || l || r) is not H(0x01 || l || r).
          const forged = logLeafHash(concatBytes(left, right));
          expect(verifyInclusion(forged, j, claimedSize, path, root)).toMatchObject({ ok: false, reason: 'ROOT_MISMATCH' });
        }
      }
    }
  });

  it('fails against block trees: the size-wrapped block root rejects a node claimed as an entry', () => {
    const leaves = leafHashesFor(12, h).map((x) => h.entryLeaf(x, 1, 1, 1, 1, x));
    const blockRoot = h.blockRootOfLeaves(leaves);
    const treeRoot = h.treeRoot(Domain.ENTRY_NODE, leaves);
    // node (0..4) claimed as leaf 0 of a 3-leaf tree [n(0..4), n(4..8), n(8..12)]
    const upper = [0, 4, 8].map((s) => h.treeRoot(Domain.ENTRY_NODE, leaves.slice(s, s + 4)));
    const path = treeInclusionProof(Domain.ENTRY_NODE, upper, 0);
    const got = rootFromTreeInclusion(h, Domain.ENTRY_NODE, upper[0], 0, 3, path);
    expect(got.ok && equalBytes(got.root, treeRoot)).toBe(true); // same bare tree root ...
    expect(equalBytes(h.blockRoot(3, treeRoot), blockRoot)).toBe(false); // ... but the block commits to 12 entries
    // and an entry leaf is H(0x10 || ...), never H(0x11 || l || r): the entry fields that would
    // serialise to "l || r" give another hash.
    expect(equalBytes(h.sha256(concatBytes(new Uint8Array([0x10]), leaves[0], leaves[1])), h.node(Domain.ENTRY_NODE, leaves[0], leaves[1]))).toBe(false);
  });

  it('a proof from one tree kind does not verify in another', () => {
    const leaves = leafHashesFor(9, h);
    for (const [a, b] of [[Domain.ENTRY_NODE, Domain.BLOCK_NODE], [Domain.BLOCK_NODE, Domain.MASTER_NODE], [Domain.MASTER_NODE, Domain.LOG_NODE]]) {
      const root = h.treeRoot(a, leaves);
      for (let i = 0; i < 9; i++) {
        const path = treeInclusionProof(a, leaves, i);
        expect(verifyTreeInclusion(h, a, leaves[i], i, 9, path, root).ok).toBe(true);
        expect(verifyTreeInclusion(h, b, leaves[i], i, 9, path, root).ok).toBe(false);
      }
    }
  });
});

describe('odd-node duplication (CVE-2012-2459 style)', () => {
  it('works against the naive tree: [.., x] and [.., x, x] share a root', () => {
    for (const n of [3, 5, 7]) {
      const d = data.slice(0, n);
      const a = naiveLevels(d);
      const b = naiveLevels([...d, d[n - 1]]);
      expect(equalBytes(a[a.length - 1][0], b[b.length - 1][0])).toBe(true);
    }
  });

  it('fails against every ProofKV tree: the odd node is promoted, so the roots differ', () => {
    const leaves = leafHashesFor(66, h);
    for (let n = 1; n <= 65; n += 2) {
      const a = leaves.slice(0, n);
      const b = [...a, a[n - 1]];
      expect(equalBytes(logRoot(a), logRoot(b))).toBe(false);
      for (const d of [Domain.ENTRY_NODE, Domain.BLOCK_NODE, Domain.MASTER_NODE]) {
        expect(equalBytes(h.treeRoot(d, a), h.treeRoot(d, b))).toBe(false);
      }
      expect(equalBytes(h.blockRootOfLeaves(a), h.blockRootOfLeaves(b))).toBe(false);
      // the duplicate's index does not exist in the real tree, and its proof in the padded tree
      // does not verify against the real root
      const proof = LogTree.fromLeafHashes(b).inclusionProof(n);
      expect(verifyInclusion(a[n - 1], n, n, proof, logRoot(a))).toMatchObject({ reason: 'INDEX_OUT_OF_RANGE' });
      expect(verifyInclusion(a[n - 1], n, n + 1, proof, logRoot(a)).ok).toBe(false);
      expect(verifyInclusion(a[n - 1], n, n + 1, proof, logRoot(b)).ok).toBe(true);
    }
  });
});
