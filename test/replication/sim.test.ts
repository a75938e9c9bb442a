/**
 * The replication simulator: 3 or 5 real ReplicationGroups (LevelStorage each) on the in-memory
 * network and virtual clock, under client load, with seeded faults — symmetric and one-way
 * partitions, leader isolation, crashes (close) and restarts (reopen from the same directory),
 * message loss, duplication and reordering, and (in some seeds) snapshots with log compaction so
 * that a member behind the leader's first index is restored from a snapshot. Checked: election
 * safety after every event, state-machine safety at every applied index (a hash chain), the
 * client history with the WGL linearizability checker (puts through propose on any member, gets
 * through readIndex), progress after healing, and convergence of every member to the same applied
 * log and state. A run is a pure function of its seed (checked below).
 *
 *   SIM_SEED=n npx vitest run test/replication/sim.test.ts       # replay one seed
 *   SIM_SEEDS=1000 SIM_SEED_START=5001 npx vitest run test/replication/sim.test.ts
 */

import { describe, expect, it } from 'vitest';
import { replayable } from './sim_run.js';

const one = process.env.SIM_SEED !== undefined ? Number(process.env.SIM_SEED) : undefined;
const count = Number(process.env.SIM_SEEDS ?? 200);
const start = Number(process.env.SIM_SEED_START ?? 1);
const seeds = one !== undefined ? [one] : Array.from({ length: count }, (_, i) => start + i);

describe('replication simulator', () => {
  it('a run is a pure function of its seed, also with syncs that take virtual time', async () => {
    let delayed = 0;
    for (const seed of seeds.slice(0, 2)) {
      const a = await replayable(seed);
      const b = await replayable(seed);
      expect(b.fingerprint).toBe(a.fingerprint);
      expect(b.events).toBe(a.events);
      delayed += a.syncs.delayed;
    }
    if (one === undefined) expect(delayed).toBeGreaterThan(0);
  });

  it(`${seeds.length} seeds: safety, linearizability, progress and convergence`, async () => {
    const totals = { ops: 0, restores: 0, applied: 0, indeterminate: 0 };
    const syncs = { delayed: 0, deliveredDuringSync: 0, appliedDuringSync: 0 };
    const faults: Record<string, number> = {};
    for (const seed of seeds) {
      const rep = await replayable(seed);
      totals.ops += rep.ops;
      totals.restores += rep.restores;
      totals.applied += rep.applied;
      totals.indeterminate += rep.stats.indeterminate;
      for (const [k, v] of Object.entries(rep.faults)) faults[k] = (faults[k] ?? 0) + v;
      for (const k of Object.keys(syncs) as Array<keyof typeof syncs>) syncs[k] += rep.syncs[k];
    }
    // The runs did what they claim: operations, faults of every kind, snapshots installed.
    expect(totals.ops).toBeGreaterThan(seeds.length * 10);
    if (seeds.length >= 50) {
      for (const k of ['partition', 'one-way', 'isolate-leader', 'crash', 'restart', 'heal', 'join', 'promote', 'remove', 'remove-leader']) expect(faults[k] ?? 0).toBeGreaterThan(0);
      expect(totals.restores).toBeGreaterThan(0);
      // Syncs take virtual time: messages reach members while they sync, and commits learnt then
      // are applied then (the group's duringSync path).
      expect(syncs.deliveredDuringSync).toBeGreaterThan(0);
      expect(syncs.appliedDuringSync).toBeGreaterThan(0);
    }
    console.log(`sim: ${seeds.length} seeds, ${totals.ops} ops (${totals.indeterminate} indeterminate), ${totals.applied} entries applied, ${totals.restores} snapshot restores, faults ${JSON.stringify(faults)}, syncs ${JSON.stringify(syncs)}`);
  }, 600_000);
});
