/**
 * {@link RaftWritePath}: single-node mode as a one-member Raft group (DESIGN.md §5). Every command
 * is CBOR-encoded with a proposal id, proposed to a one-member {@link RawNode} whose log and hard
 * state live in {@link LevelStorage} under `<data>/raft/log`, and answered with the outcome of
 * applying its committed entry to the {@link ProofDB} through the same {@link CommandApplier}
 * (apply + session table) as {@link LocalWritePath}.
 *
 * The driver loop (one at a time): feed queued ticks and proposals into the node; for each Ready,
 * (1) `storage.save` the entries and hard state (one atomic batch, synced), (2) there are no
 * messages in a one-member group, (3) apply the committed entries in log order, (4) `advance`.
 * Ticks come from a timer here at the edge, never from inside the core.
 *
 * Applied index. After each applied command a 32-byte record `(appliedIndex, engineSeq)` is written
 * to `<data>/raft/applied` (two alternating CRC-32C-checked slots, fdatasync'd); engine writes on
 * this path are synced (`sync: true`) before it. `engineSeq` is the engine's last sequence number
 * right after the entry. Entries at or below the recorded index are never applied again.
 *
 * The remaining window: the engine journal and the Raft log both hold the write, and a crash after
 * the engine write of entry `i` but before its record leaves the record at the previous command.
 * At open the engine's `lastSeq` tells which case it is, exactly, because apply is sequential and
 * each command consumes a known number of sequence numbers (put/delete 1, batch one per op, failed
 * commands and checkpoints 0): if the engine is ahead of the record by exactly what the next
 * command consumes, that command was applied and is recorded as such, not re-applied; if it is
 * not ahead, the command is re-applied — to the same engine state, so it has the same result
 * (a failed command fails again). Not covered:
 * - a checkpoint entry in the window is taken again (a second signed checkpoint at the same seq:
 *   harmless, but the checkpoint log has one more entry);
 * - the session table is in memory. The `(clientId, seq)` key travels in every entry, and it closes
 *   one case of the window: a retry that was answered from the table (so it wrote nothing, and the
 *   engine is not ahead) is recognised at open by finding the same key earlier in the log, and is
 *   not re-applied as a new write. A client retry that reaches the node only after a restart is
 *   still applied again (the same known gap as LocalWritePath); rebuilding the table from the log
 *   needs the outcomes, which the log does not hold;
 * - the outcome of a write applied just before the crash is not recomputed (nobody waits for it);
 * - engine writes made without `--raft` after the group was created: when nothing in the log is
 *   pending they are accepted (the record is rebased and a warning is logged); when entries are
 *   pending the open fails rather than guess.
 * A data-loss case is detected, not repaired: an engine behind its record (writes lost that the
 * record says were applied) refuses to open.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import type { ProofDB } from '../src/index.js';
import { EntryType, LevelStorage, RawNode, SeededRand, StateType, type Entry } from '../src/raft/index.js';
import { crc32c } from '../src/util/crc32c.js';
import { HttpError } from './errors.js';
import { CommandApplier, type LocalWritePathOptions, type WriteCommand, type WriteOutcome, type WritePath } from './write_path.js';

/** Options of {@link RaftWritePath.open}. */
export interface RaftWritePathOptions extends LocalWritePathOptions {
  /** Milliseconds per Raft tick (default 100). */
  tickMs?: number;
  /** Warnings (e.g. a rebased applied record). */
  warn?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** What a log entry carries. */
interface Envelope {
  /** Proposal id: `<instance nonce>/<counter>`; matches the entry to its waiting promise. */
  id: string;
  cmd: WriteCommand;
}

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const NODE_ID = 1;
const RECORD_SIZE = 32;

const bytes = (b: unknown): Uint8Array => (b instanceof Uint8Array ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(0));

/** Encodes a command and its proposal id for the log. */
export function encodeEnvelope(env: Envelope): Uint8Array {
  return cbor.encode(env);
}

/** Decodes {@link encodeEnvelope}, normalizing byte strings to `Uint8Array`. */
export function decodeEnvelope(data: Uint8Array): Envelope {
  const env = cbor.decode(data) as Envelope;
  const c = env.cmd as any;
  if (c.type === 'put') c.value = bytes(c.value);
  if (c.type === 'put' || c.type === 'delete') c.key = bytes(c.key);
  if (c.type === 'batch') for (const op of c.ops) { op.key = bytes(op.key); if (op.op === 'put') op.value = bytes(op.value); }
  return env;
}

/** Engine sequence numbers a successful command consumes. */
function seqsOf(cmd: WriteCommand): number {
  if (cmd.type === 'put' || cmd.type === 'delete') return 1;
  if (cmd.type === 'batch') return cmd.ops.length;
  return 0;
}

interface AppliedRecord {
  index: number;
  engineSeq: number;
  gen: number;
}

/** `<dir>/applied`: two alternating slots `index:u64 engineSeq:u64 gen:u64 crc:u32 pad:u32`. */
class AppliedFile {
  private constructor(private readonly fh: fs.promises.FileHandle, private rec: AppliedRecord) {}

  get current(): AppliedRecord {
    return this.rec;
  }

  static async open(file: string): Promise<{ file: AppliedFile; existed: boolean }> {
    const existed = fs.existsSync(file);
    const fh = await fs.promises.open(file, existed ? 'r+' : 'w+');
    let best: AppliedRecord | undefined;
    if (existed) {
      const buf = Buffer.alloc(2 * RECORD_SIZE);
      await fh.read(buf, 0, buf.length, 0);
      for (let slot = 0; slot < 2; slot++) {
        const b = buf.subarray(slot * RECORD_SIZE, (slot + 1) * RECORD_SIZE);
        if (b.readUInt32BE(24) !== crc32c(b, 0, 24)) continue;
        const r = { index: Number(b.readBigUInt64BE(0)), engineSeq: Number(b.readBigUInt64BE(8)), gen: Number(b.readBigUInt64BE(16)) };
        if (r.gen > 0 && (!best || r.gen > best.gen)) best = r;
      }
      if (!best) {
        await fh.close();
        throw new Error(`raft applied record ${file} is corrupt (no valid slot)`);
      }
    }
    return { file: new AppliedFile(fh, best ?? { index: 0, engineSeq: 0, gen: 0 }), existed };
  }

  /** Writes the next record to the other slot and fdatasyncs it. */
  async write(index: number, engineSeq: number): Promise<void> {
    const gen = this.rec.gen + 1;
    const b = Buffer.alloc(RECORD_SIZE);
    b.writeBigUInt64BE(BigInt(index), 0);
    b.writeBigUInt64BE(BigInt(engineSeq), 8);
    b.writeBigUInt64BE(BigInt(gen), 16);
    b.writeUInt32BE(crc32c(b, 0, 24), 24);
    await this.fh.write(b, 0, RECORD_SIZE, (gen % 2) * RECORD_SIZE);
    await this.fh.datasync();
    this.rec = { index, engineSeq, gen };
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

interface Waiter {
  resolve(o: WriteOutcome): void;
  reject(e: unknown): void;
}

const unavailable = (why: string) => new HttpError('UNAVAILABLE', why);

/** The write path of a one-member Raft group. Create with {@link RaftWritePath.open}. */
export class RaftWritePath implements WritePath {
  private readonly nonce = randomBytes(8).toString('hex');
  private counter = 0;
  private readonly waiters = new Map<string, Waiter>();
  private queue: Array<{ id: string; data: Uint8Array }> = [];
  private ticks = 0;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private failure: unknown = null;

  private constructor(
    private readonly db: ProofDB,
    private readonly storage: LevelStorage,
    private readonly appliedFile: AppliedFile,
    private readonly node: RawNode,
    private readonly applier: CommandApplier,
  ) {}

  /**
   * Opens (or creates) the group's state in `dir` (normally `<data>/raft`), reconciles the applied
   * record with the engine (see the module comment), elects itself and starts ticking.
   */
  static async open(db: ProofDB, dir: string, options: RaftWritePathOptions = {}): Promise<RaftWritePath> {
    fs.mkdirSync(dir, { recursive: true });
    const storage = await LevelStorage.open(path.join(dir, 'log'), { voters: [NODE_ID], learners: [] });
    let appliedFile: AppliedFile | undefined;
    try {
      const opened = await AppliedFile.open(path.join(dir, 'applied'));
      appliedFile = opened.file;
      const engineSeq = db.stats().lastSeq;
      if (!opened.existed) {
        if (storage.lastIndex() > 0) throw new Error(`raft log in ${dir} has entries but no applied record`);
        // Everything already in the engine predates the group.
        await appliedFile.write(0, engineSeq);
        const dfd = fs.openSync(dir, 'r');
        try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
      }
      await reconcile(storage, appliedFile, engineSeq, options.warn);
      const hs = storage.initialState().hardState;
      const node = new RawNode({
        id: NODE_ID, storage, electionTick: 10, heartbeatTick: 1,
        rand: new SeededRand(Number.parseInt(randomBytes(4).toString('hex'), 16)),
        applied: Math.min(appliedFile.current.index, hs.commit),
      });
      const applier = new CommandApplier(db, { ...options, sync: true });
      const wp = new RaftWritePath(db, storage, appliedFile, node, applier);
      node.campaign();
      await wp.kick();
      if (node.raft.state !== StateType.Leader) throw new Error(`one-member raft group did not elect itself (state ${node.raft.state})`);
      wp.timer = setInterval(() => {
        wp.ticks++;
        void wp.kick();
      }, options.tickMs ?? 100);
      wp.timer.unref();
      return wp;
    } catch (err) {
      await appliedFile?.close().catch(() => undefined);
      await storage.close().catch(() => undefined);
      throw err;
    }
  }

  /** Highest log index applied to the engine. */
  get appliedIndex(): number {
    return this.appliedFile.current.index;
  }

  /** Last index in the Raft log. */
  get lastIndex(): number {
    return this.storage.lastIndex();
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
    if (this.closed) return Promise.reject(unavailable('write path is closed'));
    if (this.failure) return Promise.reject(unavailable(`raft write path failed: ${(this.failure as Error)?.message ?? String(this.failure)}`));
    const id = `${this.nonce}/${++this.counter}`;
    const data = encodeEnvelope({ id, cmd });
    const p = new Promise<WriteOutcome>((resolve, reject) => this.waiters.set(id, { resolve, reject }));
    this.queue.push({ id, data });
    void this.kick();
    return p;
  }

  /** Stops ticking, finishes the running Ready, fails what is still queued, closes the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    while (this.running) await this.running;
    this.failAll(unavailable('write path is closed'));
    await this.appliedFile.close().catch(() => undefined);
    await this.storage.close();
  }

  /** Runs the driver loop unless it is running; resolves when the loop that covers this call ends. */
  private kick(): Promise<void> {
    if (!this.running) {
      this.running = this.run()
        .catch((err: unknown) => {
          this.failure = err;
          this.failAll(unavailable(`raft write path failed: ${(err as Error)?.message ?? String(err)}`));
        })
        .finally(() => {
          this.running = null;
        });
    }
    return this.running;
  }

  private failAll(err: unknown): void {
    for (const q of this.queue.splice(0)) {
      this.waiters.get(q.id)?.reject(err);
      this.waiters.delete(q.id);
    }
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
  }

  private async run(): Promise<void> {
    const node = this.node;
    for (;;) {
      if (this.failure) return;
      for (; this.ticks > 0; this.ticks--) node.tick();
      if (!this.closed) {
        for (const q of this.queue.splice(0)) {
          try {
            node.propose(q.data);
          } catch (err) {
            this.waiters.get(q.id)?.reject(unavailable(`proposal dropped: ${(err as Error).message}`));
            this.waiters.delete(q.id);
          }
        }
      }
      if (!node.hasReady()) return;
      const rd = node.ready();
      await this.storage.save(rd); // (1) entries + hard state, synced
      // (2) a one-member group has no peers to send to.
      for (const e of rd.committedEntries) await this.applyEntry(e); // (3)
      const last = rd.committedEntries.at(-1);
      // Trailing no-ops (a new term's first entry) are recorded too, so the record reaches the commit index.
      if (last && last.index > this.appliedFile.current.index) await this.appliedFile.write(last.index, this.db.stats().lastSeq);
      node.advance(rd); // (4)
    }
  }

  private async applyEntry(e: Entry): Promise<void> {
    if (e.index <= this.appliedFile.current.index) return; // applied before a restart
    if (e.type !== EntryType.Normal || e.data.length === 0) return; // leader no-op (and conf changes, none here)
    const { id, cmd } = decodeEnvelope(e.data);
    let settled: { ok: true; outcome: WriteOutcome } | { ok: false; error: unknown };
    try {
      settled = { ok: true, outcome: await this.applier.execute(cmd) };
    } catch (error) {
      if (isFatal(error)) throw error; // not applied: stop the loop, record nothing
      settled = { ok: false, error };
    }
    await this.appliedFile.write(e.index, this.db.stats().lastSeq);
    const w = this.waiters.get(id);
    if (!w) return;
    this.waiters.delete(id);
    if (settled.ok) w.resolve(settled.outcome);
    else w.reject(settled.error);
  }
}

/** Errors meaning the engine could not take the write at all (closed, failed): the loop stops. */
function isFatal(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'DATABASE_CLOSED' || code === 'DIRECTORY_LOCKED' || code === 'IO_ERROR' || code === 'CORRUPTION';
}

/** Brings the applied record in line with the engine after a crash (see the module comment). */
async function reconcile(storage: LevelStorage, file: AppliedFile, engineSeq: number, warn?: RaftWritePathOptions['warn']): Promise<void> {
  const rec = file.current;
  if (engineSeq < rec.engineSeq) {
    throw new Error(`engine is behind the raft applied record (engine seq ${engineSeq} < recorded ${rec.engineSeq} at index ${rec.index}): writes were lost`);
  }
  let next: Entry | undefined;
  for (let i = rec.index + 1; i <= storage.lastIndex(); i++) {
    const e = storage.entries(i, i + 1, Infinity)[0];
    if (e.type === EntryType.Normal && e.data.length > 0) {
      next = e;
      break;
    }
  }
  if (engineSeq === rec.engineSeq) {
    // Not in the engine. A retry whose (clientId, seq) is already in the log before it was answered
    // from the session table (or refused as stale, or as a reuse for another request) and wrote
    // nothing: the table is gone after the restart, so it must not be re-applied as a new write.
    const session = next ? decodeEnvelope(next.data).cmd.session : undefined;
    if (next && session) {
      for (let i = storage.firstIndex(); i < next.index; i++) {
        const e = storage.entries(i, i + 1, Infinity)[0];
        if (e.type !== EntryType.Normal || e.data.length === 0) continue;
        const s = decodeEnvelope(e.data).cmd.session;
        if (s && s.clientId === session.clientId && s.seq === session.seq) {
          await file.write(next.index, engineSeq);
          return;
        }
      }
    }
    return;
  }
  // The engine is ahead: either the next command was applied before the crash, or someone wrote without --raft.
  if (next) {
    const want = seqsOf(decodeEnvelope(next.data).cmd);
    if (want !== engineSeq - rec.engineSeq) {
      throw new Error(`engine seq ${engineSeq} is ${engineSeq - rec.engineSeq} ahead of the raft applied record (index ${rec.index}); entry ${next.index} accounts for ${want}: refusing to guess`);
    }
    await file.write(next.index, engineSeq);
    return;
  }
  warn?.('engine has writes made outside the raft group; accepting them', { recordedSeq: rec.engineSeq, engineSeq });
  await file.write(rec.index, engineSeq);
}
