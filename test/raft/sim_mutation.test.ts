/**
 * The simulator must be able to fail: a deliberately broken driver that sends a Ready's
 * messages before its write is synced (so a crash can forget a vote or an acknowledged
 * entry) is caught by the safety checks within a few seeds, while the same crash-heavy
 * scenario with the correct driver passes.
 */

import { describe, expect, test } from 'vitest';
import { Cluster, SafetyViolation } from './sim/cluster.js';
import { KvApp } from './sim/kv.js';

const enc = new TextEncoder();

/** Crash-heavy run: returns the violation, if any. */
function crashStorm(seed: number, unsafeSendBeforeSync: boolean): SafetyViolation | undefined {
  const c = new Cluster({
    seed, n: 3, newApp: () => new KvApp(), diskMin: 5, diskMax: 30, unsafeSendBeforeSync,
    tickMs: 10, electionTick: 10, preVote: false, checkQuorum: false,
  });
  const crashLoop = (): void => {
    const id = 1 + c.rand.int(3);
    if (c.get(id).up) {
      c.crash(id);
      c.schedule(1 + c.rand.int(5), () => c.start(id));
    }
    c.schedule(30 + c.rand.int(150), crashLoop);
  };
  let s = 0;
  const propose = (): void => {
    const l = c.leaders()[0];
    if (l) c.withNode(l.id, (rn) => rn.propose(enc.encode(JSON.stringify({ c: 1, s: ++s, op: 'put', k: 'a', v: String(s) }))));
    c.schedule(5, propose);
  };
  c.schedule(50, crashLoop);
  c.schedule(10, propose);
  try {
    c.runFor(5000);
  } catch (e) {
    if (e instanceof SafetyViolation) return e;
    throw e;
  }
  return undefined;
}

describe('simulator mutation check', () => {
  test('a driver that sends before syncing is caught', () => {
    const caught: number[] = [];
    for (let seed = 1; seed <= 40; seed++) if (crashStorm(seed, true)) caught.push(seed);
    expect(caught.length).toBeGreaterThan(0);
  });

  test('the correct driver survives the same crash storm', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const v = crashStorm(seed, false);
      expect(v?.message, `seed ${seed}`).toBeUndefined();
    }
  });
});
