/**
 * Nemeses for the simulator and one seeded simulation run: a cluster of 3 or 5 under client
 * load while faults are injected, followed by healing, a liveness check and the
 * linearizability check of the whole client history.
 */

import { StateType } from '../../../src/raft/types.js';
import { checkHistory, formatOps } from '../linearizability.js';
import { Cluster } from './cluster.js';
import { KvApp, Workload } from './kv.js';

/** What one run did, for statistics and messages. */
export interface RunReport {
  seed: number;
  nodes: number;
  virtualMs: number;
  ops: number;
  indeterminate: number;
  faults: Record<string, number>;
  committed: number;
  leaders: number;
}

/** Options of {@link runSimulation}. */
export interface SimOptions {
  /** Virtual time of the faulty phase. */
  durationMs?: number;
}

/**
 * Runs seed `seed`; throws (SafetyViolation or Error) on any violated invariant, on a
 * non-linearizable history, or if the healed cluster makes no progress.
 */
export function runSimulation(seed: number, o: SimOptions = {}): RunReport {
  const boot = new Cluster({ seed, n: 1, newApp: () => new KvApp() }).rand; // derive parameters from the seed
  const n = boot.chance(0.5) ? 3 : 5;
  const compactEvery = [0, 8, 30][boot.int(3)];
  const c = new Cluster({
    seed, n, newApp: () => new KvApp(), tickMs: 10, electionTick: 10, heartbeatTick: 2,
    compactEvery, snapshotChunkSize: 16 + boot.int(200), maxSizePerMsg: 200 + boot.int(2000),
    maxInflight: 1 + boot.int(8), preVote: true, checkQuorum: true,
    net: { drop: 0, dup: 0, minDelay: 1, maxDelay: 1 + boot.int(12) },
    diskMin: 0, diskMax: 1 + boot.int(5),
  });
  const w = new Workload(c, { clients: 3, keys: ['a', 'b', 'c'], retryMs: 150, timeoutMs: 1000, thinkMs: 20 });
  const faults: Record<string, number> = {};
  const count = (k: string): void => { faults[k] = (faults[k] ?? 0) + 1; };
  const ids = c.ids();
  const duration = o.durationMs ?? 3000;
  const leaderTerms = new Set<string>();

  const leader = (): number | undefined => {
    let best: { id: number; term: number } | undefined;
    for (const l of c.leaders()) if (!best || l.term > best.term) best = l;
    return best?.id;
  };
  const shuffle = (xs: number[]): number[] => {
    const a = xs.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = c.rand.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };

  const nemesis = (): void => {
    if (c.now >= duration) return;
    const r = c.rand.int(13);
    switch (r) {
      case 0: { // random partition into two sides
        const s = shuffle(ids);
        const k = 1 + c.rand.int(ids.length - 1);
        c.partition(s.slice(0, k), s.slice(k));
        count('partition');
        break;
      }
      case 1: { // bridge: two sides joined only through one node
        if (ids.length < 3) break;
        const s = shuffle(ids);
        const b = s[0];
        const rest = s.slice(1);
        const k = Math.max(1, Math.floor(rest.length / 2));
        c.bridge(rest.slice(0, k), b, rest.slice(k));
        count('bridge');
        break;
      }
      case 2: { // isolate the leader
        const l = leader();
        if (l !== undefined) { c.heal(); c.isolate(l); count('isolate-leader'); }
        break;
      }
      case 3: case 4: { // crash a node (losing unsynced writes), restart later
        const id = c.rand.chance(0.5) ? (leader() ?? ids[c.rand.int(ids.length)]) : ids[c.rand.int(ids.length)];
        if (c.get(id).up) {
          c.crash(id);
          count('crash');
          c.schedule(20 + c.rand.int(400), () => c.start(id));
        }
        break;
      }
      case 5: { // pause a node (a long GC pause)
        const id = ids[c.rand.int(ids.length)];
        c.pause(id);
        count('pause');
        c.schedule(50 + c.rand.int(400), () => c.resume(id));
        break;
      }
      case 6: // message loss
        c.net.drop = 0.05 + c.rand.float() * 0.25;
        count('loss');
        break;
      case 7: // duplication
        c.net.dup = 0.05 + c.rand.float() * 0.25;
        count('dup');
        break;
      case 8: // reordering: some messages are delayed far behind newer ones
        c.net.longDelay = 0.1 + c.rand.float() * 0.3;
        c.net.longDelayMax = 50 + c.rand.int(300);
        count('reorder');
        break;
      case 9: { // leadership transfer to a random voter
        const l = leader();
        if (l !== undefined) {
          const to = ids[c.rand.int(ids.length)];
          if (to !== l) { c.withNode(l, (rn) => rn.transferLeader(to)); count('transfer'); }
        }
        break;
      }
      default: // heal the network
        c.heal();
        c.net.drop = 0;
        c.net.dup = 0;
        c.net.longDelay = 0;
        count('heal');
    }
    c.schedule(50 + c.rand.int(300), nemesis);
  };
  c.schedule(100 + c.rand.int(200), nemesis);

  // Faulty phase.
  while (c.now < duration) {
    c.runFor(50);
    for (const l of c.leaders()) leaderTerms.add(`${l.id}@${l.term}`);
  }
  // Heal everything and let the clients finish.
  c.heal();
  Object.assign(c.net, { drop: 0, dup: 0, longDelay: 0 });
  for (const id of ids) { if (!c.get(id).up) c.start(id); c.resume(id); }
  const committedBefore = c.maxCommitted;
  c.runFor(1000);
  w.stop();
  if (!c.runUntilCond(() => w.idle(), 5000)) throw new Error('clients still waiting 5 s after healing');
  // Liveness after healing: a leader, and new writes commit.
  if (!c.runUntilCond(() => c.leaders().length > 0, 3000)) throw new Error('no leader 3 s after healing');
  if (c.maxCommitted <= committedBefore && w.completed === 0) throw new Error('no progress after healing');
  const l = leader()!;
  if (c.get(l).node!.raft.state !== StateType.Leader) throw new Error('leader lost');
  c.checkConverged();

  const res = checkHistory(w.history);
  if (res.ok === false) {
    throw new Error(`history is not linearizable for key ${res.badKey}:\n${formatOps(res.badOps!)}`);
  }
  if (res.ok === 'unknown') throw new Error('linearizability check gave up (history too large)');
  return {
    seed, nodes: n, virtualMs: c.now, ops: w.history.length,
    indeterminate: w.history.filter((h) => h.ret === Infinity).length, faults,
    committed: c.maxCommitted, leaders: leaderTerms.size,
  };
}
