/**
 * The upgrade of a data directory whose Raft log is the old LevelDB one: WalStorage.open with
 * `upgradeFrom` converts it once (entries, the margin behind the snapshot, the snapshot, the hard
 * state) and deletes it; a conversion that crashed before its rename leaves the old log usable and
 * is done again; a crash after its rename keeps the segments.
 */

import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { LevelStorage } from '../../src/raft/level_storage.js';
import { WalStorage } from '../../src/raft/wal_storage.js';
import { EntryType } from '../../src/raft/types.js';
import { ent } from './helpers.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'raft-upgrade-'));
  dirs.push(d);
  return d;
}

const cs = { voters: [1, 2, 3], learners: [] };
const td = new TextDecoder();

type Log = LevelStorage | WalStorage;
function state(s: Log): unknown {
  const ents = s.lastIndex() >= s.firstIndex() ? s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity).map((e) => [e.index, e.term, e.type, td.decode(e.data)]) : [];
  return { first: s.firstIndex(), last: s.lastIndex(), ents, init: s.initialState(), snap: s.snapshot(), term0: s.term(s.firstIndex() - 1) };
}

/** An old log: 30 entries over two terms, a conf change, a snapshot at 20 compacted to 12, a commit-only hard state pending. */
async function oldLog(dir: string): Promise<unknown> {
  const s = await LevelStorage.open(dir, cs);
  const ents = Array.from({ length: 30 }, (_, i) => ent(i + 1, i < 15 ? 1 : 2, `v${i + 1}`));
  ents[4] = { ...ents[4], type: EntryType.ConfChange };
  await s.save({ entries: ents, hardState: { term: 2, vote: 3, commit: 25 } });
  await s.createSnapshot(20, cs, Uint8Array.of(4, 2));
  await s.compact(12);
  await s.save({ entries: [], hardState: { term: 2, vote: 3, commit: 28 }, mustSync: false });
  await s.close();
  // What the old version itself reads back is what the conversion must keep.
  const r = await LevelStorage.open(dir);
  const st = state(r);
  await r.close();
  return st;
}

describe('upgrade from the LevelDB Raft log', () => {
  test('the old log is converted once into segments and deleted', async () => {
    const root = await tempDir();
    const level = join(root, 'log');
    const wal = join(root, 'wal');
    const want = await oldLog(level);
    const s = await WalStorage.open(wal, undefined, { upgradeFrom: level });
    expect(state(s)).toEqual(want);
    expect(existsSync(level)).toBe(false);
    expect(existsSync(`${wal}.tmp`)).toBe(false);
    await s.save({ entries: [ent(31, 2, 'v31')], hardState: { term: 2, vote: 3, commit: 31 } });
    const after = state(s);
    await s.close();
    const r = await WalStorage.open(wal, undefined, { upgradeFrom: level });
    expect(state(r)).toEqual(after);
    await r.close();
  });

  test('a crash before the rename leaves the old log usable; the next open converts it again', async () => {
    const root = await tempDir();
    const level = join(root, 'log');
    const wal = join(root, 'wal');
    const want = await oldLog(level);
    // A half-written conversion: the temporary directory with a torn segment.
    await mkdir(`${wal}.tmp`);
    await writeFile(join(`${wal}.tmp`, '0000000000000000.wal'), Buffer.from('torn'));
    const copy = join(root, 'copy');
    await cp(level, copy, { recursive: true });
    const old = await LevelStorage.open(copy);
    expect(state(old)).toEqual(want);
    await old.close();
    const s = await WalStorage.open(wal, undefined, { upgradeFrom: level });
    expect(state(s)).toEqual(want);
    expect(existsSync(`${wal}.tmp`)).toBe(false);
    await s.close();
  });

  test('a crash after the rename, before the old log was deleted: the segments win and the old log goes', async () => {
    const root = await tempDir();
    const level = join(root, 'log');
    const wal = join(root, 'wal');
    await oldLog(level);
    const saved = join(root, 'saved');
    await cp(level, saved, { recursive: true });
    const s = await WalStorage.open(wal, undefined, { upgradeFrom: level });
    await s.save({ entries: [ent(31, 2, 'new')], hardState: { term: 2, vote: 3, commit: 31 } });
    const after = state(s);
    await s.close();
    await cp(saved, level, { recursive: true });
    const r = await WalStorage.open(wal, undefined, { upgradeFrom: level });
    expect(state(r)).toEqual(after);
    expect(existsSync(level)).toBe(false);
    await r.close();
  });
});
