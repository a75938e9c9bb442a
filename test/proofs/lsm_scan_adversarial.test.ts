/**
 * Adversarial scan proofs (docs/proofs.md §8.9.1). The attacker is the server, as in
 * `lsm_adversarial.test.ts`: it knows every table of the checkpoint (a `World` read from disk),
 * builds windows over any entry range and multiproofs over any descriptor set, and re-signs only
 * with keys of its own. Each forgery starts from an honest proof that is first checked to verify,
 * and must be rejected with the reason that names what is wrong.
 *
 * Scenario tables (fixed, deterministic): three overlapping level-0 tables, a level 1 whose first
 * table holds the start of the scanned range, a level 2 of six tables across it, so a scan of
 * [key025, key075) consults every level-0 table, a run of two tables at level 1 (one of them only
 * a neighbour) and a run of five at level 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareBytes, equalBytes } from '../../proofs/bytes.js';
import { Reason, type Verified } from '../../proofs/errors.js';
import { Domain, Hasher, Kind, nobleHasher as H } from '../../proofs/hash.js';
import { type CheckpointExpectation, type LsmProofBody } from '../../proofs/lsm_proof.js';
import { keySuccessor, verifyScanProof, type ScanFacts, type ScanProof, type ScanQuery } from '../../proofs/lsm_scan.js';
import { _multiproof } from '../../proofs/multiproof.js';
import { _arraySource } from '../../proofs/tree.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { buildScenario, clone, dec, enc, ikAfter, ikBefore, liarTrust, SCENARIO_OPTIONS, signedBy, skey, STALE_SCAN, type Scenario, type WTable } from './lsm_helpers.js';

let S: Scenario;

beforeAll(async () => {
  const { dir, cleanup } = tempDir('proofkv-scan-adv-');
  S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
});
afterAll(async () => {
  await S?.cleanup();
});

/** The scanned range of most cases. */
const MID: ScanQuery = { start: enc(skey(25)), end: enc(skey(75)) };
const PAGE: ScanQuery = { ...MID, limit: 10 };

function vscan(p: ScanProof, q: ScanQuery, exp: Partial<CheckpointExpectation> = {}): Verified<ScanFacts> {
  return verifyScanProof(p, q, { trust: S.trust, ...exp });
}
function rejects(r: Verified, reason: Reason): void {
  expect(r.ok ? 'accepted' : `${r.reason}`, r.ok ? 'forged proof was accepted' : r.message).toBe(reason);
}
function accepts<T extends object>(r: Verified<T>): T {
  if (!r.ok) return expect.fail(`${r.reason}: ${r.message}`);
  return r;
}
async function honest(q: ScanQuery): Promise<ScanProof> {
  const { proof } = await S.db.scanWithProof(q);
  accepts(vscan(proof, q));
  return clone(proof);
}
const keysOf = (f: ScanFacts): string[] => f.entries.map((e) => dec(e.key));
const table = (i: number): WTable => S.world.tables[i];
/** Removes table `index`'s descriptor and window and rebuilds the master proof (what an attacker can always do). */
function dropTable(body: LsmProofBody, index: number): void {
  body.descriptors = body.descriptors.filter((d) => S.world.offsets[d.level] + d.position !== index);
  body.windows = body.windows.filter((w) => w.table !== index);
  remaster(body);
}
function remaster(body: LsmProofBody): void {
  const idx = body.descriptors.map((d) => S.world.offsets[d.level] + d.position);
  body.masterProof = _multiproof(_arraySource(H, Domain.MASTER_NODE, S.world.descHashes), idx, S.world.tables.length);
}
/** Flat position of `key`'s newest entry in `t`. */
const posOf = (t: WTable, key: string): number => t.flat.findIndex((x) => dec(x.e.key) === key);
/** The window of table `t` in a body. */
const win = (body: LsmProofBody, t: WTable) => {
  const i = body.windows.findIndex((w) => w.table === t.index);
  expect(i, `window of table ${t.index}`).toBeGreaterThanOrEqual(0);
  return i;
};

describe('scenario', () => {
  it('a scan of [key025, key075) consults level 0, a level-1 run with a neighbour and a level-2 run', () => {
    expect(S.world.tables.map((t) => `${t.d.level}:${dec(t.lo)}-${dec(t.hi)}`)).toEqual([
      '0:key040-key056', '0:key020-key070', '0:key010-key088',
      '1:key000-key028', '1:key086-key098', '1:key099-key099',
      '2:key000-key019', '2:key020-key035', '2:key036-key047', '2:key048-key059', '2:key060-key072', '2:key073-key085',
    ]);
    const r = S.world.refScan(MID.start, MID.end, undefined);
    expect(r.body.descriptors.map((d) => S.world.offsets[d.level] + d.position)).toEqual([0, 1, 2, 3, 4, 7, 8, 9, 10, 11]);
    expect(r.body.windows.map((w) => w.table)).toEqual([0, 1, 2, 3, 7, 8, 9, 10, 11]);
  });

  it('the honest answer is every key of the range with its newest version; tombstones only on request', async () => {
    const p = await honest(MID);
    const f = accepts(vscan(p, MID));
    const deleted = [30, 50, 60, 70].map(skey); // key040 was deleted, then written at an explicit version
    const live = Array.from({ length: 50 }, (_, i) => skey(25 + i)).filter((k) => !deleted.includes(k));
    expect(keysOf(f)).toEqual(live);
    expect(f.keysCovered).toBe(50);
    for (const e of f.entries) expect(e.version, dec(e.key)).toBe(S.world.versionsOf(e.key)[0].p.e.version);
    expect(dec(f.entries.find((e) => dec(e.key) === skey(40))!.value)).toBe('explicit-40');
    const q = { ...MID, includeTombstones: true };
    const t = accepts(vscan(await honest(q), q));
    expect(t.entries.filter((e) => e.kind === 'delete').map((e) => dec(e.key))).toEqual(deleted);
    rejects(vscan(p, q), Reason.VALUE_MISMATCH);
  });
});

describe('omitted keys', () => {
  it('rejects a dropped value, a shortened window, a dropped window, a dropped table', async () => {
    const p = await honest(MID);
    const a = clone(p);
    a.values.splice(3, 1);
    rejects(vscan(a, MID), Reason.VALUE_MISMATCH);
    // Level-2 table key037-key047 revealed only up to key045: no entry after the range.
    const t = table(8);
    const b = clone(p);
    b.body.windows[win(b.body, t)] = S.world.window(t, 0, posOf(t, skey(46)) - 1);
    rejects(vscan(b, MID), Reason.WINDOW_NOT_BRACKETING);
    const c = clone(p);
    c.body.windows.splice(win(c.body, t), 1);
    rejects(vscan(c, MID), Reason.MISSING_WINDOW);
    // A level-2 table in the middle of the run, the level-1 table that starts the run, a level-0 table.
    for (const index of [9, 3, 11, 1]) {
      const d = clone(p);
      dropTable(d.body, index);
      rejects(vscan(d, MID), Reason.MISSING_TABLE);
    }
  });
});

describe('injected keys', () => {
  it('rejects an extra value, an entry slipped into a window, extra tables and windows', async () => {
    const p = await honest(MID);
    const a = clone(p);
    a.values.splice(2, 0, enc('forged'));
    rejects(vscan(a, MID), Reason.VALUE_MISMATCH);
    const b = clone(p);
    const w = b.body.windows[win(b.body, table(9))];
    const e = w.blocks[0].entries[1];
    // key || 0x00 sorts right after every version of key: the window stays in engine order.
    const j = w.blocks[0].entries.findIndex((x) => compareBytes(x.key, e.key) > 0);
    w.blocks[0].entries.splice(j, 0, { ...e, key: keySuccessor(e.key), valueHash: H.valueHash(enc('forged')) });
    w.blocks[0].entryCount += 1;
    rejects(vscan(b, MID), Reason.ROOT_MISMATCH);
    // The level-1 neighbour (key086-key098) given a window: it holds nothing of the range.
    const c = clone(p);
    c.body.windows.splice(win(c.body, table(7)), 0, S.world.window(table(4), 0, 1));
    rejects(vscan(c, MID), Reason.UNEXPECTED_ELEMENT);
    // The run widened by a table that cannot hold a key of the range.
    const d = clone(p);
    d.body.descriptors.splice(5, 0, table(5).d);
    remaster(d.body);
    rejects(vscan(d, MID), Reason.UNEXPECTED_ELEMENT);
    const e2 = clone(p);
    e2.body.descriptors.splice(5, 0, table(6).d);
    e2.body.descriptors.sort((x, y) => S.world.offsets[x.level] + x.position - (S.world.offsets[y.level] + y.position));
    remaster(e2.body);
    rejects(vscan(e2, MID), Reason.UNEXPECTED_ELEMENT);
    // A window reaching one entry further than the bracket.
    const t = table(10);
    const f = clone(p);
    const last = posOf(t, skey(73)) === -1 ? t.flat.length - 1 : posOf(t, skey(73));
    f.body.windows[win(f.body, t)] = S.world.window(t, 0, Math.min(t.flat.length - 1, last + 1));
    expect(posOf(t, skey(73))).toBe(-1);
    rejects(vscan(f, { ...MID, end: enc(skey(66)) }), Reason.UNEXPECTED_ELEMENT);
  });
});

describe('reordered keys', () => {
  it('rejects swapped values, windows and descriptors', async () => {
    const p = await honest(MID);
    const a = clone(p);
    [a.values[0], a.values[1]] = [a.values[1], a.values[0]];
    rejects(vscan(a, MID), Reason.VALUE_MISMATCH);
    const b = clone(p);
    [b.body.windows[3], b.body.windows[4]] = [b.body.windows[4], b.body.windows[3]];
    rejects(vscan(b, MID), Reason.ENTRY_ORDER);
    const c = clone(p);
    [c.body.descriptors[6], c.body.descriptors[7]] = [c.body.descriptors[7], c.body.descriptors[6]];
    rejects(vscan(c, MID), Reason.ENTRY_ORDER);
  });
});

describe('stale keys and a newer version hidden deeper', () => {
  it('rejects an older version of a key in place of its newest (level 1 over level 2)', async () => {
    // key026: newest in the level-1 table, older versions in level 2, no level-0 table holds it.
    const k = skey(26);
    const vs = S.world.versionsOf(enc(k));
    expect(vs[0].t.index).toBe(3);
    expect(vs.some((v) => v.t.d.level === 2)).toBe(true);
    const p = await honest(MID);
    const i = accepts(vscan(p, MID)).entries.findIndex((e) => dec(e.key) === k);
    const a = clone(p);
    a.values[i] = vs.find((v) => v.t.d.level === 2)!.p.value;
    rejects(vscan(a, MID), Reason.VALUE_MISMATCH);
    // Hiding the table with the newer version.
    const b = clone(p);
    dropTable(b.body, 3);
    rejects(vscan(b, MID), Reason.MISSING_TABLE);
    // Or its window.
    const c = clone(p);
    c.body.windows.splice(win(c.body, table(3)), 1);
    rejects(vscan(c, MID), Reason.MISSING_WINDOW);
  });

  it('rejects a level-0 newest version hidden (key040 rewritten at version 1040)', async () => {
    const p = await honest(MID);
    const t = table(0);
    const a = clone(p);
    a.body.windows.splice(win(a.body, t), 1);
    rejects(vscan(a, MID), Reason.MISSING_WINDOW);
    // The window started after key040: no entry before the range (and not the table's start).
    const b = clone(p);
    b.body.windows[win(b.body, t)] = S.world.window(t, posOf(t, skey(44)), t.flat.length - 1);
    rejects(vscan(b, MID), Reason.WINDOW_NOT_BRACKETING);
  });

  it('rejects a scan proof of the previous checkpoint (ROLLBACK, CHECKPOINT_MISMATCH, ROOT_MISMATCH)', async () => {
    const p = await honest(STALE_SCAN);
    accepts(vscan(S.stale.scan, STALE_SCAN));
    rejects(vscan(S.stale.scan, STALE_SCAN, { trustedHead: p.certificate.head }), Reason.ROLLBACK);
    rejects(vscan(S.stale.scan, STALE_SCAN, { checkpointIndex: p.certificate.checkpoint.index }), Reason.CHECKPOINT_MISMATCH);
    const mixed = clone(S.stale.scan);
    mixed.certificate = clone(p.certificate);
    rejects(vscan(mixed, STALE_SCAN), Reason.ROOT_MISMATCH);
    // The previous checkpoint's answer differs (the explicit versions came later).
    expect(accepts(vscan(S.stale.scan, STALE_SCAN)).entries.map((e) => e.version)).not.toEqual(accepts(vscan(p, STALE_SCAN)).entries.map((e) => e.version));
  });
});

describe('a tombstone shown as live', () => {
  it('rejects key030 (deleted in level 0, live in level 2) shown with its older value', async () => {
    const k = skey(30);
    const vs = S.world.versionsOf(enc(k));
    expect(vs[0].p.e.kind).toBe(Kind.DELETE);
    const older = vs.find((v) => v.p.e.kind === Kind.PUT)!;
    const p = await honest(MID);
    const f = accepts(vscan(p, MID));
    const at = f.entries.findIndex((e) => compareBytes(e.key, enc(k)) > 0);
    const a = clone(p);
    a.values.splice(at, 0, older.p.value);
    rejects(vscan(a, MID), Reason.VALUE_MISMATCH);
    // The tombstone's table dropped from the proof, or its window.
    const tomb = vs[0].t;
    expect(tomb.d.level).toBe(0);
    const b = clone(p);
    dropTable(b.body, tomb.index);
    rejects(vscan(b, MID), Reason.MISSING_TABLE);
    const c = clone(p);
    c.body.windows.splice(win(c.body, tomb), 1);
    rejects(vscan(c, MID), Reason.MISSING_WINDOW);
    // The tombstone's leaf turned into the older put.
    const d = clone(p);
    for (const b2 of d.body.windows[win(d.body, tomb)].blocks) {
      for (const e of b2.entries) if (dec(e.key) === k) Object.assign(e, { kind: Kind.PUT, valueHash: older.p.e.valueHash });
    }
    d.values.splice(at, 0, older.p.value);
    rejects(vscan(d, MID), Reason.ROOT_MISMATCH);
    // With tombstones returned, a tombstone's value must be empty.
    const q = { ...MID, includeTombstones: true };
    const e = await honest(q);
    const ti = accepts(vscan(e, q)).entries.findIndex((x) => dec(x.key) === k);
    e.values[ti] = older.p.value;
    rejects(vscan(e, q), Reason.VALUE_MISMATCH);
  });
});

describe('pages and the proven cursor', () => {
  it('honest pages chain from each proven bound to the whole answer', async () => {
    const whole = accepts(vscan(await honest(MID), MID));
    const got: string[] = [];
    let q: ScanQuery = PAGE;
    for (let page = 0; page < 20; page++) {
      const f = accepts(vscan(await honest(q), q));
      got.push(...keysOf(f));
      if (!f.nextStart) break;
      expect(f.keysCovered).toBe(10);
      expect(dec(f.bound!)).toBe(dec(f.entries[f.entries.length - 1].key));
      q = { ...q, start: f.nextStart };
    }
    expect(got).toEqual(keysOf(whole));
  });

  it('rejects a next page that skips keys after the cursor', async () => {
    const first = accepts(vscan(await honest(PAGE), PAGE));
    const next: ScanQuery = { ...PAGE, start: first.nextStart! };
    expect(dec(first.bound!)).toBe(skey(34));
    // The server answers from key036 on, skipping key035; the client checks against its own start.
    // key035 is the last key of a level-2 table and key036 opens the next one, so the run the
    // proof shows lacks the table that holds key035.
    const skipped = await honest({ ...PAGE, start: enc(skey(36)) });
    rejects(vscan(skipped, next), Reason.MISSING_TABLE);
    // Or from a start past a deeper table's first key: that table is missing from the run.
    const far = await honest({ ...PAGE, start: enc(skey(50)) });
    rejects(vscan(far, next), Reason.MISSING_TABLE);
  });

  it('rejects a moved cursor (bound) with SCAN_BOUND', async () => {
    const p = await honest(PAGE);
    const f = accepts(vscan(p, PAGE));
    const keys = keysOf(f);
    const rebuilt = (bound: Uint8Array | undefined): ScanProof => {
      const r = S.world.refScan(PAGE.start, PAGE.end, bound);
      const proof: ScanProof = { certificate: p.certificate, body: r.body, values: r.found.filter((x) => x.e.kind === Kind.PUT).map((x) => x.value) };
      if (bound) proof.bound = bound;
      return proof;
    };
    // Honest bodies for a bound one key earlier or later: a page of 9 or 11 keys.
    rejects(vscan(rebuilt(enc(keys[keys.length - 2])), PAGE), Reason.SCAN_BOUND);
    rejects(vscan(rebuilt(enc(skey(36))), PAGE), Reason.SCAN_BOUND);
    // Claimed complete: the whole range's body is more than the limit.
    rejects(vscan(rebuilt(undefined), PAGE), Reason.SCAN_BOUND);
    // The cut body claimed complete: its level-2 run stops before the range's end.
    const a = clone(p);
    delete a.bound;
    rejects(vscan(a, PAGE), Reason.MISSING_TABLE);
    // A bound outside the asked range, or without a limit.
    const b = clone(p);
    b.bound = enc(skey(80));
    rejects(vscan(b, PAGE), Reason.SCAN_BOUND);
    rejects(vscan(p, MID), Reason.SCAN_BOUND);
    // The bound moved without rebuilding the body: the windows now reach past it.
    const c = clone(p);
    c.bound = enc(keys[keys.length - 2]);
    rejects(vscan(c, PAGE), Reason.UNEXPECTED_ELEMENT);
    // A limit other than the page's.
    rejects(vscan(p, { ...PAGE, limit: 11 }), Reason.SCAN_BOUND);
    // (A smaller one is refused before any hash: some window reveals more keys than such a page can.)
    rejects(vscan(p, { ...PAGE, limit: 9 }), Reason.UNEXPECTED_ELEMENT);
  });
});

describe('a proof for another range', () => {
  it('rejects the proof of one range verified for a wider or shifted one', async () => {
    const p = await honest(MID);
    rejects(vscan(p, { ...MID, end: enc(skey(80)) }), Reason.WINDOW_NOT_BRACKETING);
    rejects(vscan(p, { ...MID, start: enc(skey(20)) }), Reason.WINDOW_NOT_BRACKETING);
    rejects(vscan(p, { ...MID, start: enc(skey(10)) }), Reason.MISSING_TABLE);
    rejects(vscan(p, { start: enc('key0'), end: enc('key1') }), Reason.MISSING_TABLE);
    rejects(vscan(p, { ...MID, end: undefined }), Reason.MISSING_TABLE);
    // Narrower: windows reach further than needed.
    rejects(vscan(p, { ...MID, start: enc(skey(30)) }), Reason.UNEXPECTED_ELEMENT);
  });
});

describe('range lies by a compromised signer (edge proofs)', () => {
  it('a level-0 table that shrinks its range out of the scan: accepted without edges, RANGE_MISMATCH with them', () => {
    // Table 0 (key040-key056, the explicit versions) claims to start after key056: it seems not to overlap.
    const t = table(0);
    const forged = S.world.withDescriptor(t.index, { ...t.d, smallest: ikAfter(table(2), enc(skey(76)))!, largest: t.d.largest });
    const q = { start: enc(skey(40)), end: enc(skey(57)) };
    const honestF = accepts(verifyScanProof(S.world.scanProof(signedBy(S.world), { ...q, edges: true }), { ...q, edges: true }, { trust: liarTrust }));
    const lie = accepts(verifyScanProof(forged.scanProof(signedBy(forged), q), q, { trust: liarTrust }));
    expect(lie.entries.find((e) => dec(e.key) === skey(40))?.version, 'without edges the explicit version disappears').not.toBe(1040);
    expect(honestF.entries.find((e) => dec(e.key) === skey(40))?.version).toBe(1040);
    rejects(verifyScanProof(forged.scanProof(signedBy(forged), { ...q, edges: true }), { ...q, edges: true }, { trust: liarTrust }), Reason.RANGE_MISMATCH);
    rejects(verifyScanProof(forged.scanProof(signedBy(forged), q), { ...q, edges: true }, { trust: liarTrust }), Reason.MISSING_WINDOW);
  });

  it('a level-1 table that shrinks its range below the scan: older level-2 versions shown, caught with edges', () => {
    // Table 3 (level 1, key000-key028) claims to end at key024: for [key025, key075) it becomes a
    // neighbour below the range with no window, and key025-key028 are answered from level 2.
    const t = table(3);
    const forged = S.world.withDescriptor(t.index, { ...t.d, largest: ikBefore(t, enc(skey(25)))! });
    const honestF = accepts(verifyScanProof(S.world.scanProof(signedBy(S.world), { ...MID, edges: true }), { ...MID, edges: true }, { trust: liarTrust }));
    const lie = accepts(verifyScanProof(forged.scanProof(signedBy(forged), MID), MID, { trust: liarTrust }));
    const v26 = (f: ScanFacts) => f.entries.find((e) => dec(e.key) === skey(26))!.version;
    expect(v26(lie), 'without edges an older version of key026 comes back').toBeLessThan(v26(honestF));
    rejects(verifyScanProof(forged.scanProof(signedBy(forged), { ...MID, edges: true }), { ...MID, edges: true }, { trust: liarTrust }), Reason.RANGE_MISMATCH);
    rejects(verifyScanProof(forged.scanProof(signedBy(forged), MID), { ...MID, edges: true }, { trust: liarTrust }), Reason.MISSING_WINDOW);
  });

  it('modes do not mix: edge windows are unexpected without edges', async () => {
    const q = { ...MID, edges: true };
    const p = await honest(q);
    expect(p.body.windows.length).toBeGreaterThan((await honest(MID)).body.windows.length);
    rejects(vscan(p, MID), Reason.UNEXPECTED_ELEMENT);
  });
});

describe('structural limits before any hashing', () => {
  it('refuses oversized windows, descriptor lists and value lists with zero hashes', async () => {
    let n = 0;
    const hasher = new Hasher((d) => {
      n++;
      return H.sha256(d);
    });
    const q = { ...MID, limit: 2 };
    const p = await honest(q);
    const t = table(2);
    const cases: Array<[string, (x: ScanProof) => void, Reason]> = [
      ['a window of a whole table', (x) => (x.body.windows[win(x.body, t)] = S.world.window(t, 0, t.flat.length - 1)), Reason.UNEXPECTED_ELEMENT],
      ['100 000 descriptors', (x) => (x.body.descriptors = Array.from({ length: 100_000 }, () => x.body.descriptors[0])), Reason.UNEXPECTED_ELEMENT],
      ['more values than the limit', (x) => (x.values = [enc('a'), enc('b'), enc('c')]), Reason.SCAN_BOUND],
    ];
    for (const [what, mutate, reason] of cases) {
      const x = clone(p);
      mutate(x);
      n = 0;
      const r = vscan(x, q, { hasher });
      expect(r.ok ? 'accepted' : r.reason, what).toBe(reason);
      expect(n, `${what}: hashes before the rejection`).toBe(0);
    }
    n = 0;
    accepts(vscan(p, q, { hasher }));
    expect(n).toBeGreaterThan(10);
  });

  it('refuses a malformed query or proof without throwing', async () => {
    const p = await honest(MID);
    rejects(vscan(p, { start: enc('b'), end: enc('a') }), Reason.MALFORMED_INPUT);
    rejects(vscan(p, { ...MID, limit: 0 }), Reason.MALFORMED_INPUT);
    rejects(vscan(null as unknown as ScanProof, MID), Reason.MALFORMED_INPUT);
    rejects(vscan(p, { ...MID, start: 'key' as unknown as Uint8Array }), Reason.MALFORMED_INPUT);
    expect(equalBytes(keySuccessor(enc('a')), new Uint8Array([0x61, 0]))).toBe(true);
  });
});
