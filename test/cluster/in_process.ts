/**
 * Helpers of the in-process cluster tests (test/cluster/catchup.test.ts,
 * test/cluster/join_snapshot.test.ts): members as `ProofNode`s over the real peer transport on
 * loopback, a bounded wait, and certified checkpoints proposed on the leader.
 */
import pino from 'pino';
import type { ClusterConfig } from '../../server/cluster_config.js';
import { ProofNode } from '../../server/node.js';
import type { RaftSnapshotOptions } from '../../server/raft_snapshot.js';
import { RaftWritePath } from '../../server/raft_write_path.js';

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
