/**
 * Membership changes of a running group on the simulator: a new member joins as a learner
 * (opened with `join: true`, learning the bootstrap membership from the log), is promoted, the
 * leader removes itself, then another original member is removed — while clients write and read
 * through every member and the network loses and reorders messages. Checked: each change resolves
 * once applied; every member ends with the same voters and learners; the transport's peer set
 * follows the membership; histories are linearizable; the remaining members converge.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfChangeType } from '../../src/raft/index.js';
import type { SimTransport } from '../../src/replication/sim/index.js';
import { checkHistory, formatOps } from '../raft/linearizability.js';
import { Clients, SimCluster } from './sim_cluster.js';

const clusters: SimCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

const peersOf = (c: SimCluster, id: number): number[] => [...((c.group(id) as unknown as { transport: SimTransport }).transport.peers)].sort((a, b) => a - b);

async function scenario(seed: number): Promise<void> {
  const c = new SimCluster({ seed, n: 3, net: { drop: 0.02, dup: 0.01, minDelay: 1, maxDelay: 6, longDelay: 0.01, longDelayMax: 30 } });
  clusters.push(c);
  for (const id of c.ids()) await c.start(id);
  const clients = new Clients(c, { clients: 3, keys: ['a', 'b'], thinkMs: 20 });
  await c.sim.runFor(300);

  // A new member joins as a learner and is promoted once it has caught up.
  c.addJoiner(4);
  await c.start(4);
  expect(c.group(4).status()).toMatchObject({ voters: [], learners: [], leader: 0, role: 'joining' });
  expect(await c.change({ type: ConfChangeType.AddLearner, nodeId: 4 }), 'add learner 4').toBe(true);
  expect(await c.sim.runUntil(() => c.group(4).status().learners.includes(4) && c.group(4).status().role === 'learner', 3000)).toBe(true);
  expect(await c.change({ type: ConfChangeType.AddNode, nodeId: 4 }), 'promote 4').toBe(true);
  expect(await c.sim.runUntil(() => c.up().every((id) => c.group(id).status().voters.join() === '1,2,3,4'), 3000)).toBe(true);

  // The leader removes itself: it steps down and the others elect a new leader.
  const old = c.leader()!;
  expect(old).toBeDefined();
  const removed = c.group(old).proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: old });
  let removedOk: boolean | undefined;
  removed.then(() => { removedOk = true; }, () => { removedOk = false; });
  expect(await c.sim.runUntil(() => removedOk !== undefined, 5000)).toBe(true);
  if (!removedOk) expect(await c.change({ type: ConfChangeType.RemoveNode, nodeId: old }), `remove leader ${old}`).toBe(true);
  const remaining = [1, 2, 3, 4].filter((id) => id !== old);
  expect(await c.sim.runUntil(() => remaining.every((id) => !c.group(id).status().voters.includes(old)), 3000)).toBe(true);
  expect(await c.sim.runUntil(() => {
    const l = c.leader();
    return l !== undefined && l !== old;
  }, 5000), 'a new leader among the remaining members').toBe(true);
  expect(c.group(old).status().role).toBe('removed');
  // A removed member refuses at once (it still knows a leader, but nobody would take its proposal).
  await expect(c.group(old).propose(new TextEncoder().encode('{"k":"z","v":"z"}'))).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: false, message: /was removed/ });
  await c.retire(old);

  // Remove one more original member (a follower now); three voters remain.
  const victim = remaining.find((id) => id !== 4 && id !== c.leader())!;
  expect(await c.change({ type: ConfChangeType.RemoveNode, nodeId: victim }), `remove ${victim}`).toBe(true);
  const last = remaining.filter((id) => id !== victim);
  expect(await c.sim.runUntil(() => last.every((id) => c.group(id).status().voters.join() === last.join()), 3000)).toBe(true);
  await c.retire(victim);

  await c.sim.runFor(300);
  clients.stop();
  expect(await c.sim.runUntil(() => clients.idle(), 10_000)).toBe(true);
  expect(await c.sim.runUntil(() => c.converged(), 10_000), 'the remaining members converge').toBe(true);
  for (const id of last) {
    expect(c.group(id).status()).toMatchObject({ voters: last, learners: [] });
    // The transport talks to the members only.
    expect(peersOf(c, id)).toEqual(last.filter((x) => x !== id));
  }
  const states = last.map((id) => JSON.stringify([...c.members.get(id)!.sm!.kv].sort()) + c.members.get(id)!.sm!.chain);
  for (const s of states) expect(s).toBe(states[0]);
  c.check();
  const r = checkHistory(clients.history);
  if (r.ok === false) throw new Error(`not linearizable on key ${r.badKey}:\n${formatOps(r.badOps!)}`);
  expect(clients.stats.ok).toBeGreaterThan(20);
}

describe('ReplicationGroup membership', () => {
  const one = process.env.SIM_SEED !== undefined ? Number(process.env.SIM_SEED) : undefined;
  const seeds = one !== undefined ? [one] : Array.from({ length: 20 }, (_, i) => 100 + i);
  it(`add a learner, promote it, remove the leader, remove a follower (${seeds.length} seeds)`, async () => {
    for (const seed of seeds) {
      try {
        await scenario(seed);
      } catch (err) {
        (err as Error).message = `seed ${seed} failed — replay: SIM_SEED=${seed} npx vitest run test/replication/group_membership.test.ts\n${(err as Error).message}`;
        throw err;
      } finally {
        for (const c of clusters.splice(0)) await c.close();
      }
    }
  }, 300_000);

  it('a change is refused fast without a leader, and a second change waits for the first', async () => {
    const c = new SimCluster({ seed: 7, n: 3 });
    clusters.push(c);
    await c.start(1);
    await expect(c.group(1).proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 9 })).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: false });
    for (const id of [2, 3]) await c.start(id);
    expect(await c.sim.runUntil(() => c.leader() !== undefined, 5000)).toBe(true);
    const l = c.group(c.leader()!);
    const outcomes: string[] = [];
    l.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 9 }).then(() => outcomes.push('first ok'), (e: Error) => outcomes.push(`first ${e.message}`));
    l.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 10 }).then(() => outcomes.push('second ok'), (e: Error) => outcomes.push(`second ${(e as { code?: string }).code}`));
    expect(await c.sim.runUntil(() => outcomes.length === 2, 5000)).toBe(true);
    expect(outcomes).toContain('first ok');
    expect(outcomes).toContain('second REPLICATION_UNAVAILABLE');
    expect(l.status().learners).toEqual([9]);
  });
});
