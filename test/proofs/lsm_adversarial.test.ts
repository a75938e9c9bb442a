/**
 * Adversarial get and history proofs. The attacker is the server: it knows every table of the
 * checkpoint (the suite reads them from disk into a `World`), can build windows over any entry
 * range, multiproofs over any set of descriptors and any level counts, and re-sign with keys it
 * owns — but not with the node key the client trusts. Every forged proof must be rejected with the
 * reason that names what is wrong; the honest proof of each case is first checked to verify, so a
 * case cannot pass because its starting point was already broken.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareBytes, equalBytes } from '../../proofs/bytes.js';
import { generateKeyPair, signHead } from '../../proofs/checkpoint.js';
import { Reason, type Verified } from '../../proofs/errors.js';
import { Domain, Hasher, Kind, nobleHasher as H } from '../../proofs/hash.js';
import { internalKeyOf, levelOffsets, NUM_LEVELS, type EntryLeaf, type TableDescriptor } from '../../proofs/lsm.js';
import {
  verifyGetProof,
  verifyHistoryProof,
  type CheckpointExpectation,
  type GetProof,
  type HistoryProof,
  type CheckpointCertificate,
  type LsmProofBody,
  type TableWindow,
} from '../../proofs/lsm_proof.js';
import { _multiproof } from '../../proofs/multiproof.js';
import { _arraySource, _rangePath } from '../../proofs/tree.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { buildScenario, clone, enc, ikAfter, ikBefore, liarTrust, SCENARIO_OPTIONS, signedBy, skey, type Scenario, type World, type WTable } from './lsm_helpers.js';

const MAX = Number.MAX_SAFE_INTEGER;
let S: Scenario;

beforeAll(async () => {
  const { dir, cleanup } = tempDir('proofkv-adv-');
  S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
});
afterAll(async () => {
  await S?.cleanup();
});

// ---------------------------------------------------------------------------------------------
// helpers

type Exp = Partial<CheckpointExpectation>;

function vget(p: GetProof, key: Uint8Array, version?: number, exp: Exp = {}): Verified {
  return verifyGetProof(p, { key, version }, { trust: S.trust, ...exp });
}
function vhist(p: HistoryProof, key: Uint8Array, q: { minVersion?: number; maxVersion?: number; limit?: number } = {}, exp: Exp = {}): Verified {
  return verifyHistoryProof(p, { key, ...q }, { trust: S.trust, ...exp });
}

/** Asserts a rejection with exactly `reason` (the message is shown when it differs). */
function rejects(r: Verified, reason: Reason): void {
  expect(r.ok ? 'accepted' : `${r.reason}`, r.ok ? 'forged proof was accepted' : r.message).toBe(reason);
}
/** 'absent', the proven entry's kind and version, or the failure. */
function answerOf(r: Verified): string {
  if (!r.ok) return `${r.reason}: ${r.message}`;
  const e = (r as unknown as { entry?: { kind: string; version: number } }).entry;
  return e ? `${e.kind}@${e.version}` : 'absent';
}
function accepts(r: Verified): void {
  expect(r.ok ? 'ok' : `${r.reason}: ${r.message}`).toBe('ok');
}

async function honestGet(key: Uint8Array, version?: number): Promise<GetProof> {
  const { proof } = await S.db.getWithProof(key, { version });
  accepts(vget(proof, key, version));
  return clone(proof);
}
async function honestHistory(key: Uint8Array, q: { minVersion?: number; maxVersion?: number; limit?: number } = {}): Promise<HistoryProof> {
  const { proof } = await S.db.getVersionHistoryWithProof(key, q);
  accepts(vhist(proof, key, q));
  return clone(proof);
}

const windowOf = (body: LsmProofBody, t: WTable): TableWindow => {
  const w = body.windows.find((x) => x.table === t.index);
  expect(w, `window of table ${t.index}`).toBeDefined();
  return w!;
};
/** The revealed entry of `key` (at `version`, or any) in a window. */
function entryIn(w: TableWindow, key: Uint8Array, version?: number): EntryLeaf {
  for (const b of w.blocks) for (const e of b.entries) if (equalBytes(e.key, key) && (version === undefined || e.version === version)) return e;
  throw new Error('entry not in window');
}
/** The revealed entry before the searched position (the first of the window). */
const firstEntry = (w: TableWindow): EntryLeaf => w.blocks[0].entries[0];
const lastEntry = (w: TableWindow): EntryLeaf => {
  const b = w.blocks[w.blocks.length - 1];
  return b.entries[b.entries.length - 1];
};
/** Rebuilds the master proof for the body's descriptors (what an attacker can always do). */
function remaster(body: LsmProofBody): void {
  const idx = body.descriptors.map((d) => S.world.offsets[d.level] + d.position);
  body.masterProof = _multiproof(_arraySource(H, Domain.MASTER_NODE, S.world.descHashes), idx, S.world.tables.length);
}
function lastIndexOfKey(t: WTable, key: Uint8Array): number {
  for (let i = t.flat.length - 1; i >= 0; i--) if (equalBytes(t.flat[i].e.key, key)) return i;
  return -1;
}
function pick<T>(what: string, xs: T[], pred: (x: T) => boolean): T {
  const x = xs.find(pred);
  expect(x, `the scenario has ${what}`).toBeDefined();
  return x!;
}

/** Keys with particular shapes in the scenario, found by search (and asserted to exist). */
function picks() {
  const w = S.world;
  const keys = w.keys();
  const deeper = (k: Uint8Array) => w.versionsOf(k).some((v) => v.t.d.level > 0);
  // Newest version in a level-0 table, with an entry on each side of it there; older versions deeper.
  const l0 = pick('a key answered from level 0 with older versions deeper', keys, (k) => {
    const r = w.refGet(k, MAX);
    if (!r.answer || r.answer.e.kind !== Kind.PUT || r.answerTable!.d.level !== 0) return false;
    const pos = r.answerTable!.flat.indexOf(r.answer);
    return pos > 1 && pos < r.answerTable!.flat.length - 1 && deeper(k) && r.answer.e.version > 1;
  });
  // Answered from level 1, older versions in level 2, not covered by level 0.
  const l1 = pick('a key answered from level 1', keys, (k) => {
    const r = w.refGet(k, MAX);
    return !!r.answer && r.answerTable!.d.level === 1 && w.level(0).every((t) => !w.covers(t, k)) && w.level(2).some((t) => w.covers(t, k));
  });
  // Answered from level 2 through a level-1 gap between two tables, covered by level 0 tables.
  const l2 = pick('a key answered from level 2 through a level-1 gap', keys, (k) => {
    const r = w.refGet(k, MAX);
    return !!r.answer && r.answerTable!.d.level === 2 && w.levelReveal(1, k).reveal.length === 2 && w.level(0).some((t) => w.covers(t, k));
  });
  // Newest entry not first in its table, and the only version of the key there.
  const alone = (k: Uint8Array) => {
    const top = w.versionsOf(k)[0];
    return top.pos > 0 && top.t.flat.filter((x) => equalBytes(x.e.key, k)).length === 1;
  };
  const del = pick('a deleted key', keys, (k) => w.refGet(k, MAX).answer?.e.kind === Kind.DELETE && alone(k));
  // A key with a version gap (explicit versions) for history cut points.
  const gap = pick('a key with explicit versions', keys, (k) => w.versionsOf(k)[0].p.e.version > 1000 && alone(k));
  const far = pick('a key covered by no level-0 table and far from the level-0 key', keys, (k) => w.level(0).every((t) => !w.covers(t, k)));
  // Absent key between two present ones, inside the level-0 ranges.
  const absent = enc(`${new TextDecoder().decode(l2)}5`);
  expect(w.refGet(absent, MAX).answer).toBeUndefined();
  return { l0, l1, l2, del, gap, far, absent };
}

// ---------------------------------------------------------------------------------------------

describe('scenario', () => {
  it('has level-0 tables, a level 1 with a gap and a level 2 with several tables', () => {
    const c = S.world.counts;
    expect(c[0]).toBeGreaterThanOrEqual(2);
    expect(c[1]).toBeGreaterThanOrEqual(2);
    expect(c[2]).toBeGreaterThanOrEqual(3);
    expect(S.world.tables.some((t) => t.blocks.length % 2 === 1 && t.blocks.length > 1)).toBe(true);
  });
});

describe('tampered entries and values (get)', () => {
  it('rejects a changed, missing or other-version value with VALUE_MISMATCH', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const changed = clone(p);
    changed.value = enc('forged');
    rejects(vget(changed, l0), Reason.VALUE_MISMATCH);
    const missing = clone(p);
    delete missing.value;
    rejects(vget(missing, l0), Reason.VALUE_MISMATCH);
    const flipped = clone(p);
    flipped.value![0] ^= 1;
    rejects(vget(flipped, l0), Reason.VALUE_MISMATCH);
    const older = clone(p);
    older.value = (await S.db.getWithProof(l0, { version: 1 })).entry!.value;
    rejects(vget(older, l0), Reason.VALUE_MISMATCH);
  });

  it('rejects a tampered version, seq, kind, value hash or key of the answer entry with ROOT_MISMATCH', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const t = S.world.refGet(l0, MAX).answerTable!;
    const mutate = (f: (e: EntryLeaf, q: GetProof) => void): GetProof => {
      const q = clone(p);
      f(entryIn(windowOf(q.body, t), l0), q);
      return q;
    };
    rejects(vget(mutate((e) => (e.version += 1)), l0), Reason.ROOT_MISMATCH);
    rejects(vget(mutate((e) => (e.version -= 1)), l0), Reason.ROOT_MISMATCH);
    rejects(vget(mutate((e) => (e.seq += 1)), l0), Reason.ROOT_MISMATCH);
    rejects(vget(mutate((e) => (e.seq -= 1)), l0), Reason.ROOT_MISMATCH);
    rejects(
      vget(
        mutate((e, q) => {
          e.kind = Kind.DELETE;
          delete q.value;
        }),
        l0,
      ),
      Reason.ROOT_MISMATCH,
    );
    // A consistent forgery: new value and its hash in the leaf.
    rejects(
      vget(
        mutate((e, q) => {
          q.value = enc('forged');
          e.valueHash = H.valueHash(q.value);
        }),
        l0,
      ),
      Reason.ROOT_MISMATCH,
    );
    // The key itself (to answer for another key with this entry).
    const other = enc(`${new TextDecoder().decode(l0)}0`);
    rejects(vget(mutate((e) => (e.key = other)), other), Reason.ROOT_MISMATCH);
  });

  it('rejects a tampered version, seq, kind, value hash or key of a neighbour entry with ROOT_MISMATCH', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const t = S.world.refGet(l0, MAX).answerTable!;
    const mutate = (f: (e: EntryLeaf) => void): GetProof => {
      const q = clone(p);
      const e = firstEntry(windowOf(q.body, t));
      expect(compareBytes(e.key, l0)).toBeLessThan(0);
      f(e);
      return q;
    };
    rejects(vget(mutate((e) => (e.version += 1)), l0), Reason.ROOT_MISMATCH);
    rejects(vget(mutate((e) => (e.seq += 1)), l0), Reason.ROOT_MISMATCH);
    rejects(vget(mutate((e) => (e.kind = e.kind === Kind.PUT ? Kind.DELETE : Kind.PUT)), l0), Reason.ROOT_MISMATCH);
    rejects(vget(mutate((e) => (e.valueHash = H.valueHash(enc('x')))), l0), Reason.ROOT_MISMATCH);
    rejects(vget(mutate((e) => (e.key = enc('a'))), l0), Reason.ROOT_MISMATCH);
    // History proofs: a neighbour and an in-interval entry.
    const h = await honestHistory(l0);
    const hq = clone(h);
    firstEntry(windowOf(hq.body, t)).version += 1;
    rejects(vhist(hq, l0), Reason.ROOT_MISMATCH);
    const hq2 = clone(h);
    entryIn(windowOf(hq2.body, t), l0).seq += 1;
    rejects(vhist(hq2, l0), Reason.ROOT_MISMATCH);
    const hq3 = clone(h);
    lastEntry(windowOf(hq3.body, t)).kind ^= 1;
    rejects(vhist(hq3, l0), Reason.ROOT_MISMATCH);
  });

  it('rejects a value attached to a tombstone or to an absent answer, and a tombstone turned into a put', async () => {
    const { del, absent } = picks();
    const p = await honestGet(del);
    expect(vget(p, del)).toMatchObject({ ok: true, entry: { kind: 'delete' } });
    const withValue = clone(p);
    withValue.value = new Uint8Array(0);
    rejects(vget(withValue, del), Reason.UNEXPECTED_ELEMENT);
    const t = S.world.refGet(del, MAX).answerTable!;
    const asPut = clone(p);
    asPut.value = enc('resurrected');
    const e = entryIn(windowOf(asPut.body, t), del);
    e.kind = Kind.PUT;
    e.valueHash = H.valueHash(asPut.value);
    rejects(vget(asPut, del), Reason.ROOT_MISMATCH);
    const a = await honestGet(absent);
    expect(answerOf(vget(a, absent))).toBe('absent');
    a.value = enc('phantom');
    rejects(vget(a, absent), Reason.UNEXPECTED_ELEMENT);
  });
});

describe('a hidden newer version', () => {
  it('rejects the honest proof of an older version presented as the latest (WINDOW_NOT_BRACKETING)', async () => {
    const { l0 } = picks();
    const latest = S.world.refGet(l0, MAX).answer!.e.version;
    const old = await honestGet(l0, latest - 1);
    expect(vget(old, l0, latest - 1)).toMatchObject({ ok: true, entry: { version: latest - 1 } });
    rejects(vget(old, l0), Reason.WINDOW_NOT_BRACKETING);
    rejects(vget(old, l0, latest), Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects dropping the window of the table that holds the newer version (MISSING_WINDOW)', async () => {
    const { l0 } = picks();
    const latest = S.world.refGet(l0, MAX);
    const old = await honestGet(l0, latest.answer!.e.version - 1);
    old.body.windows = old.body.windows.filter((w) => w.table !== latest.answerTable!.index);
    rejects(vget(old, l0), Reason.MISSING_WINDOW);
    // The same with the honest latest proof: drop the answering window.
    const p = await honestGet(l0);
    p.body.windows = p.body.windows.filter((w) => w.table !== latest.answerTable!.index);
    delete p.value;
    rejects(vget(p, l0), Reason.MISSING_WINDOW);
  });

  it('rejects a window reused from another key of the same table (WINDOW_NOT_BRACKETING)', async () => {
    const { l0 } = picks();
    const w = S.world;
    const latest = w.refGet(l0, MAX);
    const t = latest.answerTable!;
    const other = t.flat.find((x) => compareBytes(x.e.key, l0) < 0)!.e.key;
    const old = await honestGet(l0, latest.answer!.e.version - 1);
    const foreign = (await S.db.getWithProof(other)).proof.body.windows.find((x) => x.table === t.index)!;
    old.body.windows = old.body.windows.map((x) => (x.table === t.index ? clone(foreign) : x));
    rejects(vget(old, l0), Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects a window that skips the newer entry (starts after it)', async () => {
    const { l0 } = picks();
    const w = S.world;
    const latest = w.refGet(l0, MAX);
    const t = latest.answerTable!;
    const pos = t.flat.indexOf(latest.answer!);
    const old = await honestGet(l0, latest.answer!.e.version - 1);
    old.body.windows = old.body.windows.map((x) => (x.table === t.index ? w.window(t, pos + 1, pos + 1) : x));
    rejects(vget(old, l0), Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects hiding a level-1 answer behind a claimed gap (MISSING_TABLE)', async () => {
    const { l1 } = picks();
    const w = S.world;
    const r = w.refGet(l1, MAX);
    const t = r.answerTable!;
    const l1tables = w.level(1);
    // The attacker's answer: an older version from level 2, with level 1 shown as various "gaps".
    const deep = w.level(2).find((x) => w.covers(x, l1))!;
    const pos = w.seek(deep, l1, MAX);
    const deepWindow = w.window(deep, Math.max(pos - 1, 0), pos);
    const forge = (l1reveal: number[]): GetProof => ({
      certificate: S.cert,
      body: w.body([...w.level(0).map((x) => x.index), ...l1reveal, deep.index], [deepWindow]),
      value: deep.flat[pos].value,
    });
    const p = t.d.position;
    const ok = (q: number) => q >= 0 && q < l1tables.length;
    const idx = (q: number) => l1tables[q].index;
    let tried = 0;
    for (const reveal of [[p - 1, p + 1], [p - 1, p], [p, p + 1], [p - 1], [p + 1], []]) {
      if (!reveal.every(ok)) continue;
      tried++;
      rejects(vget(forge(reveal.map(idx)), l1), Reason.MISSING_TABLE);
    }
    expect(tried).toBeGreaterThanOrEqual(3);
    // Revealing the covering table but giving it no window.
    rejects(vget(forge([idx(p)]), l1), Reason.MISSING_WINDOW);
  });

  it('rejects hiding a level-0 table by omitting its descriptor (MISSING_TABLE)', async () => {
    const { l0 } = picks();
    const w = S.world;
    const latest = w.refGet(l0, MAX);
    const old = await honestGet(l0, latest.answer!.e.version - 1);
    old.body.descriptors = old.body.descriptors.filter((d) => !(d.level === 0 && d.position === latest.answerTable!.d.position));
    old.body.windows = old.body.windows.filter((x) => x.table !== latest.answerTable!.index);
    remaster(old.body);
    rejects(vget(old, l0), Reason.MISSING_TABLE);
  });
});

describe('absent for present, present for absent', () => {
  it('rejects a present key claimed absent by removing the answering window (MISSING_WINDOW)', async () => {
    const { l2 } = picks();
    const p = await honestGet(l2);
    const t = S.world.refGet(l2, MAX).answerTable!;
    p.body.windows = p.body.windows.filter((x) => x.table !== t.index);
    delete p.value;
    rejects(vget(p, l2), Reason.MISSING_WINDOW);
  });

  it("rejects a present key claimed absent with the gap proof of the next absent key (WINDOW_NOT_BRACKETING)", async () => {
    const { l2, absent } = picks();
    const a = await honestGet(absent);
    rejects(vget(a, l2), Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects an absent key claimed present with the proof of its neighbour (WINDOW_NOT_BRACKETING)', async () => {
    const { l2, absent } = picks();
    const p = await honestGet(l2);
    rejects(vget(p, absent), Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects a present key claimed absent by stopping the read before its level (MISSING_TABLE)', async () => {
    const { l2 } = picks();
    const p = await honestGet(l2);
    const t = S.world.refGet(l2, MAX).answerTable!;
    p.body.descriptors = p.body.descriptors.filter((d) => d.level < t.d.level);
    p.body.windows = p.body.windows.filter((x) => x.table !== t.index);
    delete p.value;
    remaster(p.body);
    rejects(vget(p, l2), Reason.MISSING_TABLE);
  });

  it('rejects an empty table set claimed for a non-empty checkpoint (ROOT_MISMATCH)', async () => {
    const { l2 } = picks();
    const p = await honestGet(l2);
    p.body = { levelCounts: new Array(NUM_LEVELS).fill(0), descriptors: [], masterProof: [], windows: [] };
    delete p.value;
    rejects(vget(p, l2), Reason.ROOT_MISMATCH);
  });

  it('rejects a deleted key answered with the version before its tombstone (WINDOW_NOT_BRACKETING)', async () => {
    const { del } = picks();
    const tomb = S.world.refGet(del, MAX).answer!.e.version;
    const old = await honestGet(del, tomb - 1);
    expect(vget(old, del, tomb - 1)).toMatchObject({ ok: true, entry: { kind: 'put' } });
    // The tombstone's table shows the tombstone as the window's first entry, with nothing before it.
    rejects(vget(old, del), Reason.WINDOW_NOT_BRACKETING);
  });
});

describe('a proof for another key, version or checkpoint', () => {
  it('rejects a proof for another key', async () => {
    const { l0, far, l2 } = picks();
    const p = await honestGet(l0);
    // far is covered by no level-0 table; l0's read stopped at level 0, so level 1 is unproven.
    rejects(vget(p, far), Reason.MISSING_TABLE);
    const q = await honestGet(far);
    rejects(vget(q, l0), Reason.MISSING_WINDOW);
    const r = await honestGet(l2);
    rejects(vget(r, l0), Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects a proof for another version', async () => {
    const { l0, gap } = picks();
    const latest = S.world.refGet(l0, MAX).answer!.e.version;
    const p = await honestGet(l0);
    rejects(vget(p, l0, latest - 1), Reason.WINDOW_NOT_BRACKETING);
    const zero = await honestGet(l0, 0);
    expect(answerOf(vget(zero, l0, 0))).toBe('absent');
    rejects(vget(zero, l0), Reason.WINDOW_NOT_BRACKETING);
    const g = await honestGet(gap, 500);
    rejects(vget(g, gap), Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects a proof at another checkpoint than the one asked for (CHECKPOINT_MISMATCH)', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const idx = p.certificate.checkpoint.index;
    rejects(vget(p, l0, undefined, { checkpointIndex: idx - 1 }), Reason.CHECKPOINT_MISMATCH);
    accepts(vget(p, l0, undefined, { checkpointIndex: idx }));
    // The stale proof (previous checkpoint, shorter head) asked for the latest checkpoint.
    rejects(vget(S.stale.get, S.stale.key, undefined, { checkpointIndex: idx }), Reason.CHECKPOINT_MISMATCH);
    // An older checkpoint (validly included in the latest head) swapped into the certificate.
    const prev = S.db.checkpointAt(idx - 1);
    const swapped = clone(p);
    swapped.certificate.checkpoint = prev.checkpoint;
    swapped.certificate.inclusion = prev.inclusion;
    rejects(vget(swapped, l0), Reason.CHECKPOINT_MISMATCH);
    rejects(vget(swapped, l0, undefined, { checkpointIndex: idx - 1 }), Reason.ROOT_MISMATCH);
    // The stale body under the latest certificate.
    const mixed = clone(S.stale.get);
    mixed.certificate = clone(p.certificate);
    rejects(vget(mixed, S.stale.key), Reason.ROOT_MISMATCH);
  });

  it('rejects a tampered checkpoint or inclusion path (ROOT_MISMATCH / PROOF_SIZE)', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const a = clone(p);
    a.certificate.checkpoint.masterRoot[0] ^= 1;
    rejects(vget(a, l0), Reason.ROOT_MISMATCH);
    const b = clone(p);
    b.certificate.checkpoint.seq += 1;
    rejects(vget(b, l0), Reason.ROOT_MISMATCH);
    const c = clone(p);
    c.certificate.inclusion[0][5] ^= 0x80;
    rejects(vget(c, l0), Reason.ROOT_MISMATCH);
    const d = clone(p);
    d.certificate.inclusion.push(new Uint8Array(32));
    rejects(vget(d, l0), Reason.PROOF_SIZE);
  });
});

describe('stale and forked checkpoints', () => {
  it('rejects a stale proof once a newer head is trusted (ROLLBACK)', async () => {
    const { l0 } = picks();
    const latest = (await honestGet(l0)).certificate.head;
    accepts(vget(S.stale.get, S.stale.key));
    rejects(vget(S.stale.get, S.stale.key, undefined, { trustedHead: latest }), Reason.ROLLBACK);
    rejects(vhist(S.stale.history, S.stale.key, {}, { trustedHead: latest }), Reason.ROLLBACK);
  });

  it('rejects a head of the trusted size with another root (FORK)', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const forked = { size: p.certificate.head.size, root: H.sha256(enc('another log')) };
    rejects(vget(p, l0, undefined, { trustedHead: forked }), Reason.FORK);
    accepts(vget(p, l0, undefined, { trustedHead: p.certificate.head }));
  });

  it('accepts a newer head only with a valid consistency proof from the trusted one', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const trusted = S.stale.head;
    const consistency = S.db.consistencyProof(trusted.size, p.certificate.head.size);
    accepts(vget(p, l0, undefined, { trustedHead: trusted, consistency }));
    const bad = consistency.map((x) => x.slice());
    bad[0][0] ^= 1;
    rejects(vget(p, l0, undefined, { trustedHead: trusted, consistency: bad }), Reason.FORK);
    rejects(vget(p, l0, undefined, { trustedHead: { size: trusted.size, root: H.sha256(enc('fork')) }, consistency }), Reason.FORK);
    rejects(vget(p, l0, undefined, { trustedHead: trusted }), Reason.PROOF_SIZE);
  });
});

describe('signatures', () => {
  it('rejects missing, duplicated, forged, misattributed and untrusted signatures', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const sig = p.certificate.signatures[0];
    const other = generateKeyPair(new Uint8Array(32).fill(7));
    const withSigs = (s: typeof p.certificate.signatures): GetProof => {
      const q = clone(p);
      q.certificate.signatures = s;
      return q;
    };
    rejects(vget(withSigs([]), l0), Reason.MISSING_SIGNATURE);
    rejects(vget(withSigs([sig, clone(sig)]), l0), Reason.DUPLICATE_SIGNER);
    const flipped = clone(sig);
    flipped.signature[10] ^= 4;
    rejects(vget(withSigs([flipped]), l0), Reason.BAD_SIGNATURE);
    // The trusted key's signature on another head (the stale one).
    rejects(vget(withSigs([clone(S.stale.get.certificate.signatures[0])]), l0), Reason.BAD_SIGNATURE);
    // The attacker's own signature, under its own key and under the trusted key's name.
    const own = signHead(other.privateKey, p.certificate.head);
    rejects(vget(withSigs([own]), l0), Reason.UNTRUSTED_KEY);
    rejects(vget(withSigs([{ publicKey: sig.publicKey, signature: own.signature }]), l0), Reason.BAD_SIGNATURE);
    // Quorum 2 of {node, other} with only the node's signature; then with both.
    const two = { publicKeys: [S.db.publicKey(), other.publicKey], quorum: 2 };
    rejects(verifyGetProof(p, { key: l0 }, { trust: two }), Reason.QUORUM_NOT_MET);
    accepts(verifyGetProof(withSigs([sig, own]), { key: l0 }, { trust: two }));
    // allowUntrusted skips an unknown signer but still needs the quorum.
    accepts(verifyGetProof(withSigs([own, sig]), { key: l0 }, { trust: { ...S.trust, allowUntrusted: true } }));
    rejects(verifyGetProof(withSigs([own]), { key: l0 }, { trust: { ...S.trust, allowUntrusted: true } }), Reason.QUORUM_NOT_MET);
  });

  it('rejects a head whose size or root changed after signing (BAD_SIGNATURE)', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const a = clone(p);
    a.certificate.head.size += 1;
    rejects(vget(a, l0), Reason.BAD_SIGNATURE);
    const b = clone(p);
    b.certificate.head.root[31] ^= 1;
    rejects(vget(b, l0), Reason.BAD_SIGNATURE);
    // A whole forged log (checkpoint, head) signed by the attacker's key is still untrusted.
    const other = generateKeyPair(new Uint8Array(32).fill(9));
    const c = clone(p);
    c.certificate.signatures = [signHead(other.privateKey, c.certificate.head)];
    rejects(vget(c, l0), Reason.UNTRUSTED_KEY);
  });
});

describe('history: omitted, injected, reordered, duplicated entries', () => {
  it('rejects an omitted entry (shortened window, dropped table, lowered bound)', async () => {
    const { l0 } = picks();
    const w = S.world;
    const h = await honestHistory(l0);
    const all = vhist(h, l0);
    expect(all.ok && (all as unknown as { entries: unknown[] }).entries.length).toBeGreaterThan(2);
    // Shortened: in the deepest table holding several versions, stop the window one version early.
    const holders = w.tables.filter((t) => t.flat.filter((x) => equalBytes(x.e.key, l0)).length >= 2);
    const t = holders[holders.length - 1];
    const first = w.seek(t, l0, MAX) - 1;
    const lastOfKey = lastIndexOfKey(t, l0);
    const short = clone(h);
    short.body.windows = short.body.windows.map((x) => (x.table === t.index ? w.window(t, first, lastOfKey - 1) : x));
    const dropped = t.flat[lastOfKey];
    short.values = short.values.filter((_, i) => i !== 0 || dropped.e.version !== 1);
    rejects(vhist(short, l0), Reason.WINDOW_NOT_BRACKETING);
    // Window starting after the newest version in that table.
    const late = clone(h);
    late.body.windows = late.body.windows.map((x) => (x.table === t.index ? w.window(t, first + 2, Math.min(lastOfKey + 1, t.flat.length - 1)) : x));
    rejects(vhist(late, l0), Reason.WINDOW_NOT_BRACKETING);
    // A whole table dropped.
    const noTable = clone(h);
    noTable.body.windows = noTable.body.windows.filter((x) => x.table !== t.index);
    rejects(vhist(noTable, l0), Reason.MISSING_WINDOW);
    // The complete, honest proof of [0, 2] claimed for [0, max]: fine windows, a lowered bound.
    const low = w.historyProof(S.cert, l0, 0, 2);
    accepts(vhist(low, l0, { maxVersion: 2 }));
    rejects(vhist(low, l0), Reason.HISTORY_BOUND);
    rejects(vhist(low, l0, { limit: 1 }), Reason.HISTORY_BOUND);
    // The bound alone lowered: the windows then show entries past the interval.
    const low2 = clone(h);
    low2.bound = 2;
    low2.values = low2.values.slice(0, 2);
    rejects(vhist(low2, l0), Reason.UNEXPECTED_ELEMENT);
    // A value dropped.
    const fewer = clone(h);
    fewer.values.pop();
    rejects(vhist(fewer, l0), Reason.VALUE_MISMATCH);
  });

  it('rejects an injected entry or value', async () => {
    const { l0 } = picks();
    const w = S.world;
    const h = await honestHistory(l0);
    const more = clone(h);
    more.values.push(enc('injected'));
    rejects(vhist(more, l0), Reason.VALUE_MISMATCH);
    // A fabricated entry inside a window, in sort order (version between two real ones is impossible
    // when versions are dense, so add a newer one in front of the newest).
    const t = w.refGet(l0, MAX).answerTable!;
    const inj = clone(h);
    const win = windowOf(inj.body, t);
    const blk = win.blocks.find((b) => b.entries.some((e) => equalBytes(e.key, l0)))!;
    const at = blk.entries.findIndex((e) => equalBytes(e.key, l0));
    const newest = blk.entries[at];
    blk.entries.splice(at, 0, { ...clone(newest), version: newest.version + 1, seq: newest.seq + 1, valueHash: H.valueHash(enc('injected')) });
    blk.entryCount += 1;
    inj.values.push(enc('injected'));
    rejects(vhist(inj, l0), Reason.PROOF_SIZE);
    // The same, keeping the block's entry count (the range then runs one past where it was).
    const inj2 = clone(h);
    const b2 = windowOf(inj2.body, t).blocks.find((b) => b.entries.some((e) => equalBytes(e.key, l0)))!;
    const at2 = b2.entries.findIndex((e) => equalBytes(e.key, l0));
    b2.entries.splice(at2, 1, { ...clone(b2.entries[at2]), version: b2.entries[at2].version + 1, valueHash: H.valueHash(enc('injected')) });
    inj2.values[inj2.values.length - 1] = enc('injected');
    rejects(vhist(inj2, l0), Reason.ROOT_MISMATCH);
  });

  it('rejects reordered entries, values and windows', async () => {
    const { l0 } = picks();
    const w = S.world;
    const h = await honestHistory(l0);
    const vals = clone(h);
    [vals.values[0], vals.values[1]] = [vals.values[1], vals.values[0]];
    rejects(vhist(vals, l0), Reason.VALUE_MISMATCH);
    const t = w.tables.filter((x) => x.flat.filter((e) => equalBytes(e.e.key, l0)).length >= 2).pop()!;
    const ent = clone(h);
    const blk = windowOf(ent.body, t).blocks.find((b) => b.entries.filter((e) => equalBytes(e.key, l0)).length >= 2)!;
    const i = blk.entries.findIndex((e) => equalBytes(e.key, l0));
    [blk.entries[i], blk.entries[i + 1]] = [blk.entries[i + 1], blk.entries[i]];
    rejects(vhist(ent, l0), Reason.ENTRY_ORDER);
    const win = clone(h);
    expect(win.body.windows.length).toBeGreaterThanOrEqual(2);
    win.body.windows.reverse();
    rejects(vhist(win, l0), Reason.ENTRY_ORDER);
  });

  it('rejects duplicated entries and windows', async () => {
    const { l0 } = picks();
    const w = S.world;
    const h = await honestHistory(l0);
    const t = w.refGet(l0, MAX).answerTable!;
    const dupWin = clone(h);
    const idx = dupWin.body.windows.findIndex((x) => x.table === t.index);
    dupWin.body.windows.splice(idx, 0, clone(dupWin.body.windows[idx]));
    rejects(vhist(dupWin, l0), Reason.ENTRY_ORDER);
    // An entry repeated inside its block, with the block's count raised to match.
    const dupEnt = clone(h);
    const blk = windowOf(dupEnt.body, t).blocks.find((b) => b.entries.some((e) => equalBytes(e.key, l0)))!;
    const at = blk.entries.findIndex((e) => equalBytes(e.key, l0));
    blk.entries.splice(at, 0, clone(blk.entries[at]));
    blk.entryCount += 1;
    dupEnt.values.push(dupEnt.values[dupEnt.values.length - 1]);
    rejects(vhist(dupEnt, l0), Reason.PROOF_SIZE);
    // A duplicated value (same version twice) is an extra value.
    const dupVal = clone(h);
    dupVal.values.push(dupVal.values[dupVal.values.length - 1]);
    rejects(vhist(dupVal, l0), Reason.VALUE_MISMATCH);
    // A descriptor listed twice.
    const dupDesc = clone(h);
    dupDesc.body.descriptors.splice(1, 0, clone(dupDesc.body.descriptors[1]));
    rejects(vhist(dupDesc, l0), Reason.ENTRY_ORDER);
  });

  it('rejects bounds and limits that do not match the answer (HISTORY_BOUND)', async () => {
    const { gap, l0 } = picks();
    const versions = S.world.versionsOf(gap).map((x) => x.p.e.version).sort((a, b) => a - b);
    const cut = versions.findIndex((v) => v > 1000); // the first explicit version
    expect(cut).toBeGreaterThan(1);
    const limit = cut; // the limit cuts just before the jump to explicit versions
    const h = await honestHistory(gap, { limit });
    expect(h.bound).toBe(versions[limit - 1]);
    accepts(vhist(h, gap, { limit }));
    rejects(vhist(h, gap, { limit: limit - 1 }), Reason.HISTORY_BOUND);
    rejects(vhist(h, gap, { limit: limit + 1 }), Reason.HISTORY_BOUND);
    rejects(vhist(h, gap), Reason.HISTORY_BOUND);
    // The bound moved inside the version gap: still `limit` entries, but not where the answer was cut.
    const moved = clone(h);
    moved.bound = versions[limit] - 1;
    rejects(vhist(moved, gap, { limit }), Reason.HISTORY_BOUND);
    const above = clone(h);
    above.bound = MAX;
    rejects(vhist(above, gap, { limit, maxVersion: 2000 }), Reason.HISTORY_BOUND);
    const below = await honestHistory(l0, { minVersion: 2 });
    below.bound = 1;
    rejects(vhist(below, l0, { minVersion: 2 }), Reason.HISTORY_BOUND);
  });

  it('rejects a history proof for another interval or key', async () => {
    const { l0, l2 } = picks();
    const h = await honestHistory(l0, { minVersion: 3 });
    rejects(vhist(h, l0, { minVersion: 1 }), Reason.WINDOW_NOT_BRACKETING);
    rejects(vhist(h, l0, { minVersion: 3, maxVersion: 3 }), Reason.HISTORY_BOUND);
    const all = await honestHistory(l0);
    // l0's read shows level 1 around l0, not around l2.
    rejects(vhist(all, l2), Reason.MISSING_TABLE);
    const next = enc(`${new TextDecoder().decode(l0)}5`);
    rejects(vhist(all, next), Reason.UNEXPECTED_ELEMENT); // l0's entries all lie before `next`: too many before
  });
});

describe('leaf/node confusion and odd-node duplication', () => {
  it('entry tree: a shorter block whose "leaf" would have to be an inner node (ROOT_MISMATCH)', async () => {
    const { l2 } = picks();
    const w = S.world;
    const p = await honestGet(l2);
    const t = w.refGet(l2, MAX).answerTable!;
    const win = windowOf(p.body, t);
    const blk = win.blocks[win.blocks.length - 1];
    const n = blk.entryCount;
    const leaves = t.leaves[blk.index];
    // If the revealed entry sat at index 2 of a 3-entry block and an inner node could stand for
    // leaves [2, 4), the tree over [0,2) | node would hash like the real 4-leaf subtree.
    expect(n).toBeGreaterThanOrEqual(4);
    const fake = clone(p);
    const fb = windowOf(fake.body, t).blocks.at(-1)!;
    fb.entryCount = n - 1;
    fb.offset = Math.min(blk.offset, n - 2);
    fb.entries = fb.entries.slice(0, n - 1 - fb.offset);
    fb.proof = [];
    const src = _arraySource(H, Domain.ENTRY_NODE, [...leaves.slice(0, n - 2), H.node(Domain.ENTRY_NODE, leaves[n - 2], leaves[n - 1])]);
    fb.proof = _rangePath(src, fb.offset, fb.offset + fb.entries.length, n - 1) as Uint8Array[];
    rejects(vget(fake, l2), Reason.ROOT_MISMATCH);
  });

  it('block tree: a table with an odd number of blocks cannot gain a duplicated last block (ROOT_MISMATCH)', async () => {
    const w = S.world;
    // A get of the table's last entry at that entry's version: the table answers it.
    const at = (x: (typeof w.tables)[number]) => x.flat[x.flat.length - 1].e;
    const t = pick(
      'a table with an odd block count that answers a get of its last entry',
      w.tables,
      (x) => x.blocks.length % 2 === 1 && x.blocks.length > 1 && x.d.level > 0 && w.refGet(at(x).key, at(x).version).answerTable === x,
    );
    const key = at(t).key;
    const version = at(t).version;
    const p = await honestGet(key, version);
    const r = w.refGet(key, version);
    expect(r.answerTable).toBe(t);
    // Claim one more block, a copy of the last, and answer "absent past the end" from it.
    const fake = clone(p);
    const win = windowOf(fake.body, t);
    const last = t.blocks.length - 1;
    // The copy reveals only the last entry: a get window holds at most two, and a longer one is
    // refused before any hashing (UNEXPECTED_ELEMENT), which would not test the block tree.
    const dup = w.window(t, t.flat.length - 1, t.flat.length - 1).blocks[0];
    win.blockCount = t.blocks.length + 1;
    win.blocks = [{ ...dup, index: last + 1 }];
    const fakeRoots = [...t.blockRoots, t.blockRoots[last]];
    win.blockProof = _rangePath(_arraySource(H, Domain.BLOCK_NODE, fakeRoots), last + 1, last + 2, fakeRoots.length) as Uint8Array[];
    rejects(vget(fake, key, version), Reason.ROOT_MISMATCH);
  });

  it('entry tree: a block with an odd entry count cannot gain a duplicated last entry (ROOT_MISMATCH)', async () => {
    const w = S.world;
    const t = pick('a table whose last block has an odd entry count', w.tables, (x) => x.blocks[x.blocks.length - 1].length % 2 === 1 && x.blocks[x.blocks.length - 1].length > 1);
    // Version 0 of the table's last key: no answer anywhere, so the read consults this table and
    // its window is the table's last entry, closing the table.
    const key = t.flat[t.flat.length - 1].e.key;
    const p = await honestGet(key, 0);
    expect(w.refGet(key, 0).consulted).toContain(t);
    const fake = clone(p);
    const win = windowOf(fake.body, t);
    expect(win.blocks.length).toBe(1);
    const b = win.blocks[0];
    const leaves = t.leaves[b.index];
    const fakeLeaves = [...leaves, leaves[leaves.length - 1]];
    b.entryCount = fakeLeaves.length;
    b.offset = leaves.length;
    b.entries = [clone(t.blocks[b.index][leaves.length - 1])];
    b.proof = _rangePath(_arraySource(H, Domain.ENTRY_NODE, fakeLeaves), leaves.length, fakeLeaves.length, fakeLeaves.length) as Uint8Array[];
    win.blocks = [b];
    rejects(vget(fake, key, 0), Reason.ROOT_MISMATCH);
  });

  it('master tree: no duplicated descriptor, no descriptor at another position, no moved level count', async () => {
    const { l2 } = picks();
    const w = S.world;
    const p = await honestGet(l2);
    // Duplicate the last descriptor as an extra table at the end of the last level.
    const lastLevel = Math.max(...w.tables.map((t) => t.d.level));
    const dup = clone(p);
    const lastDesc = w.tables[w.tables.length - 1].d;
    dup.body.levelCounts[lastLevel] += 1;
    dup.body.descriptors.push({ ...clone(lastDesc), position: lastDesc.position + 1 });
    dup.body.masterProof = _multiproof(
      _arraySource(H, Domain.MASTER_NODE, [...w.descHashes, w.descHashes[w.descHashes.length - 1]]),
      dup.body.descriptors.map((d) => w.offsets[d.level] + d.position),
      w.tables.length + 1,
    );
    rejects(vget(dup, l2), Reason.ROOT_MISMATCH);
    // The same extra descriptor when the read does not look at it for its level still breaks the root.
    const dup2 = clone(p);
    dup2.body.levelCounts[lastLevel] += 1;
    dup2.body.masterProof = _multiproof(
      _arraySource(H, Domain.MASTER_NODE, [...w.descHashes, w.descHashes[w.descHashes.length - 1]]),
      dup2.body.descriptors.map((d) => w.offsets[d.level] + d.position),
      w.tables.length + 1,
    );
    rejects(vget(dup2, l2), Reason.ROOT_MISMATCH);
    // A descriptor moved to another position.
    const moved = clone(p);
    const d2 = moved.body.descriptors.find((d) => d.level === 2)!;
    d2.position = (d2.position + 1) % w.counts[2];
    remaster(moved.body);
    rejects(vget(moved, l2), Reason.ROOT_MISMATCH);
    // One table moved from level 2 to level 1 in the counts (same total, same multiproof shape).
    const counts = clone(p);
    counts.body.levelCounts[1] += 1;
    counts.body.levelCounts[2] -= 1;
    const offs = levelOffsets(counts.body.levelCounts);
    counts.body.masterProof = _multiproof(
      _arraySource(H, Domain.MASTER_NODE, w.descHashes),
      counts.body.descriptors.map((d) => offs[d.level] + d.position),
      w.tables.length,
    );
    rejects(vget(counts, l2), Reason.ROOT_MISMATCH);
    // Counts that only differ by 2^32 (the u32 fields of the layouts cannot hold them).
    const wrap = clone(p);
    wrap.body.levelCounts[6] += 2 ** 32;
    rejects(vget(wrap, l2), Reason.MALFORMED_INPUT);
  });
});

describe('descriptor-level attacks', () => {
  it('rejects a missing level-0 descriptor, even of a table that does not cover the key (MISSING_TABLE)', async () => {
    const { l0 } = picks();
    const w = S.world;
    const p = await honestGet(l0);
    for (const t of w.level(0)) {
      const q = clone(p);
      q.body.descriptors = q.body.descriptors.filter((d) => !(d.level === 0 && d.position === t.d.position));
      q.body.windows = q.body.windows.filter((x) => x.table !== t.index);
      remaster(q.body);
      if (q.body.windows.length === 0) delete q.value;
      rejects(vget(q, l0), Reason.MISSING_TABLE);
    }
  });

  it('rejects a claimed gap where a covering table exists (MISSING_TABLE)', async () => {
    const { l2 } = picks();
    const w = S.world;
    const p = await honestGet(l2);
    const t = w.refGet(l2, MAX).answerTable!;
    const l2t = w.level(2);
    for (const reveal of [
      [t.d.position - 1, t.d.position + 1],
      [t.d.position - 1, t.d.position],
      [t.d.position, t.d.position + 1],
      [t.d.position + 1],
      [t.d.position - 1],
    ]) {
      if (reveal.some((x) => x < 0 || x >= l2t.length)) continue;
      const q = clone(p);
      q.body.descriptors = [...q.body.descriptors.filter((d) => d.level !== 2), ...reveal.map((x) => l2t[x].d)];
      q.body.windows = q.body.windows.filter((x) => x.table !== t.index);
      delete q.value;
      remaster(q.body);
      rejects(vget(q, l2), Reason.MISSING_TABLE);
    }
  });

  it('rejects the honest gap proof of level 1 made non-adjacent or one-sided (MISSING_TABLE)', async () => {
    const { l2 } = picks();
    const w = S.world;
    const p = await honestGet(l2);
    const l1 = p.body.descriptors.filter((d) => d.level === 1);
    expect(l1.length).toBe(2);
    const one = clone(p);
    one.body.descriptors = one.body.descriptors.filter((d) => !(d.level === 1 && d.position === l1[1].position));
    remaster(one.body);
    rejects(vget(one, l2), Reason.MISSING_TABLE);
    if (l1[1].position + 1 < w.counts[1]) {
      const skip = clone(p);
      skip.body.descriptors = skip.body.descriptors.map((d) => (d.level === 1 && d.position === l1[1].position ? w.level(1)[d.position + 1].d : d));
      remaster(skip.body);
      rejects(vget(skip, l2), Reason.MISSING_TABLE);
    }
  });

  it('rejects reordered windows or descriptors (ENTRY_ORDER)', async () => {
    const { l2 } = picks();
    const p = await honestGet(l2);
    expect(p.body.windows.length).toBeGreaterThanOrEqual(2);
    const w = clone(p);
    w.body.windows.reverse();
    rejects(vget(w, l2), Reason.ENTRY_ORDER);
    const d = clone(p);
    d.body.descriptors.reverse();
    rejects(vget(d, l2), Reason.ENTRY_ORDER);
  });

  it('rejects windows that do not bracket the searched position, or reach too far', async () => {
    const { l0, l2 } = picks();
    const w = S.world;
    const r = w.refGet(l0, MAX);
    const t = r.answerTable!;
    const pos = t.flat.indexOf(r.answer!);
    const p = await honestGet(l0);
    const set = (win: TableWindow): GetProof => {
      const q = clone(p);
      q.body.windows = q.body.windows.map((x) => (x.table === t.index ? win : x));
      return q;
    };
    accepts(vget(set(w.window(t, pos - 1, pos)), l0));
    rejects(vget(set(w.window(t, pos, pos)), l0), Reason.WINDOW_NOT_BRACKETING); // predecessor dropped
    rejects(vget(set(w.window(t, pos - 1, pos - 1)), l0), Reason.WINDOW_NOT_BRACKETING); // answer dropped
    rejects(vget(set(w.window(t, pos - 2, pos)), l0), Reason.UNEXPECTED_ELEMENT); // two before
    rejects(vget(set(w.window(t, pos - 1, pos + 1)), l0), Reason.UNEXPECTED_ELEMENT); // one past
    // A non-covering table's window in a history proof: successor dropped.
    const h = await honestHistory(l2);
    const t2 = w.refGet(l2, MAX).answerTable!;
    const start = w.seek(t2, l2, MAX);
    const end = lastIndexOfKey(t2, l2);
    const hq = clone(h);
    hq.body.windows = hq.body.windows.map((x) => (x.table === t2.index ? w.window(t2, start - 1, end) : x));
    rejects(vhist(hq, l2), end === t2.flat.length - 1 ? Reason.ENTRY_ORDER : Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects windows and descriptors the read does not reach (UNEXPECTED_ELEMENT)', async () => {
    const { l0, l2 } = picks();
    const w = S.world;
    const p = await honestGet(l0);
    // A window for a level-0 table that does not cover the key.
    const nonCovering = w.level(0).find((t) => !w.covers(t, l0));
    if (nonCovering) {
      const q = clone(p);
      q.body.windows.push(w.window(nonCovering, 0, 0));
      q.body.windows.sort((a, b) => a.table - b.table);
      rejects(vget(q, l0), Reason.UNEXPECTED_ELEMENT);
    }
    // A window for a level-0 table after the one that answered.
    const r = w.refGet(l2, MAX);
    const pl2 = await honestGet(l2);
    // A descriptor and window of the next level, past the answer.
    const answerLevel = w.refGet(l0, MAX).answerTable!.d.level;
    const deeperT = w.level(answerLevel + 1).find((t) => w.covers(t, l0))!;
    const extra = clone(p);
    extra.body.descriptors.push(deeperT.d);
    remaster(extra.body);
    rejects(vget(extra, l0), Reason.UNEXPECTED_ELEMENT);
    const pos = w.seek(deeperT, l0, MAX);
    extra.body.windows.push(w.window(deeperT, pos - 1, pos));
    rejects(vget(extra, l0), Reason.UNEXPECTED_ELEMENT);
    // A window with a table index outside the revealed set.
    const stray = clone(pl2);
    const l1t = w.level(1)[0];
    stray.body.windows.push({ ...w.window(l1t, 0, 0) });
    stray.body.windows.sort((a, b) => a.table - b.table);
    rejects(vget(stray, l2), Reason.UNEXPECTED_ELEMENT);
    expect(r.answer).toBeDefined();
  });

  it('rejects tampered descriptors and a window retargeted to another table', async () => {
    const { l2 } = picks();
    const w = S.world;
    const p = await honestGet(l2);
    const t = w.refGet(l2, MAX).answerTable!;
    const range = clone(p);
    const d = range.body.descriptors.find((x) => x.level === t.d.level && x.position === t.d.position)!;
    d.largest = d.smallest.slice();
    rejects(vget(range, l2), Reason.ROOT_MISMATCH);
    const cnt = clone(p);
    cnt.body.descriptors.find((x) => x.level === t.d.level && x.position === t.d.position)!.entryCount += 1;
    rejects(vget(cnt, l2), Reason.ROOT_MISMATCH);
    // The answering table's window replaced by a window of another table of the same level.
    const other = w.level(t.d.level).find((x) => x !== t)!;
    const ret = clone(p);
    ret.body.windows = ret.body.windows.map((x) => (x.table === t.index ? { ...w.window(other, 0, 1), table: t.index } : x));
    rejects(vget(ret, l2), Reason.ROOT_MISMATCH);
    const lvl = clone(p);
    lvl.body.descriptors[0].level = 9;
    rejects(vget(lvl, l2), Reason.MALFORMED_INPUT);
    const pos = clone(p);
    pos.body.descriptors[0].position = 1000;
    rejects(vget(pos, l2), Reason.INDEX_OUT_OF_RANGE);
  });

  it('rejects windows with non-consecutive or partially revealed blocks (ENTRY_ORDER)', async () => {
    const w = S.world;
    const t = pick('a table with at least three blocks', w.tables, (x) => x.blocks.length >= 3 && x.d.level > 0);
    // A get whose window spans a block boundary: the first entry of block 1.
    const i = t.flat.findIndex((x) => x.b === 1);
    const key = t.flat[i].e.key;
    const version = t.flat[i].e.version;
    const p = await honestGet(key, version);
    const win = windowOf(p.body, t);
    expect(win.blocks.length).toBe(2);
    const gapWin = clone(p);
    windowOf(gapWin.body, t).blocks[1].index += 1;
    rejects(vget(gapWin, key, version), Reason.ENTRY_ORDER);
    // Block 0 revealed from one entry earlier but not to its end.
    const partial = clone(p);
    const wide = w.window(t, i - 2, i);
    const b0 = wide.blocks[0];
    expect(b0.entries.length).toBe(2);
    b0.entries = b0.entries.slice(0, 1);
    b0.proof = _rangePath(_arraySource(H, Domain.ENTRY_NODE, t.leaves[0]), b0.offset, b0.offset + 1, b0.entryCount) as Uint8Array[];
    partial.body.windows = partial.body.windows.map((x) => (x.table === t.index ? wide : x));
    rejects(vget(partial, key, version), Reason.ENTRY_ORDER);
  });
});

describe('malformed input never throws', () => {
  it('returns MALFORMED_INPUT (or a precise reason) for garbage instead of throwing', async () => {
    const { l0 } = picks();
    const p = await honestGet(l0);
    const cases: Array<[unknown, Reason]> = [
      [null, Reason.MALFORMED_INPUT],
      [{}, Reason.MALFORMED_INPUT],
      [{ certificate: p.certificate }, Reason.MALFORMED_INPUT],
      [{ ...clone(p), body: { ...clone(p.body), levelCounts: [1, 2] } }, Reason.MALFORMED_INPUT],
      [{ ...clone(p), body: { ...clone(p.body), windows: 'x' } }, Reason.MALFORMED_INPUT],
      [{ ...clone(p), certificate: null }, Reason.MALFORMED_INPUT],
    ];
    for (const [bad, reason] of cases) rejects(verifyGetProof(bad as GetProof, { key: l0 }, { trust: S.trust }), reason);
    const kind = clone(p);
    kind.body.windows[0].blocks[0].entries[0].kind = 7 as Kind;
    rejects(vget(kind, l0), Reason.MALFORMED_INPUT);
    const neg = clone(p);
    neg.body.windows[0].blocks[0].entries[0].version = -1;
    rejects(vget(neg, l0), Reason.MALFORMED_INPUT);
    const nullBlock = clone(p);
    (nullBlock.body.windows[0].blocks as unknown[])[0] = null;
    rejects(vget(nullBlock, l0), Reason.MALFORMED_INPUT);
    rejects(verifyGetProof(p, { key: new Uint8Array(0) }, { trust: S.trust }), Reason.MALFORMED_INPUT);
    rejects(verifyGetProof(p, { key: l0, version: -1 }, { trust: S.trust }), Reason.MALFORMED_INPUT);
    rejects(verifyGetProof(p, { key: l0 }, { trust: { publicKeys: [], quorum: 1 } }), Reason.INVALID_TRUST_POLICY);
    rejects(verifyHistoryProof(null as unknown as HistoryProof, { key: l0 }, { trust: S.trust }), Reason.MALFORMED_INPUT);
    rejects(verifyHistoryProof(clone(p) as unknown as HistoryProof, { key: l0, minVersion: 5, maxVersion: 4 }, { trust: S.trust }), Reason.MALFORMED_INPUT);
    rejects(verifyHistoryProof(clone(p) as unknown as HistoryProof, { key: l0, limit: 0 }, { trust: S.trust }), Reason.MALFORMED_INPUT);
    expect(() => verifyGetProof(p, undefined as unknown as { key: Uint8Array }, undefined as unknown as CheckpointExpectation)).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// A compromised signer lies about descriptor key ranges (docs/proofs.md §8.12, edge proofs).

const lget = (p: GetProof, key: Uint8Array, edges: boolean): Verified => verifyGetProof(p, { key, edges }, { trust: liarTrust });
const lhist = (p: HistoryProof, key: Uint8Array, edges: boolean): Verified => verifyHistoryProof(p, { key, edges }, { trust: liarTrust });
/** A descriptor of `t` shrunk so that it no longer covers `key` (from above if possible, else from below). */
function shrunk(t: WTable, key: Uint8Array): TableDescriptor {
  const after = ikAfter(t, key);
  if (after) return { ...t.d, smallest: after };
  const before = ikBefore(t, key);
  expect(before, 'table has entries on one side of the key').toBeDefined();
  return { ...t.d, largest: before! };
}

describe('range lies by a compromised signer (edge proofs)', () => {
  /** Honest answer, then the lie: accepted without edges (with a wrong answer), rejected with them. */
  function getLie(key: Uint8Array, forged: World, honestVersion: number): void {
    const honest = S.world.getProof(signedBy(S.world), key, MAX, true);
    expect(answerOf(lget(honest, key, true))).toMatch(new RegExp(`@${honestVersion}$`));
    // Without edge proofs the lie passes: an older version (or none) comes back as the newest.
    const old = lget(forged.getProof(signedBy(forged), key), key, false);
    expect(old.ok, 'the lie passes when edges are not required (documented, §8.13)').toBe(true);
    expect(answerOf(old)).not.toMatch(new RegExp(`@${honestVersion}$`));
    // Required: the edge window shows the real first/last entry, which is not the claimed one.
    rejects(lget(forged.getProof(signedBy(forged), key, MAX, true), key, true), Reason.RANGE_MISMATCH);
    // And leaving the edge window out is no way around it.
    const noEdge = forged.getProof(signedBy(forged), key);
    rejects(lget(noEdge, key, true), Reason.MISSING_WINDOW);
  }

  it('level 0: a table holding the newest version claims a range without the key (RANGE_MISMATCH)', () => {
    const { l0 } = picks();
    const r = S.world.refGet(l0, MAX);
    const t = r.answerTable!;
    expect(t.d.level).toBe(0);
    for (const d of [{ ...t.d, largest: ikBefore(t, l0)! }, { ...t.d, smallest: ikAfter(t, l0)! }]) {
      getLie(l0, S.world.withDescriptor(t.index, d), r.answer!.e.version);
    }
  });

  it('level 0: an edge window that is not at the table edge is refused (WINDOW_NOT_BRACKETING)', () => {
    const { l0 } = picks();
    const t = S.world.refGet(l0, MAX).answerTable!;
    const d = { ...t.d, largest: ikBefore(t, l0)! };
    const forged = S.world.withDescriptor(t.index, d);
    const p = forged.getProof(signedBy(forged), l0, MAX, true);
    // The attacker shows the claimed "last" entry instead of the real one: it is not at the end.
    const at = t.flat.findIndex((x) => equalBytes(internalKeyOf(x.e), d.largest));
    p.body.windows = p.body.windows.map((w) => (w.table === t.index ? S.world.window(t, at, at) : w));
    rejects(lget(p, l0, true), Reason.WINDOW_NOT_BRACKETING);
  });

  it('deeper level: the covering table shrinks to fake a gap (RANGE_MISMATCH)', () => {
    const { l1 } = picks();
    const r = S.world.refGet(l1, MAX);
    const t = r.answerTable!;
    expect(t.d.level).toBe(1);
    getLie(l1, S.world.withDescriptor(t.index, shrunk(t, l1)), r.answer!.e.version);
  });

  it('deeper level: a neighbour widens its range over the key to hide the real table (RANGE_MISMATCH)', () => {
    const w = S.world;
    const key = pick('a key answered by a deeper table that is not the first of its level', w.keys(), (k) => {
      const r = w.refGet(k, MAX);
      return !!r.answerTable && r.answerTable.d.level >= 1 && r.answerTable.d.position > 0;
    });
    const r = w.refGet(key, MAX);
    const left = w.level(r.answerTable!.d.level)[r.answerTable!.d.position - 1];
    const widened = { ...left.d, largest: internalKeyOf({ key, version: 0, seq: 0, kind: Kind.PUT }) };
    const forged = w.withDescriptor(left.index, widened);
    expect(forged.refGet(key, MAX).consulted.map((x) => x.index)).toContain(left.index);
    getLie(key, forged, r.answer!.e.version);
  });

  it('history: a shrunk range hides versions; caught only with edge proofs', () => {
    const { l0 } = picks();
    const t = S.world.refGet(l0, MAX).answerTable!;
    const forged = S.world.withDescriptor(t.index, { ...t.d, largest: ikBefore(t, l0)! });
    const honest = lhist(S.world.historyProof(signedBy(S.world), l0, 0, MAX, true), l0, true);
    accepts(honest);
    const lie = lhist(forged.historyProof(signedBy(forged), l0, 0, MAX), l0, false);
    accepts(lie);
    const count = (v: Verified) => (v as unknown as { entries: unknown[] }).entries.length;
    expect(count(lie), 'without edges the lie drops versions').toBeLessThan(count(honest));
    rejects(lhist(forged.historyProof(signedBy(forged), l0, 0, MAX, true), l0, true), Reason.RANGE_MISMATCH);
    rejects(lhist(forged.historyProof(signedBy(forged), l0, 0, MAX), l0, true), Reason.MISSING_WINDOW);
  });

  it('modes do not mix: edge windows are unexpected without edges, and required with them', async () => {
    const { l2, absent } = picks();
    for (const key of [l2, absent]) {
      const plain = (await S.db.getWithProof(key)).proof;
      const withEdges = (await S.db.getWithProof(key, { edges: true })).proof;
      expect(withEdges.body.windows.length).toBeGreaterThan(plain.body.windows.length);
      accepts(vget(plain, key));
      accepts(verifyGetProof(withEdges, { key, edges: true }, { trust: S.trust }));
      rejects(vget(withEdges, key), Reason.UNEXPECTED_ELEMENT);
      rejects(verifyGetProof(plain, { key, edges: true }, { trust: S.trust }), Reason.MISSING_WINDOW);
      // An edge window of two entries is refused, too.
      const wide = clone(withEdges);
      const edgeWin = wide.body.windows.find((w) => w.blocks.length === 1 && w.blocks[0].entries.length === 1 && w.blocks[0].index === 0 && w.blocks[0].offset === 0);
      expect(edgeWin, 'a first-entry edge window').toBeDefined();
      const t = S.world.tables[edgeWin!.table];
      Object.assign(edgeWin!, S.world.window(t, 0, 1));
      rejects(verifyGetProof(wide, { key, edges: true }, { trust: S.trust }), Reason.UNEXPECTED_ELEMENT);
    }
  });
});

describe('structural limits before any hashing', () => {
  /** A hasher that counts its SHA-256 calls. */
  function counting(): { hasher: Hasher; calls: () => number } {
    let n = 0;
    return {
      hasher: new Hasher((d) => {
        n++;
        return H.sha256(d);
      }),
      calls: () => n,
    };
  }

  it('refuses oversized windows, descriptor lists, master proofs and value lists with zero hashes', async () => {
    const { l0 } = picks();
    const g = await honestGet(l0);
    const h = await honestHistory(l0, { limit: 2 });
    const t = S.world.tables.find((x) => x.index === g.body.windows[0].table)!;
    const big: Array<[string, () => Verified, Reason]> = [
      ['a get window of a whole table', () => {
        const p = clone(g);
        p.body.windows[0] = S.world.window(t, 0, t.flat.length - 1);
        return vget(p, l0, undefined, { hasher: c.hasher });
      }, Reason.UNEXPECTED_ELEMENT],
      ['100 000 descriptors', () => {
        const p = clone(g);
        p.body.descriptors = Array.from({ length: 100_000 }, () => p.body.descriptors[0]);
        return vget(p, l0, undefined, { hasher: c.hasher });
      }, Reason.UNEXPECTED_ELEMENT],
      ['a master proof of 100 000 hashes', () => {
        const p = clone(g);
        p.body.masterProof = Array.from({ length: 100_000 }, () => new Uint8Array(32));
        return vget(p, l0, undefined, { hasher: c.hasher });
      }, Reason.PROOF_SIZE],
      ['more windows than descriptors', () => {
        const p = clone(g);
        p.body.windows = Array.from({ length: p.body.descriptors.length + 1 }, () => p.body.windows[0]);
        return vget(p, l0, undefined, { hasher: c.hasher });
      }, Reason.UNEXPECTED_ELEMENT],
      ['more history values than the limit', () => {
        const p = clone(h);
        p.values = Array.from({ length: 3 }, () => new Uint8Array(10));
        return vhist(p, l0, { limit: 2 }, { hasher: c.hasher });
      }, Reason.HISTORY_BOUND],
      ['a history window longer than the limit needs', () => {
        const p = clone(h);
        p.body.windows[0] = S.world.window(t, 0, Math.min(t.flat.length - 1, 20));
        return vhist(p, l0, { limit: 2 }, { hasher: c.hasher });
      }, Reason.UNEXPECTED_ELEMENT],
    ];
    let c = counting();
    for (const [what, run, reason] of big) {
      c = counting();
      const r = run();
      expect(r.ok ? 'accepted' : r.reason, what).toBe(reason);
      expect(c.calls(), `${what}: hashes before the rejection`).toBe(0);
    }
    // The honest proofs do hash (so the counter counts).
    c = counting();
    accepts(vget(g, l0, undefined, { hasher: c.hasher }));
    expect(c.calls()).toBeGreaterThan(10);
  });
});
