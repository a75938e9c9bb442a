/**
 * A member far behind the leader's compacted log catches up by snapshot while its process keeps
 * running (server/raft_snapshot.ts, docs/replication.md § Snapshots): three in-process members
 * over the real peer transport on loopback, compaction margin 4. Member 3 is stopped, the others
 * take enough writes and certified checkpoints that the leader's log is compacted past member 3's
 * last entry, and member 3 is started again: its first snapshot's chunks are tampered with (it is
 * refused and nothing is installed), the next one is installed; then it serves proofs
 * byte-identical to the others' at the same certified checkpoint, and a retry recorded before the
 * snapshot is answered from the session table that came with it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getProofCodec } from '../../proofs/lsm_encoding.js';
import { verifyGetProof } from '../../proofs/lsm_proof.js';
import { initCluster } from '../../server/cli/cluster.js';
import { readClusterSecret, type ClusterConfig } from '../../server/cluster_config.js';
import type { ProofNode } from '../../server/node.js';
import type { SnapshotEvent } from '../../server/raft_snapshot.js';
import { RaftWritePath } from '../../server/raft_write_path.js';
import type { WriteCommand } from '../../server/write_path.js';
import { freePortRange } from '../../scripts/local_cluster.js';
import { Members, startWatched, until } from './in_process.js';

const te = new TextEncoder();
const MARGIN = 4;

describe('a member behind the compacted log catches up by snapshot', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-catchup-'));
  const events: SnapshotEvent[] = [];
  let config: ClusterConfig;
  let secret: Uint8Array;
  let dataDirs: Map<number, string>;
  /** Chunk reads member 3 makes; the first `tamper` of them come back with one byte flipped. */
  let tamper = 0;
  let fetched = 0;

  const members = new Members();
  const nodes = members.nodes;

  afterAll(async () => {
    await members.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(id: number): Promise<ProofNode> {
    const node = await startWatched({
      config, id, dataDir: dataDirs.get(id)!, secret, margin: MARGIN, watched: 3, events,
      fetchChunk: async (from, index, name, offset, length, next) => {
        const chunk = await next(from, index, name, offset, length);
        if (fetched++ < tamper && chunk.length > 0 && name.endsWith('.sst')) {
          const bad = chunk.slice();
          bad[bad.length >> 1] ^= 0x40;
          return bad;
        }
        return chunk;
      },
    });
    nodes.set(id, node);
    return node;
  }

  const raft = (id: number): RaftWritePath => members.raft(id);
  const leader = (): number => members.leader();
  const put = (id: number, key: string, value: string, session?: { clientId: string; seq: number }): Promise<unknown> =>
    raft(id).propose({ type: 'put', key: te.encode(key), value: te.encode(value), time: Date.now(), ...(session ? { session } : {}) } as WriteCommand);
  const certifiedCheckpoint = (ids: number[]): Promise<number> => members.certifiedCheckpoint(ids);

  it('installs the snapshot after refusing a tampered one, then serves identical proofs and answers old retries', async () => {
    const base = await freePortRange(6);
    const layout = initCluster({ nodes: 3, dir: path.join(dir, 'c'), clientPort: base, peerPort: base + 3 });
    config = layout.config;
    dataDirs = layout.dataDirs;
    secret = readClusterSecret(layout.secretFile);
    for (const id of [1, 2, 3]) await start(id);
    await until('a leader', () => leader() !== 0);

    // Recorded before member 3 falls behind: a write with a session, and a certified checkpoint.
    const session = { clientId: 'catchup-client', seq: 1 };
    await put(leader(), 'retried', 'once', session);
    for (let i = 0; i < 5; i++) await put(leader(), `early-${i}`, `v${i}`);
    await certifiedCheckpoint([1, 2, 3]);
    await until('member 3 applied everything', () => raft(3).appliedIndex >= raft(leader()).appliedIndex);
    const behind = raft(3).appliedIndex;

    await nodes.get(3)!.shutdown();
    nodes.delete(3);
    await until('a leader among 1 and 2', () => leader() !== 0);
    // Rounds of writes and a certified checkpoint until the leader compacted its log past member 3
    // and keeps no entries for it (at least three rounds; the leader keeps member 3's entries
    // after its match until a quorum check finds it gone — its match can be above `behind`).
    const deadline = Date.now() + 20_000;
    const held = (c: { firstIndex: number; snapshotIndex: number }) => c.firstIndex <= behind + 1 || c.firstIndex !== c.snapshotIndex - MARGIN + 1;
    for (let round = 0; round < 3 || held(raft(leader()).cluster()); round++) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the log compacted past member 3');
      for (let i = 0; i < 10; i++) await put(leader(), `k-${round}-${i}`, `value ${round} ${i}`);
      await certifiedCheckpoint([1, 2]);
    }
    // The leader recorded a snapshot at a certified checkpoint and compacted its log past member 3.
    const l = raft(leader()).cluster();
    expect(l.snapshotIndex).toBeGreaterThan(behind);
    expect(l.firstIndex).toBe(l.snapshotIndex - MARGIN + 1);
    expect(raft(leader()).snapshotStats().recorded).toBeGreaterThan(0);

    tamper = 1;
    await start(3);
    await until('member 3 installed a snapshot', () => events.some((e) => e.type === 'installed')).catch((err: Error) => {
      throw new Error(`${err.message}; member 3's snapshot events: ${JSON.stringify(events).slice(0, 3000)}`);
    });
    const refused = events.filter((e) => e.type === 'refused');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatchObject({ type: 'refused', code: 'SNAPSHOT_MISMATCH' });
    expect(events.findIndex((e) => e.type === 'refused')).toBeLessThan(events.findIndex((e) => e.type === 'installed'));
    expect(raft(3).snapshotStats()).toMatchObject({ installed: 1 });
    expect(raft(3).snapshotStats().refused).toBe(refused.length);
    // What the operator sees: member 3's log starts at the installed snapshot.
    const installedAt = (events.find((e) => e.type === 'installed') as { index: number }).index;
    const status = (await (await fetch(`${nodes.get(3)!.url}/v1/status`)).json()) as { cluster: { snapshotIndex: number; firstIndex: number } };
    expect(status.cluster.snapshotIndex).toBeGreaterThanOrEqual(installedAt);
    expect(status.cluster.firstIndex).toBeGreaterThan(behind + 1);
    const metrics = await (await fetch(`${nodes.get(3)!.url}/metrics`)).text();
    expect(metrics).toMatch(/^proofkv_raft_snapshots\{event="installed"\} 1$/m);
    expect(metrics).toMatch(new RegExp(`^proofkv_raft_snapshots\\{event="refused"\\} ${refused.length}$`, 'm'));
    // Its bytes: fetched, or found in member 3's directory (its own tables, or kept from the refused attempt).
    const installed = events.find((e) => e.type === 'installed') as { bytes: number; reusedBytes: number; reusedTables: number; tables: number };
    expect(installed.reusedTables).toBeLessThanOrEqual(installed.tables);
    expect(metrics).toMatch(new RegExp(`^proofkv_raft_snapshot_installed_bytes\\{source="fetched"\\} ${installed.bytes - installed.reusedBytes}$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^proofkv_raft_snapshot_installed_bytes\\{source="reused"\\} ${installed.reusedBytes}$`, 'm'));
    // The member registry came with the snapshot: member 3's is the leader's, byte for byte.
    expect(Buffer.from(raft(3).exportMembers(installedAt)!).toString('hex')).toBe(Buffer.from(raft(leader()).exportMembers(installedAt)!).toString('hex'));
    // The routes' database object is still the one the node started with, now on the new state.
    expect(await nodes.get(3)!.db.get(te.encode('k-2-9'))).toEqual(te.encode('value 2 9'));

    // After a further certified checkpoint, all three serve the same proof bytes, and they verify.
    await put(leader(), 'after', 'snapshot');
    const size = await certifiedCheckpoint([1, 2, 3]);
    const trust = { publicKeys: config.members.map((m) => m.publicKey), quorum: 2 };
    const proofs = [];
    for (const id of [1, 2, 3]) {
      const db = nodes.get(id)!.db;
      expect(db.latestCheckpoint().head.size).toBe(size);
      for (const key of ['k-1-3', 'retried', 'early-0', 'after']) {
        const r = await db.getWithProof(te.encode(key));
        expect(verifyGetProof(r.proof, { key: te.encode(key) }, { trust }).ok).toBe(true);
        proofs.push({ id, key, bytes: Buffer.from(getProofCodec.encode(r.proof)).toString('hex') });
      }
    }
    for (const p of proofs) expect(p.bytes).toBe(proofs.find((q) => q.key === p.key && q.id === 1)!.bytes);

    // The retry recorded before the snapshot is answered from the session table, on member 3
    // too, and nothing is applied twice.
    const again = (await put(3, 'retried', 'once', session)) as { replayed?: boolean };
    expect(again.replayed).toBe(true);
    await until('member 3 applied the retry', () => raft(3).appliedIndex >= raft(leader()).appliedIndex);
    for (const id of [1, 2, 3]) {
      const h = await nodes.get(id)!.db.getVersionHistory(te.encode('retried'));
      expect(h.length).toBe(1);
    }
  }, 120_000);
});
