/**
 * The write path. Routes never touch the database to change it: they build a
 * {@link WriteCommand} and {@link WritePath.propose} it. In single-node mode
 * {@link LocalWritePath} applies commands to the local {@link ProofDB}; a Raft group replaces it by
 * proposing the command to the log and answering once it is applied, without changing any route.
 *
 * Idempotent retries: a command may carry a client session `(clientId, seq)`. The local write path
 * remembers, per client, the outcome of its most recent sequence numbers (a window of
 * {@link SESSION_WINDOW}) together with a SHA-256 digest of the request ({@link commandDigest}:
 * operation, keys, values, explicit versions, conditions, batch contents); a command whose pair was seen
 * before gets the first outcome (waiting for it if it is still in flight) and is not applied
 * again — if its digest matches. A reuse of the pair for another request is refused with
 * `422 IDEMPOTENCY_KEY_REUSED` and changes nothing, so a rewritten or reused pair can never make
 * the node answer one request with another's result.
 *
 * The table has a byte budget ({@link MAX_SESSION_BYTES} by default), not a client count: each
 * client and each remembered outcome is charged an estimate of what it holds in memory
 * ({@link sessionEntryBytes}); when the total is over budget the least recently active clients are
 * forgotten first (never the one being served).
 *
 * Known gap: the table is in memory. A retry that crosses a restart of the node, or that comes
 * after its client was evicted, is applied again (and a seq below an evicted client's window is no
 * longer recognised as stale). With the replicated cluster the table becomes part of the
 * replicated state (docs/replication.md) and this gap closes.
 * @module
 */
import { createHash } from 'node:crypto';
import { ErrorCode, ProofKVError, WriteFaultError, type CheckpointResult, type ProofDB, type WriteResult } from '../src/index.js';
import { HttpError } from './errors.js';

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
  | { type: 'checkpoint' }
) & {
  session?: Session;
  /**
   * Commit time (ms since the epoch) stamped by the node that proposes the command (the routes:
   * `Date.now()`); the engine records `max(time, previous commit time)`. Not part of the digest.
   */
  time?: number;
};

/** What a command did. `replayed` is true when a retry got the remembered outcome. */
export type WriteOutcome = (
  | { type: 'put' | 'delete' | 'append'; result: WriteResult }
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
  /** Clients the idempotency table remembers. */
  readonly sessionCount: number;
  /** Estimated bytes of the idempotency table (bounded by its byte budget). */
  readonly sessionBytes: number;
}

/** Sequence numbers remembered per client. */
export const SESSION_WINDOW = 128;
/** Default byte budget of the idempotency table (64 MiB). */
export const MAX_SESSION_BYTES = 64 * 1024 * 1024;
/**
 * Estimated bytes of a remembered client besides its outcomes (Map entries, objects, the id).
 * With {@link SESSION_ENTRY_BYTES} a client with one write is charged about 1.85 KiB, above its
 * measured heap cost (about 0.8 KiB), so the budget bounds real memory.
 */
export const SESSION_CLIENT_BYTES = 1024;
/** Estimated bytes of one remembered outcome (promise, closure, digest, result object). */
export const SESSION_ENTRY_BYTES = 768;
/** Estimated bytes of each further write result of a remembered batch outcome. */
export const SESSION_RESULT_BYTES = 64;

type Settled = { ok: true; outcome: WriteOutcome } | { ok: false; error: unknown };

/** One remembered request: the digest of what was asked and its outcome. */
interface Remembered {
  digest: Uint8Array;
  settled: Promise<Settled>;
  bytes: number;
}

/** Outcomes of one client's recent sequence numbers. */
interface ClientSession {
  id: string;
  results: Map<number, Remembered>;
  /** Lowest seq still remembered once the window has been full; lower ones are stale. */
  floor: number;
  /** Estimated bytes this client holds in the table. */
  bytes: number;
}

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
      break;
  }
  return new Uint8Array(h.digest());
}

/** The estimated table bytes of one remembered outcome of `cmd`. */
export function sessionEntryBytes(cmd: WriteCommand): number {
  return SESSION_ENTRY_BYTES + (cmd.type === 'batch' ? SESSION_RESULT_BYTES * cmd.ops.length : 0);
}

function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
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
  /** Byte budget of the idempotency table (least recently active clients are evicted first). Default {@link MAX_SESSION_BYTES}. */
  maxSessionBytes?: number;
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
  private readonly maxSessionBytes: number;
  private bytes = 0;

  constructor(
    private readonly db: ProofDB,
    private readonly options: LocalWritePathOptions & {
      /** Engine writes are synced (`WriteOptions.sync`); default: the database's own setting. */
      sync?: boolean;
    } = {},
  ) {
    this.maxSessionBytes = options.maxSessionBytes ?? MAX_SESSION_BYTES;
    if (!Number.isSafeInteger(this.maxSessionBytes) || this.maxSessionBytes < 0) throw new RangeError('maxSessionBytes must be a non-negative integer');
  }

  /** Number of clients currently remembered. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Estimated bytes the idempotency table holds (see {@link sessionEntryBytes}). */
  get sessionBytes(): number {
    return this.bytes;
  }

  /** Forgets least recently active clients until the table fits its budget; `keep` stays. */
  private evict(keep: string): void {
    for (const [id, s] of this.sessions) {
      if (this.bytes <= this.maxSessionBytes) return;
      if (id === keep) continue;
      this.sessions.delete(id);
      this.bytes -= s.bytes;
    }
  }

  /**
   * Applies `cmd` once per `(clientId, seq)` (see the module comment) and returns its outcome; a
   * remembered pair with another request digest is `IDEMPOTENCY_KEY_REUSED`.
   * `logIndex`: the Raft log entry the command comes from (engine in external-log mode). The
   * engine write is enqueued before this returns its promise, so calls take effect in call order.
   */
  async execute(cmd: WriteCommand, logIndex?: number): Promise<WriteOutcome> {
    if (!cmd.session) return this.apply(cmd, logIndex);
    const { clientId, seq } = cmd.session;
    const digest = commandDigest(cmd);
    let s = this.sessions.get(clientId);
    if (s) {
      this.sessions.delete(clientId);
      this.sessions.set(clientId, s);
    } else {
      s = { id: clientId, results: new Map(), floor: 0, bytes: SESSION_CLIENT_BYTES + 2 * clientId.length };
      this.sessions.set(clientId, s);
      this.bytes += s.bytes;
    }
    const seen = s.results.get(seq);
    if (seen) {
      if (!sameDigest(seen.digest, digest)) {
        throw new HttpError(
          'IDEMPOTENCY_KEY_REUSED',
          `request seq ${seq} of client ${clientId} was already used for another request (other operation, key, value, version or batch); use a new seq`,
        );
      }
      const settled = await seen.settled;
      if (!settled.ok) throw settled.error;
      return { ...settled.outcome, replayed: true };
    }
    if (seq < s.floor) {
      throw new HttpError('REQUEST_SEQ_STALE', `request seq ${seq} of client ${clientId} is older than the remembered window (from ${s.floor})`);
    }
    const session = s;
    const p: Promise<Settled> = this.apply(cmd, logIndex).then(
      (outcome) => ({ ok: true as const, outcome }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    const entry: Remembered = { digest, settled: p, bytes: sessionEntryBytes(cmd) };
    session.results.set(seq, entry);
    this.charge(session, entry.bytes);
    if (session.results.size > SESSION_WINDOW) {
      const lowest = Math.min(...session.results.keys());
      this.charge(session, -session.results.get(lowest)!.bytes);
      session.results.delete(lowest);
      session.floor = Math.max(session.floor, lowest + 1);
    }
    this.evict(clientId);
    const settled = await p;
    if (!settled.ok) {
      if (isTransient(settled.error) && session.results.get(seq) === entry) {
        session.results.delete(seq);
        this.charge(session, -entry.bytes);
      }
      throw settled.error;
    }
    return settled.outcome;
  }

  /** Adds `n` bytes to `s` and, while it is still in the table, to the table total. */
  private charge(s: ClientSession, n: number): void {
    s.bytes += n;
    if (this.sessions.get(s.id) === s) this.bytes += n;
  }

  private async apply(cmd: WriteCommand, logIndex?: number): Promise<WriteOutcome> {
    const wo = { ...(this.options.sync === undefined ? {} : { sync: this.options.sync }), ...(logIndex === undefined ? {} : { logIndex }), ...(cmd.time === undefined ? {} : { time: cmd.time }) };
    switch (cmd.type) {
      case 'put': {
        const o = { ...wo, ...conditionOf(cmd) };
        const result = cmd.version === undefined ? await this.db.put(cmd.key, cmd.value, o) : await this.db.putWithVersion(cmd.key, cmd.value, cmd.version, o);
        this.options.onApplied?.(cmd, 1);
        return { type: 'put', result };
      }
      case 'delete': {
        const result = await this.db.delete(cmd.key, { ...wo, ...conditionOf(cmd) });
        this.options.onApplied?.(cmd, 1);
        return { type: 'delete', result };
      }
      case 'append': {
        const result = await this.db.append(cmd.key, cmd.value, { ...wo, ...conditionOf(cmd) });
        this.options.onApplied?.(cmd, 1);
        return { type: 'append', result };
      }
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
      case 'checkpoint':
        return { type: 'checkpoint', checkpoint: await this.db.checkpoint(logIndex === undefined ? {} : { logIndex }) };
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

  /** {@inheritDoc WritePath.propose} */
  propose(cmd: WriteCommand): Promise<WriteOutcome> {
    return this.applier.execute(cmd);
  }
}
