/**
 * The write path. Routes never touch the database to change it: they build a
 * {@link WriteCommand} and {@link WritePath.propose} it. In single-node mode
 * {@link LocalWritePath} applies commands to the local {@link ProofDB}; a Raft group replaces it by
 * proposing the command to the log and answering once it is applied, without changing any route.
 *
 * Idempotent retries: a command may carry a client session `(clientId, seq)`. The local write path
 * remembers, per client, the outcome of its most recent sequence numbers (a window of
 * {@link SESSION_WINDOW}); a command whose pair was seen before gets the first outcome (waiting
 * for it if it is still in flight) and is not applied again. Clients are kept in a bounded LRU
 * ({@link MAX_SESSIONS} clients by default).
 *
 * Known gap: the table is in memory. A retry that crosses a restart of the node, or that comes
 * after its client was evicted from the LRU, is applied again. Under Raft the table becomes part
 * of the replicated state (DESIGN.md §5) and this gap closes.
 * @module
 */
import { ErrorCode, ProofKVError, WriteFaultError, type CheckpointResult, type ProofDB, type WriteResult } from '../src/index.js';
import { HttpError } from './errors.js';

/** A client session of an idempotent write. */
export interface Session {
  /** 1–64 characters chosen by the client, stable across its retries. */
  clientId: string;
  /** The client's request number; a retry repeats it. */
  seq: number;
}

/** One operation of a batch command. */
export type BatchCommandOp =
  | { op: 'put'; key: Uint8Array; value: Uint8Array; version?: number }
  | { op: 'delete'; key: Uint8Array };

/** A state-changing command. */
export type WriteCommand = (
  | { type: 'put'; key: Uint8Array; value: Uint8Array; version?: number }
  | { type: 'delete'; key: Uint8Array }
  | { type: 'batch'; ops: BatchCommandOp[] }
  | { type: 'checkpoint' }
) & { session?: Session };

/** What a command did. `replayed` is true when a retry got the remembered outcome. */
export type WriteOutcome = (
  | { type: 'put' | 'delete'; result: WriteResult }
  | { type: 'batch'; results: WriteResult[] }
  | { type: 'checkpoint'; checkpoint: CheckpointResult }
) & { replayed?: boolean };

/** The one way routes change state. */
export interface WritePath {
  /**
   * Applies `cmd` (in a replicated group: once it is committed) and resolves with its outcome,
   * or rejects with a `ProofKVError` / `HttpError` (e.g. `NOT_LEADER`) when it was not applied.
   */
  propose(cmd: WriteCommand): Promise<WriteOutcome>;
}

/** Sequence numbers remembered per client. */
export const SESSION_WINDOW = 128;
/** Clients remembered by default. */
export const MAX_SESSIONS = 100_000;

type Settled = { ok: true; outcome: WriteOutcome } | { ok: false; error: unknown };

/** Outcomes of one client's recent sequence numbers. */
interface ClientSession {
  results: Map<number, Promise<Settled>>;
  /** Lowest seq still remembered once the window has been full; lower ones are stale. */
  floor: number;
}

/** Errors that mean "not applied, try again later": never remembered. */
function isTransient(err: unknown): boolean {
  // Refused during a write fault the node recovers from: nothing was applied.
  if (err instanceof WriteFaultError) return err.retryable;
  if (err instanceof ProofKVError) return err.code === ErrorCode.DATABASE_CLOSED || err.code === ErrorCode.DIRECTORY_LOCKED;
  if (err instanceof HttpError) return err.code === 'UNAVAILABLE' || err.code === 'NOT_LEADER';
  return false;
}

/** Options of {@link LocalWritePath}. */
export interface LocalWritePathOptions {
  /** Clients remembered (LRU). Default {@link MAX_SESSIONS}. */
  maxSessions?: number;
  /** Called after each applied (not replayed) data write with its number of operations. */
  onApplied?: (cmd: WriteCommand, ops: number) => void;
}

/**
 * The state machine behind both write paths: applies commands to the database, with the session
 * table. {@link LocalWritePath} calls it directly; `RaftWritePath` calls it for each committed log
 * entry, in log order.
 */
export class CommandApplier {
  /** clientId → session; Map order is LRU order (oldest first). */
  private readonly sessions = new Map<string, ClientSession>();
  private readonly maxSessions: number;

  constructor(
    private readonly db: ProofDB,
    private readonly options: LocalWritePathOptions & {
      /** Engine writes are synced (`WriteOptions.sync`); default: the database's own setting. */
      sync?: boolean;
    } = {},
  ) {
    this.maxSessions = options.maxSessions ?? MAX_SESSIONS;
  }

  /** Number of clients currently remembered. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Applies `cmd` once per `(clientId, seq)` (see the module comment) and returns its outcome. */
  async execute(cmd: WriteCommand): Promise<WriteOutcome> {
    if (!cmd.session) return this.apply(cmd);
    const { clientId, seq } = cmd.session;
    let s = this.sessions.get(clientId);
    if (s) {
      this.sessions.delete(clientId);
      this.sessions.set(clientId, s);
    } else {
      s = { results: new Map(), floor: 0 };
      this.sessions.set(clientId, s);
      if (this.sessions.size > this.maxSessions) this.sessions.delete(this.sessions.keys().next().value!);
    }
    const seen = s.results.get(seq);
    if (seen) {
      const settled = await seen;
      if (!settled.ok) throw settled.error;
      return { ...settled.outcome, replayed: true };
    }
    if (seq < s.floor) {
      throw new HttpError('REQUEST_SEQ_STALE', `request seq ${seq} of client ${clientId} is older than the remembered window (from ${s.floor})`);
    }
    const session = s;
    const p: Promise<Settled> = this.apply(cmd).then(
      (outcome) => ({ ok: true as const, outcome }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    session.results.set(seq, p);
    if (session.results.size > SESSION_WINDOW) {
      const lowest = Math.min(...session.results.keys());
      session.results.delete(lowest);
      session.floor = Math.max(session.floor, lowest + 1);
    }
    const settled = await p;
    if (!settled.ok) {
      if (isTransient(settled.error) && session.results.get(seq) === p) session.results.delete(seq);
      throw settled.error;
    }
    return settled.outcome;
  }

  private async apply(cmd: WriteCommand): Promise<WriteOutcome> {
    const wo = this.options.sync === undefined ? {} : { sync: this.options.sync };
    switch (cmd.type) {
      case 'put': {
        const result = cmd.version === undefined ? await this.db.put(cmd.key, cmd.value, wo) : await this.db.putWithVersion(cmd.key, cmd.value, cmd.version, wo);
        this.options.onApplied?.(cmd, 1);
        return { type: 'put', result };
      }
      case 'delete': {
        const result = await this.db.delete(cmd.key, wo);
        this.options.onApplied?.(cmd, 1);
        return { type: 'delete', result };
      }
      case 'batch': {
        const batch = this.db.batch();
        for (const op of cmd.ops) {
          if (op.op === 'delete') batch.delete(op.key);
          else if (op.version === undefined) batch.put(op.key, op.value);
          else batch.putWithVersion(op.key, op.value, op.version);
        }
        const results = await this.db.write(batch, wo);
        this.options.onApplied?.(cmd, results.length);
        return { type: 'batch', results };
      }
      case 'checkpoint':
        return { type: 'checkpoint', checkpoint: await this.db.checkpoint() };
    }
  }
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

  /** {@inheritDoc WritePath.propose} */
  propose(cmd: WriteCommand): Promise<WriteOutcome> {
    return this.applier.execute(cmd);
  }
}
