/**
 * Snapshots and log compaction on the simulator: `snapshotAt` records a Raft snapshot and
 * compacts the log keeping the margin; a member that was down while the log was compacted, and a
 * member added after it, are sent the snapshot and `restore` it (from the leader) before it is
 * persisted; a restore that fails leaves the member's log as it was on disk and is retried when the
 * leader sends the snapshot again; a member reopened after a restore starts from it. Also the
 * refusals: a snapshot beyond the applied index, a snapshot sent to a machine without `restore`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfChangeType } from '../../src/raft/index.js';
import { SimCluster } from './sim_cluster.js';

const te = new TextEncoder();
const put = (k: string, v: string) => te.encode(JSON.stringify({ k, v }));

const clusters: SimCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

async function until<T>(c: SimCluster, p: Promise<T>, maxMs = 5000): Promise<T> {
  let out: { ok: true; v: T } | { ok: false; e: unknown } | undefined;
  p.then((v) => { out = { ok: true, v }; }, (e: unknown) => { out = { ok: false, e }; });
  await c.sim.runUntil(() => out !== undefined, maxMs, 5);
  if (!out) throw new Error('not settled');
  if (!out.ok) throw out.e;
  return out.v;
}

async function ready(seed: number, margin: number): Promise<SimCluster> {
  const c = new SimCluster({ seed, n: 3, compactMargin: margin });
  clusters.push(c);
  for (const id of c.ids()) await c.start(id);
  expect(await c.sim.runUntil(() => c.leader() !== undefined && c.up().every((id) => c.group(id).status().leader === c.leader()), 5000)).toBe(true);
  return c;
}

describe('ReplicationGroup snapshots and compaction', () => {
  it('compacts behind a snapshot keeping the margin; a lagging member and a new one restore it from the leader', async () => {
    const margin = 4;
    const c = await ready(21, margin);
    const leader = c.leader()!;
    const lagging = c.ids().find((id) => id !== leader)!;
    await c.crash(lagging);
    for (let i = 0; i < 30; i++) await until(c, c.group(leader).propose(put(`k${i % 7}`, `v${i}`)));
    const lsm = c.members.get(leader)!.sm!;
    const snap = lsm.snapshot()!;
    await until(c, c.group(leader).snapshotAt(snap.index, snap.data));
    const st = c.group(leader).status();
    expect(st.snapshotIndex).toBe(snap.index);
    expect(st.firstIndex).toBe(snap.index - margin + 1);
    // An index not after the snapshot changes nothing; one beyond the applied index is refused.
    await until(c, c.group(leader).snapshotAt(snap.index - 1, new Uint8Array(0)));
    expect(c.group(leader).status().snapshotIndex).toBe(snap.index);
    await expect(until(c, c.group(leader).snapshotAt(st.applied + 10, new Uint8Array(0)))).rejects.toMatchObject({ code: 'REPLICATION_BAD_STATE' });
    // compact: never beyond the snapshot; up to it, more of the margin goes.
    await expect(until(c, c.group(leader).compact(snap.index + 1))).rejects.toMatchObject({ code: 'REPLICATION_BAD_STATE' });
    expect(c.group(leader).status().firstIndex).toBe(snap.index - margin + 1);
    await until(c, c.group(leader).compact(snap.index - 2));
    expect(c.group(leader).status().firstIndex).toBe(snap.index - 1);

    // The lagging member is behind the first index: the leader sends the snapshot. Its first
    // restore fails: nothing of the snapshot is persisted, its log is as on disk, and the leader
    // sends it again.
    await c.start(lagging);
    const sm = c.members.get(lagging)!.sm!;
    const before = c.group(lagging).status().lastIndex;
    expect(before).toBeLessThan(snap.index);
    const restore = sm.restore.bind(sm);
    const seen: Array<{ index: number; from: number; storedSnapshotAtRestore: number }> = [];
    let fail = true;
    sm.restore = (s, from) => {
      seen.push({ index: s.index, from, storedSnapshotAtRestore: c.group(lagging).status().snapshotIndex });
      if (fail) {
        fail = false;
        return Promise.reject(new Error('fetch failed'));
      }
      return restore(s, from);
    };
    expect(await c.sim.runUntil(() => c.converged(), 10_000)).toBe(true);
    expect(seen.length).toBe(2);
    for (const s of seen) {
      expect(s).toMatchObject({ index: snap.index, from: leader });
      expect(s.storedSnapshotAtRestore).toBe(0); // not persisted before restore resolved
    }
    expect(c.group(lagging).status().snapshotIndex).toBe(snap.index);
    expect([...sm.kv].sort()).toEqual([...lsm.kv].sort());
    expect(sm.chain).toBe(lsm.chain);

    // Reopened, it starts from the restored state and its log after the snapshot.
    await c.crash(lagging);
    await c.start(lagging);
    expect(c.members.get(lagging)!.sm!.applied).toBeGreaterThanOrEqual(snap.index);
    expect(await c.sim.runUntil(() => c.converged(), 5000)).toBe(true);

    // A member added now needs the snapshot too: it restores it and ends with the same state.
    c.addJoiner(4);
    await c.start(4);
    expect(await c.change({ type: ConfChangeType.AddLearner, nodeId: 4 })).toBe(true);
    expect(await c.sim.runUntil(() => c.converged() && c.members.get(4)!.sm!.chain === lsm.chain, 5000)).toBe(true);
    expect(c.members.get(4)!.sm!.restores).toEqual([{ index: snap.index, from: c.leader() }]);
    expect(c.group(4).status()).toMatchObject({ role: 'learner', voters: [1, 2, 3], learners: [4] });
    c.check();
  });

  it('keepFrom: the compaction keeps the margin before that index too, within compactMarginBytes; a member behind it replays the log', async () => {
    const margin = 4;
    const c = await ready(23, margin);
    const leader = c.leader()!;
    const lagging = c.ids().find((id) => id !== leader)!;
    for (let i = 0; i < 5; i++) await until(c, c.group(leader).propose(put(`a${i}`, `v${i}`)));
    await c.crash(lagging);
    // The entry to keep (a set change's checkpoint, for the state machine that asks).
    const keepFrom = c.group(leader).status().lastIndex + 1;
    for (let i = 0; i < 30; i++) await until(c, c.group(leader).propose(put(`k${i % 7}`, `v${i}`)));
    const lsm = c.members.get(leader)!.sm!;
    const snap = lsm.snapshot()!;
    expect(keepFrom).toBeLessThan(snap.index - margin);
    await expect(until(c, c.group(leader).snapshotAt(snap.index, snap.data, { keepFrom: snap.index + 1 }))).rejects.toMatchObject({ code: 'REPLICATION_BAD_STATE' });
    await until(c, c.group(leader).snapshotAt(snap.index, snap.data, { keepFrom }));
    expect(c.group(leader).status()).toMatchObject({ snapshotIndex: snap.index, firstIndex: keepFrom - margin + 1 });
    // The member that was down before that entry catches up from the log: no snapshot.
    await c.start(lagging);
    expect(await c.sim.runUntil(() => c.converged(), 10_000)).toBe(true);
    expect(c.members.get(lagging)!.sm!.restores).toEqual([]);
    expect(c.members.get(lagging)!.sm!.chain).toBe(lsm.chain);

    // Past compactMarginBytes the byte bound wins: a group whose bound holds a few entries.
    const d = new SimCluster({ seed: 24, n: 3, compactMargin: margin, compactMarginBytes: 200 });
    clusters.push(d);
    for (const id of d.ids()) await d.start(id);
    expect(await d.sim.runUntil(() => d.leader() !== undefined, 5000)).toBe(true);
    const l = d.leader()!;
    const from = d.group(l).status().lastIndex + 1;
    for (let i = 0; i < 30; i++) await until(d, d.group(l).propose(put(`k${i % 7}`, `v${i}`)));
    const s2 = d.members.get(l)!.sm!.snapshot()!;
    await until(d, d.group(l).snapshotAt(s2.index, s2.data, { keepFrom: from }));
    const first = d.group(l).status().firstIndex;
    expect(first).toBeGreaterThan(from - margin + 1);
    expect(first).toBeLessThanOrEqual(s2.index);
    c.check();
  });

  it('a member whose state machine cannot restore stops with REPLICATION_BAD_STATE when sent a snapshot', async () => {
    const c = await ready(22, 1);
    const leader = c.leader()!;
    const lagging = c.ids().find((id) => id !== leader)!;
    await c.crash(lagging);
    for (let i = 0; i < 10; i++) await until(c, c.group(leader).propose(put('k', `v${i}`)));
    const snap = c.members.get(leader)!.sm!.snapshot()!;
    await until(c, c.group(leader).snapshotAt(snap.index, snap.data));
    await c.start(lagging);
    const sm = c.members.get(lagging)!.sm! as { restore?: unknown };
    sm.restore = undefined;
    await c.sim.runFor(1000);
    await expect(c.group(lagging).propose(put('x', 'y'))).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE', message: /cannot restore/ });
  });
});
