/**
 * Transient apply faults and the `sync` option of ReplicationGroup. A committed entry refused by
 * a passing fault of the state machine (the engine's recoverable write fault) is never skipped:
 * applying pauses at it, proposers waiting on it and after it are answered `REPLICATION_UNAVAILABLE`
 * (indeterminate: their entries are in the log), new proposals are refused before the log, and
 * the same entries are applied again, in order and exactly once, when the fault clears; the state
 * machine is asked to roll back first. An unrecoverable failure, or a state machine that took an
 * entry after refusing an earlier one, still stops the group. Also: the session store's rollback
 * rebuilds exactly the table a first apply makes.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EntryType, LevelStorage, WalStorage } from '../../src/raft/index.js';
import { ReplicationGroup, SessionStore, type ApplyPause, type SessionInput, type StateMachine } from '../../src/replication/index.js';

const te = new TextEncoder();
const td = new TextDecoder();

class Paused extends Error {
  readonly transient = true;
}

/**
 * Applies commands by recording them, like the engine: while `fault` is set every apply is
 * refused and records nothing; `leak` makes one refused command take effect anyway (a broken
 * machine). `rollback` fails when something at or after its index was recorded.
 */
class FaultyMachine implements StateMachine<string> {
  applied: Array<[number, string]> = [];
  rollbacks: number[] = [];
  fault: 'transient' | 'fatal' | null = null;
  leak: string | null = null;
  apply(index: number, command: Uint8Array): Promise<string> {
    const c = td.decode(command);
    if (this.fault && c !== this.leak && c !== 'slow') {
      return Promise.reject(this.fault === 'fatal' ? Object.assign(new Error('disk gone'), { code: 'IO_ERROR' }) : new Paused('writes are paused: flush failed (EMFILE)'));
    }
    this.applied.push([index, c]);
    // "slow" keeps the loop busy, so that the proposals made meanwhile share the next Ready.
    if (c === 'slow') return new Promise((r) => setTimeout(() => r(`${c}@${index}`), 300));
    return Promise.resolve(`${c}@${index}`);
  }
  isFatal(err: unknown): boolean {
    return (err as { code?: string }).code === 'IO_ERROR';
  }
  isTransient(err: unknown): boolean {
    return err instanceof Paused;
  }
  rollback(index: number): void {
    this.rollbacks.push(index);
    const took = this.applied.find(([i]) => i >= index);
    if (took) throw Object.assign(new Error(`entry ${took[0]} took effect after ${index} was refused`), { code: 'IO_ERROR' });
  }
}

const dirs: string[] = [];
const groups: Array<ReplicationGroup<string>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const g of groups.splice(0)) await g.close().catch(() => undefined);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-repl-faults-'));
  dirs.push(d);
  return d;
}
async function open(dir: string, sm: StateMachine<string>, options: { sync?: boolean; onPause?: (p: ApplyPause | undefined) => void } = {}) {
  // No test here is about timeouts: a proposal must not time out on a loaded machine (the default
  // is three election timeouts, 150 ms at this tick).
  const g = await ReplicationGroup.open(dir, { stateMachine: sm, appliedIndex: 0, tickMs: 5, requestTimeoutMs: 30_000, ...options });
  groups.push(g);
  return g;
}
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe('ReplicationGroup: transient apply faults', () => {
  it('pauses at the refused entry, refuses new proposals, and applies the same entries again in order once the fault clears', async () => {
    const sm = new FaultyMachine();
    const events: Array<string | undefined> = [];
    const g = await open(tmp(), sm, { onPause: (p) => events.push(p && `${p.component}@${p.index}`) });
    expect(await g.propose(te.encode('before'))).toMatch(/^before@/);
    const applied0 = g.status().applied;
    sm.fault = 'transient';
    const waiting = await Promise.allSettled(['w1', 'w2', 'w3'].map((c) => g.propose(te.encode(c))));
    for (const r of waiting) {
      expect(r.status).toBe('rejected');
      const e = (r as PromiseRejectedResult).reason;
      expect(e).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: true });
      expect(e.cause).toBeInstanceOf(Paused);
      expect(e.message).toMatch(/applying is paused at log index \d+ .*EMFILE.*applied once the fault clears/);
    }
    const pause = g.applyPause()!;
    expect(pause.index).toBe(applied0 + 1);
    expect(g.status().applied).toBe(applied0);
    expect(sm.rollbacks).toContain(applied0 + 1);
    // New proposals are refused before they enter the log: retrying them cannot apply twice.
    const lastBefore = g.status().lastIndex;
    const refused = await g.propose(te.encode('during')).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: false });
    expect((refused as Error).message).toMatch(/not appended/);
    expect(g.status().lastIndex).toBe(lastBefore);
    // The loop keeps trying (with backoff) while the fault holds.
    await until(() => (g.applyPause()?.attempts ?? 0) >= 3);
    expect(sm.applied.map(([, c]) => c)).toEqual(['before']);
    // Reads of a one-member group go on at the applied state.
    await expect(g.readIndex()).resolves.toBeGreaterThan(0);

    sm.fault = null;
    await until(() => g.applyPause() === undefined);
    expect(sm.applied.map(([, c]) => c)).toEqual(['before', 'w1', 'w2', 'w3']);
    expect(sm.applied.map(([i]) => i)).toEqual([applied0, applied0 + 1, applied0 + 2, applied0 + 3]);
    expect(g.status().applied).toBe(g.status().commit);
    expect(await g.propose(te.encode('after'))).toBe(`after@${applied0 + 4}`);
    // One event when it paused (not one per retry), one when it resumed.
    expect(events).toEqual([`apply@${applied0 + 1}`, undefined]);
  });

  it('an unrecoverable failure still stops the group', async () => {
    const sm = new FaultyMachine();
    const g = await open(tmp(), sm);
    sm.fault = 'fatal';
    await expect(g.propose(te.encode('x'))).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: true });
    sm.fault = null;
    await expect(g.propose(te.encode('y'))).rejects.toThrow(/replication group failed: disk gone/);
  });

  it('a state machine that took an entry after refusing an earlier one stops the group (a retry would differ)', async () => {
    const sm = new FaultyMachine();
    const g = await open(tmp(), sm);
    sm.fault = 'transient';
    sm.leak = 'b';
    const slow = g.propose(te.encode('slow'));
    await until(() => sm.applied.some(([, c]) => c === 'slow')); // its apply runs: the next two share a Ready
    const out = await Promise.allSettled(['a', 'b'].map((c) => g.propose(te.encode(c))));
    await slow;
    expect(out.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(sm.rollbacks).toHaveLength(1);
    expect(g.applyPause()).toBeUndefined();
    await expect(g.propose(te.encode('c'))).rejects.toThrow(/replication group failed: entry \d+ took effect after \d+ was refused/);
  });
});

describe('ReplicationGroup: a failed write of the log', () => {
  it('drops the failed Ready, refuses proposals until the log is reopened, then runs on', async () => {
    const efbig = () => Object.assign(new Error('IO error: 000003.log: File too large'), { code: 'LEVEL_IO_ERROR' });
    let full = false;
    const save = WalStorage.prototype.save;
    vi.spyOn(WalStorage.prototype, 'save').mockImplementation(async function (this: WalStorage, rd, options) {
      if (full && rd.entries.length > 0) throw efbig();
      return save.call(this, rd, options);
    });
    const reopen = WalStorage.prototype.reopen;
    vi.spyOn(WalStorage.prototype, 'reopen').mockImplementation(function (this: WalStorage, from) {
      return full ? Promise.reject(efbig()) : reopen.call(this, from);
    });
    const dir = tmp();
    const sm = new FaultyMachine();
    const g = await open(dir, sm);
    expect(await g.propose(te.encode('before'))).toMatch(/^before@/);
    full = true;
    const lostSeen: Array<string | undefined> = [];
    const lost = await g.propose(te.encode('lost'), { mapError: (err) => (lostSeen.push(g.applyPause()?.component), err) }).catch((e: unknown) => e);
    // Mapped when the write failed, with the log's pause already in force (a caller's Retry-After reads it).
    expect(lostSeen).toEqual(['log']);
    expect(lost).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: true });
    expect((lost as Error).message).toMatch(/writing the log failed .*File too large/);
    expect(g.applyPause()).toMatchObject({ component: 'log' });
    const refused = await g.propose(te.encode('during')).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: false });
    await until(() => (g.applyPause()?.attempts ?? 0) >= 3);
    // A caller's error mapping sees every rejection as it is made — the refusal at once, the
    // failed write's (which the log's pause already covers) — in place of a `.catch` on the result.
    const seen: Array<{ err: unknown; pause: string | undefined }> = [];
    const mapError = (err: unknown) => (seen.push({ err, pause: g.applyPause()?.component }), { mapped: (err as { code?: string }).code });
    await expect(g.propose(te.encode('during2'), { mapError })).rejects.toEqual({ mapped: 'REPLICATION_UNAVAILABLE' });
    expect(seen).toEqual([{ err: expect.objectContaining({ indeterminate: false }), pause: 'log' }]);

    full = false;
    await until(() => g.applyPause() === undefined && g.status().role === 'leader');
    expect(await g.propose(te.encode('after'))).toMatch(/^after@/);
    expect(sm.applied.map(([, c]) => c)).toEqual(['before', 'after']);
    await g.close();
    groups.splice(groups.indexOf(g), 1);
    // Reopened from disk: the log is whole and agrees with what was applied.
    const again = new FaultyMachine();
    const g2 = await open(dir, again);
    await until(() => g2.status().applied === g2.status().commit);
    expect(again.applied.map(([, c]) => c)).toEqual(['before', 'after']);
  });
});

describe('LevelStorage.reopen', () => {
  it('makes the disk agree with the saves that succeeded: a partial write of a failed batch is dropped', async () => {
    const dir = path.join(tmp(), 'log');
    const st = await LevelStorage.open(dir);
    const ent = (index: number, term: number) => ({ term, index, type: EntryType.Normal, data: te.encode(`e${index}`) });
    await st.save({ entries: [ent(1, 1), ent(2, 1)], hardState: { term: 1, vote: 1, commit: 2 } });
    // What a batch that reached the disk before its write failed leaves: an entry the log never took,
    // an overwritten entry and a hard state.
    const raw = await LevelStorage.open(path.join(tmp(), 'scratch'));
    await raw.save({ entries: [ent(1, 1), { ...ent(2, 3), data: te.encode('other') }, ent(3, 3)], hardState: { term: 3, vote: 1, commit: 1 } });
    await raw.close();
    const db = (st as unknown as { db: { batch(ops: unknown[]): Promise<void> } }).db;
    const copy = await import('classic-level').then(({ ClassicLevel }) => new ClassicLevel<Uint8Array, Uint8Array>(path.join(path.dirname(dir), 'scratch'), { keyEncoding: 'view', valueEncoding: 'view' }));
    const ops: Array<{ type: 'put'; key: Uint8Array; value: Uint8Array }> = [];
    for await (const [key, value] of copy.iterator()) if (key[0] !== 0x73) ops.push({ type: 'put', key, value }); // all but the snapshot record
    await copy.close();
    await db.batch(ops);
    await st.reopen(2);
    await st.save({ entries: [], hardState: { term: 1, vote: 1, commit: 2 } });
    await st.close();
    const back = await LevelStorage.open(dir);
    expect(back.lastIndex()).toBe(2);
    expect(back.entries(1, 3, Infinity).map((e) => [e.term, td.decode(e.data)])).toEqual([[1, 'e1'], [1, 'e2']]);
    expect(back.initialState().hardState).toEqual({ term: 1, vote: 1, commit: 2 });
    await back.close();
  });
});

describe('ReplicationGroup: sync option', () => {
  it('syncs every Ready that writes entries by default, and none with sync: false', async () => {
    const seen: Array<boolean | undefined> = [];
    const save = WalStorage.prototype.save;
    vi.spyOn(WalStorage.prototype, 'save').mockImplementation(function (this: WalStorage, rd, options) {
      if (rd.entries.length > 0) seen.push(options?.sync);
      return save.call(this, rd, options);
    });
    const synced = await open(tmp(), new FaultyMachine());
    seen.length = 0;
    const s0 = synced.logSyncs();
    for (let i = 0; i < 3; i++) await synced.propose(te.encode(`s${i}`));
    expect(synced.logSyncs() - s0).toBeGreaterThanOrEqual(3);
    expect(seen.every((s) => s === true)).toBe(true);

    seen.length = 0;
    const unsynced = await open(tmp(), new FaultyMachine(), { sync: false });
    seen.length = 0;
    for (let i = 0; i < 3; i++) await unsynced.propose(te.encode(`u${i}`));
    expect(unsynced.logSyncs()).toBe(0);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s === false)).toBe(true);
  });
});

describe('SessionStore.rollback', () => {
  const digest = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
  const input = (index: number, clientId: string, seq: number, what = `${clientId}/${seq}`): SessionInput => ({ index, clientId, seq, digest: digest(what), bytes: 900 });
  const settle = (store: SessionStore, i: SessionInput) => {
    const d = store.apply(i);
    if (d.kind === 'new') d.record.outcome = te.encode(`out${i.index}`);
    return d.kind;
  };

  it('takes back the inputs from an index so that applying them again decides and evicts exactly as a first apply', async () => {
    // A budget of a few clients, so that the rolled-back inputs evict and the rebuild must too.
    const inputs = [input(1, 'a', 1), input(2, 'b', 1), input(3, 'c', 1), input(4, 'a', 1), input(5, 'd', 1), input(6, 'a', 1, 'other'), input(7, 'e', 1)];
    const first = await SessionStore.open(tmp(), { durableIndex: 0, maxBytes: 3 * 2000 });
    const firstKinds = inputs.map((i) => settle(first, i));
    const again = await SessionStore.open(tmp(), { durableIndex: 0, maxBytes: 3 * 2000 });
    for (const i of inputs) settle(again, i);
    again.rollback(4);
    const kinds = inputs.slice(3).map((i) => settle(again, i));
    expect(kinds).toEqual(firstKinds.slice(3));
    expect(firstKinds).toContain('retry');
    expect(firstKinds).toContain('reused');
    expect(again.export(7)).toEqual(first.export(7));
    expect(again.export(3)).toEqual(first.export(3));
    expect(again.count).toBe(first.count);
    expect(again.bytes).toBe(first.bytes);
    expect(() => again.rollback(0)).toThrow(/SESSIONS|stored base/);
    await first.close();
    await again.close();
  });
});
