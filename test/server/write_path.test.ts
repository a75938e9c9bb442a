/**
 * LocalWritePath: commands apply to the database; client sessions make retries idempotent, within
 * a window per client and a bounded LRU of clients.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { ProofDB } from '../../src/index.js';
import { HttpError } from '../../server/errors.js';
import { LocalWritePath, SESSION_WINDOW } from '../../server/write_path.js';
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
    expect(x.type === 'put' && x.result).toEqual({ version: 1, seq: 1 });
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

  it('keeps a bounded LRU of clients', async () => {
    const wp = new LocalWritePath(db, { maxSessions: 3 });
    for (const id of ['a', 'b', 'c']) await wp.propose({ type: 'delete', key: k('x'), session: { clientId: id, seq: 1 } });
    // Touch a, then add d: b (least recently used) is evicted.
    await wp.propose({ type: 'delete', key: k('x'), session: { clientId: 'a', seq: 1 } });
    await wp.propose({ type: 'delete', key: k('x'), session: { clientId: 'd', seq: 1 } });
    expect(wp.sessionCount).toBe(3);
    expect(await wp.propose({ type: 'delete', key: k('x'), session: { clientId: 'a', seq: 1 } })).toMatchObject({ replayed: true });
    expect((await wp.propose({ type: 'delete', key: k('x'), session: { clientId: 'b', seq: 1 } })).replayed).toBeUndefined();
  });
});
