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
import type { ProofDB } from '../src/index.js';
import { CaptureStore, LaterAnswer, realClock, ReplicationError, ReplicationGroup, passingIoCode, SessionError, SessionErrorCode, SessionStore, type ApplyPause, type GroupStatus, type ReplicationGroupOptions, type PeerAddress, type Transport } from '../src/replication/index.js';
import { MAX_REGISTRY_BYTES, MemberRegistry, MemberStore, Membership, type MemberInfo } from '../src/replication/members.js';
import type { SnapshotTrust } from '../src/replication/snapshot.js';
import type { SignerSet } from '../proofs/signer_set.js';
import { decodeCommand, encodeCommand, encodeCommandCbor, type LogCommandFormat } from './command_codec.js';
import { HttpError, scrubPaths } from './errors.js';
import type { ReadConsistency } from './keys.js';
import { RaftSnapshots, recoverInstalledSessions, type RaftSnapshotOptions, type RecordSnapshot, type SnapshotCounters } from './raft_snapshot.js';
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
   * Runs a step that follows engine I/O done outside the group's loop: the Raft snapshot recorded
   * after a checkpoint's record or a certifying cosign (a request to the loop). Default: at once.
   * The simulator runs it once every member is idle (`Simulation.defer`), so where the request
   * falls among the loop's turns does not depend on how long the disk took.
   */
  afterEngineIo?: (step: () => void) => void;
  /**
   * This node as a member of a cluster: its Raft id, every member's peer address (the bootstrap
   * voters) and the transport to them. Absent: a one-member group.
   */
  cluster?: {
    id: number;
    peers: readonly PeerAddress[];
    transport: Transport;
    /**
     * The cluster file's members: the seed of the member registry (`<dir>/members`), whose
     * voters then give each checkpoint's signer set and whose peer URLs the transport dials
     * (docs/replication.md § Membership). Absent: the signer set is `signers`' (or this node alone).
     */
    members?: readonly MemberInfo[];
    /** A member added at runtime: it never bootstraps and learns the log from the leader. */
    join?: boolean;
    /**
     * Hash of the log's initial signer set (`cluster.json`'s `initialSignerSet`): while this
     * member knows no voters, a snapshot is trusted only through the signer-set changes from it
     * ({@link snapshotTrust}). Absent: such a member trusts only its own key (refuses every snapshot).
     */
    initialSignerSet?: Uint8Array;
    /**
     * Dial overrides (`serve --peer-via`): member id → the URL this node dials it at instead of
     * the registry's `peerUrl`. Local only: nothing replicated records them.
     */
    peerVia?: ReadonlyMap<number, string>;
  };
  /**
   * The group's timers and randomness, passed through to {@link ReplicationGroup.open}: the
   * simulator gives a virtual clock and a seed (test/replication/fullstack.test.ts). Default:
   * real timers, a random seed and the group's default election and heartbeat ticks.
   */
  group?: Pick<ReplicationGroupOptions<WriteOutcome>, 'clock' | 'seed' | 'electionTick' | 'heartbeatTick' | 'requestTimeoutMs' | 'afterSync'>;
  /**
   * Wall-clock time (ms since the epoch) stamped on the commands this path proposes itself (the
   * checkpoint asked for by session-table pressure). Default `Date.now`; the simulator derives it
   * from its virtual clock.
   */
  now?: () => number;
  /** Log compaction behind certified checkpoints and snapshot installs (`server/raft_snapshot.ts`). */
  snapshots?: RaftSnapshotOptions;
  /**
   * How this member writes the `put` and `delete` commands it proposes (`proofkv serve
   * --log-commands`): `binary` (default) or `cbor`, the only form before the binary one existed.
   * Every member decodes both; `cbor` is for a rolling upgrade from a release that decodes only
   * CBOR: upgraded members propose CBOR until every member runs a release that decodes the binary
   * form (docs/replication.md § Decisions).
   */
  logCommands?: LogCommandFormat;
}


export { CommandCodecError, decodeCommand, encodeCommand, encodeCommandCbor, LOG_COMMAND_FORMATS, type LogCommandFormat } from './command_codec.js';

/** What `/v1/status` and `proofkv cluster status` show of the group, as this member sees it. */
export type ClusterView = GroupStatus;

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

/**
 * Whom a snapshot's certificate must satisfy: the signer set of the voters this member's registry
 * knows at its applied index — from which, when the snapshot's checkpoint commits to a later set
 * (the member fell behind a membership change), the certified signer-set changes the snapshot
 * lists are followed to the snapshot's set, whose quorum must have signed; without a registry,
 * the caller's signer set's keys and quorum. A member that joined and has applied nothing yet
 * knows no voters: it trusts the initial signer set its cluster file commits to
 * (`initialSignerSet`, the hash of checkpoint 0's set) and follows the changes from there
 * (`snapshotPolicy` in src/replication/snapshot.ts; docs/cluster.md § A member far behind).
 * Undefined: none.
 */
export function snapshotTrust(members: MemberStore | undefined, initialSignerSet: Uint8Array | undefined, signers: SignerSet | undefined): SnapshotTrust | undefined {
  if (!members) return signers && { publicKeys: signers.members.map((m) => m.publicKey), quorum: signers.quorum };
  const set = members.registry.signerSetAt(members.registry.index);
  if (set.members.length > 0) return { signerSet: set };
  return initialSignerSet && { initialSignerSet };
}

/** The write path of a Raft group. Create with {@link RaftWritePath.open}. */
export class RaftWritePath implements WritePath {
  private constructor(
    private readonly db: ProofDB,
    private readonly group: ReplicationGroup<WriteOutcome>,
    private readonly applier: CommandApplier,
    private readonly sessions: SessionStore,
    private readonly snapshots: RaftSnapshots,
    private readonly members: MemberStore | undefined,
    private readonly encode: (cmd: WriteCommand) => Uint8Array,
    /** Proposes a checkpoint stamped with this member's clock (errors ignored). */
    private readonly proposeCheckpoint: () => void,
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
    const maxSessionBytes = options.maxSessionBytes ?? MAX_SESSION_BYTES;
    let group: ReplicationGroup<WriteOutcome> | undefined;
    const proposeCheckpoint = () => void group?.propose(encodeCommand({ type: 'checkpoint', time: (options.now ?? Date.now)() })).catch(() => undefined);
    const sessions = await SessionStore.open(path.join(dir, 'sessions'), {
      durableIndex: durable,
      maxBytes: maxSessionBytes,
      maxPendingBytes: options.maxPendingSessionBytes,
      // Session inputs pile up while nothing is flushed (retries, failed conditions write
      // nothing): a checkpoint records an index, and its install folds them into the base.
      onPressure: proposeCheckpoint,
    });
    let members: MemberStore | undefined;
    const seed = options.cluster?.members;
    try {
      // A registry file missing in a directory that already applied entries was written before
      // the registry existed: its voters were the cluster file's members.
      members = seed && MemberStore.open(dir, () => MemberRegistry.seed(seed, durable > 0 && !options.cluster?.join ? seed.map((m) => m.id) : []));
    } catch (err) {
      await sessions.close();
      throw err;
    }
    const refreshPeers = () => queueMicrotask(() => group?.refreshPeers());
    const applier = new CommandApplier(db, {
      ...options,
      sessions,
      ...(members
        ? {
            signers: (logIndex?: number) => members.registry.signerSetAt(logIndex ?? members.registry.index),
            applyMember: (logIndex, cmd) => {
              const changed = members.applyMember(logIndex, cmd, db.logIndex().durable);
              if (changed) refreshPeers();
              return changed;
            },
          }
        : {}),
    });
    db.beforeLogIndexDurable((index, recorded) => sessions.persist(index, recorded));
    // With a synced Raft log every applied entry is durable in it, so the checkpoint log's records
    // may wait for the manifest edit that moves the recorded index past their entries (one sync
    // there, beside the session table's) instead of a sync each; without, they are synced as they
    // are appended (docs/replication.md § Co-signing, Crash safety).
    await db.deferCheckpointLogSyncs(options.sync !== false);
    // Session tables captured at checkpoints survive a restart (a checkpoint applied before it and
    // certified after it is still recorded as the Raft snapshot: docs/replication.md § Snapshots).
    const captures = CaptureStore.open(path.join(dir, 'captures'), {
      maxBytes: maxSessionBytes + MAX_REGISTRY_BYTES + 64,
      onError: (err) => options.snapshots?.onEvent?.({ type: 'capture_failed', message: err.message }),
    });
    const clock = options.group?.clock ?? realClock;
    const snapshots = new RaftSnapshots(db, sessions, {
      ...options.snapshots,
      captures,
      now: () => clock.now(),
      transport: options.cluster?.transport,
      maxSessionBytes,
      ...(members
        ? {
            members: {
              export: (index: number) => members.registry.export(index),
              import: (bytes: Uint8Array) => {
                const at = members.import(bytes);
                refreshPeers();
                return at;
              },
            },
          }
        : {}),
      // A snapshot's certificate must be certified by the signer set this member knows: the
      // registry's voters (a cluster member), or the one the caller gives, or this node alone.
      trust: () => snapshotTrust(members, options.cluster?.initialSignerSet, options.signers?.()) ?? { publicKeys: [db.publicKey()], quorum: 1 },
    });
    // Entries replayed while the group opens are not recorded yet (`record` undefined): the next checkpoint's are.
    const afterIo = options.afterEngineIo;
    const record: RecordSnapshot = afterIo
      ? (index, data, keepFrom) => new Promise<void>((resolve, reject) => afterIo(() => void group!.snapshotAt(index, data, { keepFrom }).then(resolve, reject)))
      : (index, data, keepFrom) => group!.snapshotAt(index, data, { keepFrom });
    try {
      snapshots.loadCaptures(captures.load());
      await recoverInstalledSessions(db, sessions);
      const c = options.cluster;
      group = await ReplicationGroup.open<WriteOutcome>(dir, {
        appliedIndex: durable,
        tickMs: options.tickMs,
        ...options.group,
        sync: options.sync,
        onPause: (p) => options.onPause?.(p && pathFaultOf(p)),
        ...(c ? { id: c.id, peers: c.peers, transport: c.transport, join: c.join === true } : {}),
        // The initial members' registry entries open the log: a member that joins later learns
        // every initial member's key from the log, even from a cluster file that no longer lists
        // a removed one (its checkpoints' signer sets would differ from the others': divergence).
        ...(seed && !c?.join ? { bootstrapCommands: [...seed].sort((a, b) => a.id - b.id).map((m) => encodeCommand({ type: 'member', op: 'add', id: m.id, clientUrl: m.clientUrl, peerUrl: m.peerUrl, publicKey: m.publicKey })) } : {}),
        ...(members
          ? {
              resolvePeer: (id: number) => {
                const m = members.registry.current().members.find((x) => x.id === id);
                const via = c?.peerVia?.get(id);
                return via !== undefined ? { id, peerUrl: via } : m && { id, peerUrl: m.peerUrl };
              },
              // Removed ids are refused for good, also once the entries that removed them are behind this member's log.
              removedMembers: () => members.registry.current().removed,
            }
          : {}),
        compactMargin: options.snapshots?.compactMargin,
        // The log's in-memory mirror is byte-bound: past the bound a checkpoint is proposed, and
        // its certified snapshot compacts the log (keeping at most compactMarginBytes behind it).
        compactMarginBytes: options.snapshots?.compactMarginBytes,
        maxLogMemoryBytes: options.snapshots?.maxLogMemoryBytes,
        onLogPressure: proposeCheckpoint,
        // Snapshots are recorded at certified checkpoints (RaftSnapshots), never on a count.
        snapshotEvery: 0,
        stateMachine: {
          apply: (index, command) => {
            const cmd = decodeCommand(command);
            if (cmd.type === 'checkpoint' || cmd.type === 'cosign') {
              // Pipelined: a checkpoint took effect at its freeze (the session table is captured as
              // of it), a cosign once queued behind the record of the checkpoint in flight; the loop
              // goes on, and the proposer is answered with the outcome (the record, the verdict).
              let tookEffect!: () => void;
              const took = new Promise<void>((resolve) => (tookEffect = resolve));
              const outcome = applier.execute(cmd, index, tookEffect);
              const applied = Promise.race([took, outcome]);
              if (cmd.type === 'checkpoint') void applied.then(() => snapshots.afterApply(index, cmd, group && record), () => undefined);
              void outcome.then(() => (cmd.type === 'checkpoint' ? snapshots.afterRecord(group && record) : snapshots.afterApply(index, cmd, group && record)), () => undefined);
              return applied.then(() => new LaterAnswer(outcome));
            }
            return applier.execute(cmd, index);
          },
          isFatal: isEngineFailure,
          // A recoverable engine write fault pauses applying; the same entries are applied again.
          isTransient: isRecoverableFault,
          rollback: (index) => applier.rollback(index),
          snapshot: () => snapshots.snapshot(),
          restore: (snap, from) => snapshots.restore(snap, from),
          snapshotToSend: (index, data) => snapshots.snapshotToSend(index, data),
          ...(members ? { applyConfChange: (index, cc) => void members.applyConfChange(index, cc, db.logIndex().durable) } : {}),
        },
      });
      // A checkpoint entry replayed while the group opened took effect at its freeze: the open
      // ends once its record is appended too, as it did when the apply awaited it (a failed one
      // is the engine's write fault, reported as any other).
      await db.waitForCheckpoint().catch(() => undefined);
      return new RaftWritePath(db, group, applier, sessions, snapshots, members, options.logCommands === 'cbor' ? encodeCommandCbor : encodeCommand, proposeCheckpoint);
    } catch (err) {
      await snapshots.close();
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

  /** Bytes of log entries held in memory (docs/raft.md § Memory). */
  get logMemoryBytes(): number {
    return this.group.logMemoryBytes();
  }

  /** Syncs of the Raft log so far (`proofkv_raft_log_syncs_total`). */
  get logSyncs(): number {
    return this.group.logSyncs();
  }

  /** Estimated bytes of the session inputs kept since the stored base. */
  get sessionPendingBytes(): number {
    return this.sessions.pendingBytes;
  }

  /** Raft snapshots recorded at certified checkpoints and installed from other members. */
  snapshotStats(): Readonly<SnapshotCounters> {
    return this.snapshots.stats();
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
    return this.group.propose(this.encode(cmd), { mapError: this.mapError });
  }

  /**
   * A refused or failed proposal as the routes' error (mapped by the group as it rejects: no
   * `.catch` hop between the outcome and the answer). Applying paused by a write fault the engine
   * recovers from: try again shortly, as on the local path (a proposal refused before the log
   * never applies; one already in the log is applied once the fault clears, so its retry needs
   * the same session to apply once).
   */
  private readonly mapError = (err: unknown): unknown => {
    if (!(err instanceof ReplicationError)) return err;
    return new HttpError('UNAVAILABLE', scrubPaths(err.message), isRecoverableFault(err.cause) || this.group.applyPause() ? { 'Retry-After': '1' } : {});
  };

  /** {@inheritDoc WritePath.writeFault} */
  writeFault(): PathFault | undefined {
    const p = this.group.applyPause();
    return p && pathFaultOf(p);
  }

  /** {@inheritDoc WritePath.leaderKnown} */
  leaderKnown(): boolean {
    return this.group.leaderKnown();
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

  /**
   * True while the group's loop runs or has work queued, or the engine flushes a memtable or
   * records a checkpoint (the simulator waits between events): a flush's install moves the
   * durable log index, which the session store's pressure (a checkpoint proposed) depends on.
   */
  busy(): boolean {
    return this.group.busy() || this.db.checkpointInFlight() || this.db.flushInFlight();
  }

  /** Resolves once the group's loop is idle and the engine's flushes and checkpoint in flight, if any, are done. */
  async settled(): Promise<void> {
    await this.group.settled();
    await this.engineSettled();
  }

  /**
   * While the group waits for a simulated sync (`group.afterSync`): true while applies it
   * started meanwhile run, or the engine flushes or records a checkpoint (the simulator waits).
   */
  busyWhileParked(): boolean {
    return this.group.applyingDuringSync() || this.db.checkpointInFlight() || this.db.flushInFlight();
  }

  /** Resolves once {@link busyWhileParked} is false. */
  async settledWhileParked(): Promise<void> {
    await this.group.duringSyncApplied();
    await this.engineSettled();
  }

  private async engineSettled(): Promise<void> {
    await this.db.waitForFlush().catch(() => undefined);
    await this.db.waitForCheckpoint().catch(() => undefined);
  }

  /** Proposes again this member's signature on its pending head when it is not in the log yet. */
  resumeCosign(): void {
    try {
      this.applier.resumeCosign();
    } catch {
      // The engine is closed or installing a snapshot: the node's timer asks again.
    }
  }

  /**
   * The client URL of the leader when this member is not it and knows it, from the member
   * registry (`fallback`, the cluster file's members, without one); undefined otherwise. Asked
   * once per answer (`ProofKV-Leader`), so the URL is looked up again only when the leader or the
   * registry changes.
   */
  leaderHint(fallback: ReadonlyArray<{ id: number; clientUrl: string }> = []): string | undefined {
    const lead = this.group.leader();
    if (lead === 0 || lead === this.group.id) return undefined;
    const at = this.members?.registry.index ?? -1;
    const memo = this.hintMemo;
    if (memo && memo.lead === lead && memo.at === at) return memo.url;
    const members = this.members ? this.members.registry.current().members : fallback;
    const url = members.find((m) => m.id === lead)?.clientUrl || undefined;
    this.hintMemo = { lead, at, url };
    return url;
  }

  private hintMemo: { lead: number; at: number; url: string | undefined } | undefined;

  /** True when this member leads the group (it alone proposes checkpoints). */
  isLeader(): boolean {
    return this.group.status().role === 'leader';
  }

  /** The group as this member sees it. */
  cluster(): ClusterView {
    return this.group.status();
  }

  /**
   * Runtime membership over the member registry (`GET/POST/DELETE /v1/cluster/members`);
   * undefined when this group has no registry (not started from a cluster file).
   */
  membership(): Membership | undefined {
    const members = this.members;
    if (!members) return undefined;
    const group = this.group;
    return new Membership(members.registry, {
      id: group.id,
      proposeMember: async (cmd) => {
        await this.propose(cmd);
      },
      proposeConfChange: (cc) =>
        group.proposeConfChange(cc).catch((err: unknown) => {
          throw err instanceof ReplicationError ? new HttpError('UNAVAILABLE', `membership change not applied: ${err.message}`) : err;
        }),
      status: () => group.status(),
      progress: () => group.progress(),
      setChangePending: () => this.setChangePending(),
      afterSetChange: () => this.proposeCheckpoint(),
    });
  }

  /**
   * Why a change of the voters must wait (see `MembershipGroup.setChangePending`), as this member
   * has applied the log: undefined when the latest checkpoint's signer set is the voters' and every
   * set-change checkpoint's certificate meets a quorum of its set and of the previous one.
   */
  setChangePending(): string | undefined {
    const members = this.members;
    if (!members) return undefined;
    let signed: number[] | undefined;
    let incomplete: number[];
    try {
      signed = this.db.latestSignerIds();
      incomplete = this.db.incompleteSetChanges();
    } catch (err) {
      return `the engine cannot tell (${(err as Error).message})`;
    }
    const voters = [...members.registry.current().voters].sort((a, b) => a - b);
    if (signed === undefined) return 'no checkpoint records the initial signer set yet';
    const ids = [...signed].sort((a, b) => a - b);
    if (ids.join() !== voters.join()) return `the voters (${voters.join(', ')}) changed since the latest checkpoint, signed by ${ids.join(', ') || 'none'}: the next checkpoint records the change`;
    if (incomplete.length > 0) return `the signer-set change at checkpoint ${incomplete[0] - 1} is not certified by a quorum of its set and of the previous one yet`;
    return undefined;
  }

  /**
   * Why this member should propose a checkpoint although nothing was written since the last one
   * (the server's checkpoint timer asks; only the leader proposes), or undefined:
   * - `initial`: a cluster member with no checkpoint yet: checkpoint 0 records the initial signer
   *   set (membership changes wait for it);
   * - `set-change`: the voters changed since the latest checkpoint: the next one records the new signer set,
   *   and until it is certified the next membership change waits (`MEMBERS_PENDING`);
   * - `snapshot`: the latest certified checkpoint could not be recorded as the Raft snapshot (its session
   *   table was not captured: this member restarted between applying the checkpoint and seeing
   *   it certified), so members behind the log would be offered an older snapshot whose tables
   *   are no longer served; a new checkpoint is recorded once certified.
   */
  checkpointDue(): 'initial' | 'set-change' | 'snapshot' | undefined {
    try {
      const members = this.members;
      if (members) {
        const signed = this.db.latestSignerIds();
        const voters = members.registry.current().voters;
        if (signed === undefined && voters.length > 0) return 'initial';
        if (signed !== undefined && (signed.length !== voters.length || signed.some((id) => !voters.includes(id)))) return 'set-change';
      }
      return this.snapshots.unrecordable(this.group.status().snapshotIndex) ? 'snapshot' : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The member registry as of log index `index` (default: the engine's durable index), encoded
   * for a snapshot; undefined without a registry. `MEMBERS_UNAVAILABLE` for an index the kept
   * history does not reach.
   */
  exportMembers(index = this.db.logIndex().durable): Uint8Array | undefined {
    return this.members?.registry.export(index);
  }

  /**
   * Replaces the member registry with `bytes` from {@link exportMembers} (a snapshot install, with
   * the engine as of the same index) and returns its index; malformed bytes are refused with
   * `MEMBERS_MALFORMED` and change nothing.
   */
  importMembers(bytes: Uint8Array): number {
    if (!this.members) throw new Error('this group has no member registry');
    const index = this.members.import(bytes);
    this.group.refreshPeers();
    return index;
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
    await this.snapshots.close();
    await this.sessions.close();
  }
}
