/**
 * A 3-member cluster rotates its `cluster.secret` while writes go on (issue 10, item 3;
 * docs/cluster.md § Rotating the cluster secret): three in-process members over the real peer
 * transport; a writer proposes on the leader throughout; the three steps of the procedure —
 * every member also accepts the new secret, every member sends with it, every member drops the
 * old one — are applied member by member (`ProofNode.setClusterSecrets`, what `serve` does on
 * SIGHUP). No write fails; afterwards every member's peer listener refuses a request MACed with
 * the old secret (`401 bad-mac`) and authenticates one MACed with the new (a chunk read of a
 * file it does not serve: the same refusal as an authenticated read gets; it changes nothing),
 * and every member holds the last write.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initCluster } from '../../server/cli/cluster.js';
import { readClusterSecret } from '../../server/cluster_config.js';
import { freePortRange } from '../../scripts/local_cluster.js';
import { InProcessCluster, metricOf, peerSecretProbe, until } from './in_process.js';

const te = new TextEncoder();

describe('cluster secret rotation without a restart', () => {
  const c = new InProcessCluster('proofkv-secret-rotation-', { watch: 0, compactMargin: 5000 });
  afterAll(() => c.close());

  const probe = (to: number, from: number, secret: Uint8Array) => peerSecretProbe(c.config, to, from, secret);

  it('rotates step by step while writes go on; the old secret is refused afterwards', async () => {
    const base = await freePortRange(6);
    const layout = initCluster({ nodes: 3, dir: path.join(c.dir, 'c'), clientPort: base, peerPort: base + 3 });
    c.config = layout.config;
    for (const [id, d] of layout.dataDirs) c.dataDirs.set(id, d);
    c.secret = readClusterSecret(layout.secretFile);
    const OLD = c.secret;
    const NEW = new Uint8Array(randomBytes(32));
    const ids = [1, 2, 3];
    for (const id of ids) await c.start(id);
    await until('a leader', () => c.members.leader() !== 0);

    // The writer: one put at a time on the current leader, until told to stop.
    let stop = false;
    let acked = 0;
    const failures: string[] = [];
    const writer = (async () => {
      while (!stop && acked < 5000) {
        const l = c.members.leader();
        if (l === 0) {
          await new Promise((r) => setTimeout(r, 10));
          continue;
        }
        try {
          await c.members.raft(l).propose({ type: 'put', key: te.encode(`k${acked}`), value: te.encode(`v${acked}`), time: Date.now() });
          acked++;
        } catch (err) {
          failures.push((err as Error).message);
          if (failures.length > 50) return;
        }
      }
    })();
    const node = (id: number) => c.members.nodes.get(id)!;
    const progress = async (what: string) => {
      const at = acked;
      await until(`writes go on (${what})`, () => acked >= at + 20);
    };

    await progress('before');
    const badMac = 'proofkv_peer_refused_total{reason="bad-mac"}';
    const refusedBefore = await metricOf(node(1), badMac);
    expect(await probe(1, 2, NEW)).toBe('401 bad-mac');
    // The operator sees the refusal in the member's metrics.
    expect(await metricOf(node(1), badMac)).toBe(refusedBefore + 1);
    for (const id of ids) node(id).setClusterSecrets(OLD, [NEW]);
    await progress('step 1');
    const authenticated = await probe(1, 2, OLD);
    expect(authenticated).not.toMatch(/bad-mac|error/);
    for (const id of ids) expect(await probe(id, ids.find((x) => x !== id)!, NEW)).toBe(authenticated);
    for (const id of ids) {
      node(id).setClusterSecrets(NEW, [OLD]);
      await progress(`step 2, member ${id}`);
    }
    // While members switched one by one, peers authenticated with a member's second secret.
    let other = 0;
    for (const id of ids) other += await metricOf(node(id), 'proofkv_peer_accepted_by_other_secret_total');
    expect(other).toBeGreaterThan(0);
    for (const id of ids) {
      node(id).setClusterSecrets(NEW);
      await progress(`step 3, member ${id}`);
    }
    stop = true;
    await writer;
    expect(failures).toEqual([]);
    for (const id of ids) {
      const from = ids.find((x) => x !== id)!;
      expect([id, await probe(id, from, OLD)]).toEqual([id, '401 bad-mac']);
      expect([id, await probe(id, from, NEW)]).toEqual([id, authenticated]);
    }
    // Every member holds every acknowledged write.
    const last = `k${acked - 1}`;
    await until('every member applied the last write', async () => {
      for (const id of ids) if ((await node(id).db.get(te.encode(last))) === undefined) return false;
      return true;
    });
  }, 120_000);
});
