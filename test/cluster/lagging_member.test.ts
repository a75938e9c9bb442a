/**
 * A member that missed the addition of the members that now lead (issue 10, item 7 and the
 * membership section; docs/replication.md § A lagging member): three in-process members over the
 * real peer transport; a follower stops; members 4 and 5 join and are promoted while it is down
 * (voters {1,2,3,4,5}); the two members that knew it and every change then stop too. The stopped
 * member restarts with its own, older cluster file: its log knows neither 4 nor 5. Only it, 4 and
 * 5 are up — a quorum of five only with it — so the cluster serves again only if it hears 4 and 5
 * and answers them, which its peer transport allows because they name their address on their
 * stream handshakes under the cluster secret. Before that, it refused them (`not-member`) and no
 * leader could be elected.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { addClusterMember } from '../../server/cli/cluster.js';
import { readClusterConfig } from '../../server/cluster_config.js';
import { InProcessCluster, metricOf, until } from './in_process.js';

/** Tries `f` until it resolves (a membership change refused while an earlier one is recorded). */
async function retry(what: string, f: () => Promise<unknown>): Promise<void> {
  await until(what, async () => {
    try {
      await f();
      return true;
    } catch {
      return false;
    }
  }, 60_000);
}

describe('a member that missed the addition of the members that lead now', () => {
  const c = new InProcessCluster('proofkv-lagging-', { watch: 0, compactMargin: 1000 });
  const { members, dataDirs } = c;
  const nodes = members.nodes;
  afterAll(() => c.close());
  const raft = (id: number) => members.raft(id);
  const leader = (among?: number[]) => members.leader(among);

  it('hears them, answers them, catches up, and with them elects a leader and certifies', async () => {
    const { base, cdir, layout } = await c.initThree();

    // A follower stops: it will miss everything below.
    const lag = [1, 2, 3].find((id) => id !== leader())!;
    await nodes.get(lag)!.shutdown();
    nodes.delete(lag);
    const up = [1, 2, 3].filter((id) => id !== lag);

    // Members 4 and 5 join and are promoted, one signer-set change at a time.
    for (const [id, port] of [[4, base + 6], [5, base + 8]]) {
      const added = addClusterMember({ dir: cdir, id, clientPort: port, peerPort: port + 1 });
      c.config = readClusterConfig(added.configFile);
      dataDirs.set(id, added.dataDir);
      await c.start(id, true);
      const m = c.config.members.find((x) => x.id === id)!;
      await retry(`member ${id} added`, () => raft(leader(up)).membership()!.add(m));
      await until(`member ${id} caught up`, () => raft(id).appliedIndex >= raft(leader(up)).appliedIndex, 60_000);
      await retry(`member ${id} promoted`, () => raft(leader(up)).membership()!.promote(id));
      up.push(id);
      for (let i = 0; i < 3; i++) await c.put(leader(up), `with-${id}-${i}`, `v${i}`);
      await members.certifiedCheckpoint(up);
    }
    expect(raft(leader(up)).cluster().voters).toEqual([1, 2, 3, 4, 5]);

    // The members that knew `lag` and the changes stop; `lag` restarts with its own cluster file.
    for (const id of [1, 2, 3].filter((x) => x !== lag)) {
      await nodes.get(id)!.shutdown();
      nodes.delete(id);
    }
    c.config = layout.config;
    expect(c.config.members.map((m) => m.id)).toEqual([1, 2, 3]);
    await c.start(lag);
    const now = [lag, 4, 5];
    await until('a leader among the lagging member, 4 and 5', () => leader(now) !== 0, 60_000);
    expect([4, 5]).toContain(leader(now)); // the lagging member's log is behind: it cannot win
    await until('the lagging member caught up', () => raft(lag).appliedIndex >= raft(leader(now)).appliedIndex, 60_000);
    // Applied can reach the leader's while an installed snapshot's configuration is still being
    // taken in: wait for the configuration itself.
    await until('the lagging member knows voters 1..5', () => raft(lag).cluster().voters.join() === '1,2,3,4,5', 30_000);
    expect(await metricOf(nodes.get(lag)!, 'proofkv_peer_admitted_unknown_total')).toBeGreaterThan(0);
    expect(raft(lag).membership()!.list().map((m) => m.id)).toEqual([1, 2, 3, 4, 5]);

    // Writes and checkpoints go on, and the lagging member co-signs them.
    await c.put(leader(now), 'after', 'the restart');
    const size = await members.certifiedCheckpoint(now);
    const cert = nodes.get(lag)!.db.latestCheckpoint();
    expect(cert.head.size).toBe(size);
    expect(cert.signers?.members.map((m) => m.id)).toEqual([1, 2, 3, 4, 5]);
    const got = await nodes.get(lag)!.db.getWithProof(new TextEncoder().encode('after'));
    expect(got.entry && new TextDecoder().decode(got.entry.value)).toBe('the restart');
  }, 240_000);
});
