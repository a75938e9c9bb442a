/**
 * `RaftWritePath.checkpointDue()`: when a cluster member's checkpoint timer must propose a
 * checkpoint although nothing was written since the last certified one (docs/replication.md §
 * Membership, *Set changes*, and § Weak points).
 *
 * - `snapshot`: a member restarted between applying its latest checkpoint and seeing it certified
 *   has no session table captured at that checkpoint's index (its entry is at or below the
 *   engine's durable index, so the restart does not apply it again), so it cannot record the
 *   checkpoint as its Raft snapshot, and would offer members far behind an older one whose tables
 *   it no longer serves. The next certified checkpoint clears it.
 * - `set-change`: the voters changed since the latest checkpoint (the checkpoint that records the
 *   new signer set is due), and a membership change waits until it is certified
 *   (`setChangePending`).
 *
 * Full-stack members (real engines under the real write path) on the seeded simulator.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EPOCH, FullCluster } from './fullstack_cluster.js';

const te = new TextEncoder();
const clusters: FullCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

async function open(seed: number): Promise<FullCluster> {
  const c = await FullCluster.open({ seed, n: 3 });
  clusters.push(c);
  for (const id of c.ids()) await c.start(id);
  expect(await c.sim.runUntil(() => c.leader() !== undefined, 5000)).toBe(true);
  return c;
}

/** Proposes `cmd` on the leader (asked again after a failure) and runs until it is answered. */
async function write(c: FullCluster, key: string): Promise<void> {
  let done = false;
  const go = (): void => {
    const l = c.leader();
    if (l === undefined) return void c.sim.schedule(20, go);
    c.members.get(l)!.wp!.propose({ type: 'put', key: te.encode(key), value: te.encode(`v-${key}`) }).then(() => { done = true; }, () => c.sim.schedule(20, go));
  };
  go();
  expect(await c.sim.runUntil(() => done, 10_000)).toBe(true);
}

/** Proposes a checkpoint on the leader and runs until every running member certified a head of at least `size`. */
async function checkpoint(c: FullCluster, size: number): Promise<void> {
  const go = (): void => {
    const l = c.leader();
    if (l === undefined) return void c.sim.schedule(20, go);
    c.members.get(l)!.wp!.propose({ type: 'checkpoint', time: EPOCH + c.sim.now }).catch(() => c.sim.schedule(20, go));
  };
  go();
  expect(await c.sim.runUntil(() => c.up().every((id) => c.members.get(id)!.db!.certification().certifiedSize >= size), 10_000)).toBe(true);
}

describe('RaftWritePath.checkpointDue', () => {
  it('snapshot: after a restart between applying a checkpoint and seeing it certified; the next certified checkpoint clears it', async () => {
    const c = await open(31);
    // Cosign proposals are how members sign: resumed as the server's cosign timer does.
    c.sim.clock.setInterval(() => { for (const id of c.up()) c.members.get(id)!.wp!.resumeCosign(); }, 200);
    for (let i = 0; i < 5; i++) await write(c, `a${i}`);
    await checkpoint(c, 1);
    const follower = c.ids().find((id) => id !== c.leader())!;
    const f = () => c.members.get(follower)!;
    expect(f().wp!.checkpointDue()).toBeUndefined();
    await write(c, 'b');
    // The next checkpoint: the follower applies it, and is stopped before any signature on it
    // reaches it (its record is written: the engine's durable index is at the entry).
    const l = c.leader()!;
    void c.members.get(l)!.wp!.propose({ type: 'checkpoint', time: EPOCH + c.sim.now }).catch(() => undefined);
    expect(await c.sim.runUntil(() => f().db!.certification().latestSize === 2, 5000, 1)).toBe(true);
    expect(f().db!.certification().certifiedSize).toBe(1);
    const entry = f().db!.logIndex().durable;
    await c.crash(follower);
    // The others certify it meanwhile.
    expect(await c.sim.runUntil(() => c.up().every((id) => c.members.get(id)!.db!.certification().certifiedSize === 2), 5000)).toBe(true);
    await c.start(follower);
    expect(f().db!.logIndex().durable).toBeGreaterThanOrEqual(entry);
    expect(await c.sim.runUntil(() => f().db!.certification().certifiedSize === 2, 5000)).toBe(true);
    // Certified, and not recordable: the Raft snapshot it holds is older.
    expect(f().wp!.cluster().snapshotIndex).toBeLessThan(entry);
    expect(f().wp!.checkpointDue()).toBe('snapshot');
    // Nothing was written since: only checkpointDue asks for the next one. Certified, it is recorded.
    await checkpoint(c, 3);
    expect(await c.sim.runUntil(() => f().wp!.checkpointDue() === undefined, 5000)).toBe(true);
    expect(f().wp!.cluster().snapshotIndex).toBeGreaterThan(entry);
    c.check();
  });

  it('set-change: the voters changed since the latest checkpoint; membership changes wait until it is certified', async () => {
    const c = await open(32);
    c.sim.clock.setInterval(() => { for (const id of c.up()) c.members.get(id)!.wp!.resumeCosign(); }, 200);
    await write(c, 'a');
    await checkpoint(c, 1);
    const l = c.leader()!;
    const victim = c.ids().find((id) => id !== l)!;
    const m = c.members.get(l)!.wp!.membership()!;
    expect(c.members.get(l)!.wp!.setChangePending()).toBeUndefined();
    // Demoted: out of the voters at once; the checkpoint recording it is due (and proposed by
    // the member that applied the change).
    let demoted: string | undefined;
    void m.remove(victim).then((r) => { demoted = r; });
    expect(await c.sim.runUntil(() => demoted !== undefined, 5000, 1)).toBe(true);
    expect(demoted).toBe('demoted');
    expect(c.members.get(l)!.wp!.checkpointDue()).toBe('set-change');
    expect(c.members.get(l)!.wp!.setChangePending()).toMatch(/changed since the latest checkpoint/);
    await expect(m.remove(victim)).rejects.toMatchObject({ code: 'MEMBERS_PENDING' });
    // Once the checkpoint that records it is certified by both quorums, nothing is due or pending.
    expect(await c.sim.runUntil(() => c.members.get(l)!.wp!.setChangePending() === undefined, 10_000)).toBe(true);
    expect(c.members.get(l)!.wp!.checkpointDue()).toBeUndefined();
    expect(c.members.get(l)!.db!.latestCheckpoint().signers?.members.map((x) => x.id)).toEqual(c.ids().filter((id) => id !== victim));
    let removed: string | undefined;
    void m.remove(victim).then((r) => { removed = r; });
    expect(await c.sim.runUntil(() => removed !== undefined, 5000)).toBe(true);
    expect(removed).toBe('removed');
    c.check();
  });
});
