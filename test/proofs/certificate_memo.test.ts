/**
 * The verifier's memo of the last verified certificate (`verifyCertificate`, docs/proofs.md §5.3):
 * it is used (a second proof against the same head hashes less), and it never changes a result —
 * every certificate or expectation that differs from the remembered one in any field gets exactly
 * the result a verifier without the memo gives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { Hasher, jsHasher } from '../../proofs/hash.js';
import { verifyCertificate, verifyGetProof, type CheckpointExpectation, type GetProof } from '../../proofs/lsm_proof.js';
import { sha256 as jsSha256 } from '../../proofs/sha256.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { buildScenario, clone, enc, SCENARIO_OPTIONS, skey, type Scenario } from './lsm_helpers.js';

let S: Scenario;
let proof: GetProof;
const key = enc(skey(13));

beforeAll(async () => {
  const { dir, cleanup } = tempDir('proofkv-certmemo-');
  S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
  proof = (await S.db.getWithProof(key)).proof;
});
afterAll(async () => {
  await S?.cleanup();
});

/** The result without the memo: a failing certificate first, which empties it. */
function fresh(p: GetProof, exp: CheckpointExpectation) {
  verifyCertificate({} as GetProof['certificate'], { trust: S.trust });
  return verifyGetProof(p, { key }, exp);
}

/** The result with the honest certificate remembered just before. */
function primed(p: GetProof, exp: CheckpointExpectation) {
  expect(verifyGetProof(proof, { key }, { trust: S.trust, hasher: exp.hasher })).toMatchObject({ ok: true });
  return verifyGetProof(p, { key }, exp);
}

const flip = (b: Uint8Array) => {
  const c = b.slice();
  c[c.length - 1] ^= 1;
  return c;
};

describe('certificate memo', () => {
  it('is used: verifying the same certificate again hashes less', () => {
    let calls = 0;
    const counting = new Hasher((d) => {
      calls++;
      return jsSha256(d);
    });
    fresh(proof, { trust: S.trust, hasher: counting });
    const first = calls;
    calls = 0;
    expect(verifyGetProof(clone(proof), { key }, { trust: S.trust, hasher: counting })).toMatchObject({ ok: true });
    expect(calls).toBeLessThan(first);
    expect(first).toBeGreaterThan(0);
  });

  it('never changes a result: every field of the certificate and the expectation changed', () => {
    const other = generateKeyPair(new Uint8Array(32).fill(3)).publicKey;
    const cert = (f: (c: GetProof['certificate']) => void) => (p: GetProof) => f(p.certificate);
    const edits: Array<[string, (p: GetProof) => void, (e: CheckpointExpectation) => void]> = [
      ['checkpoint index', cert((c) => (c.checkpoint.index -= 1)), () => {}],
      ['checkpoint seq', cert((c) => (c.checkpoint.seq += 1)), () => {}],
      ['checkpoint time', cert((c) => (c.checkpoint.time! += 1)), () => {}],
      ['checkpoint time dropped', cert((c) => delete c.checkpoint.time), () => {}],
      ['masterRoot', cert((c) => (c.checkpoint.masterRoot = flip(c.checkpoint.masterRoot))), () => {}],
      ['prevCheckpointHash', cert((c) => (c.checkpoint.prevCheckpointHash = flip(c.checkpoint.prevCheckpointHash!))), () => {}],
      ['signerSetHash', cert((c) => (c.checkpoint.signerSetHash = flip(c.checkpoint.signerSetHash!))), () => {}],
      ['head size', cert((c) => (c.head.size += 1)), () => {}],
      ['head root', cert((c) => (c.head.root = flip(c.head.root))), () => {}],
      ['signature', cert((c) => (c.signatures[0].signature = flip(c.signatures[0].signature))), () => {}],
      ['signature key', cert((c) => (c.signatures[0].publicKey = other)), () => {}],
      ['signatures dropped', cert((c) => (c.signatures = [])), () => {}],
      ['signature repeated', cert((c) => c.signatures.push(clone(c.signatures[0]))), () => {}],
      ['inclusion', cert((c) => (c.inclusion = c.inclusion.length ? [flip(c.inclusion[0]), ...c.inclusion.slice(1)] : [new Uint8Array(32)])), () => {}],
      ['signer set dropped', cert((c) => delete c.signers), () => {}],
      ['signer set quorum', cert((c) => (c.signers!.quorum += 1)), () => {}],
      ['signer set member id', cert((c) => (c.signers!.members[0].id += 1)), () => {}],
      ['signer set member key', cert((c) => (c.signers!.members[0].publicKey = other)), () => {}],
      ['signer set member added', cert((c) => c.signers!.members.push({ id: 99, publicKey: other })), () => {}],
      ['trusted key', () => {}, (e) => (e.trust = { publicKeys: [other], quorum: 1 })],
      ['trusted keys added', () => {}, (e) => (e.trust = { publicKeys: [...S.trust.publicKeys, other], quorum: 2 })],
      ['allowUntrusted', cert((c) => c.signatures.push({ publicKey: other, signature: new Uint8Array(64) })), (e) => (e.trust = { ...S.trust, allowUntrusted: true })],
      ['trusted head newer', () => {}, (e) => (e.trustedHead = { size: proof.certificate.head.size + 1, root: new Uint8Array(32) })],
      ['trusted head forked', () => {}, (e) => (e.trustedHead = { size: proof.certificate.head.size, root: flip(proof.certificate.head.root) })],
      ['checkpointIndex asked', () => {}, (e) => (e.checkpointIndex = proof.certificate.checkpoint.index - 1)],
      ['another hasher', () => {}, (e) => (e.hasher = jsHasher)],
      ['malformed expectation', () => {}, (e) => (e.trust = { publicKeys: 'x', quorum: 1 } as unknown as CheckpointExpectation['trust'])],
    ];
    let failures = 0;
    for (const [what, editProof, editExp] of edits) {
      const p = clone(proof);
      editProof(p);
      const exp: CheckpointExpectation = { trust: S.trust };
      editExp(exp);
      const want = fresh(p, exp);
      const got = primed(p, exp);
      expect({ ok: got.ok, reason: (got as { reason?: string }).reason }, what).toEqual({ ok: want.ok, reason: (want as { reason?: string }).reason });
      if (!want.ok) failures++;
    }
    // The edits are real: nearly all of them fail (a new hasher and a trust list with one more key still verify).
    expect(failures).toBeGreaterThanOrEqual(edits.length - 3);
  });
});
