/**
 * The stream on a 3-member cluster (in process, real peer transport on loopback): a PUT sent over
 * the stream to a follower is forwarded to the leader and acknowledged, and a linearizable GET
 * over the stream on the other follower sees it.
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initCluster } from '../../server/cli/cluster.js';
import { readClusterSecret } from '../../server/cluster_config.js';
import { freePortRange } from '../../scripts/local_cluster.js';
import { InProcessCluster, until } from '../cluster/in_process.js';
import { ACCEPT, OP, isClient, openStream } from './stream_client.js';

describe('the stream on a 3-member cluster', () => {
  const c = new InProcessCluster('proofkv-stream-cluster-', { watch: 0, compactMargin: 5000 });
  afterAll(() => c.close());

  it('a PUT on a follower is forwarded and acknowledged; a linearizable GET on another follower sees it', async () => {
    const base = await freePortRange(6);
    const layout = initCluster({ nodes: 3, dir: path.join(c.dir, 'c'), clientPort: base, peerPort: base + 3 });
    c.config = layout.config;
    for (const [id, d] of layout.dataDirs) c.dataDirs.set(id, d);
    c.secret = readClusterSecret(layout.secretFile);
    for (const id of [1, 2, 3]) await c.start(id);
    await until('a leader', () => c.members.leader() !== 0);
    const leader = c.members.leader();
    const [f1, f2] = [1, 2, 3].filter((id) => id !== leader);
    const s1 = await openStream(c.members.nodes.get(f1)!.url);
    const s2 = await openStream(c.members.nodes.get(f2)!.url);
    if (!isClient(s1) || !isClient(s2)) throw new Error('handshake refused');
    for (let i = 1; i <= 20; i++) {
      const put = await s1.request({ id: i, op: OP.PUT, key: `k${i}`, value: `v${i}`, headers: { 'ProofKV-Client-Id': 'stream-cluster', 'ProofKV-Request-Seq': String(i) } });
      expect(put.status, `put ${i}: ${put.body.toString()}`).toBe(200);
      expect(JSON.parse(put.body.toString()).version).toBe(1);
      // Linearizable by default: acknowledged before the read began, so the read sees it.
      const get = await s2.request({ id: i, op: OP.GET, key: `k${i}`, accept: ACCEPT.RAW });
      expect([get.status, get.body.toString()]).toEqual([200, `v${i}`]);
    }
    // The write went through the leader's log: the leader holds it too.
    const leaderDb = c.members.nodes.get(leader)!.db;
    await until('the leader applied k20', async () => (await leaderDb.get(new TextEncoder().encode('k20'))) !== undefined);
    expect(new TextDecoder().decode(await leaderDb.get(new TextEncoder().encode('k20')))).toBe('v20');
    // A retry of an acknowledged write on the other follower is answered from the replicated session table.
    const retry = await s2.request({ id: 100, op: OP.PUT, key: 'k20', value: 'v20', headers: { 'ProofKV-Client-Id': 'stream-cluster', 'ProofKV-Request-Seq': '20' } });
    expect(retry.status).toBe(200);
    expect(retry.headers).toContainEqual(['ProofKV-Replayed', 'true']);
    s1.close();
    s2.close();
  }, 120_000);
});
