/**
 * The simulator catches a broken driver: with reads served as soon as the leader confirms the
 * read index — without waiting until this member has applied it — some seed's history is not
 * linearizable (a follower answers from a stale state). The same seeds pass with the real driver
 * (sim.test.ts runs them).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ReplicationGroup } from '../../src/replication/index.js';
import { runSeed } from './sim_run.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('replication simulator, mutation', () => {
  it('finds the stale read of a driver that does not wait for apply', async () => {
    type Internals = { noteReadStates(readStates: ReadonlyArray<{ index: number; requestCtx: Uint8Array }>): void };
    const proto = ReplicationGroup.prototype as unknown as Internals;
    const real = proto.noteReadStates;
    vi.spyOn(proto, 'noteReadStates').mockImplementation(function (this: Internals, readStates) {
      // The bug: record read index 0, so the read is released before the entries it must see are applied.
      real.call(this, readStates.map((rs) => ({ ...rs, index: 0 })));
    });
    let caught: string | undefined;
    for (let seed = 1; seed <= 80 && caught === undefined; seed++) {
      try {
        await runSeed(seed);
      } catch (err) {
        caught = `seed ${seed}: ${(err as Error).message}`;
      }
    }
    expect(caught).toMatch(/not linearizable/);
  }, 120_000);
});
