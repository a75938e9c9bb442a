/**
 * Proof bundles and edge proofs (docs/proofs.md §8.12): a bundle records `edges`, and
 * `verifyProofBundle` requires edge proofs exactly when it says so and reports which check ran.
 * Proofs come from the engine over the fixed scenario (tables at several levels), so keys outside
 * a consulted table's range need edge windows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getProofBundle, historyProofBundle, verifyProofBundle, type ProofBundle } from '../../client-sdk/bundle.js';
import { VerificationError } from '../../client-sdk/index.js';
import { getProofCodec, historyProofCodec } from '../../proofs/lsm_encoding.js';
import { verifyGetProof } from '../../proofs/lsm_proof.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { buildScenario, enc, SCENARIO_OPTIONS, type Scenario } from '../proofs/lsm_helpers.js';

let S: Scenario;
/** A key whose get proof without edges lacks edge windows that `edges: true` requires. */
let key: Uint8Array;
/** A key whose get proof is the same with and without edges (every consulted table covers it). */
let plainKey: Uint8Array;
beforeAll(async () => {
  const { dir, cleanup } = tempDir('proofkv-bundle-');
  S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
  const candidates = [...S.world.keys(), ...['0', 'key0005', 'key050x', 'zzz'].map(enc)];
  for (const k of candidates) {
    const plain = (await S.db.getWithProof(k)).proof;
    if (!verifyGetProof(plain, { key: k, edges: true }, { trust: S.trust }).ok) key ??= k;
    else plainKey ??= k;
  }
});
afterAll(async () => {
  await S?.cleanup();
});

const flip = (b: ProofBundle, edges: boolean | undefined): ProofBundle => {
  const c = { ...b };
  if (edges === undefined) delete c.edges;
  else c.edges = edges;
  return c;
};

describe('proof bundles with edge proofs', () => {
  it('the scenario has a key whose edgeless proof fails an edge check, and one it passes', () => {
    expect(key).toBeDefined();
    expect(plainKey).toBeDefined();
  });

  it('a get bundle with edges verifies and reports edges; flipped to false it verifies without them', async () => {
    const p = (await S.db.getWithProof(plainKey, { edges: true })).proof;
    const b = getProofBundle(plainKey, getProofCodec.encode(p), { edges: true });
    expect(b.edges).toBe(true);
    expect(JSON.parse(JSON.stringify(b)).edges).toBe(true);
    expect(verifyProofBundle(b, S.trust).edges).toBe(true);
    const off = verifyProofBundle(flip(b, false), S.trust);
    expect(off.edges).toBe(false);
    expect(off.type).toBe('get');
  });

  it('flipped to false, a bundle whose proof carries edge windows fails: the verifier refuses windows it did not ask for', async () => {
    const p = (await S.db.getWithProof(key, { edges: true })).proof;
    const b = getProofBundle(key, getProofCodec.encode(p), { edges: true });
    expect(verifyProofBundle(b, S.trust)).toMatchObject({ type: 'get', edges: true });
    expect(() => verifyProofBundle(flip(b, false), S.trust)).toThrow(expect.objectContaining({ reason: 'UNEXPECTED_ELEMENT' }));
    expect(() => verifyProofBundle(flip(b, undefined), S.trust)).toThrow(expect.objectContaining({ reason: 'UNEXPECTED_ELEMENT' }));
  });

  it('a bundle fetched without edges: verifies without the field (older bundles), fails when flipped to true', async () => {
    const p = (await S.db.getWithProof(key)).proof;
    const b = getProofBundle(key, getProofCodec.encode(p));
    expect('edges' in b).toBe(false);
    expect(verifyProofBundle(b, S.trust).edges).toBe(false);
    expect(() => verifyProofBundle(flip(b, true), S.trust)).toThrow(VerificationError);
  });

  it('history bundles follow the same rule', async () => {
    const withEdges = (await S.db.getVersionHistoryWithProof(key, { edges: true })).proof;
    const hb = historyProofBundle(key, historyProofCodec.encode(withEdges), { edges: true });
    expect(verifyProofBundle(hb, S.trust)).toMatchObject({ type: 'history', edges: true });
    const plain = (await S.db.getVersionHistoryWithProof(key)).proof;
    const pb = historyProofBundle(key, historyProofCodec.encode(plain));
    expect(verifyProofBundle(pb, S.trust).edges).toBe(false);
    expect(() => verifyProofBundle(flip(pb, true), S.trust)).toThrow(VerificationError);
  });

  it('an edges field that is not a boolean is MALFORMED_ENCODING', async () => {
    const p = (await S.db.getWithProof(key, { edges: true })).proof;
    const b = { ...getProofBundle(key, getProofCodec.encode(p), { edges: true }), edges: 'yes' };
    expect(() => verifyProofBundle(b, S.trust)).toThrow(expect.objectContaining({ reason: 'MALFORMED_ENCODING' }));
  });
});
