/**
 * Checkpoints as the engine keeps them: a linked, signed, append-only log that survives restarts,
 * with inclusion and consistency proofs, and proofs served against the latest checkpoint even
 * after compactions replaced its tables in the live table set.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkpointLeafHash,
  verifyCheckpoint,
  verifyCheckpointLink,
  verifyConsistency,
  verifyGetProof,
  verifyHistoryProof,
  verifyInclusion,
} from '../../proofs/index.js';
import { ProofDB, ProofKVError } from '../../src/index.js';
import { str, tempDir, TINY } from './harness.js';

let dir: string;
let cleanup: () => void;
let db: ProofDB;
const enc = new TextEncoder();

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  db = await ProofDB.open(dir, TINY);
});
afterEach(async () => {
  await db.close();
  cleanup();
});

const trust = () => ({ publicKeys: [db.publicKey()], quorum: 1 });

async function code(p: () => unknown): Promise<string | undefined> {
  try {
    await p();
  } catch (err) {
    expect(err).toBeInstanceOf(ProofKVError);
    return (err as ProofKVError).code;
  }
  return undefined;
}

describe('checkpoint log', () => {
  it('before the first checkpoint, proofs are unavailable', async () => {
    await db.put('k', 'v');
    expect(await code(() => db.latestCheckpoint())).toBe('CHECKPOINT_UNAVAILABLE');
    expect(await code(() => db.getWithProof('k'))).toBe('CHECKPOINT_UNAVAILABLE');
  });

  it('checkpoints are linked, signed by the node key, and each head extends the last', async () => {
    const results: Awaited<ReturnType<ProofDB["checkpoint"]>>[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 50; i++) await db.put(`k${i}`, `r${round}`);
      results.push(await db.checkpoint());
    }
    results.forEach((r, i) => {
      expect(r.checkpoint.index).toBe(i);
      expect(r.head.size).toBe(i + 1);
      expect(r.seq).toBe(50 * (i + 1));
      expect(verifyCheckpoint(r.head, r.signatures, trust()).ok).toBe(true);
      if (i > 0) expect(verifyCheckpointLink(results[i - 1].checkpoint, r.checkpoint).ok).toBe(true);
    });
    for (let a = 1; a <= 5; a++) {
      for (let b = a; b <= 5; b++) {
        const proof = db.consistencyProof(a, b);
        expect(verifyConsistency(a, b, proof, results[a - 1].head.root, results[b - 1].head.root).ok, `${a}->${b}`).toBe(true);
      }
    }
    const latest = db.latestCheckpoint();
    for (let i = 0; i < 5; i++) {
      const at = db.checkpointAt(i);
      expect(at.checkpoint).toEqual(results[i].checkpoint);
      expect(verifyInclusion(checkpointLeafHash(at.checkpoint), i, latest.head.size, at.inclusion, latest.head.root).ok).toBe(true);
    }
    expect(await code(() => db.checkpointAt(5))).toBe('INVALID_ARGUMENT');
    expect(await code(() => db.consistencyProof(3, 2))).toBe('INVALID_ARGUMENT');
  });

  it('an empty database checkpoints and proves absence', async () => {
    const cp = await db.checkpoint();
    expect(cp.tables).toEqual([]);
    const { proof, entry } = await db.getWithProof('nothing');
    expect(entry).toBeUndefined();
    const r = verifyGetProof(proof, { key: enc.encode('nothing') }, { trust: trust() });
    expect(r.ok && r.entry === undefined).toBe(true);
  });

  it('the log, the node key and proofs survive a restart and later compactions', async () => {
    for (let i = 0; i < 200; i++) await db.put(`k${i % 40}`, `v${i}`);
    const cp = await db.checkpoint();
    const key = db.publicKey();
    // Writes after the checkpoint flush and compact: the live table set moves on.
    for (let i = 0; i < 400; i++) await db.put(`k${i % 40}`, `later${i}`);
    expect(db.tables().map((t) => t.number)).not.toEqual(cp.tables.map((t) => t.number));
    const check = async () => {
      const { proof, entry } = await db.getWithProof('k7');
      expect(str(entry?.value)).toBe('v167');
      const r = verifyGetProof(proof, { key: enc.encode('k7') }, { trust: { publicKeys: [key], quorum: 1 } });
      expect(r.ok).toBe(true);
      const h = await db.getVersionHistoryWithProof('k7');
      expect(h.entries.map((e) => str(e.value))).toEqual([7, 47, 87, 127, 167].map((i) => `v${i}`));
      expect(verifyHistoryProof(h.proof, { key: enc.encode('k7') }, { trust: { publicKeys: [key], quorum: 1 } }).ok).toBe(true);
    };
    await check();
    await db.close();
    db = await ProofDB.open(dir, TINY);
    expect(db.publicKey()).toEqual(key);
    expect(db.latestCheckpoint().checkpoint).toEqual(cp.checkpoint);
    await check();
    // The next checkpoint covers the later writes; the old one can no longer serve reads.
    const next = await db.checkpoint();
    expect(next.checkpoint.index).toBe(1);
    expect(await code(() => db.getWithProof('k7', { checkpoint: 0 }))).toBe('CHECKPOINT_UNAVAILABLE');
    const { entry } = await db.getWithProof('k7');
    expect(str(entry?.value)).toBe('later367');
  });

  it('a proof asked at a version answers the newest entry at or below it', async () => {
    await db.put('k', 'one');
    await db.put('k', 'two');
    await db.delete('k');
    await db.putWithVersion('k', 'ten', 10);
    await db.checkpoint();
    const cases: Array<[number, string | undefined, string | undefined]> = [
      [0, undefined, undefined],
      [1, 'put', 'one'],
      [2, 'put', 'two'],
      [3, 'delete', ''],
      [9, 'delete', ''],
      [10, 'put', 'ten'],
      [2 ** 40, 'put', 'ten'],
    ];
    for (const [version, kind, value] of cases) {
      const { proof, entry } = await db.getWithProof('k', { version });
      expect(entry?.kind).toBe(kind);
      const r = verifyGetProof(proof, { key: enc.encode('k'), version }, { trust: trust() });
      expect(r.ok, `version ${version}`).toBe(true);
      if (r.ok) {
        expect(r.entry?.kind).toBe(kind);
        expect(r.entry === undefined ? undefined : str(r.entry.value)).toBe(value);
      }
    }
  });
});

describe('the inclusion path of a proof', () => {
  it('is a fresh copy every time: changing one proof in place changes no later proof', async () => {
    for (let c = 0; c < 5; c++) {
      await db.put(enc.encode(`k${c}`), enc.encode(`v${c}`));
      await db.checkpoint();
    }
    const key = enc.encode('k3');
    const first = (await db.getWithProof(key)).proof;
    expect(first.certificate.inclusion.length).toBeGreaterThan(0);
    const second = (await db.getWithProof(key)).proof;
    expect(second.certificate.inclusion).toEqual(first.certificate.inclusion);
    expect(second.certificate.inclusion[0]).not.toBe(first.certificate.inclusion[0]);
    first.certificate.inclusion[0][0] ^= 1;
    first.certificate.inclusion.pop();
    expect(verifyGetProof(first, { key }, { trust: trust() }).ok).toBe(false);
    const third = (await db.getWithProof(key)).proof;
    expect(third.certificate.inclusion).toEqual(second.certificate.inclusion);
    expect(verifyGetProof(third, { key }, { trust: trust() }).ok).toBe(true);
  });

  it('follows the head: a proof after a new checkpoint verifies against the new head', async () => {
    for (let c = 0; c < 12; c++) {
      await db.put(enc.encode(`k${c}`), enc.encode(`v${c}`));
      await db.checkpoint();
      const p = (await db.getWithProof(enc.encode('k0'))).proof;
      expect(p.certificate.head.size).toBe(c + 1);
      expect(verifyGetProof(p, { key: enc.encode('k0') }, { trust: trust() }).ok, `after checkpoint ${c}`).toBe(true);
      // Twice against the same head: the kept path.
      expect(verifyGetProof((await db.getWithProof(enc.encode(`k${c}`))).proof, { key: enc.encode(`k${c}`) }, { trust: trust() }).ok).toBe(true);
    }
  });
});
