/**
 * `Simulation.defer`: an input that a member makes when real I/O outside its loop completes runs
 * once every member is idle, in member order, whatever order the real completions came in; work it
 * starts is waited for before the next event. (The full-stack simulation's cosign proposals and
 * Raft snapshot records go through it: see docs/replication.md § The simulator.)
 */
import { describe, expect, it } from 'vitest';
import { Simulation, type SimMember } from '../../src/replication/sim/index.js';

/** A member whose work takes real time (a timer standing in for the disk). */
class SlowMember implements SimMember {
  private work: Promise<void> | null = null;
  busy(): boolean {
    return this.work !== null;
  }
  async settled(): Promise<void> {
    while (this.work) await this.work;
  }
  /** Starts work that ends after `ms` real milliseconds, then runs `then`. */
  start(ms: number, then: () => void): void {
    const w = new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => {
      if (this.work === w) this.work = null;
      then();
    });
    this.work = w;
  }
}

async function run(delay1: number, delay2: number): Promise<string[]> {
  const sim = new Simulation(7);
  const order: string[] = [];
  const m1 = new SlowMember();
  const m2 = new SlowMember();
  sim.members.set(1, m1);
  sim.members.set(2, m2);
  sim.schedule(1, () => {
    m2.start(delay2, () => {
      order.push('done 2');
      sim.defer(2, () => order.push('step 2a'));
      sim.defer(2, () => {
        order.push('step 2b');
        // Work a deferred step starts is part of the same event.
        m2.start(15, () => order.push('work of step 2b'));
      });
    });
    m1.start(delay1, () => {
      order.push('done 1');
      sim.defer(1, () => order.push('step 1a'));
    });
  });
  sim.schedule(2, () => { order.push('next event'); });
  await sim.runFor(5);
  return order.filter((s) => !s.startsWith('done'));
}

describe('Simulation.defer', () => {
  it('runs deferred steps after every member is idle, in member order, whichever I/O finished first', async () => {
    const fast2 = await run(40, 5);
    const fast1 = await run(5, 40);
    expect(fast2).toEqual(['step 1a', 'step 2a', 'step 2b', 'work of step 2b', 'next event']);
    expect(fast1).toEqual(fast2);
  });
});
