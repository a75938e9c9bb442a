/**
 * The checkers of the nemesis harness on crafted histories: each check passes on a legal history
 * and FAILS on the fault it exists for (a lost write, a write applied twice, a stale linearizable
 * read, a condition that should have failed, a forked head, members that disagree, a read of
 * uncommitted data, a failed verification, a search that gives up). Without these, a green run
 * would mean nothing. Also the report: what its markdown and its plot show.
 */
import { describe, expect, test } from 'vitest';
import { consistencyProof, logLeafHash, logRoot } from '../../proofs/log.js';
import {
  checkBatches,
  checkLinearizable,
  checkMembersAgree,
  checkNoDuplicate,
  checkNoFork,
  checkNoLostWrite,
  checkReads,
  checkVerified,
  keyOps,
  tokenOf,
  unavailability,
  type FinalEntry,
  type FinalView,
  type MemberView,
} from './check.js';
import type { OpRecord } from './history.js';
import { niceMax, perSecond, phaseLatencies, quantile, renderMarkdown, renderSvg } from './report.js';

let nextId = 0;
/** An operation record with defaults: ok, on key x, by client 0. */
function op(o: Partial<OpRecord> & Pick<OpRecord, 'kind' | 'call' | 'ret'>): OpRecord {
  return { id: ++nextId, client: o.client ?? 0, process: `c${o.client ?? 0}`, key: 'x', outcome: 'ok', endpoint: 'http://127.0.0.1:1', ...o };
}
const put = (value: string, version: number, call: number, ret: number, extra: Partial<OpRecord> = {}) => op({ kind: 'put', value, result: { version }, call, ret, ...extra });
const get = (value: string | null, version: number | undefined, call: number, ret: number, extra: Partial<OpRecord> = {}) => op({ kind: 'get', result: { value, version }, call, ret, ...extra });
function view(entries: Record<string, Array<[number, string | null]>>): FinalView {
  const histories = new Map<string, FinalEntry[]>();
  let seq = 0;
  for (const [k, list] of Object.entries(entries)) histories.set(k, list.map(([version, value]) => ({ version, value, seq: ++seq })));
  return { histories };
}

describe('a legal history passes every check', () => {
  const h = [
    put('c0-1', 1, 0, 10),
    get('c0-1', 1, 12, 20, { client: 1 }),
    op({ kind: 'append', value: '|c1-1', result: { version: 2 }, call: 21, ret: 30, client: 1 }),
    op({ kind: 'put-if-version', value: 'c0-2', ifVersion: 2, result: { version: 3 }, call: 31, ret: 40 }),
    op({ kind: 'put-if-version', value: 'c1-2', ifVersion: 2, outcome: 'fail', error: 'CONDITION_FAILED', call: 41, ret: 45, client: 1 }),
    op({ kind: 'delete', result: { version: 4 }, call: 46, ret: 50 }),
    op({ kind: 'put-if-absent', value: 'c1-3', result: { version: 5 }, call: 51, ret: 55, client: 1 }),
    op({ kind: 'batch', key: 'x', ops: [{ key: 'x', value: 'c0-3' }, { key: 'y' }], result: { versions: [{ version: 6, value: 'c0-3' }, { version: 1, value: null }] }, call: 56, ret: 60 }),
    op({ kind: 'history', result: { versions: [{ version: 5, value: 'c1-3' }, { version: 6, value: 'c0-3' }], complete: true, minVersion: 5 }, call: 61, ret: 70, client: 1 }),
    op({ kind: 'get-serializable', result: { value: 'c0-1', version: 1 }, call: 71, ret: 72, client: 2 }),
    op({ kind: 'verified-get', result: { value: 'c0-2', version: 3, checkpointSize: 3 }, call: 73, ret: 80, client: 2 }),
    // Unknown outcomes: one applied (its value is in the final history), one never applied.
    put('c2-1', 0, 81, Infinity, { outcome: 'info', error: 'TIMEOUT', result: undefined, client: 2 }),
    put('c2-2', 0, 90, Infinity, { outcome: 'info', error: 'UNAVAILABLE', result: undefined, client: 2 }),
    get('c2-1', 7, 95, 99),
  ];
  const final = view({
    x: [[1, 'c0-1'], [2, 'c0-1|c1-1'], [3, 'c0-2'], [4, null], [5, 'c1-3'], [6, 'c0-3'], [7, 'c2-1']],
    y: [[1, null]],
  });

  test('linearizable, nothing lost or doubled, reads committed, verified', () => {
    expect(checkLinearizable(h, final)).toMatchObject({ ok: true, violations: 0, unknown: 0 });
    expect(checkNoLostWrite(h, final)).toMatchObject({ ok: true, lost: 0, acked: 7 });
    expect(checkNoDuplicate(h, final)).toMatchObject({ ok: true, duplicates: 0 });
    expect(checkReads(h, final).ok).toBe(true);
    expect(checkVerified(h).ok).toBe(true);
    expect(checkBatches(h, final)).toMatchObject({ ok: true, detail: '1 batches applied, each whole' });
  });

  test('an unknown write found in the final history is placed at its version; one not found is dropped', () => {
    const ops = keyOps(h, final).get('x')!;
    const applied = ops.find((o) => o.value === 'c2-1')!;
    expect(applied.version).toBe(7);
    // Bounded by the get that saw version 7 (returned at 99).
    expect(applied.ret).toBe(99);
    expect(ops.find((o) => o.value === 'c2-2')).toBeUndefined();
  });

  test('tokens: a put is its value, an append its last suffix', () => {
    expect(tokenOf('c0-1')).toBe('c0-1');
    expect(tokenOf('c0-1|c1-1|c2-5')).toBe('|c2-5');
    expect(tokenOf('|c1-1')).toBe('|c1-1');
  });
});

describe('each check fails on its fault', () => {
  test('a lost acknowledged write', () => {
    const h = [put('c0-1', 1, 0, 10), put('c0-2', 2, 11, 20)];
    const final = view({ x: [[1, 'c0-1']] });
    const r = checkNoLostWrite(h, final);
    expect(r.ok).toBe(false);
    expect(r.lost).toBe(1);
    expect(r.detail).toContain('c0-2');
  });

  test('an acknowledged write at another version than acknowledged', () => {
    const h = [put('c0-1', 1, 0, 10), put('c0-2', 2, 11, 20)];
    expect(checkNoLostWrite(h, view({ x: [[1, 'c0-2'], [2, 'c0-1']] })).ok).toBe(false);
  });

  test('an acknowledged delete without its tombstone', () => {
    const h = [put('c0-1', 1, 0, 10), op({ kind: 'delete', result: { version: 2 }, call: 11, ret: 20 })];
    expect(checkNoLostWrite(h, view({ x: [[1, 'c0-1']] })).ok).toBe(false);
  });

  test('a retry applied twice', () => {
    const h = [put('c0-1', 1, 0, 10), put('c0-2', 3, 11, 20)];
    const r = checkNoDuplicate(h, view({ x: [[1, 'c0-1'], [2, 'c0-1'], [3, 'c0-2']] }));
    expect(r.ok).toBe(false);
    expect(r.duplicates).toBe(1);
  });

  test('an append applied twice', () => {
    const h = [put('c0-1', 1, 0, 10), op({ kind: 'append', value: '|c1-1', result: { version: 2 }, call: 11, ret: 20 })];
    expect(checkNoDuplicate(h, view({ x: [[1, 'c0-1'], [2, 'c0-1|c1-1'], [3, 'c0-1|c1-1|c1-1']] })).ok).toBe(false);
  });

  test('a delete applied twice (more tombstones than deletes sent)', () => {
    const h = [put('c0-1', 1, 0, 10), op({ kind: 'delete', result: { version: 2 }, call: 11, ret: 20 })];
    expect(checkNoDuplicate(h, view({ x: [[1, 'c0-1'], [2, null], [3, null]] })).ok).toBe(false);
  });

  test('a value nobody wrote, and a refused write that took effect', () => {
    expect(checkNoDuplicate([put('c0-1', 1, 0, 10)], view({ x: [[1, 'c0-1'], [2, 'c9-9']] })).ok).toBe(false);
    const refused = put('c0-2', 0, 11, 20, { outcome: 'fail', error: 'CONDITION_FAILED', kind: 'put-if-absent', result: undefined });
    expect(checkNoDuplicate([put('c0-1', 1, 0, 10), refused], view({ x: [[1, 'c0-1'], [2, 'c0-2']] })).ok).toBe(false);
  });

  test('a stale linearizable read', () => {
    const h = [put('c0-1', 1, 0, 10), put('c0-2', 2, 11, 20), get('c0-1', 1, 21, 30, { client: 1 })];
    const final = view({ x: [[1, 'c0-1'], [2, 'c0-2']] });
    const r = checkLinearizable(h, final);
    expect(r.ok).toBe(false);
    expect(r.violations).toBe(1);
    expect(r.detail).toContain('get -> "c0-1" v1'); // the report shows the operations around the failure
    // The same read concurrent with the second write is legal.
    expect(checkLinearizable([put('c0-1', 1, 0, 10), put('c0-2', 2, 11, 40), get('c0-1', 1, 21, 30)], final).ok).toBe(true);
  });

  test('a stale serializable read is no violation of linearizability, but a phantom read is one of committed data', () => {
    const final = view({ x: [[1, 'c0-1'], [2, 'c0-2']] });
    const stale = op({ kind: 'get-serializable', result: { value: 'c0-1', version: 1 }, call: 21, ret: 30 });
    expect(checkLinearizable([put('c0-1', 1, 0, 10), put('c0-2', 2, 11, 20), stale], final).ok).toBe(true);
    const phantom = op({ kind: 'get-serializable', result: { value: 'c5-5', version: 2 }, call: 21, ret: 30 });
    expect(checkReads([put('c0-1', 1, 0, 10), phantom], final).ok).toBe(false);
    const beyond = op({ kind: 'verified-history', result: { versions: [{ version: 3, value: 'c0-3' }], complete: true, minVersion: 3 }, call: 21, ret: 30 });
    expect(checkReads([beyond], final).ok).toBe(false);
    const gap = op({ kind: 'history', result: { versions: [{ version: 1, value: 'c0-1' }, { version: 3, value: 'c0-3' }], complete: true, minVersion: 1 }, call: 21, ret: 30 });
    expect(checkReads([gap], view({ x: [[1, 'c0-1'], [2, 'c0-2'], [3, 'c0-3']] })).ok).toBe(false);
  });

  test('a history read that misses the newest version', () => {
    const final = view({ x: [[1, 'c0-1'], [2, 'c0-2']] });
    const h = [put('c0-1', 1, 0, 10), put('c0-2', 2, 11, 20), op({ kind: 'history', result: { versions: [{ version: 1, value: 'c0-1' }], complete: true, minVersion: 0 }, call: 21, ret: 30 })];
    expect(checkLinearizable(h, final).ok).toBe(false);
  });

  test('a condition that failed although it held, and one that held although it failed', () => {
    const final = view({ x: [[1, 'c0-1']] });
    const failed = op({ kind: 'put-if-version', value: 'c1-1', ifVersion: 1, outcome: 'fail', error: 'CONDITION_FAILED', call: 11, ret: 20 });
    expect(checkLinearizable([put('c0-1', 1, 0, 10), failed], final).ok).toBe(false);
    const absentFailed = op({ kind: 'put-if-absent', value: 'c1-1', outcome: 'fail', error: 'CONDITION_FAILED', call: 0, ret: 5 });
    expect(checkLinearizable([absentFailed, put('c0-1', 1, 10, 20)], final).ok).toBe(false);
    const wronglyApplied = op({ kind: 'put-if-version', value: 'c1-1', ifVersion: 0, result: { version: 2 }, call: 11, ret: 20 });
    expect(checkLinearizable([put('c0-1', 1, 0, 10), wronglyApplied], view({ x: [[1, 'c0-1'], [2, 'c1-1']] })).ok).toBe(false);
  });

  test('an unknown delete may or may not have happened, but a read must agree with one of the two', () => {
    const maybe = op({ kind: 'delete', outcome: 'info', error: 'TIMEOUT', call: 11, ret: Infinity });
    const final = view({ x: [[1, 'c0-1'], [2, null]] });
    expect(checkLinearizable([put('c0-1', 1, 0, 10), maybe, get(null, undefined, 20, 30)], final).ok).toBe(true);
    expect(checkLinearizable([put('c0-1', 1, 0, 10), maybe, get('c0-1', 1, 20, 30)], final).ok).toBe(true);
    // Without a tombstone in the final history that no known delete wrote, it never happened.
    expect(checkLinearizable([put('c0-1', 1, 0, 10), maybe, get(null, undefined, 20, 30)], view({ x: [[1, 'c0-1']] })).ok).toBe(false);
    expect(keyOps([put('c0-1', 1, 0, 10), maybe], view({ x: [[1, 'c0-1']] })).get('x')).toHaveLength(1);
    // A tombstone that a delete of known version wrote is not one an unknown delete may claim.
    const known = op({ kind: 'delete', result: { version: 2 }, call: 12, ret: 15 });
    expect(checkLinearizable([put('c0-1', 1, 0, 10), maybe, known, get(null, undefined, 20, 30), put('c0-2', 3, 31, 35), get(null, undefined, 40, 45)], view({ x: [[1, 'c0-1'], [2, null], [3, 'c0-2']] })).ok).toBe(false);
    // Once deleted (a read saw it) it cannot come back without a write.
    expect(checkLinearizable([put('c0-1', 1, 0, 10), maybe, get(null, undefined, 20, 30), get('c0-1', 1, 31, 40)], final).ok).toBe(false);
  });

  test('a search that gives up is unknown, not ok', () => {
    const h = [put('c0-1', 1, 0, 10), put('c0-2', 2, 11, 20), get('c0-2', 2, 21, 30)];
    const r = checkLinearizable(h, view({ x: [[1, 'c0-1'], [2, 'c0-2']] }), 2);
    expect(r.ok).toBe(false);
    expect(r.unknown).toBe(1);
    expect(r.detail).toContain('unknown');
  });

  test('a forked or rolled-back head', () => {
    const leaves = Array.from({ length: 9 }, (_, i) => logLeafHash(new Uint8Array([i])));
    const forked = leaves.slice(0, 5).map((l, i) => (i === 3 ? logLeafHash(new Uint8Array([99])) : l));
    const finalHead = { size: 9, root: logRoot(leaves) };
    const good = { size: 5, root: logRoot(leaves.slice(0, 5)) };
    const bad = { size: 5, root: logRoot(forked) };
    const proofs = new Map([[5, consistencyProof(5, 9, leaves)]]);
    expect(checkNoFork([good], finalHead, proofs)).toMatchObject({ ok: true, forks: 0 });
    expect(checkNoFork([good, bad], finalHead, proofs)).toMatchObject({ ok: false, forks: 1 });
    expect(checkNoFork([{ size: 10, root: finalHead.root }], finalHead, proofs)).toMatchObject({ ok: false, forks: 1 });
    // A proof that could not be obtained fails the check (not silently passed).
    expect(checkNoFork([{ size: 4, root: logRoot(leaves.slice(0, 4)) }], finalHead, proofs).ok).toBe(false);
  });

  test('members that disagree on a checkpoint, a head or a history', () => {
    const root = new Uint8Array(32).fill(1);
    const member = (id: number, cp1: string, hist: FinalEntry[], r = root): MemberView => ({
      id,
      head: { size: 2, root: r },
      checkpoints: new Map([[0, 'a'], [1, cp1]]),
      histories: new Map([['x', hist]]),
      errors: [],
    });
    const hist: FinalEntry[] = [{ version: 1, value: 'c0-1', seq: 1 }];
    expect(checkMembersAgree([member(1, 'b', hist), member(2, 'b', hist), member(3, 'b', hist)]).ok).toBe(true);
    expect(checkMembersAgree([member(1, 'b', hist), member(2, 'c', hist), member(3, 'b', hist)]).ok).toBe(false);
    expect(checkMembersAgree([member(1, 'b', hist), member(2, 'b', []), member(3, 'b', hist)]).ok).toBe(false);
    expect(checkMembersAgree([member(1, 'b', hist), member(2, 'b', hist, new Uint8Array(32).fill(2))]).ok).toBe(false);
    expect(checkMembersAgree([member(1, 'b', hist), { ...member(2, 'b', hist), errors: ['checkpoint 1: NOT_FOUND'] }]).ok).toBe(false);
  });

  test('a batch half applied', () => {
    const b = (outcome: OpRecord['outcome']) => op({ kind: 'batch', ops: [{ key: 'x', value: 'c0-1' }, { key: 'y', value: 'c0-2' }, { key: 'z' }], outcome, result: outcome === 'ok' ? { versions: [{ version: 1, value: 'c0-1' }, { version: 1, value: 'c0-2' }, { version: 1, value: null }] } : undefined, call: 0, ret: outcome === 'ok' ? 10 : Infinity });
    expect(checkBatches([b('ok')], view({ x: [[1, 'c0-1']], y: [[1, 'c0-2']], z: [[1, null]] })).ok).toBe(true);
    expect(checkBatches([b('info')], view({ x: [], y: [], z: [] })).ok).toBe(true);
    expect(checkBatches([b('info')], view({ x: [[1, 'c0-1']], y: [], z: [] })).ok).toBe(false);
    expect(checkBatches([b('ok')], view({ x: [], y: [[1, 'c0-2']], z: [[1, null]] })).ok).toBe(false);
  });

  test('a verified read that failed verification', () => {
    const h = [op({ kind: 'verified-get', outcome: 'fail', error: 'VERIFY_PROOF_INVALID', call: 0, ret: 1 }), op({ kind: 'verified-get', outcome: 'fail', error: 'UNAVAILABLE', call: 2, ret: 3 })];
    const r = checkVerified(h);
    expect(r.ok).toBe(false);
    expect(r.failures).toBe(1);
    expect(checkVerified(h.slice(1)).ok).toBe(true);
  });


  test('too few signatures: tolerated during a membership change, a failure at any other time', () => {
    const h = [op({ kind: 'verified-history', outcome: 'fail', error: 'VERIFY_QUORUM_NOT_MET', call: 5000, ret: 5001 })];
    const change = { id: 1, kind: 'replace-leader', targets: [4, 1], start: 1000, end: 2000 };
    expect(checkVerified(h, [change])).toMatchObject({ ok: true, failures: 0, quorumNotMet: 1 });
    expect(checkVerified(h, [{ ...change, kind: 'kill-leader' }])).toMatchObject({ ok: false, failures: 1 });
    expect(checkVerified(h, [{ ...change, end: -11000 }]).ok).toBe(false);
    expect(checkVerified([{ ...h[0], error: 'VERIFY_FORK' }], [change]).ok).toBe(false);
    // The same shortfall named by a key of the new set among the signatures.
    const untrusted = [{ ...h[0], error: 'VERIFY_UNTRUSTED_KEY' }];
    expect(checkVerified(untrusted, [change])).toMatchObject({ ok: true, failures: 0, quorumNotMet: 1 });
    expect(checkVerified(untrusted, [{ ...change, kind: 'kill-leader' }])).toMatchObject({ ok: false, failures: 1 });
    // A member killed during the change extends the window to its restart (plus the tail).
    const early = { ...change, end: -11000, start: -12000 };
    const kill = { id: 2, kind: 'kill', targets: [3], start: -11500, end: -9000 };
    expect(checkVerified(h, [early]).ok).toBe(false);
    expect(checkVerified(h, [early, kill]).ok).toBe(true);
  });
});

describe('figures', () => {
  test('unavailability: the longest gap without an acknowledged write, and after each kill', () => {
    const h = [put('c0-1', 1, 0, 10), put('c0-2', 2, 11, 20), put('c0-3', 3, 150, 500), put('c0-4', 4, 90, 600), put('c0-5', 5, 601, 610), put('c0-6', 6, 611, 20_000)];
    const events = [
      { id: 1, kind: 'kill-leader', targets: [1], start: 100, end: 120 },
      { id: 2, kind: 'pause', targets: [2], start: 0, end: 1 },
      { id: 3, kind: 'torn-tail', targets: [2], start: 612, end: 615 },
    ];
    const u = unavailability(h, events);
    expect(u.overall).toBe(19_390);
    // From the kill at 100: acks at 500, 600, 610 (then 20 000 is past its window's 10 s tail).
    expect(u.outages).toEqual([
      { event: 1, kind: 'kill-leader', ms: 400 },
      { event: 3, kind: 'torn-tail', ms: 10_003 },
    ]);
  });
});

describe('the report', () => {
  const h = [put('c0-1', 1, 0, 10), put('c0-2', 2, 1500, 1540), get('c0-2', 2, 1600, 1700), put('c0-3', 0, 2100, Infinity, { outcome: 'info', error: 'TIMEOUT', result: undefined })];
  const events = [{ id: 1, kind: 'kill-leader', targets: [2], start: 1000, end: 2000, detail: 'the <leader>' }];
  const check = { ok: false, checks: [{ name: 'no acknowledged write lost', ok: false, detail: 'first line\nsecond line' }, { name: 'members agree', ok: true, detail: 'fine' }], figures: { acknowledgedWritesLost: 1 } };

  test('markdown: verdict, failing details, replay command, events, operations, phases', () => {
    const md = renderMarkdown({ seed: 5, nodes: 3, minutes: 1, events, history: h, check, replay: 'npm run nemesis -- --seed 5 --nodes 3 --events 1' });
    expect(md).toContain('# ProofKV nemesis run: FAIL');
    expect(md).toContain('| no acknowledged write lost | **FAIL** | first line |');
    expect(md).toContain('first line\nsecond line');
    expect(md).toContain('`npm run nemesis -- --seed 5 --nodes 3 --events 1`');
    expect(md).toContain('| 1 | kill-leader | 2 | 1.0 | 2.0 | 1.0 | the <leader> |');
    expect(md).toContain('| put | 2 | 0 | 1 | TIMEOUT 1 |');
    expect(md).toContain('| acknowledgedWritesLost | 1 |');
    expect(md).toMatch(/\| kill-leader \| 2 \| 0 \| 40 \| 40 \| 100 \| 100 \|/);
  });

  test('phases: an operation belongs to the fault windows its call falls in', () => {
    const p = phaseLatencies(h, events);
    expect(p.find((x) => x.phase === 'no fault')).toMatchObject({ ops: 2, notOk: 1, writes: [10] });
    expect(p.find((x) => x.phase === 'kill-leader')).toMatchObject({ ops: 2, notOk: 0, writes: [40], reads: [100] });
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.99)).toBe(4);
    expect(Number.isNaN(quantile([], 0.5))).toBe(true);
  });

  test('svg: one shaded, labelled window per event, escaped text, both series', () => {
    const svg = renderSvg(h, events, 'seed 5 & more');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/fill-opacity="0.15"/g)).toHaveLength(1);
    expect(svg).toContain('the &lt;leader&gt;');
    expect(svg).toContain('seed 5 &amp; more');
    expect(svg.match(/<polyline/g)!.length).toBeGreaterThanOrEqual(2);
    const s = perSecond(h);
    expect(s.throughput).toEqual([1, 2, 0]);
    expect(s.p99.slice(0, 2)).toEqual([10, 100]);
    expect(niceMax(139)).toBe(200);
    expect(niceMax(0.3)).toBe(0.5);
  });
});
