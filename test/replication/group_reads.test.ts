/**
 * Linearizable reads (ReadIndex) of a three-member ReplicationGroup while members sync their
 * logs, on the simulator's network and virtual clock: a log sync that takes long (1.5 s of virtual
 * time here) holds no read whose index does not depend on it. A leader syncing a write answers a
 * follower's read request and confirms its own reads during the sync; a follower syncing a write
 * sends its read request and serves the read during the sync. Every read still returns an index
 * at least the last write acknowledged before it, and reads the value of that write.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SimCluster } from './sim_cluster.js';

const te = new TextEncoder();
const put = (k: string, v: string) => te.encode(JSON.stringify({ k, v }));

/** A slow sync, well inside the election timeout (no leader change while a member syncs). */
const SYNC_MS = 1500;
const ELECTION_TICK = 400; // × 10 ms
const clusters: SimCluster[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of clusters.splice(0)) await c.close();
});

/** Three members with an elected leader. */
async function cluster(seed: number): Promise<SimCluster> {
  const c = new SimCluster({ seed, n: 3, electionTick: ELECTION_TICK });
  clusters.push(c);
  for (const id of c.ids()) await c.start(id);
  expect(await c.sim.runUntil(() => {
    const l = c.leader();
    return l !== undefined && c.up().every((id) => c.group(id).status().leader === l);
  }, 20 * ELECTION_TICK * 10, 50)).toBe(true);
  return c;
}

/** From now on every log sync of the members in `slow` takes {@link SYNC_MS} of virtual time; the others' complete at once. */
function slowSyncs(c: SimCluster, slow: number[]): void {
  vi.spyOn(c.sim.syncs, 'delay').mockReturnValue(SYNC_MS);
  for (const id of c.ids()) if (!slow.includes(id)) c.sim.syncs.release(id);
}

/** Runs the simulation until `p` settles (or `maxMs` of virtual time pass). */
async function settle<T>(c: SimCluster, p: Promise<T>, maxMs: number): Promise<PromiseSettledResult<T>> {
  let out: PromiseSettledResult<T> | undefined;
  p.then((value) => { out = { status: 'fulfilled', value }; }, (reason: unknown) => { out = { status: 'rejected', reason }; });
  await c.sim.runUntil(() => out !== undefined, maxMs, 5);
  if (!out) throw new Error(`not settled after ${maxMs} ms of virtual time`);
  return out;
}

/** A write acknowledged to its proposer: its log index. */
async function write(c: SimCluster, id: number, k: string, v: string): Promise<number> {
  const w = await settle(c, c.group(id).propose(put(k, v)), 10_000);
  if (w.status === 'rejected') throw w.reason;
  return Number((w as PromiseFulfilledResult<string>).value.split('@')[1]);
}

describe('ReplicationGroup reads during log syncs', () => {
  it('a leader syncing a write answers a follower\'s read and serves its own before its sync ends', async () => {
    const c = await cluster(21);
    const leader = c.leader()!;
    const f1 = c.ids().find((id) => id !== leader)!;
    const written = await write(c, f1, 'k', 'v1');
    slowSyncs(c, [leader]);
    // A second write: the leader's Ready with its entry now waits SYNC_MS for the sync.
    const pending = c.group(leader).propose(put('k', 'v2'), { timeoutMs: 10 * SYNC_MS });
    pending.catch(() => undefined);
    expect(await c.sim.runUntil(() => c.sim.syncs.parked(leader), 1000, 1)).toBe(true);
    const reads = [c.group(f1).readIndex(), c.group(leader).readIndex()];
    const r = await settle(c, Promise.all(reads), SYNC_MS / 3);
    expect(r.status).toBe('fulfilled');
    // Served while the leader's sync is still in progress.
    expect(c.sim.syncs.parked(leader)).toBe(true);
    for (const index of (r as PromiseFulfilledResult<number[]>).value) expect(index).toBeGreaterThanOrEqual(written);
    expect(c.members.get(f1)!.sm!.kv.get('k')).toMatch(/^v[12]$/);
    expect(c.members.get(leader)!.sm!.kv.get('k')).toMatch(/^v[12]$/);
    const done = await settle(c, pending, 10 * SYNC_MS);
    if (done.status === 'rejected') throw done.reason;
    c.check();
  });

  it('a follower syncing a write asks for the read index and serves the read before its sync ends', async () => {
    const c = await cluster(22);
    const leader = c.leader()!;
    const follower = c.ids().find((id) => id !== leader)!;
    const written = await write(c, leader, 'k', 'v1');
    slowSyncs(c, c.ids().filter((id) => id !== leader));
    const pending = c.group(leader).propose(put('k', 'v2'), { timeoutMs: 10 * SYNC_MS });
    pending.catch(() => undefined);
    expect(await c.sim.runUntil(() => c.sim.syncs.parked(follower), 1000, 1)).toBe(true);
    const r = await settle(c, c.group(follower).readIndex(), SYNC_MS / 3);
    if (r.status === 'rejected') throw r.reason;
    expect(c.sim.syncs.parked(follower)).toBe(true);
    expect((r as PromiseFulfilledResult<number>).value).toBeGreaterThanOrEqual(written);
    expect(c.members.get(follower)!.sm!.kv.get('k')).toBe('v1');
    const done = await settle(c, pending, 10 * SYNC_MS);
    if (done.status === 'rejected') throw done.reason;
    c.check();
  });
});
