/**
 * {@link RaftWritePath}: the {@link WritePath} of a Raft group — a thin adapter between the routes
 * and `src/replication/`. A command is CBOR-encoded and proposed to the {@link ReplicationGroup}
 * (whose Raft log in `<data>/raft/log` is the write-ahead log); its committed entry is applied to
 * the {@link ProofDB} — opened with `writeAheadLog: 'external'` — through the same
 * {@link CommandApplier} (apply + session table) as {@link LocalWritePath}, with the entry's log
 * index; the proposal is answered with that outcome. How a write becomes durable, and why a crash
 * loses nothing acknowledged, is explained in `src/replication/group.ts` and docs/replication.md.
 *
 * Sessions. The `(clientId, seq)` table is replicated state: a {@link SessionStore} in
 * `<dir>/sessions`, restored at open as of the engine's durable log index and kept durable
 * ahead of it through the engine's `beforeLogIndexDurable` hook, so that re-applying the log after
 * any crash or restart rebuilds exactly the live run's table and no retry is applied twice
 * (docs/replication.md § Sessions). {@link RaftWritePath.exportSessions} and
 * {@link RaftWritePath.importSessions} carry it in snapshots.
 * @module
 */
import * as path from 'node:path';
import { Encoder } from 'cbor-x';
import type { ProofDB } from '../src/index.js';
import { ReplicationError, ReplicationGroup, passingIoCode, SessionError, SessionErrorCode, SessionStore, type ApplyPause, type GroupStatus, type PeerAddress, type Transport } from '../src/replication/index.js';
import { HttpError, scrubPaths } from './errors.js';
import type { ReadConsistency } from './keys.js';
import { CommandApplier, MAX_SESSION_BYTES, isEngineFailure, isRecoverableFault, type LocalWritePathOptions, type PathFault, type WriteCommand, type WriteOutcome, type WritePath } from './write_path.js';

/** Options of {@link RaftWritePath.open}. */
export interface RaftWritePathOptions extends LocalWritePathOptions {
  /** Milliseconds per Raft tick (default 100). */
  tickMs?: number;
  /**
   * fdatasync the Raft log before a write is acknowledged (default true; `proofkv serve
   * --sync`/`--no-sync`). False: a write survives a crash of the process, not a power loss.
   */
  sync?: boolean;
  /** Bound of the session inputs kept between installs (`SessionStoreOptions.maxPendingBytes`). */
  maxPendingSessionBytes?: number;
  /** Called when writes pause on the Raft path ({@link RaftWritePath.writeFault} set) and with `undefined` when they resume. */
  onPause?: (fault: PathFault | undefined) => void;
  /**
   * This node as a member of a cluster: its Raft id, every member's peer address (the bootstrap
   * voters) and the transport to them. Absent: a one-member group.
   */
  cluster?: { id: number; peers: readonly PeerAddress[]; transport: Transport };
}

/** What `/v1/status` and `proofkv cluster status` show of the group, as this member sees it. */
export type ClusterView = GroupStatus;

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const bytes = (b: unknown): Uint8Array => (b instanceof Uint8Array ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(0));

/** Encodes a command for the log. */
export function encodeCommand(cmd: WriteCommand): Uint8Array {
  return cbor.encode(cmd);
}

/** Decodes {@link encodeCommand}, normalizing byte strings to `Uint8Array`. */
export function decodeCommand(data: Uint8Array): WriteCommand {
  const c = cbor.decode(data) as any;
  if (c.type === 'put' || c.type === 'append') c.value = bytes(c.value);
  if (c.type === 'put' || c.type === 'delete' || c.type === 'append') c.key = bytes(c.key);
  if (c.type === 'batch') for (const op of c.ops) { op.key = bytes(op.key); if (op.op === 'put' || op.op === 'append') op.value = bytes(op.value); }
  if (c.type === 'cosign') { c.root = bytes(c.root); c.signature = bytes(c.signature); }
  return c as WriteCommand;
}

/** A pause of the group as a {@link PathFault} (never a file path in it). */
function pathFaultOf(p: ApplyPause): PathFault {
  const since = Date.now() - (performance.now() - p.since);
  if (p.component === 'apply') {
    const error = p.error instanceof Error ? p.error : new Error(String(p.error));
    return { component: 'raft-apply', error, since, attempts: p.attempts, recoverable: true };
  }
  // LevelDB words its errors without a code (and with the file's path): keep only the errno code.
  const code = passingIoCode(p.error) ?? 'EIO';
  const error = Object.assign(new Error(`${code}: writing the raft log failed`), { code });
  return { component: 'raft-log', error, since, attempts: p.attempts, recoverable: true };
}

/** The write path of a Raft group. Create with {@link RaftWritePath.open}. */
export class RaftWritePath implements WritePath {
  private constructor(
    private readonly db: ProofDB,
    private readonly group: ReplicationGroup<WriteOutcome>,
    private readonly applier: CommandApplier,
    private readonly sessions: SessionStore,
  ) {}

  /**
   * Opens (or creates) the group in `dir` (normally `<data>/raft`) over `db`, which must be open
   * with `writeAheadLog: 'external'`: restores the session table as of the engine's recorded
   * index, re-applies the log after it, and starts serving proposals.
   */
  static async open(db: ProofDB, dir: string, options: RaftWritePathOptions = {}): Promise<RaftWritePath> {
    if (db.options.writeAheadLog !== 'external') {
      throw new Error(`the raft write path needs the database opened with writeAheadLog: 'external' (it is '${db.options.writeAheadLog}')`);
    }
    const durable = db.logIndex().durable;
    let group: ReplicationGroup<WriteOutcome> | undefined;
    const sessions = await SessionStore.open(path.join(dir, 'sessions'), {
      durableIndex: durable,
      maxBytes: options.maxSessionBytes ?? MAX_SESSION_BYTES,
      maxPendingBytes: options.maxPendingSessionBytes,
      // Session inputs pile up while nothing is flushed (retries, failed conditions write
      // nothing): a checkpoint records an index, and its install folds them into the base.
      onPressure: () => void group?.propose(encodeCommand({ type: 'checkpoint', time: Date.now() })).catch(() => undefined),
    });
    const applier = new CommandApplier(db, { ...options, sessions });
    db.beforeLogIndexDurable((index, recorded) => sessions.persist(index, recorded));
    try {
      group = await ReplicationGroup.open<WriteOutcome>(dir, {
        appliedIndex: durable,
        tickMs: options.tickMs,
        sync: options.sync,
        onPause: (p) => options.onPause?.(p && pathFaultOf(p)),
        ...(options.cluster ? { id: options.cluster.id, peers: options.cluster.peers, transport: options.cluster.transport } : {}),
        stateMachine: {
          apply: (index, command) => applier.execute(decodeCommand(command), index),
          isFatal: isEngineFailure,
          // A recoverable engine write fault pauses applying; the same entries are applied again.
          isTransient: isRecoverableFault,
          rollback: (index) => applier.rollback(index),
        },
      });
      return new RaftWritePath(db, group, applier, sessions);
    } catch (err) {
      await sessions.close();
      throw err;
    }
  }

  /** Highest log index applied to the engine. */
  get appliedIndex(): number {
    return this.group.status().applied;
  }

  /** Last index in the Raft log. */
  get lastIndex(): number {
    return this.group.status().lastIndex;
  }

  /** Syncs of the Raft log so far (`proofkv_raft_log_syncs_total`). */
  get logSyncs(): number {
    return this.group.logSyncs();
  }

  /** Estimated bytes of the session inputs kept since the stored base. */
  get sessionPendingBytes(): number {
    return this.sessions.pendingBytes;
  }

  /** Number of clients the session table remembers. */
  get sessionCount(): number {
    return this.applier.sessionCount;
  }

  /** Estimated bytes of the idempotency table. */
  get sessionBytes(): number {
    return this.applier.sessionBytes;
  }

  /** {@inheritDoc WritePath.propose} */
  propose(cmd: WriteCommand): Promise<WriteOutcome> {
    try {
      this.applier.refuseIfDiverged();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.group.propose(encodeCommand(cmd)).catch((err: unknown) => {
      if (!(err instanceof ReplicationError)) throw err;
      // Applying is paused by a write fault the engine recovers from: try again shortly, as on
      // the local path (a proposal refused before the log never applies; one already in the log
      // is applied once the fault clears, so its retry needs the same session to apply once).
      throw new HttpError('UNAVAILABLE', scrubPaths(err.message), isRecoverableFault(err.cause) || this.group.applyPause() ? { 'Retry-After': '1' } : {});
    });
  }

  /** {@inheritDoc WritePath.writeFault} */
  writeFault(): PathFault | undefined {
    const p = this.group.applyPause();
    return p && pathFaultOf(p);
  }

  /**
   * {@inheritDoc WritePath.readBarrier}
   * Linearizable: Raft ReadIndex through the group (a one-member group confirms at once).
   */
  async readBarrier(consistency: ReadConsistency): Promise<void> {
    if (consistency === 'serializable') return;
    try {
      await this.group.readIndex();
    } catch (err) {
      throw err instanceof ReplicationError ? new HttpError('UNAVAILABLE', `linearizable read refused: ${err.message}`) : err;
    }
  }

  /** Proposes again this member's signature on its pending head when it is not in the log yet. */
  resumeCosign(): void {
    this.applier.resumeCosign();
  }

  /** True when this member leads the group (it alone proposes checkpoints). */
  isLeader(): boolean {
    return this.group.status().role === 'leader';
  }

  /** The group as this member sees it. */
  cluster(): ClusterView {
    return this.group.status();
  }

  /**
   * The session table as of log index `index` (default: the engine's durable index), encoded
   * for a snapshot (`SessionStore.export`). `SESSIONS_UNAVAILABLE` for an index not applied yet
   * or older than the stored base.
   */
  exportSessions(index = this.db.logIndex().durable): Uint8Array {
    if (index > this.group.status().applied) throw new SessionError(SessionErrorCode.Unavailable, `log index ${index} is not applied yet`);
    return this.sessions.export(index);
  }

  /**
   * Replaces the session table with `bytes` from {@link exportSessions} (a snapshot install, with
   * the engine as of the same index) and returns that index. Malformed bytes are refused with
   * `SESSIONS_MALFORMED` and change nothing.
   */
  importSessions(bytes: Uint8Array): Promise<number> {
    return this.sessions.import(bytes);
  }

  /**
   * Finishes the running Ready, fails what is still queued, closes the log and the session store.
   * The engine hook stays: a flush install still running fails (`SESSIONS_UNAVAILABLE`) rather
   * than record an index the closed store did not make durable; its entries are re-applied at
   * the next open.
   */
  async close(): Promise<void> {
    await this.group.close();
    await this.sessions.close();
  }
}
