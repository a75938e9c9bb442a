/**
 * The deterministic simulation: many seeds, each a cluster of 3 or 5 nodes under client load
 * with nemeses (partitions incl. a bridge node and an isolated leader, crash-restart losing
 * unsynced writes, pauses, loss, duplication, reordering, leadership transfers). Safety
 * invariants are checked after every simulated event and every client history is checked for
 * linearizability. See test/raft/sim/.
 *
 * Environment:
 *   RAFT_SEED=n         run only seed n (prints its report) — the replay command
 *   RAFT_SEEDS=n        number of seeds (default 500)
 *   RAFT_SEED_START=n   first seed (default 1)
 */

import { describe, expect, test } from 'vitest';
import { runSimulation, type RunReport } from './sim/nemesis.js';

const single = process.env.RAFT_SEED !== undefined ? Number(process.env.RAFT_SEED) : undefined;
const count = Number(process.env.RAFT_SEEDS ?? 500);
const start = Number(process.env.RAFT_SEED_START ?? 1);
const BATCH = 50;

function replay(seed: number): string {
  return `RAFT_SEED=${seed} npx vitest run test/raft/simulation.test.ts`;
}

function runSeed(seed: number): RunReport {
  try {
    return runSimulation(seed);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    err.message = `seed ${seed} failed: ${err.message}\nreplay with: ${replay(seed)}`;
    throw err;
  }
}

describe('raft simulation', () => {
  if (single !== undefined) {
    test(`seed ${single}`, () => {
      const r = runSeed(single);
      console.log(JSON.stringify(r, null, 2));
      expect(r.ops).toBeGreaterThan(0);
    });
    return;
  }

  const batches: Array<[number, number]> = [];
  for (let s = start; s < start + count; s += BATCH) batches.push([s, Math.min(start + count, s + BATCH)]);
  const totals = { ops: 0, indeterminate: 0, committed: 0, faults: 0, leaders: 0, runs: 0 };

  test.each(batches)('seeds [%i, %i)', (lo, hi) => {
    for (let seed = lo; seed < hi; seed++) {
      const r = runSeed(seed);
      totals.runs++;
      totals.ops += r.ops;
      totals.indeterminate += r.indeterminate;
      totals.committed += r.committed;
      totals.leaders += r.leaders;
      for (const v of Object.values(r.faults)) totals.faults += v;
    }
  });

  test('the runs did real work', () => {
    // Guards against a simulator that silently stopped exercising the system.
    expect(totals.runs).toBe(count);
    expect(totals.ops / count).toBeGreaterThan(50);
    expect(totals.committed / count).toBeGreaterThan(30);
    expect(totals.faults / count).toBeGreaterThan(5);
    expect(totals.leaders / count).toBeGreaterThan(1);
  });

  test('a run is a pure function of its seed', () => {
    const a = runSimulation(start);
    const b = runSimulation(start);
    expect(b).toEqual(a);
  });
});
