/**
 * Replicated sessions through the whole one-member stack (RaftWritePath → group → CommandApplier
 * → SessionStore + engine in external-log mode): a retry that reaches the node after a clean
 * restart or after a crash (a copy of the live directory, what a SIGKILL leaves) is answered
 * from the table and never applied again — versions and histories say so; a remembered failure
 * stays that failure; a reused pair stays refused; two replicas with different flush points
 * build the same table under a small byte budget.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProofDB } from '../../src/index.js';
import { SESSION_INPUT_BYTES, decodeTable } from '../../src/replication/sessions.js';
import { RaftWritePath } from '../../server/raft_write_path.js';
import { copyLiveDir } from '../engine/harness.js';
import { SESSION_CLIENT_BYTES, sessionEntryBytes, type WriteCommand } from '../../server/write_path.js';

const te = new TextEncoder();
const k = (s: string) => te.encode(s);

interface Stack {
  db: ProofDB;
  wp: RaftWritePath;
}
const open: Stack[] = [];
const roots: string[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.wp.close().catch(() => undefined);
    await o.db.close().catch(() => undefined);
  }
  for (const d of roots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-sessions-stack-'));
  roots.push(d);
  return d;
}
async function openStack(dir: string, opts: { writeBufferSize?: number; maxSessionBytes?: number; maxPendingSessionBytes?: number } = {}): Promise<Stack> {
  const db = await ProofDB.open(dir, { compactionThread: 'inline', writeAheadLog: 'external', writeBufferSize: opts.writeBufferSize ?? 2048, targetFileSize: 2048 });
  const wp = await RaftWritePath.open(db, path.join(dir, 'raft'), { tickMs: 1000, maxSessionBytes: opts.maxSessionBytes, maxPendingSessionBytes: opts.maxPendingSessionBytes });
  const s = { db, wp };
  open.push(s);
  return s;
}
async function closeStack(s: Stack): Promise<void> {
  open.splice(open.indexOf(s), 1);
  await s.wp.close();
  await s.db.close();
}
/** The directory as a SIGKILL now would leave it (no engine I/O runs between two turns). */
function crashCopy(dir: string): string {
  const copy = `${dir}-crash-${fs.readdirSync(path.dirname(dir)).length}`;
  copyLiveDir(dir, copy);
  fs.rmSync(path.join(copy, 'LOCK'), { force: true });
  return copy;
}
const versions = async (db: ProofDB, key: string) => (await db.getVersionHistory(key)).map((e) => e.version);
const put = (key: string, value: string, clientId: string, seq: number, extra: object = {}): WriteCommand => ({ type: 'put', key: k(key), value: k(value), session: { clientId, seq }, ...extra });

describe('replicated sessions across restarts', () => {
  it('a retry after a clean restart is answered from the table, whether its original is behind the durable index or after it', async () => {
    const dir = path.join(tmp(), 'data');
    let s = await openStack(dir);
    const before = await s.wp.propose(put('a', 'one', 'c1', 1));
    await s.wp.propose({ type: 'checkpoint' }); // the engine records an index past the put
    const after = await s.wp.propose(put('b', 'two', 'c1', 2)); // stays in the memtable: replayed at open
    expect(s.db.logIndex().durable).toBeLessThan(s.wp.appliedIndex);
    await closeStack(s);

    for (let round = 0; round < 2; round++) {
      s = await openStack(dir);
      expect(await s.wp.propose(put('a', 'one', 'c1', 1))).toEqual({ ...before, replayed: true });
      expect(await s.wp.propose(put('b', 'two', 'c1', 2))).toEqual({ ...after, replayed: true });
      expect(await versions(s.db, 'a')).toEqual([1]);
      expect(await versions(s.db, 'b')).toEqual([1]);
      expect(s.db.stats().lastSeq).toBe(2);
      await closeStack(s);
    }
  });

  it('a retry after a crash at any turn is answered from the table and not applied again', async () => {
    const dir = path.join(tmp(), 'data');
    const s = await openStack(dir);
    const cmds = Array.from({ length: 60 }, (_, i) => put(`k${i % 6}`, `v${i}-${'x'.repeat(60)}`, `c${i % 3}`, Math.floor(i / 3)));
    const answers = new Map<number, unknown>();
    const copies: Array<{ dir: string; acked: number[] }> = [];
    let next = 0;
    while (next < cmds.length) {
      const base = next;
      const group = cmds.slice(next, next + 5).map((c, j) => s.wp.propose(c).then((o) => answers.set(base + j, o)));
      next += group.length;
      let done = false;
      const all = Promise.all(group).then(() => (done = true));
      for (let turn = 0; !done && turn < 30; turn++) {
        // At the group's first turn and every third after (from a turn that varies with the group):
        // at least one copy per group, whatever the machine's speed makes of the number of turns.
        if (turn === 0 || turn % 3 === base % 3) copies.push({ dir: crashCopy(dir), acked: [...answers.keys()] });
        await new Promise((r) => setImmediate(r));
      }
      await all;
    }
    const lastSeq = s.db.stats().lastSeq;
    expect(lastSeq).toBe(60);
    expect(copies.length).toBeGreaterThan(10);
    for (const c of copies) {
      const t = await openStack(c.dir);
      // Every acknowledged command, retried now, gets its first answer and changes nothing.
      const seqBefore = t.db.stats().lastSeq;
      for (const i of c.acked) expect(await t.wp.propose(cmds[i])).toEqual({ ...(answers.get(i) as object), replayed: true });
      expect(t.db.stats().lastSeq).toBe(seqBefore);
      // Then every command, retried or first sent, ends in the live run's state.
      for (const cmd of cmds) await t.wp.propose(cmd);
      expect(t.db.stats().lastSeq).toBe(lastSeq);
      for (let j = 0; j < 6; j++) expect(await t.db.getVersionHistory(`k${j}`)).toEqual(await s.db.getVersionHistory(`k${j}`));
      await closeStack(t);
      fs.rmSync(c.dir, { recursive: true, force: true });
    }
  });

  it('a remembered failure stays that failure after a restart, and a reused pair stays refused', async () => {
    const dir = path.join(tmp(), 'data');
    let s = await openStack(dir);
    await s.wp.propose({ type: 'put', key: k('x'), value: k('first') });
    const cond = put('x', 'second', 'c', 7, { ifAbsent: true });
    const failed = await s.wp.propose(cond).then(() => undefined, (e: { code: string }) => e);
    expect(failed).toMatchObject({ code: 'CONDITION_FAILED' });
    await s.wp.propose(put('y', 'v', 'c', 8));
    // Now the condition would hold: a retry that were applied again would write.
    await s.wp.propose({ type: 'delete', key: k('x') });
    await s.wp.propose({ type: 'checkpoint' });
    await closeStack(s);

    const copy = crashCopy(dir);
    for (const d of [dir, copy]) {
      s = await openStack(d);
      await expect(s.wp.propose(cond)).rejects.toMatchObject({ code: 'CONDITION_FAILED', members: { key: Buffer.from('x').toString('base64url'), currentVersion: 1, absent: false } });
      await expect(s.wp.propose(put('y', 'other value', 'c', 8))).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
      await expect(s.wp.propose({ ...put('y', 'v', 'c', 8), type: 'append' } as WriteCommand)).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
      expect(await versions(s.db, 'x')).toEqual([1, 2]);
      expect(await versions(s.db, 'y')).toEqual([1]);
      await closeStack(s);
    }
  });

  it('replicas with different flush points hold the same table under a small byte budget, and so does a restarted one', async () => {
    const per = SESSION_CLIENT_BYTES + 4 + 4 * sessionEntryBytes({ type: 'put', key: k(''), value: k('') });
    const budget = 5 * per;
    const cmds: WriteCommand[] = [];
    for (let i = 0; i < 240; i++) {
      const c = `c${(i * 7) % 13}`;
      cmds.push(put(`k${i % 11}`, `v${i}`, c, i));
      if (i % 5 === 4) cmds.push(cmds[cmds.length - 1 - (i % 3)]); // a retry of a recent command
    }
    const aDir = path.join(tmp(), 'a');
    const a = await openStack(aDir, { writeBufferSize: 1024, maxSessionBytes: budget });
    const b = await openStack(path.join(tmp(), 'b'), { writeBufferSize: 64 * 1024, maxSessionBytes: budget });
    const answer = (o: Stack, c: WriteCommand) => o.wp.propose(c).then((x) => JSON.stringify(x), (e: { code: string }) => e.code);
    const outA: string[] = [];
    const outB: string[] = [];
    for (let i = 0; i < cmds.length; i += 6) {
      outA.push(...(await Promise.all(cmds.slice(i, i + 6).map((c) => answer(a, c)))));
      outB.push(...(await Promise.all(cmds.slice(i, i + 6).map((c) => answer(b, c)))));
    }
    expect(outB).toEqual(outA);
    expect(a.wp.sessionBytes).toBeLessThanOrEqual(budget);
    expect(a.wp.sessionCount).toBeLessThan(13);
    expect(b.wp.appliedIndex).toBe(a.wp.appliedIndex);
    const table = a.wp.exportSessions(a.wp.appliedIndex);
    expect(Buffer.from(b.wp.exportSessions(b.wp.appliedIndex)).equals(Buffer.from(table))).toBe(true);
    expect(a.db.logIndex().durable).not.toBe(b.db.logIndex().durable);
    const decoded = decodeTable(table, { maxBytes: budget }).table;
    expect(decoded.count).toBe(a.wp.sessionCount);
    expect(decoded.bytes).toBe(a.wp.sessionBytes);
    expect(decoded.count).toBeGreaterThan(2);
    // A restart rebuilds it from its stored base, journal and log: the same bytes.
    await closeStack(a);
    const a2 = await openStack(aDir, { writeBufferSize: 1024, maxSessionBytes: budget });
    expect(Buffer.from(a2.wp.exportSessions(b.wp.appliedIndex)).equals(Buffer.from(table))).toBe(true);
  });

  it('inputs kept between installs are bounded: a run of retries that writes nothing leads to a checkpoint that folds them', async () => {
    const cap = 40 * SESSION_INPUT_BYTES;
    const s = await openStack(path.join(tmp(), 'data'), { writeBufferSize: 1 << 20, maxPendingSessionBytes: cap });
    const cmd = put('k', 'v', 'retrier', 1);
    await s.wp.propose(cmd);
    const durable = s.db.logIndex().durable;
    let peak = 0;
    for (let i = 0; i < 200; i++) {
      expect(await s.wp.propose(cmd)).toMatchObject({ replayed: true });
      peak = Math.max(peak, s.wp.sessionPendingBytes);
    }
    for (let i = 0; i < 200 && s.db.logIndex().durable === durable; i++) await new Promise((r) => setTimeout(r, 10));
    expect(s.db.logIndex().durable).toBeGreaterThan(durable); // a checkpoint was taken
    expect(peak).toBeLessThan(4 * cap);
    expect(await versions(s.db, 'k')).toEqual([1]);
  });

  it('writes that each fill the memtable, applied in one Ready, never make an install wait on itself', async () => {
    const dir = path.join(tmp(), 'data');
    let s = await openStack(dir, { writeBufferSize: 1024 });
    const big = 'y'.repeat(900);
    const outs = await Promise.all(Array.from({ length: 40 }, (_, i) => s.wp.propose(put(`f${i % 4}`, `${big}${i}`, `c${i % 5}`, i))));
    expect(outs.map((o) => o.type === 'put' && o.result.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(s.db.logIndex().durable).toBeGreaterThan(1);
    await closeStack(s);
    s = await openStack(dir, { writeBufferSize: 1024 });
    for (let i = 0; i < 40; i++) expect(await s.wp.propose(put(`f${i % 4}`, `${big}${i}`, `c${i % 5}`, i))).toMatchObject({ replayed: true, result: { seq: i + 1 } });
    expect(s.db.stats().lastSeq).toBe(40);
  });
});
