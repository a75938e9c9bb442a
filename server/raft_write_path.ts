/**
 * {@link RaftWritePath}: the {@link WritePath} of a Raft group — a thin adapter between the routes
 * and `src/replication/`. A command is CBOR-encoded and proposed to the {@link ReplicationGroup}
 * (whose Raft log in `<data>/raft/log` is the write-ahead log); its committed entry is applied to
 * the {@link ProofDB} — opened with `writeAheadLog: 'external'` — through the same
 * {@link CommandApplier} (apply + session table) as {@link LocalWritePath}, with the entry's log
 * index; the proposal is answered with that outcome. How a write becomes durable, and why a crash
 * loses nothing acknowledged, is explained in `src/replication/group.ts` and docs/replication.md.
 *
 * Retries at open. The session table is in memory. When the group re-applies the entries after
 * the engine's recorded index, a retry whose `(clientId, seq)` first appears at or below that
 * index would find an empty table and be applied a second time, although the live run answered it
 * from the table. So the log's last {@link RETRY_LOOKBACK} entries up to the recorded index are
 * scanned once at open, and a re-applied entry whose pair is among them is not applied again (it
 * was a retry). A retry that reaches the node only after a restart is still applied again — the
 * known gap of the in-memory table, closed when the table becomes replicated state.
 * @module
 */
import { Encoder } from 'cbor-x';
import type { ProofDB } from '../src/index.js';
import { ReplicationError, ReplicationGroup } from '../src/replication/index.js';
import { HttpError } from './errors.js';
import { CommandApplier, type LocalWritePathOptions, type WriteCommand, type WriteOutcome, type WritePath } from './write_path.js';

/** Options of {@link RaftWritePath.open}. */
export interface RaftWritePathOptions extends LocalWritePathOptions {
  /** Milliseconds per Raft tick (default 100). */
  tickMs?: number;
}

/** Log entries scanned at open for earlier `(clientId, seq)` pairs (see the module comment). */
export const RETRY_LOOKBACK = 8192;

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

const sessionKey = (cmd: WriteCommand) => (cmd.session ? `${cmd.session.clientId}\n${cmd.session.seq}` : undefined);

/** Errors meaning the engine could not take the write at all (closed, failed): the group stops. */
function isFatal(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'DATABASE_CLOSED' || code === 'DIRECTORY_LOCKED' || code === 'IO_ERROR' || code === 'CORRUPTION';
}

/** The write path of a Raft group. Create with {@link RaftWritePath.open}. */
export class RaftWritePath implements WritePath {
  private constructor(
    private readonly group: ReplicationGroup<WriteOutcome>,
    private readonly applier: CommandApplier,
  ) {}

  /**
   * Opens (or creates) the group in `dir` (normally `<data>/raft`) over `db`, which must be open
   * with `writeAheadLog: 'external'`, re-applies the log after the engine's recorded index, and
   * starts serving proposals.
   */
  static async open(db: ProofDB, dir: string, options: RaftWritePathOptions = {}): Promise<RaftWritePath> {
    if (db.options.writeAheadLog !== 'external') {
      throw new Error(`the raft write path needs the database opened with writeAheadLog: 'external' (it is '${db.options.writeAheadLog}')`);
    }
    const applier = new CommandApplier(db, options);
    const durable = db.logIndex().durable;
    let replayEnd = 0;
    const earlier = new Set<string>();
    const group = await ReplicationGroup.open<WriteOutcome>(dir, {
      appliedIndex: durable,
      tickMs: options.tickMs,
      beforeReplay: (g) => {
        replayEnd = g.status().lastIndex;
        if (replayEnd <= durable) return;
        for (const { command } of g.commands(durable - RETRY_LOOKBACK + 1, durable)) {
          const key = sessionKey(decodeCommand(command));
          if (key) earlier.add(key);
        }
      },
      stateMachine: {
        apply: (index, command) => {
          const cmd = decodeCommand(command);
          if (index <= replayEnd && earlier.size > 0) {
            const key = sessionKey(cmd);
            if (key && earlier.has(key)) return Promise.reject(new Error(`entry ${index} retries an earlier entry: not applied again`));
          }
          if (index > replayEnd) earlier.clear();
          return applier.execute(cmd, index);
        },
        isFatal,
      },
    });
    return new RaftWritePath(group, applier);
  }

  /** Highest log index applied to the engine. */
  get appliedIndex(): number {
    return this.group.status().applied;
  }

  /** Last index in the Raft log. */
  get lastIndex(): number {
    return this.group.status().lastIndex;
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
      throw err instanceof ReplicationError ? new HttpError('UNAVAILABLE', err.message) : err;
    });
  }

  /** Finishes the running Ready, fails what is still queued, closes the log. */
  close(): Promise<void> {
    return this.group.close();
  }
}
