/**
 * A member added with an empty data directory to a cluster whose members record an **older
 * shape** (no level-0 byte bound, table format 2, small levels: as a cluster created by an older
 * release) builds the tables its peers build (docs/cluster.md § Membership, "The shape"): it asks
 * the others for their shape before its engine opens, so whether it then replays the log from its
 * start or installs a snapshot, its MasterRoot after the next checkpoints equals theirs, it does
 * not diverge, and it serves the same verified proofs. Three in-process members over the real peer
 * transport on loopback; member 4 laid out by `cluster add`, started with `join`, added and
 * promoted. Without the shape it would record this release's defaults and its root would differ
 * at the next checkpoint that compacts (`DIVERGENCE`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getProofCodec } from '../../proofs/lsm_encoding.js';
import { verifyGetProof } from '../../proofs/lsm_proof.js';
import { addClusterMember, initCluster } from '../../server/cli/cluster.js';
import { readClusterConfig, readClusterSecret } from '../../server/cluster_config.js';
import { freePortRange } from '../../scripts/local_cluster.js';
import { ProofDB } from '../../src/index.js';
import { DEFAULT_SHAPE, shapeOf, type Shape } from '../../src/options.js';
import { VersionSet } from '../../src/version/version_set.js';
import { HttpTransport, TransportError, TransportErrorCode } from '../../src/replication/transport/index.js';
import { encodeShape, SHAPE_FILE } from '../../src/replication/shape.js';
import { SnapshotError, SnapshotErrorCode } from '../../src/replication/snapshot.js';
import { InProcessCluster, startMember, until } from './in_process.js';

/** The older shape the cluster's members record: small levels, no level-0 byte bound, table format 2. */
const OLD: Shape = {
  ...DEFAULT_SHAPE, writeBufferSize: 64 * 1024, targetFileSize: 16 * 1024, maxBytesForLevelBase: 256 * 1024, blockSize: 1024, checkpointLevel0Bytes: 0, merkleGroup: 0,
};
const te = new TextEncoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * A three-member cluster whose members record {@link OLD}, a joiner added by log replay (a large
 * compaction margin) or by snapshot (margin 4, the log compacted behind each certified checkpoint),
 * from a leader that tells its shape or — `'older-leader'` — one that refuses the read as a
 * release from before shapes were told does (the joiner then keeps the shape it learned at its join).
 */
async function joinOldShapeCluster(c: InProcessCluster, how: 'log' | 'snapshot' | 'older-leader'): Promise<void> {
  const { members, events, dataDirs, dir } = c;
  const nodes = members.nodes;
  const base = await freePortRange(8);
  const layout = initCluster({ nodes: 3, dir: path.join(dir, 'c'), clientPort: base, peerPort: base + 3 });
  c.config = layout.config;
  c.secret = readClusterSecret(layout.secretFile);
  for (const [id, d] of layout.dataDirs) {
    dataDirs.set(id, d);
    // The older release created its engine with its shape (recorded in the manifest; `serve` sets none).
    const db = await ProofDB.open(d, { ...OLD, writeAheadLog: 'external' });
    await db.close();
  }
  for (const id of [1, 2, 3]) await c.start(id);
  await until('a leader', () => members.leader() !== 0);
  for (const id of [1, 2, 3]) expect(shapeOf(nodes.get(id)!.db.options)).toEqual(OLD);

  /** A round of `n` puts of `size`-byte values on the leader, then a checkpoint certified by `ids`. */
  const round = async (r: number, n: number, size: number, ids: number[]): Promise<void> => {
    const l = members.leader(ids);
    for (let i = 0; i < n; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => c.put(l, `k-${(((i + j) * 7919 + r * 104729) % 100_003)}`, `${r}:${i + j}:`.padEnd(size, 'v'))));
    }
    await members.certifiedCheckpoint(ids);
  };
  await round(1, 300, 200, [1, 2, 3]);
  await round(2, 300, 200, [1, 2, 3]);
  if (how !== 'log') await until('the log compacted', () => members.raft(members.leader()).cluster().firstIndex > 1);
  else expect(members.raft(members.leader()).cluster().firstIndex).toBe(1);

  const added = addClusterMember({ dir: path.join(dir, 'c'), id: 4, clientPort: base + 6, peerPort: base + 7 });
  c.config = readClusterConfig(added.configFile);
  dataDirs.set(4, added.dataDir);
  await c.start(4, true);
  // It learned the shape before its engine's first open, which recorded it.
  expect(shapeOf(nodes.get(4)!.db.options)).toEqual(OLD);
  expect(VersionSet.recordedShape(added.dataDir)).toEqual(OLD);
  const m4 = c.config.members.find((m) => m.id === 4)!;
  await members.raft(members.leader()).membership()!.add(m4);
  if (how !== 'log') {
    await until('member 4 installed a snapshot', () => events.some((e) => e.type === 'installed'), 60_000);
    expect(events.find((e) => e.type === 'installed')).toMatchObject({ shape: how === 'snapshot' ? 'told' : 'own', shapeChanged: false });
  }
  await until('member 4 caught up', () => members.raft(4).appliedIndex >= members.raft(members.leader()).appliedIndex, 60_000);
  if (how === 'log') expect(events.some((e) => e.type === 'installed')).toBe(false);
  await until('member 4 promoted', async () => {
    try {
      await members.raft(members.leader()).membership()!.promote(4);
      return true;
    } catch {
      return false;
    }
  }, 60_000);

  // The next checkpoints: rounds that leave level 0 small over a larger level 1 (where this
  // release's level-0 rule would merge within level 0) and rounds that compact into level 1.
  const all = [1, 2, 3, 4];
  for (const [r, n, size] of [[3, 40, 100], [4, 40, 100], [5, 300, 200], [6, 40, 100], [7, 40, 100]] as const) {
    await round(r, n, size, all);
    const roots = all.map((id) => hex(nodes.get(id)!.db.latestCheckpoint().checkpoint.masterRoot));
    expect(new Set(roots).size, `round ${r}: ${roots.join(' ')}`).toBe(1);
    for (const id of all) expect(nodes.get(id)!.db.divergence(), `member ${id} at round ${r}`).toBeUndefined();
  }
  expect(nodes.get(4)!.db.tables().map((t) => [t.level, t.entryCount, hex(t.root)])).toEqual(nodes.get(1)!.db.tables().map((t) => [t.level, t.entryCount, hex(t.root)]));

  // Member 4 serves the verified proofs the others serve, byte for byte.
  const signers = nodes.get(4)!.db.latestCheckpoint().signers!;
  expect(signers.members.map((m) => m.id)).toEqual(all);
  const trust = { publicKeys: signers.members.map((m) => m.publicKey), quorum: signers.quorum };
  const keys = ['k-0', `k-${(7919 * 3 + 104729 * 5) % 100_003}`, `k-${104729 * 7 % 100_003}`];
  for (const key of keys) {
    const bytes = new Set<string>();
    for (const id of all) {
      const r = await nodes.get(id)!.db.getWithProof(te.encode(key));
      expect(verifyGetProof(r.proof, { key: te.encode(key) }, { trust }).ok, `${key} on member ${id}`).toBe(true);
      bytes.add(hex(getProofCodec.encode(r.proof)));
    }
    expect(bytes.size, key).toBe(1);
  }
}

describe('a member added to a cluster of an older shape builds its peers\' tables', () => {
  const byLog = new InProcessCluster('proofkv-join-shape-log-', { watch: 4, compactMargin: 100_000 });
  const bySnapshot = new InProcessCluster('proofkv-join-shape-snap-', { watch: 4, compactMargin: 4 });
  /** The leader refuses the shape read, as one of a release from before shapes were told. */
  const fromOlder = new InProcessCluster('proofkv-join-shape-older-', {
    watch: 4,
    compactMargin: 4,
    fetchChunk: (from, index, name, offset, length, next) =>
      name === SHAPE_FILE ? Promise.reject(new TransportError(TransportErrorCode.Refused, `member ${from} answered 500 (read-failed) for snapshot ${index} ${name}@${offset}`)) : next(from, index, name, offset, length),
  });
  afterAll(async () => {
    await byLog.close();
    await bySnapshot.close();
    await fromOlder.close();
  });

  it('by log replay from the start', async () => {
    await joinOldShapeCluster(byLog, 'log');
  }, 240_000);

  it('by snapshot', async () => {
    await joinOldShapeCluster(bySnapshot, 'snapshot');
  }, 240_000);

  it('by snapshot from a leader that does not tell its shape (the joiner keeps the one it learned)', async () => {
    await joinOldShapeCluster(fromOlder, 'older-leader');
  }, 240_000);
});

describe('a joiner that cannot learn the shape does not start', () => {
  const c = new InProcessCluster('proofkv-join-shape-refused-', { watch: 2, compactMargin: 4 });
  afterAll(() => c.close());

  it('every other member older (it refuses the shape read): SHAPE_UNKNOWN; a hostile shape: SHAPE_INVALID; the directory untouched; once one tells it, it starts with that shape', async () => {
    const base = await freePortRange(4);
    const layout = initCluster({ nodes: 2, dir: path.join(c.dir, 'c'), clientPort: base, peerPort: base + 2 });
    const secret = readClusterSecret(layout.secretFile);
    const dataDir = layout.dataDirs.get(2)!;
    // Member 1 as a release from before shapes were told answers on the wire: a refusal of any
    // name but its snapshot files (its joiner is not added yet: it would also say `not-member`).
    let answer: 'refuse' | 'hostile' | 'tell' = 'refuse';
    const one = await HttpTransport.start({
      selfId: 1, clusterId: layout.config.clusterId, secret, listen: { host: '127.0.0.1', port: base + 2 }, peers: [{ id: 2, peerUrl: layout.config.members[1].peerUrl }],
    });
    one.onSnapshotRead(async (_index, name, offset, length) => {
      if (answer === 'tell' && name === SHAPE_FILE) return encodeShape(OLD).slice(offset, offset + length);
      if (answer === 'hostile' && name === SHAPE_FILE) return encodeShape({ ...OLD, writeBufferSize: 2 ** 40 }).slice(offset, offset + length);
      throw new SnapshotError(SnapshotErrorCode.BadRequest, `${name} is not a file of the snapshot`);
    });
    try {
      const before = fs.readdirSync(dataDir);
      const start = () => startMember({ config: layout.config, id: 2, dataDir, secret, join: true, snapshots: {} });
      const err = await start().then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'SHAPE_UNKNOWN', message: expect.stringContaining('member 1: refused') });
      expect(fs.readdirSync(dataDir)).toEqual(before);
      // Its peer listener was closed: it starts again on the same ports.
      answer = 'hostile';
      expect(await start().then(() => undefined, (e: unknown) => e)).toMatchObject({ code: 'SHAPE_INVALID', message: expect.stringContaining('writeBufferSize') });
      expect(fs.readdirSync(dataDir)).toEqual(before);
      answer = 'tell';
      const node = await start();
      try {
        expect(shapeOf(node.db.options)).toEqual(OLD);
        expect(VersionSet.recordedShape(dataDir)).toEqual(OLD);
      } finally {
        await node.shutdown();
      }
    } finally {
      await one.close();
    }
  }, 120_000);
});
