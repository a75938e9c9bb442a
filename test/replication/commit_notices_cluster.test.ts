/**
 * Held commit notices in a three-member group on the simulator (virtual time, heartbeats every
 * 500 ms so that they tell no follower anything during a check): a follower learns a leader's
 * commit from the next append, or from the held notice when the delay runs out; a write a follower
 * relays is answered without waiting for either.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SimCluster } from './sim_cluster.js';

const te = new TextEncoder();
const put = (k: string, v: string) => te.encode(JSON.stringify({ k, v }));

const clusters: SimCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

async function cluster(seed: number, commitNoticeDelayMs: number): Promise<SimCluster> {
  const c = new SimCluster({ seed, n: 3, tickMs: 10, heartbeatTick: 50, electionTick: 200, commitNoticeDelayMs });
  clusters.push(c);
  for (const id of c.ids()) await c.start(id);
  expect(await c.sim.runUntil(() => {
    const l = c.leader();
    return l !== undefined && c.up().every((id) => c.group(id).status().leader === l);
  }, 20_000)).toBe(true);
  // Let the election's own entries commit and reach every member.
  expect(await c.sim.runUntil(() => c.converged(), 5_000)).toBe(true);
  return c;
}

/** Runs the simulation until `p` settles; returns its value and the virtual ms it took. */
async function timed<T>(c: SimCluster, p: Promise<T>, maxMs = 5_000): Promise<{ value: T; ms: number }> {
  const start = c.sim.now;
  let out: { ok: true; value: T } | { ok: false; reason: unknown } | undefined;
  p.then((value) => { out = { ok: true, value }; }, (reason: unknown) => { out = { ok: false, reason }; });
  await c.sim.runUntil(() => out !== undefined, maxMs, 1);
  if (!out) throw new Error(`not settled after ${maxMs} ms of virtual time`);
  if (!out.ok) throw out.reason;
  return { value: out.value, ms: c.sim.now - start };
}

const indexOf = (answer: string) => Number(answer.split('@')[1]);

describe('commit notices held by the leader', () => {
  it('a follower learns a commit from the next append, or from the notice once the delay runs out', async () => {
    const c = await cluster(11, 100);
    const leader = c.leader()!;
    const followers = c.ids().filter((id) => id !== leader);
    const first = indexOf((await timed(c, c.group(leader).propose(put('a', '1')))).value);
    // Answered on the leader: the followers hold the entry, and the notice of its commit waits
    // (sent at once, it would have arrived within a few ms).
    await c.sim.runFor(20);
    for (const f of followers) expect(c.group(f).status().applied).toBeLessThan(first);
    // The next write's append carries that commit index: the followers apply the first entry long
    // before the delay runs out.
    const t0 = c.sim.now;
    const second = indexOf((await timed(c, c.group(leader).propose(put('b', '2')))).value);
    expect(second).toBe(first + 1);
    expect(await c.sim.runUntil(() => followers.every((f) => c.group(f).status().applied >= first), 5_000, 1)).toBe(true);
    expect(c.sim.now - t0).toBeLessThan(30);
    // Nothing follows the second write: its notice goes when the delay (100 ms) runs out, not at
    // the next heartbeat (500 ms).
    const t1 = c.sim.now;
    expect(await c.sim.runUntil(() => followers.every((f) => c.group(f).status().applied >= second), 5_000, 1)).toBe(true);
    expect(c.sim.now - t1).toBeLessThan(150);
    for (const f of followers) expect(c.members.get(f)!.sm!.kv.get('b')).toBe('2');
  });

  it('a write a follower relays is answered without waiting for the delay or a heartbeat', async () => {
    const c = await cluster(12, 1_000);
    const leader = c.leader()!;
    const follower = c.ids().find((id) => id !== leader)!;
    for (let i = 0; i < 5; i++) {
      const { value, ms } = await timed(c, c.group(follower).propose(put(`k${i}`, `${i}`)));
      expect(c.group(follower).status().applied).toBeGreaterThanOrEqual(indexOf(value));
      expect(ms).toBeLessThan(50);
    }
    expect(c.members.get(follower)!.sm!.kv.get('k4')).toBe('4');
  });

  it('with the delay at 0 every notice goes at once', async () => {
    const c = await cluster(13, 0);
    const leader = c.leader()!;
    const followers = c.ids().filter((id) => id !== leader);
    const index = indexOf((await timed(c, c.group(leader).propose(put('a', '1')))).value);
    const t0 = c.sim.now;
    expect(await c.sim.runUntil(() => followers.every((f) => c.group(f).status().applied >= index), 5_000, 1)).toBe(true);
    expect(c.sim.now - t0).toBeLessThan(30);
  });
});
