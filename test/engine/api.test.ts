/**
 * The engine's public API: semantics a user depends on, and typed errors that change nothing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProofDB, ProofKVError } from '../../src/index.js';
import { str, tempDir, TINY } from './harness.js';

let dir: string;
let cleanup: () => void;
let db: ProofDB;

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  db = await ProofDB.open(dir, TINY);
});
afterEach(async () => {
  await db.close();
  cleanup();
});

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(ProofKVError);
    expect((err as ProofKVError).code).toBe(code);
    return;
  }
  throw new Error(`expected error ${code}`);
}

describe('versions', () => {
  it('put gives each key its next version; seqs are global', async () => {
    expect(await db.put('a', '1')).toMatchObject({ version: 1, seq: 1 });
    expect(await db.put('b', '1')).toMatchObject({ version: 1, seq: 2 });
    expect(await db.put('a', '2')).toMatchObject({ version: 2, seq: 3 });
    expect(str(await db.get('a'))).toBe('2');
  });

  it('putWithVersion must exceed the latest version; a rejected write changes nothing', async () => {
    await db.putWithVersion('k', 'v10', 10);
    await expectCode(db.putWithVersion('k', 'again', 10), 'VERSION_NOT_INCREASING');
    await expectCode(db.putWithVersion('k', 'older', 3), 'VERSION_NOT_INCREASING');
    expect((await db.getVersionHistory('k')).map((e) => e.version)).toEqual([10]);
    expect(db.stats().lastSeq).toBe(1);
    expect((await db.put('k', 'next')).version).toBe(11);
  });

  it('delete writes a tombstone at a new version; history and older versions stay readable', async () => {
    await db.put('k', 'one');
    await db.put('k', 'two');
    expect(await db.delete('k')).toMatchObject({ version: 3, seq: 3 });
    expect(await db.get('k')).toBeUndefined();
    expect((await db.getWithVersion('k', 3))?.kind).toBe('delete');
    expect(str((await db.getWithVersion('k', 2))?.value)).toBe('two');
    expect((await db.getVersionHistory('k')).map((e) => [e.version, e.kind])).toEqual([
      [1, 'put'],
      [2, 'put'],
      [3, 'delete'],
    ]);
    await db.put('k', 'back');
    expect(str(await db.get('k'))).toBe('back');
  });

  it('history honours min, max and limit, oldest first', async () => {
    for (let i = 0; i < 30; i++) await db.put('h', `v${i + 1}`);
    await db.checkpoint();
    const h = await db.getVersionHistory('h', { minVersion: 5, maxVersion: 20, limit: 4 });
    expect(h.map((e) => e.version)).toEqual([5, 6, 7, 8]);
    expect((await db.getVersionHistory('h', { minVersion: 29 })).map((e) => str(e.value))).toEqual(['v29', 'v30']);
    expect(await db.getVersionHistory('h', { minVersion: 9, maxVersion: 8 })).toEqual([]);
    expect(await db.getVersionHistory('missing')).toEqual([]);
  });

  it('binary keys and values round-trip exactly, including after a checkpoint', async () => {
    const key = new Uint8Array([0, 255, 1, 0]);
    const value = new Uint8Array(3000).map((_, i) => (i * 7) & 0xff);
    await db.put(key, value);
    await db.checkpoint();
    expect(await db.get(key)).toEqual(value);
    expect(await db.get(new Uint8Array([0, 255, 1]))).toBeUndefined();
  });

  it('a caller mutating its buffer after a write does not change stored data', async () => {
    const v = new Uint8Array([1, 2, 3]);
    const b = db.batch().put('k', v);
    v[0] = 9;
    await db.write(b);
    expect(await db.get('k')).toEqual(new Uint8Array([1, 2, 3]));
  });
});

describe('batches', () => {
  it('apply atomically and see their own earlier versions', async () => {
    const r = await db.write(db.batch().put('x', 'a').put('x', 'b').delete('y').putWithVersion('z', 'z', 7));
    expect(r.map((x) => x.version)).toEqual([1, 2, 1, 7]);
    expect(r.map((x) => x.seq)).toEqual([1, 2, 3, 4]);
    expect(str(await db.get('x'))).toBe('b');
  });

  it('a batch with one bad version applies nothing', async () => {
    await db.put('x', 'a');
    await expectCode(db.write(db.batch().put('y', '1').putWithVersion('x', 'bad', 1).put('z', '1')), 'VERSION_NOT_INCREASING');
    expect(await db.get('y')).toBeUndefined();
    expect(await db.get('z')).toBeUndefined();
    expect(db.stats().lastSeq).toBe(1);
  });

  it('a bad batch among concurrent good ones fails alone', async () => {
    await db.put('x', 'a');
    const results = await Promise.allSettled([
      db.put('p', '1'),
      db.write(db.batch().putWithVersion('x', 'bad', 1)),
      db.put('q', '1'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(db.stats().lastSeq).toBe(3);
  });
});

describe('bad input gets a typed error', () => {
  it('keys', async () => {
    await expectCode(db.put('', 'v'), 'EMPTY_KEY');
    await expectCode(db.put(new Uint8Array(0), 'v'), 'EMPTY_KEY');
    await expectCode(db.put(new Uint8Array(65537), 'v'), 'KEY_TOO_LARGE');
    await expectCode(db.put(42 as unknown as string, 'v'), 'INVALID_ARGUMENT');
    await expectCode(db.get(''), 'EMPTY_KEY');
    expect(db.stats().lastSeq).toBe(0);
  });

  it('values and versions', async () => {
    await expectCode(db.put('k', new Uint8Array(1024 * 1024 + 1)), 'VALUE_TOO_LARGE');
    for (const v of [0, -1, 1.5, Number.NaN, 2 ** 53, '3' as unknown as number]) {
      await expectCode(db.putWithVersion('k', 'v', v), 'INVALID_VERSION');
    }
    await expectCode(db.write(db.batch().put('a', 'b').putWithVersion('k', 'v', 0)), 'INVALID_VERSION');
    expect(await db.get('a')).toBeUndefined();
    await expectCode(db.getVersionHistory('k', { limit: -1 }), 'INVALID_ARGUMENT');
    expect(db.stats().lastSeq).toBe(0);
  });

  it('options', async () => {
    const other = tempDir();
    try {
      await expectCode(ProofDB.open(other.dir, { writeBufferSize: -5 }), 'INVALID_ARGUMENT');
      await expectCode(ProofDB.open(other.dir, { compactionThread: 'gpu' as 'inline' }), 'INVALID_ARGUMENT');
      await expectCode(ProofDB.open(`${other.dir}/missing`, { createIfMissing: false }), 'INVALID_ARGUMENT');
    } finally {
      other.cleanup();
    }
    await db.close();
    await expectCode(ProofDB.open(dir, { errorIfExists: true }), 'INVALID_ARGUMENT');
    db = await ProofDB.open(dir, TINY);
  });
});

describe('lone writes queued together', () => {
  it('resolve in one group against each other: versions, a failed condition and an append in between', async () => {
    // Not awaited one by one: the first starts a group, the rest are resolved together after it.
    const ps = [
      db.put('k', 'a'),
      db.put('k', 'b'),
      db.put('k', 'x', { ifVersion: 1 }), // k is at version 2 by now
      db.append('k', '+'),
      db.delete('k', { ifVersion: 3 }),
      db.put('k', 'c', { ifAbsent: true }), // deleted: absent
      db.putWithVersion('k', 'd', 10),
      db.putWithVersion('k', 'e', 9), // not above 10
    ];
    const settled = await Promise.allSettled(ps);
    const versions = settled.map((s) => (s.status === 'fulfilled' ? s.value.version : (s.reason as ProofKVError).code));
    expect(versions).toEqual([1, 2, 'CONDITION_FAILED', 3, 4, 5, 10, 'VERSION_NOT_INCREASING']);
    const seqs = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.seq] : []));
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6]);
    expect(str(await db.get('k'))).toBe('d');
    const history = await db.getVersionHistory('k');
    expect(history.map((h) => [h.version, h.kind, str(h.value)])).toEqual([
      [1, 'put', 'a'],
      [2, 'put', 'b'],
      [3, 'put', 'b+'],
      [4, 'delete', ''],
      [5, 'put', 'c'],
      [10, 'put', 'd'],
    ]);
  });

  it('keys differing in any byte are different keys (the write path maps keys by their latin1 string)', async () => {
    const ps: Array<Promise<unknown>> = [];
    for (let b = 0; b < 256; b++) ps.push(db.put(Uint8Array.of(7, b), Uint8Array.of(b)), db.put(Uint8Array.of(b), Uint8Array.of(b)));
    const results = (await Promise.all(ps)) as Array<{ version: number }>;
    expect(results.every((r) => r.version === 1)).toBe(true);
    for (let b = 0; b < 256; b++) expect([...(await db.get(Uint8Array.of(7, b)))!]).toEqual([b]);
  });

  it('every single-key write rejects, never throws, on bad input and on a closed database', async () => {
    const calls = (): Array<() => Promise<unknown>> => [
      () => db.put('', 'v'),
      () => db.putWithVersion('k', 'v', 0),
      () => db.delete('k', { ifVersion: -1 }),
      () => db.append('k', 'v', { ifVersion: 1, ifAbsent: true }),
      () => db.put('k', 'v', { time: -1 }),
    ];
    for (const call of calls()) {
      let p: Promise<unknown> | undefined;
      expect(() => (p = call())).not.toThrow();
      await expect(p).rejects.toBeInstanceOf(ProofKVError);
    }
    expect(db.stats().lastSeq).toBe(0);
    await db.close();
    for (const call of calls()) {
      let p: Promise<unknown> | undefined;
      expect(() => (p = call())).not.toThrow();
      await expectCode(p!, 'DATABASE_CLOSED');
    }
    db = await ProofDB.open(dir, TINY);
    expect(db.stats().lastSeq).toBe(0);
  });
});

describe('lifecycle', () => {
  it('a closed database says so', async () => {
    await db.close();
    await expectCode(db.put('k', 'v'), 'DATABASE_CLOSED');
    await expectCode(db.get('k'), 'DATABASE_CLOSED');
    await expectCode(() => db.iterator(), 'DATABASE_CLOSED');
    await expectCode(db.checkpoint(), 'DATABASE_CLOSED');
    await db.close(); // idempotent
    db = await ProofDB.open(dir, TINY);
  });

  it('a locked directory says so; closing releases it', async () => {
    await expectCode(ProofDB.open(dir, TINY), 'DIRECTORY_LOCKED');
    await db.put('k', 'v');
    await db.close();
    db = await ProofDB.open(dir, TINY);
    expect(str(await db.get('k'))).toBe('v');
  });

  it('data survives close and reopen, flushed or not', async () => {
    await db.put('flushed', '1');
    await db.checkpoint();
    await db.put('journal-only', '2');
    await db.close();
    db = await ProofDB.open(dir, TINY);
    expect(str(await db.get('flushed'))).toBe('1');
    expect(str(await db.get('journal-only'))).toBe('2');
    expect((await db.put('journal-only', '3')).seq).toBe(3);
  });
});

describe('snapshots and iterators', () => {
  it('a snapshot reads at its seq; writes after it are invisible; release ends it', async () => {
    await db.put('k', 'old');
    const snap = db.snapshot();
    await db.put('k', 'new');
    await db.put('other', 'x');
    await db.checkpoint();
    expect(str(await snap.get('k'))).toBe('old');
    expect(await snap.get('other')).toBeUndefined();
    expect((await snap.getVersionHistory('k')).length).toBe(1);
    expect((await snap.iterator().all()).map((e) => str(e.key))).toEqual(['k']);
    snap.release();
    await expectCode(snap.get('k'), 'SNAPSHOT_RELEASED');
  });

  it('an iterator reads at the seq it was created at', async () => {
    await db.close();
    db = await ProofDB.open(dir); // a large memtable: later writes land in the memtable it reads
    await db.put('a', '1');
    const it = db.iterator();
    await db.put('a', '2');
    await db.put('b', '1');
    expect((await it.all()).map((e) => [str(e.key), str(e.value)])).toEqual([['a', '1']]);
  });

  it('iterates ranges forward, backward, with limits', async () => {
    for (const k of ['a', 'b', 'c', 'd', 'e']) await db.put(k, k.toUpperCase());
    await db.delete('c');
    const keys = async (o: Parameters<ProofDB['iterator']>[0]) => (await db.iterator(o).all()).map((e) => str(e.key));
    expect(await keys({})).toEqual(['a', 'b', 'd', 'e']);
    expect(await keys({ gt: 'a', lte: 'd' })).toEqual(['b', 'd']);
    expect(await keys({ gte: 'b', lt: 'e', reverse: true })).toEqual(['d', 'b']);
    expect(await keys({ reverse: true, limit: 2 })).toEqual(['e', 'd']);
    expect(await keys({ gte: 'x' })).toEqual([]);
    const versions = await db.iterator({ gte: 'c', lte: 'c', allVersions: true }).all();
    expect(versions.map((e) => [e.version, e.kind])).toEqual([
      [2, 'delete'],
      [1, 'put'],
    ]);
  });

  it('an open iterator keeps reading while compactions replace its tables', async () => {
    for (let i = 0; i < 300; i++) await db.put(`k${String(i).padStart(3, '0')}`, 'v'.repeat(50));
    await db.checkpoint();
    const it = db.iterator();
    const first = await it.nextv(10);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 300; i++) await db.put(`k${String(i).padStart(3, '0')}`, `r${round}`);
      await db.checkpoint();
    }
    const rest = await it.all();
    expect(first.length + rest.length).toBe(300);
    expect(rest.every((e) => str(e.value) === 'v'.repeat(50))).toBe(true);
    expect(db.stats().compactions).toBeGreaterThan(0);
  });
});
