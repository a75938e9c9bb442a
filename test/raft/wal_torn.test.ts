/**
 * The torn tail the nemesis harness writes into the Raft log (`tearWalTail`) is what WalStorage's
 * open calls a torn tail, never corruption: over many seeds and log lengths (some ending near or
 * across a segment boundary), the log reopens with exactly
 * what was saved, and a write after it reads back.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WalStorage } from '../../src/raft/wal_storage.js';
import { mulberry32 } from '../support/prng.js';
import { ent } from './helpers.js';
import { tearWalTail } from './wal_torn.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const opts = { segmentBytes: 4096 };

describe('tearWalTail', () => {
  it('leaves a tail that the open cuts back, at every kind of log length', async () => {
    const rand = mulberry32(11);
    for (let k = 0; k < 40; k++) {
      const root = await mkdtemp(join(tmpdir(), 'raft-torn-'));
      dirs.push(root);
      const dir = join(root, 'wal');
      const s = await WalStorage.open(dir, { voters: [1], learners: [] }, opts);
      const n = Math.floor(rand() * 30);
      for (let i = 1; i <= n; i++) await s.save({ entries: [ent(i, 1, 'p'.repeat(Math.floor(rand() * 400)))], hardState: { term: 1, vote: 1, commit: i } });
      const want = { last: s.lastIndex(), hs: s.initialState().hardState, segs: s.segmentSeqs() };
      await s.close();
      expect(tearWalTail(dir, rand)).toBeDefined();
      const r = await WalStorage.open(dir, undefined, opts);
      expect({ last: r.lastIndex(), hs: r.initialState().hardState, segs: r.segmentSeqs() }, `case ${k}`).toEqual(want);
      await r.save({ entries: [ent(n + 1, 2, 'after')], hardState: { term: 2, vote: 1, commit: n } });
      await r.close();
      const again = await WalStorage.open(dir, undefined, opts);
      expect(again.lastIndex()).toBe(n + 1);
      expect(new TextDecoder().decode(again.entries(n + 1, n + 2, Infinity)[0].data)).toBe('after');
      await again.close();
    }
  });
});
