/**
 * One seeded run of the replication simulator (see sim.test.ts): 3 or 5 members, clients, faults,
 * membership changes in some seeds, then healing and the checks. Throws on any violation.
 */
import { expect } from 'vitest';
import { ConfChangeType, SeededRand } from '../../src/raft/index.js';
import { checkHistory, formatOps } from '../raft/linearizability.js';
import type { SyncCounts } from '../../src/replication/sim/index.js';
import { Clients, SimCluster } from './sim_cluster.js';
import { startNemesis } from './sim_nemesis.js';

const te = new TextEncoder();

/** What one run did. */
export interface Report {
  seed: number;
  n: number;
  faults: Record<string, number>;
  ops: number;
  stats: Clients['stats'];
  applied: number;
  restores: number;
  events: number;
  /** Syncs that took virtual time, messages delivered and entries applied while a member synced. */
  syncs: SyncCounts;
  fingerprint: string;
}

export async function runSeed(seed: number): Promise<Report> {
  const boot = new SeededRand(seed ^ 0x5eed);
  const n = boot.chance(0.6) ? 3 : 5;
  const snapshotEvery = [0, 8, 20][boot.int(3)];
  const compactMargin = 1 + boot.int(6);
  const net = {
    drop: [0, 0.01, 0.05][boot.int(3)], dup: [0, 0.02][boot.int(2)],
    minDelay: 1, maxDelay: 1 + boot.int(8), longDelay: 0.01, longDelayMax: 40,
  };
  // Log syncs take virtual time in three seeds of four: up to 1, 4 or 8 of the longest network
  // delays (a quarter of them zero: an event at the same time), so that messages arrive and
  // commits are learnt while members sync; in the fourth they complete at once, as before.
  const syncSpan = [0, 1, 4, 8][boot.int(4)];
  const c = new SimCluster({ seed, n, snapshotEvery, compactMargin, net, syncs: { zero: 0.25, maxDelay: syncSpan * net.maxDelay } });
  const faults: Record<string, number> = {};
  const count = (k: string) => { faults[k] = (faults[k] ?? 0) + 1; };
  try {
    for (const id of c.ids()) await c.start(id);
    const clients = new Clients(c, { clients: 3, keys: ['a', 'b', 'c'], thinkMs: 25 });
    const r = c.sim.rand;
    // In some seeds the membership changes during the faults: a new member joins as a learner
    // and is promoted, then a random original member — possibly the leader — is removed.
    const changes: Array<{ done: () => boolean; cancel: () => void }> = [];
    if (boot.chance(0.4)) {
      const joiner = n + 1;
      c.sim.schedule(200 + r.int(600), async () => {
        c.addJoiner(joiner);
        await c.start(joiner);
        count('join');
        const add = c.startChange({ type: ConfChangeType.AddLearner, nodeId: joiner });
        changes.push(add);
        const promote = (): void => {
          if (!add.done()) { c.sim.schedule(50, promote); return; }
          changes.push(c.startChange({ type: ConfChangeType.AddNode, nodeId: joiner }));
          count('promote');
        };
        promote();
      });
      c.sim.schedule(1200 + r.int(800), () => {
        const victim = c.leader() !== undefined && r.chance(0.5) ? c.leader()! : 1 + r.int(n);
        const rm = c.startChange({ type: ConfChangeType.RemoveNode, nodeId: victim });
        changes.push(rm);
        count(victim === c.leader() ? 'remove-leader' : 'remove');
        const retire = async (): Promise<void> => {
          if (!rm.done()) { c.sim.schedule(50, retire); return; }
          await c.retire(victim);
        };
        c.sim.schedule(50, retire);
      });
    }
    const faultUntil = 2500;
    startNemesis(c, { until: faultUntil, maxDown: (n) => Math.floor((n - 1) / 2) + 1, restartMin: 50, restartSpan: 600, periodMin: 100, periodSpan: 300, count });
    await c.sim.runFor(faultUntil);
    c.check();
    // Heal, restart everyone, let the clients finish.
    c.sim.net.heal();
    clients.stop();
    await c.sim.runFor(700); // pending restarts happen
    for (const id of c.ids()) await c.start(id);
    // Membership changes under way finish.
    expect(await c.sim.runUntil(() => changes.every((ch) => ch.done()), 10_000), 'membership changes finish').toBe(true);
    await c.sim.runFor(100);
    const ids = c.ids();
    expect(await c.sim.runUntil(() => clients.idle(), 10_000)).toBe(true);
    // Progress: a write after healing commits and is applied everywhere.
    let done = false;
    const writeAfter = (): void => {
      const via = c.leader() ?? c.up()[0];
      c.group(via).propose(te.encode(JSON.stringify({ k: 'final', v: String(seed) }))).then(() => { done = true; }, () => c.sim.schedule(50, writeAfter));
    };
    writeAfter();
    expect(await c.sim.runUntil(() => done, 10_000), 'a write after healing commits').toBe(true);
    const conv = await c.sim.runUntil(() => c.converged(), 10_000);
    expect(conv, `all members converge: ${JSON.stringify(c.up().map((id) => ({ ...c.group(id).status(), sm: c.members.get(id)!.sm!.applied })))}`).toBe(true);
    c.check();
    const states = ids.map((id) => {
      const sm = c.members.get(id)!.sm!;
      return JSON.stringify({ chain: sm.chain, kv: [...sm.kv].sort() });
    });
    for (const s of states) expect(s).toBe(states[0]);
    for (const id of ids) expect(c.members.get(id)!.sm!.kv.get('final')).toBe(String(seed));
    const result = checkHistory(clients.history);
    if (result.ok === false) throw new Error(`not linearizable on key ${result.badKey}:\n${formatOps(result.badOps!)}`);
    const restores = ids.reduce((sum, id) => sum + c.members.get(id)!.sm!.restores.length, 0);
    const applied = c.group(ids[0]).status().applied;
    return {
      seed, n, faults, ops: clients.history.length, stats: clients.stats, applied, restores, events: c.sim.clock.events, syncs: { ...c.sim.syncs.counts },
      fingerprint: `${states[0]}|${c.sim.clock.events}|${c.sim.now}|${JSON.stringify(c.sim.syncs.counts)}|${JSON.stringify(clients.history)}`,
    };
  } finally {
    await c.close();
  }
}

export async function replayable(seed: number): Promise<Report> {
  try {
    return await runSeed(seed);
  } catch (err) {
    const e = err as Error;
    e.message = `seed ${seed} failed — replay: SIM_SEED=${seed} npx vitest run test/replication/sim.test.ts\n${e.message}`;
    throw e;
  }
}

