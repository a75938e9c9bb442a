/**
 * LocalWritePath: commands apply to the database; client sessions make retries idempotent, within
 * a window per client and a byte-bounded LRU of clients; a reused (clientId, seq) must carry the
 * same request.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { ProofDB } from '../../src/index.js';
import { HttpError } from '../../server/errors.js';
import { commandDigest, LocalWritePath, SESSION_CLIENT_BYTES, SESSION_WINDOW, sessionEntryBytes, type BatchCommandOp, type WriteCommand } from '../../server/write_path.js';
import { tmpDir } from './harness.js';

const te = new TextEncoder();
const k = (s: string) => te.encode(s);

describe('LocalWritePath', () => {
  let db: ProofDB;
  beforeEach(async () => {
    db = await ProofDB.open(path.join(tmpDir(), 'db'), { compactionThread: 'inline' });
  });
  afterEach(async () => {
    await db.close();
  });

  it('applies put, delete, batch and checkpoint commands', async () => {
    const applied: number[] = [];
    const wp = new LocalWritePath(db, { onApplied: (_c, n) => applied.push(n) });
    expect(await wp.propose({ type: 'put', key: k('a'), value: k('1') })).toEqual({ type: 'put', result: { version: 1, seq: 1 } });
    expect(await wp.propose({ type: 'put', key: k('a'), value: k('2'), version: 7 })).toMatchObject({ result: { version: 7 } });
    expect(await wp.propose({ type: 'delete', key: k('a') })).toMatchObject({ type: 'delete', result: { version: 8 } });
    const b = await wp.propose({ type: 'batch', ops: [{ op: 'put', key: k('b'), value: k('x') }, { op: 'delete', key: k('c') }] });
    expect(b).toMatchObject({ type: 'batch', results: [{ version: 1 }, { version: 1 }] });
    const c = await wp.propose({ type: 'checkpoint' });
    expect(c.type === 'checkpoint' && c.checkpoint.seq).toBe(5);
    expect(applied).toEqual([1, 1, 1, 2]);
  });

  it('replays a retried seq instead of applying it twice, also while it is in flight', async () => {
    const wp = new LocalWritePath(db);
    const session = { clientId: 'c1', seq: 1 };
    const [x, y] = await Promise.all([
      wp.propose({ type: 'put', key: k('k'), value: k('v'), session }),
      wp.propose({ type: 'put', key: k('k'), value: k('v'), session }),
    ]);
    expect(x.type === 'put' && x.result).toMatchObject({ version: 1, seq: 1 });
    expect(y).toMatchObject({ result: { version: 1, seq: 1 }, replayed: true });
    expect(await wp.propose({ type: 'put', key: k('k'), value: k('v'), session })).toMatchObject({ replayed: true });
    // Another client with the same seq is independent.
    expect(await wp.propose({ type: 'put', key: k('k'), value: k('v'), session: { clientId: 'c2', seq: 1 } })).toMatchObject({ result: { version: 2 } });
    // Out-of-order seqs within the window are fine.
    await wp.propose({ type: 'put', key: k('k'), value: k('v'), session: { clientId: 'c1', seq: 5 } });
    await wp.propose({ type: 'put', key: k('k'), value: k('v'), session: { clientId: 'c1', seq: 3 } });
    expect(await db.getVersionHistory(k('k'))).toHaveLength(4);
  });

  it('replays a remembered failure, and refuses seqs older than the window', async () => {
    const wp = new LocalWritePath(db);
    await wp.propose({ type: 'put', key: k('k'), value: k('v'), version: 5 });
    const bad = { type: 'put' as const, key: k('k'), value: k('v'), version: 5, session: { clientId: 'c', seq: 0 } };
    await expect(wp.propose(bad)).rejects.toMatchObject({ code: 'VERSION_NOT_INCREASING' });
    await expect(wp.propose(bad)).rejects.toMatchObject({ code: 'VERSION_NOT_INCREASING' });
    for (let seq = 1; seq <= SESSION_WINDOW + 1; seq++) await wp.propose({ type: 'delete', key: k('d'), session: { clientId: 'c', seq } });
    const stale = wp.propose({ type: 'delete', key: k('d'), session: { clientId: 'c', seq: 0 } });
    await expect(stale).rejects.toBeInstanceOf(HttpError);
    await expect(stale).rejects.toMatchObject({ code: 'REQUEST_SEQ_STALE' });
    expect(await db.getVersionHistory(k('d'))).toHaveLength(SESSION_WINDOW + 1);
  });

  it('keeps the table within its byte budget, evicting the least recently active clients first', async () => {
    const perClient = (id: string) => SESSION_CLIENT_BYTES + 2 * id.length + sessionEntryBytes({ type: 'delete', key: k('x') });
    const wp = new LocalWritePath(db, { maxSessionBytes: 3 * perClient('a') });
    for (const id of ['a', 'b', 'c']) await wp.propose({ type: 'delete', key: k('x'), session: { clientId: id, seq: 1 } });
    expect(wp.sessionBytes).toBe(3 * perClient('a'));
    // Touch a, then add d: b (least recently active) is evicted.
    await wp.propose({ type: 'delete', key: k('x'), session: { clientId: 'a', seq: 1 } });
    await wp.propose({ type: 'delete', key: k('x'), session: { clientId: 'd', seq: 1 } });
    expect(wp.sessionCount).toBe(3);
    expect(wp.sessionBytes).toBeLessThanOrEqual(3 * perClient('a'));
    expect(await wp.propose({ type: 'delete', key: k('x'), session: { clientId: 'a', seq: 1 } })).toMatchObject({ replayed: true });
    // An evicted client's retry is applied again (the documented meaning of eviction).
    expect((await wp.propose({ type: 'delete', key: k('x'), session: { clientId: 'b', seq: 1 } })).replayed).toBeUndefined();
  });

  it('charges batches by their size and never holds more than the budget over many clients', async () => {
    const budget = 64 * 1024;
    const wp = new LocalWritePath(db, { maxSessionBytes: budget });
    const ops = Array.from({ length: 50 }, (_, i) => ({ op: 'put' as const, key: k(`b${i}`), value: k('v') }));
    await wp.propose({ type: 'batch', ops, session: { clientId: 'big', seq: 1 } });
    expect(wp.sessionBytes).toBe(SESSION_CLIENT_BYTES + 6 + sessionEntryBytes({ type: 'batch', ops }));
    for (let i = 0; i < 500; i++) {
      await wp.propose({ type: 'delete', key: k('x'), session: { clientId: `client-${i}`, seq: 1 } });
      expect(wp.sessionBytes).toBeLessThanOrEqual(budget);
    }
    expect(wp.sessionCount).toBeLessThan(500);
    expect(wp.sessionCount).toBeGreaterThan(10);
    // The window of one client is charged and released as it slides.
    const one = new LocalWritePath(db);
    for (let seq = 1; seq <= SESSION_WINDOW + 10; seq++) await one.propose({ type: 'delete', key: k('w'), session: { clientId: 'w', seq } });
    expect(one.sessionBytes).toBe(SESSION_CLIENT_BYTES + 2 + SESSION_WINDOW * sessionEntryBytes({ type: 'delete', key: k('w') }));
  });

  it('refuses a remembered (clientId, seq) reused for another request, and changes nothing', async () => {
    const wp = new LocalWritePath(db);
    const session = { clientId: 'c', seq: 1 };
    await wp.propose({ type: 'put', key: k('k'), value: k('v1'), session });
    const others: WriteCommand[] = [
      { type: 'put', key: k('k'), value: k('v2'), session },
      { type: 'put', key: k('other'), value: k('v1'), session },
      { type: 'put', key: k('k'), value: k('v1'), version: 5000, session },
      { type: 'delete', key: k('k'), session },
      { type: 'batch', ops: [{ op: 'put', key: k('k'), value: k('v1') }], session },
      { type: 'checkpoint', session },
    ];
    for (const cmd of others) {
      const p = wp.propose(cmd);
      await expect(p).rejects.toBeInstanceOf(HttpError);
      await expect(p).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', status: 422 });
    }
    expect(await db.getVersionHistory(k('k'))).toHaveLength(1);
    expect(await db.getVersionHistory(k('other'))).toHaveLength(0);
    // The same request still replays.
    expect(await wp.propose({ type: 'put', key: k('k'), value: k('v1'), session })).toMatchObject({ replayed: true, result: { version: 1, seq: 1 } });
    // Batches differ by any op: order, key, value, version.
    const b = (ops: BatchCommandOp[]) => wp.propose({ type: 'batch', ops, session: { clientId: 'b', seq: 1 } });
    await b([{ op: 'put', key: k('x'), value: k('1') }, { op: 'delete', key: k('y') }]);
    for (const ops of [
      [{ op: 'delete', key: k('y') }, { op: 'put', key: k('x'), value: k('1') }],
      [{ op: 'put', key: k('x'), value: k('2') }, { op: 'delete', key: k('y') }],
      [{ op: 'put', key: k('x'), value: k('1'), version: 9 }, { op: 'delete', key: k('y') }],
      [{ op: 'put', key: k('x'), value: k('1') }],
    ] as BatchCommandOp[][]) {
      await expect(b(ops)).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    }
    expect(await b([{ op: 'put', key: k('x'), value: k('1') }, { op: 'delete', key: k('y') }])).toMatchObject({ replayed: true });
  });

  it('digests are distinct for commands that differ only in field boundaries', () => {
    const d = (cmd: WriteCommand) => Buffer.from(commandDigest(cmd)).toString('hex');
    expect(d({ type: 'put', key: k('ab'), value: k('c') })).not.toBe(d({ type: 'put', key: k('a'), value: k('bc') }));
    expect(d({ type: 'put', key: k('a'), value: k('') })).not.toBe(d({ type: 'delete', key: k('a') }));
    expect(d({ type: 'put', key: k('a'), value: k('b') })).toBe(d({ type: 'put', key: k('a'), value: k('b'), session: { clientId: 'z', seq: 3 } }));
  });
});
