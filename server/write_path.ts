/**
 * The write path. Routes never touch the database to change it: they build a
 * {@link WriteCommand} and {@link WritePath.propose} it. In single-node mode
 * {@link LocalWritePath} applies commands to the local {@link ProofDB}; a Raft group replaces it by
 * proposing the command to the log and answering once it is applied, without changing any route.
 *
 * Idempotent retries: a command may carry a client session `(clientId, seq)`. The session table
 * (`SessionTable`, `src/replication/sessions.ts`) remembers, per client, its most recent
 * sequence numbers (a window of {@link SESSION_WINDOW}), each with a SHA-256 digest of the request
 * ({@link commandDigest}: operation, keys, values, explicit versions, conditions, batch contents)
 * and its settled outcome — a result, or a deterministic failure such as `CONDITION_FAILED`. A
 * command whose pair was seen before gets the first outcome (waiting for it if it is still in
 * flight) and is not applied again — if its digest matches. A reuse of the pair for another
 * request is refused with `422 IDEMPOTENCY_KEY_REUSED` and changes nothing, so a rewritten or
 * reused pair can never make the node answer one request with another's result.
 *
 * The table has a byte budget ({@link MAX_SESSION_BYTES} by default), not a client count: each
 * client and each remembered outcome is charged an estimate computed from the command alone
 * ({@link sessionEntryBytes}); when the total is over budget the least recently active clients are
 * forgotten first (never the one being served).
 *
 * Where it lives: on the Raft path the table is replicated state — built by applying the log,
 * persisted beside the engine and restored exactly as of the engine's durable log index
 * (`SessionStore`), so a retry is answered from it after any restart or crash, and is never
 * applied twice. The local path keeps it in memory (`MemorySessionBook`): a retry that
 * crosses a restart of a local-path node, or that comes after its client was evicted, is applied
 * again.
 * @module
 */
import { createHash } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { ErrorCode, ProofKVError, WriteFaultError, type CheckpointResult, type ConditionalWriteOptions, type CosignResult, type ProofDB, type WriteResult } from '../src/index.js';
import { describeDivergence, soloSignerSet, type CosignCommand, type SignerSet } from '../src/replication/cosign.js';
import { MemorySessionBook, type SessionBook, type SessionRecord } from '../src/replication/sessions.js';
import type { MemberCommand } from '../src/replication/members.js';
import { HttpError, toHttpError, type ProblemMembers } from './errors.js';
import type { ReadConsistency } from './keys.js';

export { SESSION_CLIENT_BYTES, SESSION_WINDOW } from '../src/replication/sessions.js';

/** A client session of an idempotent write. */
export interface Session {
  /** 1–64 characters chosen by the client, stable across its retries. */
  clientId: string;
  /** The client's request number; a retry repeats it. */
  seq: number;
}

/**
 * The condition of a write (engine `WriteCondition`): evaluated by the engine when the command is
 * applied, so it is replayed deterministically from the log.
 */
export interface CommandCondition {
  ifVersion?: number;
  ifAbsent?: boolean;
}

/** One operation of a batch command. `append` carries the bytes to append in `value`. */
export type BatchCommandOp =
  | ({ op: 'put'; key: Uint8Array; value: Uint8Array; version?: number } & CommandCondition)
  | { op: 'delete'; key: Uint8Array; ifVersion?: number }
  | ({ op: 'append'; key: Uint8Array; value: Uint8Array } & CommandCondition);

/** A state-changing command. */
export type WriteCommand = (
  | ({ type: 'put'; key: Uint8Array; value: Uint8Array; version?: number } & CommandCondition)
  | { type: 'delete'; key: Uint8Array; ifVersion?: number }
  | ({ type: 'append'; key: Uint8Array; value: Uint8Array } & CommandCondition)
  | { type: 'batch'; ops: BatchCommandOp[] }
  /** A checkpoint (its `time` is the command's, below: the leader's timer or a request). */
  | { type: 'checkpoint' }
  /** A member's signature on the checkpoint-log head it computed (docs/replication.md § Co-signing). */
  | CosignCommand
  /** A change of the member registry (docs/replication.md § Membership); a Raft group only. */
  | MemberCommand
) & {
  session?: Session;
  /**
   * Time (ms since the epoch) stamped by the node that proposes the command (the routes and the
   * leader's checkpoint timer: `Date.now()`), never read at apply: a write's commit time is
   * `max(time, previous commit time)`, a checkpoint's `max(time, previous checkpoint's time)`.
   * Not part of the request digest.
   */
  time?: number;
};

/** What a command did. `replayed` is true when a retry got the remembered outcome. */
export type WriteOutcome = (
  | { type: 'put' | 'delete' | 'append'; result: WriteResult }
  | { type: 'batch'; results: WriteResult[] }
  | { type: 'checkpoint'; checkpoint: CheckpointResult }
  | { type: 'cosign'; cosign: CosignResult }
  /** `applied` is false for a replay of an entry the stored registry already reflects. */
  | { type: 'member'; applied: boolean }
) & { replayed?: boolean };

/** The one way routes change state. */
export interface WritePath {
  /**
   * Applies `cmd` (in a replicated group: once it is committed) and resolves with its outcome,
   * or rejects with a `ProofKVError` / `HttpError` (e.g. `NOT_LEADER`) when it was not applied.
   */
  propose(cmd: WriteCommand): Promise<WriteOutcome>;
  /**
   * Waits until this member may answer a plain read with the given consistency: for
   * `linearizable`, until it has applied everything committed when the read began (Raft ReadIndex);
   * `serializable` returns at once. Rejects with `HttpError` `UNAVAILABLE` when that cannot be
   * established (no leader, minority partition).
   */
  readBarrier(consistency: ReadConsistency): Promise<void>;
  /**
   * A fault of the write path outside the engine while writes are refused until it clears, in the
   * engine's `WriteFault` shape: a failed write of the Raft log (`raft-log`: a full disk, a
   * file-size limit), or the Raft apply step still paused at an entry the engine refused (`raft-apply`:
   * its fault cleared, the entry is not applied again yet). The engine's own faults are
   * `db.writeFault()`, which `/v1/status` shows first.
   */
  writeFault?(): PathFault | undefined;
  /**
   * False while this member knows no leader to take a write (a group electing, a member cut off
   * from a majority, a lone voter re-electing itself after its log reopened): a write sent now is
   * refused as retryable. Absent or true: a write may be taken. `/v1/status` shows it as
   * `writes.state` `no-leader` and `/readyz` as a reason (docs/http-api.md).
   */
  leaderKnown?(): boolean;
  /** Clients the idempotency table remembers. */
  readonly sessionCount: number;
  /** Estimated bytes of the idempotency table (bounded by its byte budget). */
  readonly sessionBytes: number;
}

/** See {@link WritePath.writeFault}. */
export interface PathFault {
  component: 'raft-log' | 'raft-apply';
  error: Error;
  lastError?: Error;
  /** When the fault began (ms since the epoch). */
  since: number;
  attempts: number;
  recoverable: true;
}

/** Default byte budget of the idempotency table (64 MiB). */
export const MAX_SESSION_BYTES = 64 * 1024 * 1024;
/** Estimated bytes of one remembered outcome (record, digest, encoded outcome, result object). */
export const SESSION_ENTRY_BYTES = 768;
/** Estimated bytes of each further write result of a remembered batch outcome. */
export const SESSION_RESULT_BYTES = 64;
/** Longest failure message a remembered outcome keeps (characters). */
const MAX_REMEMBERED_MESSAGE = 512;

type Settled = { ok: true; outcome: WriteOutcome } | { ok: false; error: unknown };

/**
 * SHA-256 of what a command asks for: its type, and per operation the key, value, explicit
 * version and condition (length-prefixed and tagged, so no two different commands encode alike).
 * The session is not part of it.
 */
export function commandDigest(cmd: WriteCommand): Uint8Array {
  const h = createHash('sha256');
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    h.update(b);
  };
  const field = (b: Uint8Array) => {
    u64(b.length);
    h.update(b);
  };
  const version = (v: number | undefined) => (v === undefined ? h.update(Uint8Array.of(0)) : (h.update(Uint8Array.of(1)), u64(v)));
  const condition = (c: CommandCondition) => {
    if (c.ifVersion !== undefined) {
      h.update(Uint8Array.of(1));
      u64(c.ifVersion);
    } else h.update(Uint8Array.of(c.ifAbsent ? 2 : 0));
  };
  h.update(`proofkv-write-v2\n${cmd.type}\n`);
  switch (cmd.type) {
    case 'put':
      field(cmd.key);
      field(cmd.value);
      version(cmd.version);
      condition(cmd);
      break;
    case 'append':
      field(cmd.key);
      field(cmd.value);
      condition(cmd);
      break;
    case 'delete':
      field(cmd.key);
      condition(cmd);
      break;
    case 'batch':
      u64(cmd.ops.length);
      for (const op of cmd.ops) {
        h.update(op.op === 'put' ? 'p' : op.op === 'append' ? 'a' : 'd');
        field(op.key);
        if (op.op !== 'delete') field(op.value);
        if (op.op === 'put') version(op.version);
        condition(op);
      }
      break;
    case 'checkpoint':
      version(cmd.time);
      break;
    case 'cosign':
      u64(cmd.nodeId);
      u64(cmd.size);
      field(cmd.root);
      field(cmd.signature);
      break;
    case 'member':
      h.update(`${cmd.op}\n`);
      u64(cmd.id);
      if (cmd.op === 'add') {
        field(new TextEncoder().encode(cmd.clientUrl));
        field(new TextEncoder().encode(cmd.peerUrl));
        field(cmd.publicKey);
      }
      break;
  }
  return new Uint8Array(h.digest());
}

/** The estimated table bytes of one remembered outcome of `cmd`. */
export function sessionEntryBytes(cmd: WriteCommand): number {
  return SESSION_ENTRY_BYTES + (cmd.type === 'batch' ? SESSION_RESULT_BYTES * cmd.ops.length : 0);
}

/** Errors that mean "not applied, try again later": never remembered. */
function isTransient(err: unknown): boolean {
  // Refused during a write fault the node recovers from: nothing was applied.
  if (err instanceof WriteFaultError) return isRecoverableFault(err);
  if (err instanceof ProofKVError) return err.code === ErrorCode.DATABASE_CLOSED || err.code === ErrorCode.DIRECTORY_LOCKED;
  if (err instanceof HttpError) return err.code === 'UNAVAILABLE' || err.code === 'NOT_LEADER';
  return false;
}

/**
 * A write fault the engine recovers from by itself (`WriteFaultError` retryable: a full disk,
 * descriptor exhaustion): the command was refused and nothing of it applied. The Raft group
 * applies the entry again once it clears (`StateMachine.isTransient`); the local path answers 503.
 */
export function isRecoverableFault(err: unknown): boolean {
  return err instanceof WriteFaultError && err.retryable;
}

/**
 * Errors meaning the engine could not take the write at all (closed, failed): not an outcome of
 * the command. The Raft group stops on them; their outcome is never remembered in a stored table.
 */
export function isEngineFailure(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'DATABASE_CLOSED' || code === 'DIRECTORY_LOCKED' || code === 'IO_ERROR' || code === 'CORRUPTION';
}

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

/**
 * The remembered form of a settled outcome (CBOR): `{ ok: outcome }` — a checkpoint only as
 * `{ ok: { type: 'checkpoint' } }` — or `{ err: { code, message, members } }`, the HTTP error the
 * failure maps to, its message cut to 512 characters and without the `key` member (the retry's
 * own command, which has the same digest, gives it back: {@link decodeSettled}).
 */
export function encodeSettled(settled: Settled): Uint8Array {
  if (settled.ok) {
    const { replayed: _, ...outcome } = settled.outcome;
    return outcome.type === 'checkpoint' ? CHECKPOINT_TAKEN : cbor.encode({ ok: outcome });
  }
  const h = toHttpError(settled.error);
  const { key: _, ...members } = h.members;
  return cbor.encode({ err: { code: h.code, message: h.message.slice(0, MAX_REMEMBERED_MESSAGE), members } });
}

const CHECKPOINT_TAKEN = cbor.encode({ ok: { type: 'checkpoint' } });

/**
 * Decodes {@link encodeSettled} for a retry of `cmd`: a failure becomes the same `HttpError` the
 * first answer mapped to; a checkpoint is answered with the database's latest checkpoint (which
 * covers at least what the first one did).
 */
export function decodeSettled(db: ProofDB, cmd: WriteCommand, bytes: Uint8Array): Settled {
  const doc = cbor.decode(bytes) as { ok?: WriteOutcome; err?: { code: HttpError['code']; message: string; members: ProblemMembers } };
  if (doc.err) {
    const members: ProblemMembers = { ...doc.err.members };
    if (doc.err.code === 'CONDITION_FAILED') {
      const key = cmd.type === 'batch' ? cmd.ops[members.index ?? 0]?.key : cmd.type === 'checkpoint' || cmd.type === 'cosign' || cmd.type === 'member' ? undefined : cmd.key;
      if (key) members.key = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64url');
    }
    return { ok: false, error: new HttpError(doc.err.code, doc.err.message, {}, members) };
  }
  const o = doc.ok!;
  if (o.type === 'checkpoint') {
    const signed = db.latestCheckpoint();
    const rec = db.servedCheckpointRecord();
    const checkpoint = { ...signed, seq: signed.checkpoint.seq, tables: db.tables(), time: rec?.time ?? 0, signers: rec?.signers ?? soloSignerSet(db.publicKey()), certified: true };
    return { ok: true, outcome: { type: 'checkpoint', checkpoint } };
  }
  return { ok: true, outcome: o };
}

/** Options of {@link LocalWritePath}. */
export interface LocalWritePathOptions {
  /**
   * The signer set of a checkpoint applied now, at log index `logIndex` (a Raft group: the voters
   * as of that entry, from the member registry). Default: this node alone, quorum 1 — certified
   * by its own signature at once, as a one-member group.
   */
  signers?: (logIndex?: number) => SignerSet | undefined;
  /**
   * Applies the `member` command of log entry `logIndex` to the member registry (synchronously,
   * in log order); false for a replay the registry already reflects. Absent: `member` commands
   * are refused (no registry: not a Raft group).
   */
  applyMember?: (logIndex: number, cmd: MemberCommand) => boolean;
  /**
   * Called with this node's signature on a checkpoint it just applied, when that signature alone
   * does not certify it: the server proposes it to the group (fire and forget; a lost proposal is
   * proposed again after a restart through {@link CommandApplier.resumeCosign}).
   */
  proposeCosign?: (cmd: CosignCommand) => void;
  /**
   * Called after each applied cosign command with its result, for logs and metrics: a verdict
   * other than `accepted`/`duplicate` is an ignored signature (log it); a `divergence` is logged
   * with {@link describeDivergence} (the `DIVERGENCE` line).
   */
  onCosign?: (cmd: CosignCommand, result: CosignResult) => void;
  /** Byte budget of the idempotency table (least recently active clients are evicted first). Default {@link MAX_SESSION_BYTES}. */
  maxSessionBytes?: number;
  /** Called after each applied (not replayed) data write with its number of operations. */
  onApplied?: (cmd: WriteCommand, ops: number) => void;
}

/** Times a node proposes again its signature on one set-change head whose certificate lacks a quorum. */
export const MAX_SET_CHANGE_COSIGN_RETRIES = 30;

/**
 * Write operations since the latest certified checkpoint (its seq; all of them before the first):
 * what the server's checkpoint timer asks for a checkpoint on. A checkpoint that is pending
 * certification does not count, so the timer keeps proposing while none is certified.
 */
export function writesSinceCheckpoint(db: ProofDB): number {
  let checkpointSeq = 0;
  try {
    checkpointSeq = db.latestCheckpoint().checkpoint.seq;
  } catch {
    // none certified yet
  }
  return db.stats().lastSeq - checkpointSeq;
}

/**
 * The state machine behind both write paths: applies commands to the database, with the session
 * table. {@link LocalWritePath} calls it directly; `RaftWritePath` calls it for each committed log
 * entry, in log order.
 */
export class CommandApplier {
  private readonly sessions: SessionBook;
  /** Outcomes not yet remembered in encoded form (in flight, or an engine failure). */
  private readonly inflight = new WeakMap<SessionRecord, Promise<Settled>>();
  /** Session index of the local path, which has no log index. */
  private counter = 0;
  /** Times this node's signature on a set-change head (by head size) was proposed again; at most 16 heads. */
  private readonly setChangeRetries = new Map<number, number>();

  constructor(
    private readonly db: ProofDB,
    private readonly options: LocalWritePathOptions & {
      /** Engine writes are synced (`WriteOptions.sync`); default: the database's own setting. */
      sync?: boolean;
      /** The session table (the Raft path's replicated `SessionStore`); default: one in memory. */
      sessions?: SessionBook;
    } = {},
  ) {
    const maxBytes = options.maxSessionBytes ?? MAX_SESSION_BYTES;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError('maxSessionBytes must be a non-negative integer');
    this.sessions = options.sessions ?? new MemorySessionBook({ maxBytes });
  }

  /** Number of clients currently remembered. */
  get sessionCount(): number {
    return this.sessions.count;
  }

  /** Estimated bytes the idempotency table holds (see {@link sessionEntryBytes}). */
  get sessionBytes(): number {
    return this.sessions.bytes;
  }

  /**
   * Throws `DIVERGED` when this replica has diverged from its signer set (docs/replication.md
   * § Co-signing): new client commands are refused until an operator replaces its data. Entries
   * already in the log are still applied (the log stays the truth; nothing is signed or served).
   */
  refuseIfDiverged(): void {
    const d = this.db.divergence();
    if (d) throw new ProofKVError(ErrorCode.DIVERGED, `${describeDivergence(d)}: this replica refuses writes until an operator restores it`);
  }

  /**
   * Takes back what the applies of log entries from `index` on did outside the engine (their
   * session inputs) after the engine refused them all with a recoverable write fault, so that
   * they are applied again exactly as a first time (the Raft group's `rollback`). Throws when the
   * engine took any of them.
   */
  rollback(index: number): void {
    this.db.rewindLogIndex(index);
    this.sessions.rollback?.(index);
  }

  /**
   * Proposes again this node's signature on its pending head if it is not in the log yet (at open,
   * then on a timer), and on the newest set-change checkpoints whose certificate still lacks a
   * quorum — each at most {@link MAX_SET_CHANGE_COSIGN_RETRIES} times (a change whose previous set
   * lost its quorum for good would otherwise add a log entry per member and tick forever).
   */
  resumeCosign(): void {
    const cmd = this.db.ownCosign();
    if (cmd) this.options.proposeCosign?.(cmd);
    for (const c of this.db.setChangeCosigns()) {
      const tries = this.setChangeRetries.get(c.size) ?? 0;
      if (tries >= MAX_SET_CHANGE_COSIGN_RETRIES) continue;
      this.setChangeRetries.set(c.size, tries + 1);
      if (this.setChangeRetries.size > 16) this.setChangeRetries.delete(this.setChangeRetries.keys().next().value!);
      this.options.proposeCosign?.(c);
    }
  }

  /**
   * Applies `cmd` once per `(clientId, seq)` (see the module comment) and returns its outcome; a
   * remembered pair with another request digest is `IDEMPOTENCY_KEY_REUSED`.
   * `logIndex`: the Raft log entry the command comes from (engine in external-log mode; it is
   * also the session table's index). The engine write is enqueued before this returns its
   * promise, so calls take effect in call order. `tookEffect`: called when a checkpoint or a
   * cosign took effect in the engine (a checkpoint's freeze; a cosign queued behind the record of
   * the checkpoint in flight), before its outcome.
   */
  execute(cmd: WriteCommand, logIndex?: number, tookEffect?: () => void): Promise<WriteOutcome> {
    if (cmd.session) return this.executeOnce(cmd, cmd.session, logIndex, tookEffect);
    try {
      if (logIndex === undefined) this.refuseIfDiverged();
    } catch (err) {
      return Promise.reject(err);
    }
    // Not an async function: a command without a session is answered with the engine write's own
    // promise (an async function returning it adds two promise hops to every write's answer).
    return this.apply(cmd, logIndex, tookEffect);
  }

  /** {@link execute} of a command with a session: applied once per `(clientId, seq)`. */
  private async executeOnce(cmd: WriteCommand, session: Session, logIndex?: number, tookEffect?: () => void): Promise<WriteOutcome> {
    if (logIndex === undefined) this.refuseIfDiverged();
    const { clientId, seq } = session;
    const decision = this.sessions.apply({ index: logIndex ?? ++this.counter, clientId, seq, digest: commandDigest(cmd), bytes: sessionEntryBytes(cmd) });
    switch (decision.kind) {
      case 'reused':
        throw new HttpError(
          'IDEMPOTENCY_KEY_REUSED',
          `request seq ${seq} of client ${clientId} was already used for another request (other operation, key, value, version or batch); use a new seq`,
        );
      case 'stale':
        throw new HttpError('REQUEST_SEQ_STALE', `request seq ${seq} of client ${clientId} is older than the remembered window (from ${decision.floor})`);
      case 'retry': {
        const { record } = decision;
        const settled = await (this.inflight.get(record) ?? decodeSettled(this.db, cmd, record.outcome!));
        if (!settled.ok) throw settled.error;
        return { ...settled.outcome, replayed: true };
      }
    }
    const { record } = decision;
    // A checkpoint's remembered outcome is fixed when it is applied ("a checkpoint was taken"):
    // its own last install, which records its index, waits for every outcome up to it.
    if (cmd.type === 'checkpoint') record.outcome = CHECKPOINT_TAKEN;
    const p: Promise<Settled> = this.apply(cmd, logIndex, tookEffect).then(
      (outcome) => ({ ok: true as const, outcome }),
      (error: unknown) => ({ ok: false as const, error }),
    ).then((settled) => {
      // Remembered in the form a retry after a restart gets too; an engine failure is no outcome.
      if (record.outcome === undefined && (settled.ok || !isEngineFailure(settled.error))) record.outcome = encodeSettled(settled);
      if (record.outcome !== undefined) this.inflight.delete(record);
      return settled;
    });
    this.inflight.set(record, p);
    this.sessions.settling(record, p);
    const settled = await p;
    if (!settled.ok) {
      if (isTransient(settled.error)) this.sessions.forget(clientId, record);
      throw settled.error;
    }
    return settled.outcome;
  }

  private apply(cmd: WriteCommand, logIndex?: number, tookEffect?: () => void): Promise<WriteOutcome> {
    return cmd.type === 'put' || cmd.type === 'delete' || cmd.type === 'append' ? this.applyOne(cmd, logIndex) : this.applyOther(cmd, logIndex, tookEffect);
  }

  /** The engine write options of `cmd` at `logIndex`: only the fields that are set. */
  private writeOptions(cmd: WriteCommand, logIndex: number | undefined): ConditionalWriteOptions {
    const o: ConditionalWriteOptions = {};
    if (this.options.sync !== undefined) o.sync = this.options.sync;
    if (logIndex !== undefined) o.logIndex = logIndex;
    if (cmd.time !== undefined) o.time = cmd.time;
    return o;
  }

  /**
   * A single-key command: what every member does for every replicated PUT, so it is answered
   * with the engine write's own promise and one `then` (no async frames, no option spreads).
   */
  private applyOne(cmd: Extract<WriteCommand, { type: 'put' | 'delete' | 'append' }>, logIndex: number | undefined): Promise<WriteOutcome> {
    const o = this.writeOptions(cmd, logIndex);
    if (cmd.ifVersion !== undefined && cmd.ifVersion !== null) o.ifVersion = cmd.ifVersion;
    let written: Promise<WriteResult>;
    if (cmd.type === 'delete') written = this.db.delete(cmd.key, o);
    else {
      if (cmd.ifAbsent) o.ifAbsent = true;
      if (cmd.type === 'append') written = this.db.append(cmd.key, cmd.value, o);
      else written = cmd.version === undefined ? this.db.put(cmd.key, cmd.value, o) : this.db.putWithVersion(cmd.key, cmd.value, cmd.version, o);
    }
    const type = cmd.type;
    return written.then((result) => {
      this.options.onApplied?.(cmd, 1);
      return { type, result };
    });
  }

  private async applyOther(cmd: WriteCommand, logIndex?: number, tookEffect?: () => void): Promise<WriteOutcome> {
    const wo = this.writeOptions(cmd, logIndex);
    switch (cmd.type) {
      case 'put':
      case 'delete':
      case 'append':
        return this.applyOne(cmd, logIndex);
      case 'batch': {
        const batch = this.db.batch();
        for (const op of cmd.ops) {
          const c = conditionOf(op);
          if (op.op === 'delete') batch.delete(op.key, c);
          else if (op.op === 'append') batch.append(op.key, op.value, c);
          else if (op.version === undefined) batch.put(op.key, op.value, c);
          else batch.putWithVersion(op.key, op.value, op.version, c);
        }
        const results = await this.db.write(batch, wo);
        this.options.onApplied?.(cmd, results.length);
        return { type: 'batch', results };
      }
      case 'checkpoint': {
        const signers = this.options.signers?.(logIndex);
        const { result } = await this.db.startCheckpoint({
          ...(logIndex === undefined ? {} : { logIndex }),
          ...(cmd.time === undefined || cmd.time === null ? {} : { time: cmd.time }),
          ...(signers ? { signers } : {}),
        });
        tookEffect?.();
        const checkpoint = await result;
        if (checkpoint.cosign) this.options.proposeCosign?.(checkpoint.cosign);
        return { type: 'checkpoint', checkpoint };
      }
      case 'cosign': {
        const { nodeId, size, root, signature } = cmd;
        const { result } = await this.db.startCosign({ type: 'cosign', nodeId, size, root, signature }, logIndex === undefined ? {} : { logIndex });
        tookEffect?.();
        const cosign = await result;
        this.options.onCosign?.(cmd, cosign);
        return { type: 'cosign', cosign };
      }
      case 'member': {
        if (logIndex === undefined || !this.options.applyMember) throw new HttpError('INVALID_ARGUMENT', 'membership changes need a replicated group (serve --cluster)');
        return { type: 'member', applied: this.options.applyMember(logIndex, cmd) };
      }
    }
  }
}

/** The condition fields of a command or batch operation that are set. */
function conditionOf(c: CommandCondition): CommandCondition {
  const out: CommandCondition = {};
  if (c.ifVersion !== undefined && c.ifVersion !== null) out.ifVersion = c.ifVersion;
  if (c.ifAbsent) out.ifAbsent = true;
  return out;
}

/** Single-node write path: applies commands to the local database, with the session table. */
export class LocalWritePath implements WritePath {
  private readonly applier: CommandApplier;

  constructor(db: ProofDB, options: LocalWritePathOptions = {}) {
    this.applier = new CommandApplier(db, options);
  }

  /** Number of clients currently remembered. */
  get sessionCount(): number {
    return this.applier.sessionCount;
  }

  /** Estimated bytes of the idempotency table. */
  get sessionBytes(): number {
    return this.applier.sessionBytes;
  }

  /** {@inheritDoc WritePath.propose} A checkpoint without a time is stamped with the clock here, by its proposer. */
  propose(cmd: WriteCommand): Promise<WriteOutcome> {
    if (cmd.type === 'checkpoint' && cmd.time === undefined) return this.applier.execute({ ...cmd, time: Date.now() });
    return this.applier.execute(cmd);
  }

  /** One node applies every write before answering it: every read is linearizable. */
  readBarrier(_consistency: ReadConsistency): Promise<void> {
    return Promise.resolve();
  }
}
