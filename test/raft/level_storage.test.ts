/**
 * LevelStorage: what save() writes survives a reopen; truncation, snapshots and compaction
 * are reflected on disk; corruption is reported, never read as data; and a single-node RawNode
 * driven over it recovers its log and hard state after a restart.
 */

import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, test } from 'vitest';
import { LevelStorage, decodeEntry, encodeEntry, entryKey } from '../../src/raft/level_storage.js';
import { SeededRand } from '../../src/raft/rand.js';
import { RawNode } from '../../src/raft/rawnode.js';
import { EntryType, RaftErrorCode, isRaftError } from '../../src/raft/types.js';
import { ent, it as idx, rawNodeRecoversAfterRestart } from './helpers.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'raft-level-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const cs = { voters: [1, 2, 3], learners: [4] };

describe('LevelStorage', () => {
  test('entries and hard state survive a reopen', async () => {
    const dir = await tempDir();
    let s = await LevelStorage.open(dir, cs);
    expect(s.initialState().confState).toEqual(cs);
    await s.save({ entries: [ent(1, 1, 'a'), ent(2, 1, 'b'), ent(3, 2, 'c')], hardState: { term: 2, vote: 3, commit: 2 } });
    await s.close();
    s = await LevelStorage.open(dir);
    expect(s.initialState()).toEqual({ hardState: { term: 2, vote: 3, commit: 2 }, confState: cs });
    expect(idx(s.entries(1, 4, Infinity))).toEqual([[1, 1], [2, 1], [3, 2]]);
    expect(new TextDecoder().decode(s.entries(3, 4, Infinity)[0].data)).toBe('c');
    await s.close();
  });

  test('a conflicting append truncates the suffix on disk', async () => {
    const dir = await tempDir();
    let s = await LevelStorage.open(dir, cs);
    await s.save({ entries: [ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)] });
    await s.save({ entries: [ent(2, 2)] });
    expect(s.lastIndex()).toBe(2);
    await s.close();
    s = await LevelStorage.open(dir);
    expect(idx(s.entries(1, 3, Infinity))).toEqual([[1, 1], [2, 2]]);
    await s.close();
  });

  test('an installed snapshot replaces the log; compaction drops entries', async () => {
    const dir = await tempDir();
    let s = await LevelStorage.open(dir, cs);
    await s.save({ entries: [1, 2, 3, 4, 5].map((i) => ent(i, 1)) });
    await s.createSnapshot(3, cs, Uint8Array.of(9));
    await s.compact(3);
    expect(s.firstIndex()).toBe(4);
    await s.close();
    s = await LevelStorage.open(dir);
    expect(s.firstIndex()).toBe(4);
    expect(s.snapshot().metadata.index).toBe(3);
    expect(s.snapshot().data).toEqual(Uint8Array.of(9));
    expect(idx(s.entries(4, 6, Infinity))).toEqual([[4, 1], [5, 1]]);
    let err: unknown;
    try { s.term(2); } catch (e) { err = e; }
    expect(isRaftError(err, RaftErrorCode.Compacted)).toBe(true);
    // A follower installing a newer snapshot from the leader.
    const snap = { metadata: { index: 10, term: 3, confState: { voters: [1, 2], learners: [] } }, data: Uint8Array.of(1, 2) };
    await s.save({ snapshot: snap, entries: [ent(11, 3)], hardState: { term: 3, vote: 0, commit: 10 } });
    await s.close();
    s = await LevelStorage.open(dir);
    expect(s.firstIndex()).toBe(11);
    expect(idx(s.entries(11, 12, Infinity))).toEqual([[11, 3]]);
    expect(s.initialState().confState).toEqual({ voters: [1, 2], learners: [] });
    await s.close();
  });

  test('the entries a compaction keeps behind the snapshot (the margin) are there after a reopen, and stay there', async () => {
    const dir = await tempDir();
    let s = await LevelStorage.open(dir, cs);
    await s.save({ entries: Array.from({ length: 100 }, (_, i) => ent(i + 1, i < 60 ? 1 : 2)), hardState: { term: 2, vote: 1, commit: 100 } });
    await s.createSnapshot(80, cs, Uint8Array.of(8));
    await s.compact(50); // a margin of 30 entries before the snapshot
    expect(s.firstIndex()).toBe(51);
    await s.close();
    for (let round = 0; round < 2; round++) {
      s = await LevelStorage.open(dir);
      // Before, the log restarted at the snapshot (first index 81): a follower 30 entries behind
      // needed a snapshot. Now only the first kept entry becomes the dummy (the term before it is
      // not on disk), the same at every open.
      expect(s.firstIndex()).toBe(52);
      expect(s.snapshot().metadata.index).toBe(80);
      expect(idx(s.entries(52, 101, Infinity))).toEqual(Array.from({ length: 49 }, (_, i) => [i + 52, i + 52 <= 60 ? 1 : 2]));
      expect(s.term(51)).toBe(1);
      await s.close();
    }
    // A node over it starts with the snapshot's index applied: the margin is not delivered again.
    s = await LevelStorage.open(dir);
    const rn = new RawNode({ id: 1, storage: s, electionTick: 10, heartbeatTick: 1, rand: new SeededRand(1) });
    expect(rn.raft.raftLog.applied).toBe(80);
    expect(rn.raft.raftLog.committed).toBe(100);
    await s.close();
  });

  test('a corrupted entry is reported as corruption', async () => {
    const dir = await tempDir();
    const s = await LevelStorage.open(dir, cs);
    await s.save({ entries: [ent(1, 1, 'hello')] });
    await s.close();
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    const v = (await db.get(entryKey(1)))!;
    const bad = v.slice();
    bad[10] ^= 0x01;
    await db.put(entryKey(1), bad);
    await db.close();
    let err: unknown;
    try { await LevelStorage.open(dir); } catch (e) { err = e; }
    expect(isRaftError(err, RaftErrorCode.Corrupt)).toBe(true);
  });

  test('a gap in the log is reported as corruption', async () => {
    const dir = await tempDir();
    const s = await LevelStorage.open(dir, cs);
    await s.save({ entries: [ent(1, 1), ent(2, 1), ent(3, 1)] });
    await s.close();
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.del(entryKey(2));
    await db.close();
    await expect(LevelStorage.open(dir)).rejects.toThrow(/gap/);
  });

  test('entry encoding round-trips conf changes', () => {
    const e = { index: 7, term: 3, type: EntryType.ConfChange, data: Uint8Array.of(0, 0, 0, 0, 4) };
    expect(decodeEntry(7, encodeEntry(e))).toEqual(e);
  });

  test('a single-node RawNode persists through LevelStorage and recovers after restart', async () => {
    const dir = await tempDir();
    await rawNodeRecoversAfterRestart((voters) => LevelStorage.open(dir, voters ? { voters, learners: [] } : undefined));
  });
});

describe('LevelStorage.createSnapshot and a pending commit-only hard state', () => {
  test('the snapshot is stored with the hard state that commits it (a crash copy reopens)', async () => {
    const dir = await tempDir();
    const s = await LevelStorage.open(dir, cs);
    await s.save({ entries: [1, 2, 3, 4].map((i) => ent(i, 1)), hardState: { term: 1, vote: 1, commit: 1 } });
    // Commit-only, unsynced: kept in memory until the next write.
    await s.save({ entries: [], hardState: { term: 1, vote: 1, commit: 4 }, mustSync: false });
    await s.createSnapshot(3, cs, Uint8Array.of(7));
    // What a SIGKILL now leaves: the directory as it is, the store never closed.
    const copy = await tempDir();
    await cp(dir, copy, { recursive: true });
    await s.close();
    const r = await LevelStorage.open(copy);
    expect(r.snapshot().metadata.index).toBe(3);
    expect(r.initialState().hardState.commit).toBeGreaterThanOrEqual(3);
    await r.close();
  });

  test('a Ready with nothing to persist writes nothing: the pending commit waits for the next batch', async () => {
    const dir = await tempDir();
    const s = await LevelStorage.open(dir, cs);
    await s.save({ entries: [1, 2, 3, 4].map((i) => ent(i, 1)), hardState: { term: 1, vote: 1, commit: 1 } });
    await s.save({ entries: [], hardState: { term: 1, vote: 1, commit: 4 }, mustSync: false });
    // Messages only (a proposal relayed to the leader, say): no write, resolved unsynced.
    expect(await s.save({ entries: [], mustSync: false })).toBe(false);
    const crashCopy = async () => {
      const copy = await tempDir();
      await cp(dir, copy, { recursive: true });
      const r = await LevelStorage.open(copy);
      const hs = r.initialState().hardState;
      await r.close();
      return hs;
    };
    expect((await crashCopy()).commit).toBe(1);
    expect(s.initialState().hardState.commit).toBe(4);
    // The next batch carries it.
    await s.save({ entries: [ent(5, 1)], mustSync: true });
    expect(await crashCopy()).toEqual({ term: 1, vote: 1, commit: 4 });
    await s.close();
  });
});
