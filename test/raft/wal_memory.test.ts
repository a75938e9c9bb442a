/**
 * The byte bound of the Raft log's in-memory mirror (issue 10, item 3; docs/raft.md § Memory).
 * `WalStorage.mirroredBytes` counts the entries the mirror holds through appends, overwritten
 * suffixes, compactions, an installed snapshot and a reopen, always equal to a recount;
 * `compactPoint` keeps fewer than the margin's entries when they would hold more than its bytes.
 * A one-member write path whose log grows past `maxLogMemoryBytes` with no checkpoint asked for
 * proposes one itself, and its snapshot compacts the log back under the bound (without the
 * pressure hook, the mirror holds every entry written: several times the bound here).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIRRORED_ENTRY_OVERHEAD } from '../../src/raft/mirrored_storage.js';
import { WalStorage } from '../../src/raft/wal_storage.js';
import { ProofDB } from '../../src/index.js';
import { RaftWritePath } from '../../server/raft_write_path.js';
import { ent } from './helpers.js';

const dirs: string[] = [];
const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'raft-wal-mem-'));
  dirs.push(d);
  return d;
}

/** What the mirror holds, counted from its entries. */
function recount(s: WalStorage): number {
  const first = s.firstIndex();
  const last = s.lastIndex();
  return last < first ? 0 : s.entries(first, last + 1, Infinity).reduce((a, e) => a + e.data.length + MIRRORED_ENTRY_OVERHEAD, 0);
}

const data = (n: number) => 'x'.repeat(n);

describe('WalStorage.mirroredBytes', () => {
  it('follows appends, overwrites, compactions, an installed snapshot and a reopen', async () => {
    const dir = path.join(await tempDir(), 'wal');
    const s = await WalStorage.open(dir, { voters: [1], learners: [] }, { segmentBytes: 1 << 16 });
    expect(s.mirroredBytes()).toBe(0);
    await s.save({ entries: [1, 2, 3, 4, 5, 6].map((i) => ent(i, 1, data(100 * i))), hardState: { term: 1, vote: 1, commit: 6 } });
    expect(s.mirroredBytes()).toBe(2100 + 6 * MIRRORED_ENTRY_OVERHEAD);
    // A new term overwrites the suffix from 5.
    await s.save({ entries: [ent(5, 2, data(10)), ent(6, 2, data(20)), ent(7, 2, data(30))] });
    expect(s.mirroredBytes()).toBe(recount(s));
    expect(s.mirroredBytes()).toBe(1000 + 60 + 7 * MIRRORED_ENTRY_OVERHEAD);
    // A snapshot at 5 keeping entries within 500 bytes behind it: 4 (400 + overhead) would not fit with 5.
    await s.createSnapshot(5, { voters: [1], learners: [] }, new Uint8Array(0));
    expect(s.compactPoint(5, 10, Infinity)).toBe(-5);
    expect(s.compactPoint(5, 2, Infinity)).toBe(3);
    expect(s.compactPoint(5, 10, 400 + 10 + 2 * MIRRORED_ENTRY_OVERHEAD)).toBe(3);
    expect(s.compactPoint(5, 10, 400 + 10 + 2 * MIRRORED_ENTRY_OVERHEAD - 1)).toBe(4);
    expect(s.compactPoint(5, 10, 0)).toBe(5);
    await s.compact(s.compactPoint(5, 10, 500));
    expect(s.firstIndex()).toBe(5);
    expect(s.mirroredBytes()).toBe(recount(s));
    expect(s.mirroredBytes()).toBe(60 + 3 * MIRRORED_ENTRY_OVERHEAD);
    // Reopened: the mirror is rebuilt from the segments, and so is its count.
    await s.close();
    const t = await WalStorage.open(dir, { voters: [1], learners: [] }, { segmentBytes: 1 << 16 });
    closers.push(() => t.close());
    expect(t.mirroredBytes()).toBe(recount(t));
    expect(t.mirroredBytes()).toBe(60 + 3 * MIRRORED_ENTRY_OVERHEAD);
    // A snapshot installed from a leader replaces the log: nothing is held until new entries come.
    await t.save({ snapshot: { metadata: { index: 20, term: 3, confState: { voters: [1], learners: [] } }, data: new Uint8Array(0) }, entries: [], hardState: { term: 3, vote: 1, commit: 20 } });
    expect(t.mirroredBytes()).toBe(0);
    await t.save({ entries: [ent(21, 3, data(7))] });
    expect(t.mirroredBytes()).toBe(7 + MIRRORED_ENTRY_OVERHEAD);
    expect(t.mirroredBytes()).toBe(recount(t));
  });
});

describe('RaftWritePath: the log mirror stays under maxLogMemoryBytes without checkpoints asked for', () => {
  it('proposes a checkpoint past the bound, and the snapshot compacts the log back under it', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    const db = await ProofDB.open(dataDir, { compactionThread: 'inline', writeAheadLog: 'external' });
    closers.push(() => db.close());
    const BOUND = 256 << 10;
    const wp = await RaftWritePath.open(db, path.join(dataDir, 'raft'), {
      snapshots: { maxLogMemoryBytes: BOUND, compactMarginBytes: 64 << 10, compactMargin: 5000 },
    });
    closers.push(() => wp.close());
    const value = new Uint8Array(8 << 10).fill(7);
    let most = 0;
    for (let i = 0; i < 250; i++) {
      await wp.propose({ type: 'put', key: new TextEncoder().encode(`k${i % 50}`), value });
      most = Math.max(most, wp.logMemoryBytes);
    }
    // 250 × 8 KiB ≈ 2 MiB written; the mirror never held much more than the bound (the entries
    // written while the checkpoint it asked for was applied and recorded).
    expect(wp.snapshotStats().recorded).toBeGreaterThan(0);
    expect(most).toBeLessThan(2 * BOUND);
    await expect.poll(() => wp.logMemoryBytes, { timeout: 10_000 }).toBeLessThanOrEqual(BOUND);
  });
});
