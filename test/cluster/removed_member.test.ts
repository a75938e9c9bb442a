/**
 * A removed member that comes back (docs/replication.md § A lagging member): three in-process
 * members over the real peer transport; a follower stops, and is then removed (`force`: a dead
 * member cannot sign) while it is down. Restarted with its own data and cluster file, it does not
 * know it was removed: it campaigns, dialling the others with its peer URL named under the cluster
 * secret. The others admit a sender outside their configuration only if their log does not say it
 * was removed, so they refuse it (`not-member`, counted in `/metrics`), and the cluster goes on
 * under the same leader and term.
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
});
