/**
 * Helpers of the in-process cluster tests (test/cluster/catchup.test.ts,
 * test/cluster/join_snapshot.test.ts): members as `ProofNode`s over the real peer transport on
 * loopback, a bounded wait, and certified checkpoints proposed on the leader.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { expect } from 'vitest';
import { PeerRoute, SNAPSHOT_PATH, authHeaders, bodyDigest, requestMac } from '../../src/replication/transport/index.js';
import { initCluster } from '../../server/cli/cluster.js';
import { readClusterSecret, type ClusterConfig } from '../../server/cluster_config.js';
import { ProofNode } from '../../server/node.js';
import type { RaftSnapshotOptions, SnapshotEvent } from '../../server/raft_snapshot.js';
import { RaftWritePath } from '../../server/raft_write_path.js';
import { freePortRange } from '../../scripts/local_cluster.js';

/**
 * A chunk read of a file no member serves, MACed with `secret`, sent to member `to`'s peer
 * listener as member `from`: `401 bad-mac` when `to` does not accept `secret`, else the
 * authenticated refusal of the read (`<status> <reason>`). It changes nothing on the member.
 */
export function peerSecretProbe(config: ClusterConfig, to: number, from: number, secret: Uint8Array): Promise<string> {
  const target = '1/missing.sst/0/1';
  const claims = { clusterId: config.clusterId, from, to, epoch: 1, seq: 1, time: Date.now() };
  const headers = authHeaders(claims, requestMac(secret, PeerRoute.Snapshot, claims, target, bodyDigest(new Uint8Array(0))));
  const url = new URL(`${SNAPSHOT_PATH}?index=1&name=missing.sst&offset=0&length=1`, config.members.find((m) => m.id === to)!.peerUrl);
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'GET', headers, agent: false }, (res) => {
      res.resume();
      resolve(`${res.statusCode} ${String(res.headers['proofkv-peer-refusal'])}`);
    });
    req.on('error', (e) => resolve(`error ${e.message}`));
    req.end();
  });
}

/** Polls `cond` every 20 ms, at most `ms` (a bound, not a timing assertion). */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts member `id` of `config` in process, on its client URL's port, with no automatic checkpoints. */
export function startMember(o: { config: ClusterConfig; id: number; dataDir: string; secret: Uint8Array; join?: boolean; snapshots: RaftSnapshotOptions }): Promise<ProofNode> {
  const url = new URL(o.config.members.find((m) => m.id === o.id)!.clientUrl);
  return ProofNode.start({
    dataDir: o.dataDir,
    host: '127.0.0.1',
    port: Number(url.port),
    tokens: [],
    checkpointIntervalMs: 0,
    checkpointWrites: 0,
    logger: pino({ level: 'silent' }),
    cluster: { config: o.config, nodeId: o.id, secret: o.secret, join: o.join === true },
    snapshots: o.snapshots,
  });
}

/**
 * {@link startMember} with compaction margin `margin`, where member `watched`'s snapshot events go
 * to `events` and its chunk reads through `fetchChunk` (the catch-up tests).
 */
export function startWatched(o: { config: ClusterConfig; id: number; dataDir: string; secret: Uint8Array; margin: number; watched: number; events: SnapshotEvent[]; fetchChunk: NonNullable<RaftSnapshotOptions['fetchChunk']> }): Promise<ProofNode> {
  return startMember({
    config: o.config,
    id: o.id,
    dataDir: o.dataDir,
    secret: o.secret,
    snapshots: {
      compactMargin: o.margin,
      onEvent: (e) => {
        if (o.id === o.watched) o.events.push(e);
      },
      ...(o.id === o.watched ? { fetchChunk: o.fetchChunk } : {}),
    },
  });
}

/** The value of metric `name` (with its label set, e.g. `proofkv_peer_refused_total{reason="bad-mac"}`) in a node's `/metrics`; 0 when absent. */
export async function metricOf(node: ProofNode, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  for (const line of text.split('\n')) if (line.startsWith(`${name} `)) return Number(line.slice(name.length + 1));
  return 0;
}

/** The in-process members and what the tests ask of them. */
export class Members {
  readonly nodes = new Map<number, ProofNode>();

  raft(id: number): RaftWritePath {
    const wp = this.nodes.get(id)!.writePath;
    if (!(wp instanceof RaftWritePath)) throw new Error('not a raft member');
    return wp;
  }

  /** The leader among `among` (default: every running member), 0 when none. */
  leader(among = [...this.nodes.keys()]): number {
    return among.find((id) => this.nodes.has(id) && this.raft(id).isLeader()) ?? 0;
  }

  /** Proposes a checkpoint on the leader among `ids` and waits until each of them certified it; its log size. */
  async certifiedCheckpoint(ids: number[]): Promise<number> {
    const l = this.leader(ids);
    await this.raft(l).propose({ type: 'checkpoint', time: Date.now() });
    const size = this.nodes.get(l)!.db.certification().latestSize;
    await until(`checkpoint ${size} certified on ${ids.join(', ')}`, () => ids.every((id) => this.nodes.get(id)!.db.certification().certifiedSize >= size));
    return size;
  }

  async shutdown(): Promise<void> {
    for (const n of this.nodes.values()) await n.shutdown().catch(() => undefined);
  }
}

const te = new TextEncoder();

/**
 * Members in process with their cluster file, secret and data directories in a temporary
 * directory (`dir`); the snapshot events of member `watch` are kept in `events`.
 */
export class InProcessCluster {
  readonly dir: string;
  readonly members = new Members();
  readonly events: SnapshotEvent[] = [];
  readonly dataDirs = new Map<number, string>();
  config!: ClusterConfig;
  secret!: Uint8Array;

  /** `fetchChunk`: member `watch`'s chunk reads go through it (a test's fault or an older member's answers). */
  constructor(prefix: string, private readonly o: { watch: number; compactMargin: number; fetchChunk?: RaftSnapshotOptions['fetchChunk'] }) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  }

  /** Starts member `id` (its data directory from `dataDirs`) with the current `config`. */
  async start(id: number, join = false): Promise<void> {
    const snapshots: RaftSnapshotOptions = {
      compactMargin: this.o.compactMargin,
      onEvent: (e: SnapshotEvent) => void (id === this.o.watch && this.events.push(e)),
      ...(id === this.o.watch && this.o.fetchChunk ? { fetchChunk: this.o.fetchChunk } : {}),
    };
    this.members.nodes.set(id, await startMember({ config: this.config, id, dataDir: this.dataDirs.get(id)!, secret: this.secret, join, snapshots }));
  }

  /**
   * Lays out three members with `cluster init` in `<dir>/c` on ten free ports from `base`, starts
   * them, and waits for a leader, five writes and a checkpoint certified by all three.
   */
  async initThree(): Promise<{ base: number; cdir: string; layout: ReturnType<typeof initCluster> }> {
    const base = await freePortRange(10);
    const cdir = path.join(this.dir, 'c');
    const layout = initCluster({ nodes: 3, dir: cdir, clientPort: base, peerPort: base + 3 });
    this.config = layout.config;
    for (const [id, d] of layout.dataDirs) this.dataDirs.set(id, d);
    this.secret = readClusterSecret(layout.secretFile);
    for (const id of [1, 2, 3]) await this.start(id);
    await until('a leader', () => this.members.leader() !== 0);
    for (let i = 0; i < 5; i++) await this.put(this.members.leader(), `early-${i}`, `v${i}`);
    await this.members.certifiedCheckpoint([1, 2, 3]);
    return { base, cdir, layout };
  }

  /** A put on member `id`. */
  put(id: number, key: string, value: string): Promise<unknown> {
    return this.members.raft(id).propose({ type: 'put', key: te.encode(key), value: te.encode(value), time: Date.now() });
  }

  /**
   * A signer-set change: a follower of `ids` is removed (asked of the leader, in the product's two
   * steps: demoted, then — once a checkpoint certified the change — removed) and stopped; then
   * three rounds of writes, each with a certified checkpoint, among the rest. Returns the rest.
   */
  async removeFollower(ids: number[]): Promise<number[]> {
    const m = this.members;
    const gone = ids.find((id) => id !== m.leader())!;
    const rest = ids.filter((id) => id !== gone);
    expect(await m.raft(m.leader()).membership()!.remove(gone)).toBe('demoted');
    await this.put(m.leader(rest), 'demoted', String(gone));
    await m.certifiedCheckpoint(rest);
    let outcome: string | undefined;
    await until(`member ${gone} removed`, async () => {
      outcome = await m.raft(m.leader(rest)).membership()!.remove(gone).catch(() => undefined);
      return outcome === 'removed';
    });
    await m.nodes.get(gone)!.shutdown();
    m.nodes.delete(gone);
    await until('a leader among the rest', () => m.leader(rest) !== 0);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 10; i++) await this.put(m.leader(rest), `k-${round}-${i}`, `value ${round} ${i}`);
      await m.certifiedCheckpoint(rest);
    }
    expect(m.raft(m.leader(rest)).cluster()).toMatchObject({ voters: rest, learners: [] });
    return rest;
  }

  async close(): Promise<void> {
    await this.members.shutdown();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
