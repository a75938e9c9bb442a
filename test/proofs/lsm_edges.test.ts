/**
 * Edge proofs (docs/proofs.md §8.12), honest side: for every key of the fixed scenario (present,
 * deleted, absent, before / between / after all tables), the engine's proofs with `edges` equal the
 * reference prover's, verify with `edges: true`, and carry one edge window per consulted table
 * that does not cover the key; without `edges` the engine's proof is byte for byte the one of the
 * reference prover without edge windows (the old mode is unchanged).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareBytes } from '../../proofs/bytes.js';
import { getProofCodec, historyProofCodec } from '../../proofs/lsm_encoding.js';
import { verifyGetProof, verifyHistoryProof, type CheckpointCertificate } from '../../proofs/lsm_proof.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { buildScenario, enc, norm, SCENARIO_OPTIONS, type Scenario } from './lsm_helpers.js';

const MAX = Number.MAX_SAFE_INTEGER;
let S: Scenario;
beforeAll(async () => {
  const { dir, cleanup } = tempDir('proofkv-edges-');
  S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
});
afterAll(async () => {
  await S?.cleanup();
});

function keysToTry(): Uint8Array[] {
  const keys = S.world.keys();
  const probes = ['', '0', 'key', 'key0005', 'key050x', 'zzz'].filter((k) => k.length > 0).map(enc);
  return [...keys, ...probes].sort(compareBytes);
}

describe('edge proofs, honest prover', () => {
  it('get: engine = reference, verifies with edges, one edge window per consulted non-covering table', async () => {
    let edgeWindows = 0;
    for (const key of keysToTry()) {
      for (const version of [MAX, 1, 3]) {
        const v = version === MAX ? undefined : version;
        const cert: CheckpointCertificate = S.cert;
        const withEdges = (await S.db.getWithProof(key, { version: v, edges: true })).proof;
        expect(norm(withEdges.body)).toEqual(norm(S.world.refGet(key, version, true).body));
        const r = verifyGetProof(withEdges, { key, version, edges: true }, { trust: S.trust });
        expect(r.ok ? 'ok' : `${r.reason}: ${r.message}`).toBe('ok');
        const plain = (await S.db.getWithProof(key, { version: v })).proof;
        expect(getProofCodec.encode(plain)).toEqual(getProofCodec.encode(S.world.getProof(cert, key, version)));
        const covering = S.world.refGet(key, version).body.windows.length;
        expect(withEdges.body.windows.length).toBeGreaterThanOrEqual(covering);
        edgeWindows += withEdges.body.windows.length - covering;
        for (const w of withEdges.body.windows) {
          if (plain.body.windows.some((x) => x.table === w.table)) continue;
          // An edge window: one entry, at the table's first or last position.
          expect(w.blocks.length).toBe(1);
          expect(w.blocks[0].entries.length).toBe(1);
          const b = w.blocks[0];
          const atFirst = b.index === 0 && b.offset === 0;
          const atLast = b.index === w.blockCount - 1 && b.offset === b.entryCount - 1;
          expect(atFirst || atLast).toBe(true);
        }
      }
    }
    expect(edgeWindows, 'the scenario exercises edge windows').toBeGreaterThan(100);
  });

  it('history: engine = reference, verifies with edges; without edges byte-identical to the reference', async () => {
    for (const key of keysToTry()) {
      for (const q of [{}, { minVersion: 2, maxVersion: 4 }, { limit: 1 }]) {
        const withEdges = (await S.db.getVersionHistoryWithProof(key, { ...q, edges: true })).proof;
        expect(norm(withEdges.body)).toEqual(norm(S.world.refHistory(key, q.minVersion ?? 0, withEdges.bound, true).body));
        const r = verifyHistoryProof(withEdges, { key, ...q, edges: true }, { trust: S.trust });
        expect(r.ok ? 'ok' : `${r.reason}: ${r.message}`).toBe('ok');
        const plain = (await S.db.getVersionHistoryWithProof(key, q)).proof;
        expect(historyProofCodec.encode(plain)).toEqual(historyProofCodec.encode(S.world.historyProof(S.cert, key, q.minVersion ?? 0, plain.bound)));
      }
    }
  });
});
