/** The published RFC 6962 / RFC 9162 vectors (transparency-dev/merkle): all must verify, all probes must fail. */
import { describe, expect, it } from 'vitest';
import { toHex } from '../../proofs/bytes.js';
import { Domain, nobleHasher } from '../../proofs/hash.js';
import {
  consistencyProof,
  emptyLogRoot,
  inclusionProof,
  LogTree,
  logLeafHash,
  logNodeHash,
  logRoot,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from '../../proofs/log.js';
import { entryPointHashers, hex, loadVectors, nodeHasher } from './helpers.js';

const v = loadVectors();
const leafHashes = v.leaves_hex.map((l) => logLeafHash(hex(l)));

describe('RFC 6962 vectors: the copy', () => {
  it('is the published set named in test/vectors/README.md, whole', () => {
    expect(v.source.repo).toBe('transparency-dev/merkle');
    expect(v.source.commit.startsWith('417fb0c')).toBe(true);
    expect(v.leaves_hex.length).toBe(8);
    expect(v.roots.map((r) => r.size)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(v.inclusion.length).toBeGreaterThan(0);
    expect(v.consistency.length).toBeGreaterThan(0);
    expect(v.inclusion_invalid.length).toBe(92);
    expect(v.consistency_invalid.length).toBe(92);
  });
});

describe('RFC 6962 vectors: hasher', () => {
  for (const c of v.hasher) {
    it(c.desc, () => {
      for (const h of [nobleHasher, nodeHasher, ...entryPointHashers]) {
        let got: Uint8Array;
        if (c.op === 'empty_root') got = emptyLogRoot(h);
        else if (c.op === 'leaf') got = logLeafHash(hex(c.input_hex!), h);
        else got = h.sha256(new Uint8Array([Domain.LOG_NODE, ...hex(c.left_hex!), ...hex(c.right_hex!)]));
        expect(toHex(got)).toBe(c.want_hex);
      }
    });
  }
  it('logNodeHash is H(0x01 || l || r) over 32-byte children', () => {
    const l = leafHashes[0];
    const r = leafHashes[1];
    expect(toHex(logNodeHash(l, r))).toBe(v.node_hashes_hex[1][0]);
  });
});

describe('RFC 6962 vectors: roots and node hashes', () => {
  it('every root of sizes 0..8 (logRoot, LogTree, node:crypto)', () => {
    const tree = new LogTree(nodeHasher);
    for (const r of v.roots) {
      expect(toHex(logRoot(leafHashes.slice(0, r.size)))).toBe(r.root_hex);
      expect(toHex(logRoot(leafHashes.slice(0, r.size), nodeHasher))).toBe(r.root_hex);
      if (r.size > 0 && tree.size < r.size) tree.append(leafHashes[r.size - 1]);
      expect(toHex(tree.root(r.size))).toBe(r.root_hex);
    }
  });
  it('every complete-subtree node hash', () => {
    v.node_hashes_hex.forEach((level, k) => {
      level.forEach((want, j) => {
        const w = 2 ** k;
        expect(toHex(logRoot(leafHashes.slice(j * w, (j + 1) * w)))).toBe(want);
      });
    });
  });
});

describe('RFC 6962 vectors: inclusion', () => {
  for (const c of v.inclusion) {
    it(`index ${c.leaf_index} in size ${c.tree_size} verifies and is what we generate`, () => {
      const proof = c.proof_hex.map(hex);
      expect(verifyInclusion(hex(c.leaf_hash_hex), c.leaf_index, c.tree_size, proof, hex(c.root_hex))).toEqual({ ok: true });
      const r = rootFromInclusionProof(hex(c.leaf_hash_hex), c.leaf_index, c.tree_size, proof);
      expect(r.ok && toHex(r.root)).toBe(c.root_hex);
      if (c.tree_size <= leafHashes.length && toHex(leafHashes[c.leaf_index]) === c.leaf_hash_hex) {
        expect(inclusionProof(c.leaf_index, leafHashes.slice(0, c.tree_size)).map(toHex)).toEqual(c.proof_hex);
        const t = LogTree.fromLeafHashes(leafHashes);
        expect(t.inclusionProof(c.leaf_index, c.tree_size).map(toHex)).toEqual(c.proof_hex);
      }
    });
  }
  it(`rejects all ${v.inclusion_invalid.length} invalid probes`, () => {
    for (const c of v.inclusion_invalid) {
      const r = verifyInclusion(hex(c.leaf_hash_hex), c.leaf_index, c.tree_size, c.proof_hex.map(hex), hex(c.root_hex));
      expect(r.ok, `${c.desc}: ${JSON.stringify(c)}`).toBe(false);
      if (!r.ok) expect(typeof r.message).toBe('string');
    }
  });
});

describe('RFC 6962 vectors: consistency', () => {
  for (const c of v.consistency) {
    it(`${c.size1} -> ${c.size2} verifies and is what we generate`, () => {
      const proof = c.proof_hex.map(hex);
      expect(verifyConsistency(c.size1, c.size2, proof, hex(c.root1_hex), hex(c.root2_hex))).toEqual({ ok: true });
      expect(verifyConsistency(c.size1, c.size2, proof, hex(c.root1_hex), hex(c.root2_hex), nodeHasher)).toEqual({ ok: true });
      if (c.size2 <= leafHashes.length) {
        expect(consistencyProof(c.size1, c.size2, leafHashes).map(toHex)).toEqual(c.proof_hex);
        expect(LogTree.fromLeafHashes(leafHashes).consistencyProof(c.size1, c.size2).map(toHex)).toEqual(c.proof_hex);
      }
    });
  }
  it(`rejects all ${v.consistency_invalid.length} invalid probes`, () => {
    for (const c of v.consistency_invalid) {
      const r = verifyConsistency(c.size1, c.size2, c.proof_hex.map(hex), hex(c.root1_hex), hex(c.root2_hex));
      expect(r.ok, `${c.desc}: ${JSON.stringify(c)}`).toBe(false);
    }
  });
  it('consistency_either (roots not 32 bytes): this verifier is strict and rejects with HASH_LENGTH', () => {
    for (const c of v.consistency_either) {
      const r = verifyConsistency(c.size1, c.size2, c.proof_hex.map(hex), hex(c.root1_hex), hex(c.root2_hex));
      expect(r).toMatchObject({ ok: false, reason: 'HASH_LENGTH' });
    }
  });
});
