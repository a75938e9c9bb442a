/**
 * The simulators' fault loop (sim_run.ts, fullstack_run.ts): every 100–400 ms of virtual time,
 * one seeded fault — a symmetric partition with a random minority on one side, a one-way cut,
 * the leader isolated, a member crashed (and restarted later), or healing — until `until`.
 */
import type { Simulation } from '../../src/replication/sim/index.js';

/** What the fault loop acts on: a simulated cluster. */
export interface NemesisTarget {
  readonly sim: Simulation;
  /** Members that take part (all of them, running or not). */
  ids(): number[];
  /** Running members. */
  up(): number[];
  leader(): number | undefined;
  crash(id: number): Promise<void>;
  start(id: number): Promise<void>;
}

/** Options of {@link startNemesis}. */
export interface NemesisOptions {
  /** Virtual time after which no fault is made. */
  until: number;
  /** Most members down at once, given the member count. */
  maxDown: (n: number) => number;
  /** A crashed member restarts after `restartMin + int(restartSpan)` ms. */
  restartMin: number;
  restartSpan: number;
  /** Time between two faults: `periodMin + int(periodSpan)` ms. */
  periodMin: number;
  periodSpan: number;
  /** Probability that a crash takes the leader (0: a random running member, no draw). */
  leaderCrash?: number;
  /** Called with the name of each fault made. */
  count: (fault: string) => void;
}

/** Schedules the fault loop on `c.sim`. */
export function startNemesis(c: NemesisTarget, o: NemesisOptions): void {
  const r = c.sim.rand;
  const down = new Set<number>();
  const nemesis = async (): Promise<void> => {
    const ids = c.ids();
    const n = ids.length;
    const k = r.int(8);
    if (k === 0 || k === 1) {
      // Symmetric partition: a random minority on one side.
      const shuffled = ids.map((x) => [r.u32(), x] as const).sort((a, b) => a[0] - b[0]).map(([, x]) => x);
      const cutAt = 1 + r.int(Math.max(1, Math.floor((n - 1) / 2)));
      c.sim.net.partition(ids, shuffled.slice(0, cutAt), shuffled.slice(cutAt));
      o.count('partition');
    } else if (k === 2) {
      const a = ids[r.int(n)];
      const b = ids[r.int(n)];
      if (a !== b) { c.sim.net.cut(a, b); o.count('one-way'); }
    } else if (k === 3) {
      const l = c.leader();
      if (l !== undefined) { c.sim.net.isolate(l, ids); o.count('isolate-leader'); }
    } else if (k === 4 || k === 5) {
      const up = c.up().filter((id) => !down.has(id));
      if (up.length > 0 && down.size < o.maxDown(n)) {
        const l = c.leader();
        const v = o.leaderCrash && r.chance(o.leaderCrash) && l !== undefined && !down.has(l) ? l : up[r.int(up.length)];
        down.add(v);
        await c.crash(v);
        o.count('crash');
        c.sim.schedule(o.restartMin + r.int(o.restartSpan), async () => { await c.start(v); down.delete(v); o.count('restart'); });
      }
    } else {
      c.sim.net.heal();
      o.count('heal');
    }
  };
  const loop = (): void => {
    if (c.sim.now >= o.until) return;
    c.sim.schedule(o.periodMin + r.int(o.periodSpan), async () => {
      if (c.sim.now >= o.until) return;
      await nemesis();
      loop();
    });
  };
  loop();
}
