/**
 * Commit times in proofs (docs/proofs.md §1.1, §8.12 "Time windows"): a time altered in a proof,
 * a boundary entry omitted or misdated, a window page that hides a version inside the window, and
 * times that decrease with the version.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { Reason } from '../../proofs/errors.js';
import { verifyHistoryProof, type HistoryFacts, type HistoryProof } from '../../proofs/lsm_proof.js';
import { verifyGetProof } from '../../proofs/lsm_proof.js';
import { checkTimeOrder, windowHistory, type TimeWindow } from '../../proofs/lsm_time.js';
import { historyProofCodec } from '../../proofs/lsm_encoding.js';

const T = 1_800_000_000_000;
const key = new TextEncoder().encode('audit/1');
let db: ProofDB;
let dir: string;
let trust: { publicKeys: Uint8Array[]; quorum: number };

/** Versions 1..10 of `audit/1` at T + 1000·v (version 6 and 7 share a time), over several tables. */
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'proofkv-times-'));
  db = await ProofDB.open(dir, { writeBufferSize: 4096, compactionThread: 'inline' });
  for (let v = 1; v <= 10; v++) {
    await db.put(key, `v${v}`, { time: T + 1000 * (v === 7 ? 6 : v) });
    await db.put(`other/${v}`, 'x', { time: T + 1000 * v });
    if (v % 4 === 0) await db.checkpoint();
  }
  await db.checkpoint();
  trust = { publicKeys: [db.publicKey()], quorum: 1 };
});
afterAll(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

const clone = (p: HistoryProof): HistoryProof => historyProofCodec.decode(historyProofCodec.encode(p));
const verify = (p: HistoryProof, minVersion: number, limit?: number) => verifyHistoryProof(p, { key, minVersion, limit }, { trust });
const facts = (p: HistoryProof, minVersion: number, limit?: number): HistoryFacts => {
  const r = verify(p, minVersion, limit);
  expect(r, JSON.stringify(r)).toMatchObject({ ok: true });
  return r as HistoryFacts;
};
/** The server's honest page for a window: from the newest version committed before `since`. */
const page = async (min: number, limit?: number) => (await db.getVersionHistoryWithProof(key, { minVersion: min, limit })).proof;
/** Every entry leaf of a proof, wherever it sits in the windows. */
const leaves = (p: HistoryProof) => p.body.windows.flatMap((w) => w.blocks.flatMap((b) => b.entries));

describe('commit times in proofs', () => {
  it('proofs carry the times the writes got, and get proofs too', async () => {
    const f = facts(await page(0), 0);
    expect(f.entries.map((e) => e.time)).toEqual([1, 2, 3, 4, 5, 6, 6, 8, 9, 10].map((v) => T + 1000 * v));
    const g = await db.getWithProof(key, { version: 3 });
    const r = verifyGetProof(g.proof, { key, version: 3 }, { trust });
    expect(r).toMatchObject({ ok: true, entry: { version: 3, time: T + 3000 } });
  });

  it('rejects a time altered in a proof (ROOT_MISMATCH): the leaf commits to it', async () => {
    const p = clone(await page(0));
    const target = leaves(p).find((e) => e.key.length === key.length && e.version === 5)!;
    for (const t of [target.time + 1, target.time - 1000, 0]) {
      const q = clone(p);
      leaves(q).find((e) => e.key.length === key.length && e.version === 5)!.time = t;
      expect(verify(q, 0)).toMatchObject({ ok: false, reason: Reason.ROOT_MISMATCH });
    }
  });

  it('a window page starting at its boundary entry is accepted and filtered; versions tied on a time stay together', async () => {
    // Window [T+6000, T+8000]: versions 6, 7 (both T+6000) and 8; the boundary is version 5.
    const w: TimeWindow = { since: T + 6000, until: T + 8000 };
    const r = windowHistory(facts(await page(5), 5), 0, 5, w);
    expect(r).toMatchObject({ ok: true, complete: true });
    if (r.ok) expect(r.entries.map((e) => e.version)).toEqual([6, 7, 8]);
  });

  it('rejects a page that omits the boundary entry (starts inside the window) with TIME_BOUNDARY', async () => {
    const w: TimeWindow = { since: T + 6000 };
    // The server starts at version 6 (committed in the window): versions 1..5 are not proven older.
    expect(windowHistory(facts(await page(6), 6), 0, 6, w)).toMatchObject({ ok: false, reason: Reason.TIME_BOUNDARY });
    // Or at version 7, hiding version 6 (same time as 7, inside the window).
    expect(windowHistory(facts(await page(7), 7), 0, 7, w)).toMatchObject({ ok: false, reason: Reason.TIME_BOUNDARY });
    // Without since, a page may not start above the asked version at all.
    expect(windowHistory(facts(await page(3), 3), 0, 3, { until: T + 9000 })).toMatchObject({ ok: false, reason: Reason.TIME_BOUNDARY });
    // Nor below it.
    expect(windowHistory(facts(await page(0), 0), 2, 0, w)).toMatchObject({ ok: false, reason: Reason.TIME_BOUNDARY });
  });

  it('rejects a misdated boundary entry: shown older than since, it no longer matches its leaf', async () => {
    // Version 6 is in the window; the server shows it as committed before since, to skip 1..5.
    const p = clone(await page(6));
    leaves(p).find((e) => e.key.length === key.length && e.version === 6)!.time = T + 5000;
    expect(verify(p, 6)).toMatchObject({ ok: false, reason: Reason.ROOT_MISMATCH });
  });

  it('a cut page inside the window is not complete; the next page continues; a page past until completes', async () => {
    const w: TimeWindow = { since: T + 2000, until: T + 8000 };
    const first = windowHistory(facts(await page(1, 3), 1, 3), 0, 1, w);
    expect(first).toMatchObject({ ok: true, complete: false });
    if (first.ok) expect(first.entries.map((e) => e.version)).toEqual([2, 3]);
    // A server that stops early cannot claim completeness: the client decides it from proven times.
    const next = windowHistory(facts(await page(4, 3), 4, 3), 4, 4, w);
    expect(next).toMatchObject({ ok: true, complete: false });
    const last = windowHistory(facts(await page(7, 3), 7, 3), 7, 7, w);
    expect(last).toMatchObject({ ok: true, complete: true });
    if (last.ok) expect(last.entries.map((e) => e.version)).toEqual([7, 8]);
  });

  it('rejects times that decrease with the version (TIME_ORDER), even if certified', () => {
    const e = (version: number, time: number) => ({ key, version, seq: version, time, kind: 'put' as const, value: new Uint8Array(0) });
    expect(checkTimeOrder([e(1, 5), e(2, 5), e(3, 9)])).toMatchObject({ ok: true });
    expect(checkTimeOrder([e(1, 5), e(2, 4)])).toMatchObject({ ok: false, reason: Reason.TIME_ORDER });
    const f = { entries: [e(1, 5), e(2, 9), e(3, 7)], bound: 3 } as unknown as HistoryFacts;
    expect(windowHistory(f, 0, 0, { since: 6 })).toMatchObject({ ok: false, reason: Reason.TIME_ORDER });
  });

  it('refuses malformed windows (MALFORMED_INPUT)', async () => {
    const f = facts(await page(0), 0);
    for (const w of [{ since: -1 }, { until: 1.5 }, { since: 10, until: 9 }, { since: '5' as unknown as number }]) {
      expect(windowHistory(f, 0, 0, w)).toMatchObject({ ok: false, reason: Reason.MALFORMED_INPUT });
    }
  });
});
