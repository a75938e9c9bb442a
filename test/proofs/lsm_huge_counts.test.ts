/**
 * A signer's level counts are authenticated but not bounded by what a proof reveals: a lying signer
 * can certify a level of 2^32 − 1 tables while revealing one. The verifier's work must follow what
 * the proof carries, not the signed counts (the level walk once looped over every position: about
 * 4·10^9 map lookups for this proof, far past the test timeout).
 */
import { describe, expect, it } from 'vitest';
import { checkpointLeafHash, signHead, type Checkpoint } from '../../proofs/checkpoint.js';
import { Domain, Kind, nobleHasher as H } from '../../proofs/hash.js';
import { descriptorHash, internalKeyOf, masterRootOf, NUM_LEVELS, type TableDescriptor } from '../../proofs/lsm.js';
import { verifyGetProof, type GetProof } from '../../proofs/lsm_proof.js';
import { multiproofSize, rootFromMultiproof } from '../../proofs/multiproof.js';
import { enc, liar, liarTrust } from './lsm_helpers.js';

describe('signed level counts far larger than the revealed tables', () => {
  it('a level of 2^32 − 1 tables with one revealed: the get verifies in work bounded by the proof', () => {
    const counts = new Array<number>(NUM_LEVELS).fill(0);
    counts[1] = 2 ** 32 - 1;
    const d: TableDescriptor = {
      level: 1,
      position: 0,
      smallest: internalKeyOf({ key: enc('m'), version: 1, seq: 1, kind: Kind.PUT }),
      largest: internalKeyOf({ key: enc('n'), version: 1, seq: 2, kind: Kind.PUT }),
      entryCount: 2,
      tableRoot: new Uint8Array(32).fill(7),
    };
    const size = counts[1];
    const masterProof = Array.from({ length: multiproofSize([0], size) }, (_, i) => new Uint8Array(32).fill(i + 1));
    const tree = rootFromMultiproof(H, Domain.MASTER_NODE, size, [0], [descriptorHash(H, d)], masterProof);
    if (!tree.ok) throw new Error(tree.message);
    const checkpoint: Checkpoint = { index: 0, seq: 2, masterRoot: masterRootOf(H, counts, tree.root) };
    const head = { size: 1, root: checkpointLeafHash(checkpoint) };
    const proof: GetProof = {
      body: { levelCounts: counts, descriptors: [d], masterProof, windows: [] },
      certificate: { checkpoint, head, signatures: [signHead(liar.privateKey, head)], inclusion: [] },
    };
    // "a" sorts before the level's first table: proven absent from the level, by the signer's word
    // that the level is sorted (A2) — the point here is only that the answer comes at all.
    const r = verifyGetProof(proof, { key: enc('a') }, { trust: liarTrust });
    expect(r.ok, r.ok ? '' : `${r.reason}: ${r.message}`).toBe(true);
    if (r.ok) expect(r.entry).toBeUndefined();
  });
});
