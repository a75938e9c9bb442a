/**
 * The latest-version memo (`src/db/version_memo.ts`): exact (a write after its key's memtable was
 * flushed gets the next version without a table lookup, and the same version a lookup gives),
 * bounded (two generations of at most half the bound each), and empty after a reopen, where the
 * tables answer as before.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import type { DBCore } from '../../src/db/core.js';
import { VersionMemo } from '../../src/db/version_memo.js';
import { tempDir, TINY } from './harness.js';

describe('VersionMemo', () => {
  it('answers the newest version recorded, across a generation change', () => {
    const m = new VersionMemo(1000);
    m.set('a', 1);
    for (let i = 0; i < 10; i++) m.set(`x${i}`, 1); // x6 would take the newer generation past 500 bytes: {a, x0..x5} become the older one
    expect(m.get('a')).toBe(1);
    m.set('a', 2);
    expect(m.get('a')).toBe(2);
    expect(m.get('x0')).toBe(1);
    expect(m.get('nothing')).toBeUndefined();
  });

  it('never holds more than its bound; keys not written for a while fall out, recent ones stay', () => {
    const bound = 64 * 1024;
    const m = new VersionMemo(bound);
    for (let i = 0; i < 20_000; i++) {
      m.set(`key-${i}`, i + 1);
      expect(m.bytes()).toBeLessThanOrEqual(bound);
    }
    expect(m.get('key-0')).toBeUndefined();
    expect(m.get('key-19999')).toBe(20_000);
    expect(m.size).toBeLessThan(20_000);
    // A key larger than a generation is not kept at all.
    const small = new VersionMemo(256);
    small.set('x'.repeat(200), 1);
    expect(small.get('x'.repeat(200))).toBeUndefined();
    expect(small.bytes()).toBeLessThanOrEqual(256);
  });
});

describe('the engine numbers versions through the memo', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  /** Counts table lookups of `db`'s engine. */
  function countLookups(db: ProofDB): { n: number } {
    const core = (db as unknown as { core: DBCore }).core;
    const counter = { n: 0 };
    const tables = core.tables;
    const get = tables.get.bind(tables);
    tables.get = ((n: number) => {
      counter.n++;
      return get(n);
    }) as typeof tables.get;
    return counter;
  }

  it('after a checkpoint flushed the memtable, a write resolves its key without reading a table, to the version the tables hold', async () => {
    const { dir, cleanup } = tempDir('proofkv-memo-');
    cleanups.push(cleanup);
    let db = await ProofDB.open(dir, TINY);
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, 'a');
    await db.delete('k7');
    await db.checkpoint(); // flushes the memtable: the keys are in tables only
    const lookups = countLookups(db);
    for (let i = 0; i < 50; i++) expect((await db.put(`k${i}`, 'b')).version).toBe(i === 7 ? 3 : 2);
    expect(lookups.n).toBe(0);
    await db.checkpoint();
    await db.close();

    // A reopened engine starts with an empty memo: the tables give the same numbers.
    db = await ProofDB.open(dir, TINY);
    const after = countLookups(db);
    for (let i = 0; i < 50; i++) expect((await db.put(`k${i}`, 'c')).version).toBe(i === 7 ? 4 : 3);
    expect(after.n).toBeGreaterThan(0);
    expect((await db.getVersionHistory('k7')).map((e) => [e.version, e.kind]).sort((a, b) => (b[0] as number) - (a[0] as number))).toEqual([[4, 'put'], [3, 'put'], [2, 'delete'], [1, 'put']]);
    await db.close();
  });
});
