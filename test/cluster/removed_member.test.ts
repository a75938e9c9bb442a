/**
 * A removed member that comes back (docs/replication.md § A lagging member): three in-process
 * members over the real peer transport; a follower stops, and is then removed (`force`: a dead
 * member cannot sign) while it is down. Restarted with its own data and cluster file, it does not
 * know it was removed: it campaigns, dialling the others with its peer URL named under the cluster
 * secret. The others admit a sender outside their configuration only if their log does not say it
 * was removed, so they refuse it (`not-member`, counted in `/metrics`), and the cluster goes on
 * under the same leader and term.
 *
 * The second test restarts one of the others after the removal is behind its Raft snapshot (so its
 * log no longer delivers the removal at open): it still refuses the removed member, because the
 * member registry keeps removed ids durably and the group reads them at open.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { InProcessCluster, metricOf, until } from './in_process.js';

describe('a removed member that comes back', () => {
  const c = new InProcessCluster('proofkv-removed-', { watch: 0, compactMargin: 1000 });
  const { members } = c;
  const nodes = members.nodes;
  afterAll(() => c.close());
  const raft = (id: number) => members.raft(id);

  it('is refused by the members whose log removed it, and disturbs nothing', async () => {
    await c.initThree();
    const leader = members.leader();
    const gone = [1, 2, 3].find((id) => id !== leader)!;
    const rest = [1, 2, 3].filter((id) => id !== gone);
    await nodes.get(gone)!.shutdown();
    nodes.delete(gone);
    expect(await raft(leader).membership()!.remove(gone, { force: true })).toBe('removed');
    expect(raft(leader).cluster()).toMatchObject({ voters: rest, learners: [] });
    await c.put(leader, 'after', 'the removal');
    await members.certifiedCheckpoint(rest);
    const term = raft(leader).cluster().term;

    // Back with its old cluster file and its log, which lacks its removal.
    await c.start(gone);
    const notMember = 'proofkv_peer_refused_total{reason="not-member"}';
    await until('the others refused the removed member', async () => {
      let n = 0;
      for (const id of rest) n += await metricOf(nodes.get(id)!, notMember);
      return n > 0;
    }, 30_000);
    // Three election timeouts (1 s each): it keeps campaigning and is never heard.
    await new Promise((r) => setTimeout(r, 3000));
    for (const id of rest) expect([id, await metricOf(nodes.get(id)!, 'proofkv_peer_admitted_unknown_total')]).toEqual([id, 0]);
    expect(members.leader(rest)).toBe(leader);
    expect(raft(leader).cluster()).toMatchObject({ term, voters: rest, learners: [] });
    await c.put(leader, 'still', 'writable');
    await members.certifiedCheckpoint(rest);
    expect(raft(gone).isLeader()).toBe(false);
  }, 120_000);

  it('is refused by a member restarted after the removal left its log (the registry keeps removed ids)', async () => {
    const c2 = new InProcessCluster('proofkv-removed-durable-', { watch: 0, compactMargin: 0 });
    const m2 = c2.members;
    const n2 = m2.nodes;
    try {
      await c2.initThree();
      const leader = m2.leader();
      const [gone, other] = [1, 2, 3].filter((id) => id !== leader);
      const rest = [leader, other].sort();
      await n2.get(gone)!.shutdown();
      n2.delete(gone);
      expect(await m2.raft(leader).membership()!.remove(gone, { force: true })).toBe('removed');
      const removedAt = m2.raft(leader).cluster().applied;
      await c2.put(leader, 'after', 'the removal');
      await m2.certifiedCheckpoint(rest);
      await m2.certifiedCheckpoint(rest);
      // The removal is behind `other`'s Raft snapshot: reopened, its log no longer holds it.
      await until('the removal behind the snapshot on the other member', () => m2.raft(other).cluster().snapshotIndex > removedAt);
      await n2.get(other)!.shutdown();
      n2.delete(other);
      await c2.start(other);
      expect(m2.raft(other).cluster().applied).toBeGreaterThan(removedAt);
      await until('the other member back with the leader', () => m2.raft(other).cluster().leader === leader);

      await c2.start(gone);
      const notMember = 'proofkv_peer_refused_total{reason="not-member"}';
      await until('the restarted member refused the removed one', async () => (await metricOf(n2.get(other)!, notMember)) > 0, 30_000);
      await new Promise((r) => setTimeout(r, 3000));
      expect(await metricOf(n2.get(other)!, 'proofkv_peer_admitted_unknown_total')).toBe(0);
      expect(m2.raft(other).cluster()).toMatchObject({ voters: rest, learners: [] });
      await c2.put(leader, 'still', 'writable');
      await m2.certifiedCheckpoint(rest);
    } finally {
      await c2.close();
    }
  }, 120_000);
});
