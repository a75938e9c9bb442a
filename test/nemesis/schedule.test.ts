/**
 * The schedule is a pure function of its options: the same seed gives the same steps, a shorter
 * schedule of a seed is a prefix of a longer one (so `--events E` replays a timed run that played
 * E steps), a long schedule holds every kind, the planned membership stays within `nodes` ..
 * `nodes + 1` members and within the spare ids, and bad options are refused.
 */
import { describe, expect, it } from 'vitest';
import { addsOf, NEMESIS_KINDS, schedule } from './schedule.js';

describe('schedule', () => {
  it('is a pure function of the seed, and shorter schedules are prefixes', () => {
    const a = schedule({ seed: 42, nodes: 5, events: 60 });
    expect(schedule({ seed: 42, nodes: 5, events: 60 })).toEqual(a);
    expect(schedule({ seed: 42, nodes: 5, events: 25 })).toEqual(a.slice(0, 25));
    const timed = schedule({ seed: 42, nodes: 5, minutes: 5 });
    expect(timed).toEqual(a.slice(0, timed.length));
    expect(schedule({ seed: 43, nodes: 5, events: 60 })).not.toEqual(a);
  });

  it('plans about the asked time', () => {
    const steps = schedule({ seed: 1, nodes: 3, minutes: 30, overheadMs: 4000 });
    const planned = steps.reduce((t, s) => t + s.durationMs + s.gapMs + 4000, 0);
    expect(planned).toBeLessThanOrEqual(30 * 60_000);
    expect(planned).toBeGreaterThan(29 * 60_000);
  });

  it('holds every kind in 22 steps, for many seeds', () => {
    for (let seed = 0; seed < 50; seed++) {
      const kinds = new Set(schedule({ seed, nodes: 3, events: 22 }).map((s) => s.kind));
      expect([...NEMESIS_KINDS].filter((k) => !kinds.has(k)), `seed ${seed}`).toEqual([]);
    }
  });

  it('keeps the planned membership within nodes .. nodes + 1 and the adds within maxAdds', () => {
    for (const nodes of [3, 5]) {
      for (let seed = 0; seed < 20; seed++) {
        const steps = schedule({ seed, nodes, events: 300, maxAdds: 6 });
        let size = nodes;
        for (const s of steps) {
          if (s.kind === 'add-member') size++;
          if (s.kind === 'remove-member') size--;
          expect(size).toBeGreaterThanOrEqual(nodes);
          expect(size).toBeLessThanOrEqual(nodes + 1);
        }
        expect(steps.reduce((n, s) => n + addsOf(s), 0)).toBeLessThanOrEqual(6);
      }
    }
  });

  it('keeps a majority kill short and every pause longer than an election timeout (2 s)', () => {
    for (const s of schedule({ seed: 9, nodes: 5, events: 500 })) {
      if (s.kind === 'kill-majority') expect(s.durationMs).toBeLessThanOrEqual(4000);
      if (s.kind === 'pause' || s.kind === 'pause-leader') expect(s.durationMs).toBeGreaterThan(2000);
    }
  });

  it('quick keeps the kinds and picks and shortens the times', () => {
    const long = schedule({ seed: 5, nodes: 3, events: 40 });
    const quick = schedule({ seed: 5, nodes: 3, events: 40, quick: true });
    expect(quick.map((s) => [s.kind, s.pick])).toEqual(long.map((s) => [s.kind, s.pick]));
    for (const s of quick) {
      expect(s.durationMs).toBeLessThanOrEqual(4000);
      expect(s.gapMs).toBeLessThanOrEqual(1500);
      if (s.kind === 'pause' || s.kind === 'pause-leader') expect(s.durationMs).toBeGreaterThan(2000);
    }
  });

  it('refuses bad options', () => {
    expect(() => schedule({ seed: 1, nodes: 4, events: 3 })).toThrow(RangeError);
    expect(() => schedule({ seed: 1, nodes: 3 })).toThrow(RangeError);
    expect(() => schedule({ seed: 1, nodes: 3, events: 0 })).toThrow(RangeError);
    expect(() => schedule({ seed: 1, nodes: 3, minutes: -1 })).toThrow(RangeError);
  });
});
