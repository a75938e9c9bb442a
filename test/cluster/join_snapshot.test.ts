/**
 * A member added at runtime catches up by snapshot and trusts it through the signer-set changes
 * from the initial set its cluster file commits to (issue 10, item 1; docs/cluster.md § A member
 * far behind): three in-process members over the real peer transport on loopback, compaction
 * margin 4, a follower removed (a signer-set change: {1,2,3} → the other two), the log
 * compacted, then member 4 laid out by `cluster add` (its file lists 1–4 and commits to
 * {1,2,3}), started with `join`, added as a learner: it knows no voters, installs the leader's
 * snapshot (walking {1,2,3} → the two), is promoted, and serves proofs byte-identical to the others'.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { getProofCodec } from '../../proofs/lsm_encoding.js';
import { verifyGetProof } from '../../proofs/lsm_proof.js';
import { signerSetHash } from '../../proofs/signer_set.js';
import { addClusterMember } from '../../server/cli/cluster.js';
import { bootstrapSignerSet, readClusterConfig } from '../../server/cluster_config.js';
import { InProcessCluster, until } from './in_process.js';

const te = new TextEncoder();

describe('a member added at runtime installs a snapshot it trusts through the set changes', () => {
  const c = new InProcessCluster('proofkv-join-snapshot-', { watch: 4, compactMargin: 4 });
  const { members, events, dataDirs } = c;
  const nodes = members.nodes;

  afterAll(() => c.close());

  const start = (id: number, join = false) => c.start(id, join);
  const raft = (id: number) => members.raft(id);
  const leader = (among?: number[]) => members.leader(among);
  const put = (id: number, key: string, value: string) => c.put(id, key, value);
  const certifiedCheckpoint = (ids: number[]) => members.certifiedCheckpoint(ids);

  it('installs, is promoted, and serves identical verified proofs', async () => {
    const { base, cdir, layout } = await c.initThree();
    // `cluster init` commits to the bootstrap voters' signer set.
    expect(Buffer.from(c.config.initialSignerSet!).equals(Buffer.from(signerSetHash(bootstrapSignerSet(c.config.members))))).toBe(true);

    // A signer-set change: a follower leaves ({1,2,3} → the other two), asked of the leader.
    const rest = await c.removeFollower([1, 2, 3]);
    const cert = nodes.get(leader(rest))!.db.latestCheckpoint();
    expect(cert.signers?.members.map((m) => m.id)).toEqual(rest);
    await until('the log compacted', () => raft(leader(rest)).cluster().firstIndex > 1);

    // Member 4: laid out by `cluster add` (the file keeps 1 and commits to {1,2,3}), started to join.
    const added = addClusterMember({ dir: cdir, id: 4, clientPort: base + 6, peerPort: base + 7 });
    c.config = readClusterConfig(added.configFile);
    expect(Buffer.from(c.config.initialSignerSet!).equals(Buffer.from(layout.config.initialSignerSet!))).toBe(true);
    dataDirs.set(4, added.dataDir);
    await start(4, true);
    const m4 = c.config.members.find((m) => m.id === 4)!;
    await raft(leader(rest)).membership()!.add(m4);
    await until('member 4 installed a snapshot', () => events.some((e) => e.type === 'installed'), 60_000).catch((err: Error) => {
      throw new Error(`${err.message}; member 4's snapshot events: ${JSON.stringify(events).slice(0, 3000)}`);
    });
    expect(events.filter((e) => e.type === 'refused')).toEqual([]);
    await until('member 4 caught up', () => raft(4).appliedIndex >= raft(leader(rest)).appliedIndex);
    await until('member 4 promoted', async () => {
      try {
        await raft(leader(rest)).membership()!.promote(4);
        return true;
      } catch {
        return false;
      }
    }, 60_000);

    await put(leader([...rest, 4]), 'after', 'join');
    const size = await certifiedCheckpoint([...rest, 4]);
    const signers = nodes.get(4)!.db.latestCheckpoint().signers!;
    expect(signers.members.map((m) => m.id)).toEqual([...rest, 4]);
    const trust = { publicKeys: signers.members.map((m) => m.publicKey), quorum: signers.quorum };
    const proofs: Array<{ id: number; key: string; bytes: string }> = [];
    for (const id of [...rest, 4]) {
      const db = nodes.get(id)!.db;
      expect(db.latestCheckpoint().head.size).toBe(size);
      for (const key of ['early-0', 'k-2-9', 'after']) {
        const r = await db.getWithProof(te.encode(key));
        expect(verifyGetProof(r.proof, { key: te.encode(key) }, { trust }).ok).toBe(true);
        proofs.push({ id, key, bytes: Buffer.from(getProofCodec.encode(r.proof)).toString('hex') });
      }
    }
    for (const p of proofs) expect(p.bytes).toBe(proofs.find((q) => q.key === p.key && q.id === rest[0])!.bytes);
  }, 180_000);
});
