/**
 * A member that joins with a `cluster.json` written before `initialSignerSet` existed (issue 10,
 * item 4; docs/cluster.md § An old cluster file): three in-process members over the real peer
 * transport, a follower removed (a signer-set change) and the log compacted; members 4 and 5 laid
 * out by `cluster add`, and the field then dropped from the file (as an old `cluster init` wrote
 * it). Member 5 joins: the set it guesses (the members its file lists other than itself: 1–4) is
 * not checkpoint 0's ({1,2,3}), so every snapshot is refused with `SNAPSHOT_INITIAL_SET_UNKNOWN`
 * and the way out in the message — never installed. `proofkv cluster initial-set` against a
 * running member fills the field from the verified checkpoint 0; member 5, restarted with the
 * filled file, installs the snapshot and catches up.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../proofs/bytes.js';
import { addClusterMember, fillInitialSignerSet } from '../../server/cli/cluster.js';
import { CLUSTER_CONFIG_FILE, formatClusterConfig, readClusterConfig } from '../../server/cluster_config.js';
import type { SnapshotEvent } from '../../server/raft_snapshot.js';
import { InProcessCluster, until } from './in_process.js';

describe('a joiner with a cluster file older than initialSignerSet', () => {
  const c = new InProcessCluster('proofkv-join-old-config-', { watch: 5, compactMargin: 4 });
  const { members, events, dataDirs } = c;
  const nodes = members.nodes;
  afterAll(() => c.close());
  const raft = (id: number) => members.raft(id);
  const leader = (among?: number[]) => members.leader(among);

  it('is refused with SNAPSHOT_INITIAL_SET_UNKNOWN, then installs once cluster initial-set filled the field', async () => {
    const { base, cdir } = await c.initThree();
    const initial = toHex(c.config.initialSignerSet!);
    const rest = await c.removeFollower([1, 2, 3]);
    await until('the log compacted', () => raft(leader(rest)).cluster().firstIndex > 1);

    // Members 4 and 5 laid out; the file then loses its initialSignerSet, as an old one lacks it.
    addClusterMember({ dir: cdir, id: 4, clientPort: base + 6, peerPort: base + 7 });
    const added = addClusterMember({ dir: cdir, id: 5, clientPort: base + 8, peerPort: base + 9 });
    const { initialSignerSet: _dropped, ...old } = readClusterConfig(added.configFile);
    fs.writeFileSync(added.configFile, formatClusterConfig(old));
    c.config = readClusterConfig(added.configFile);
    expect(c.config.initialSignerSet).toBeUndefined();
    dataDirs.set(5, added.dataDir);
    await c.start(5, true);
    await raft(leader(rest)).membership()!.add(c.config.members.find((m) => m.id === 5)!);
    await until('member 5 refused a snapshot', () => events.some((e) => e.type === 'refused'), 60_000);
    const refused = events.find((e) => e.type === 'refused') as Extract<SnapshotEvent, { type: 'refused' }>;
    expect(refused.code).toBe('SNAPSHOT_INITIAL_SET_UNKNOWN');
    expect(refused.message).toContain('proofkv cluster initial-set');
    expect(events.some((e) => e.type === 'installed')).toBe(false);

    // The operator's way out: fill the field from a running member, restart member 5.
    const filled = await fillInitialSignerSet({ dir: cdir, endpoint: c.config.members.find((m) => m.id === leader(rest))!.clientUrl });
    expect(filled.changed).toBe(true);
    expect(toHex(filled.initialSignerSet)).toBe(initial);
    await nodes.get(5)!.shutdown();
    nodes.delete(5);
    c.config = readClusterConfig(path.join(cdir, CLUSTER_CONFIG_FILE));
    events.length = 0;
    await c.start(5, true);
    await until('member 5 installed a snapshot', () => events.some((e) => e.type === 'installed'), 60_000).catch((err: Error) => {
      throw new Error(`${err.message}; member 5's snapshot events: ${JSON.stringify(events).slice(0, 3000)}`);
    });
    await until('member 5 caught up', () => raft(5).appliedIndex >= raft(leader(rest)).appliedIndex);
  }, 180_000);
});
