/**
 * The persistent checkpoint log: journal-format records, appended in `CHECKPOINTS` (synced at once,
 * or — external-log mode — before the engine's recorded log index passes them: {@link CheckpointLog.setDeferSyncs}).
 * A checkpoint record holds the checkpoint message, its time and signer set, this node's own
 * signature on the log head it produced, and the checkpoint's table set (as a version edit), so
 * that after a restart the node can still prove reads against its certified checkpoint. Cosign
 * and divergence records amend the checkpoint before them (docs/replication.md § Co-signing).
 *
 * ```
 * legacy checkpoint record (written before co-signing; read, never written):
 *   u32 BE len || checkpoint message (docs/proofs.md)
 *   || u32 BE n || n × (publicKey[32] || signature[64])     signatures on the head of size index+1
 *   || version edit: tag 6 entries (the tables of the checkpoint, in read order) and, in
 *      external-log mode, tag 10 (the log index of the entry that asked for it); tag 4
 *      entries: the engine's compaction pointers at the checkpoint (snapshots)
 * tagged records: u32 BE 0xFFFFFFFF (never a message length) || u8 kind || body
 *   kind 1, checkpoint:  u32 BE len || checkpoint message (v1, or v2 with time and signerSetHash) || u64 BE time (ms)
 *                        || u32 BE quorum || u32 BE m || m × (u32 BE id || publicKey[32])   signer set
 *                        || u32 BE n || n × (publicKey[32] || signature[64])   own signature (0 or 1)
 *                        || version edit (as above)
 *   kind 2, cosign:      u64 BE size || u32 BE id || publicKey[32] || signature[64]
 *                        a member's signature on this node's head of `size` (always the latest
 *                        checkpoint's), accepted when its log entry was applied; in log order
 *   kind 3, divergence:  u64 BE size || ownRoot[32] || quorumRoot[32] || u32 BE k || k × u32 BE id
 *   kind 4, intent:      u64 BE logIndex || u64 BE time || signer set (as in kind 1)
 *                        written before a checkpoint's freeze in external-log mode (durable before
 *                        its first install)
 * ```
 * A legacy record's checkpoint has time 0, no signer set and its stored signatures as its
 * certificate. In memory the log is an RFC 9162 tree ({@link LogTree}) rebuilt from the records
 * on open; the other records are handed to the opener in file order.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  checkpointBytes,
  checkpointHash,
  checkpointLeafHash,
  parseCheckpointBytes,
  type Checkpoint,
  type HeadSignature,
  type LogHead,
} from '../../proofs/checkpoint.js';
import { readU32BE, writeU32BE, readU64BE, writeU64BE, concatBytes } from '../../proofs/bytes.js';
import { signerSetHash } from '../../proofs/signer_set.js';
import { LogTree } from '../../proofs/log.js';
import { CorruptionError, ErrorCode, ProofKVError } from '../errors.js';
import { JournalWriter } from '../journal/writer.js';
import { readJournal } from '../journal/reader.js';
import { nodeHasher } from '../table/node_hasher.js';
import { decodeEdit, encodeEdit, type TableMeta } from '../version/edit.js';
import { Version } from '../version/version.js';
import { sameSignerSet, soloSignerSet, type Divergence, type MemberSignature, type SignerSet } from '../replication/cosign.js';

/**
 * The records' `fdatasync` runs in libuv's threadpool, not on the event loop: a synced append
 * resolves only once its bytes are durable, but the process keeps serving meanwhile. Blocking,
 * the syncs of every checkpoint (intent, record, accepted co-signatures) stalled each member for
 * the device flush: in the profile of a 3-member cluster at load, the largest single block of a
 * member's event loop (bench/README.md § The cluster's CPU per write). On the Raft path with a
 * synced log the appends are not synced one by one at all ({@link CheckpointLog.setDeferSyncs}).
 * Callers are serialized by the engine's write queue (checkpoints and cosigns are barriers).
 */
const SYNC_MODE = 'threadpool';

/** File name of the checkpoint log. */
export const CHECKPOINT_LOG_FILE = 'CHECKPOINTS';

/**
 * Bytes of deferred records ({@link CheckpointLog.setDeferSyncs}) past which an append syncs
 * at once. The engine syncs them at every install that raises its recorded log index, so they
 * are normally one checkpoint's records and signatures, a few KiB.
 */
export const MAX_DEFERRED_BYTES = 1 << 20;

/** One stored checkpoint. */
export interface StoredCheckpoint {
  checkpoint: Checkpoint;
  /**
   * Legacy records: the signatures on the head of size `checkpoint.index + 1` (the certificate).
   * Records with a signer set: this node's own signature on that head, if it signed.
   */
  signatures: HeadSignature[];
  /** The table set the checkpoint's MasterRoot commits to. */
  tables: Array<[level: number, meta: TableMeta]>;
  /** External-log mode: the index of the log entry that asked for the checkpoint. */
  appliedIndex?: number;
  /**
   * The engine's compaction pointers when the checkpoint was taken (tag 4 in the record's edit;
   * absent in records written before snapshots). The next compaction pick is a function of the
   * table set and these, so a member that installs the checkpoint as a snapshot continues exactly
   * as the member it came from.
   */
  compactPointers?: Array<[level: number, key: Uint8Array]>;
  /** The checkpoint's time (ms since the epoch): from its log command, never below the previous one's. Absent in legacy records (0). */
  time?: number;
  /** The members that certify the checkpoint. Absent in legacy records. */
  signers?: SignerSet;
}

/**
 * External-log mode: the time and signer set of the checkpoint that log entry `logIndex` asks
 * for, recorded before its last install, so that a checkpoint finished at the next open (its
 * install done, its record not written) gets the same time and set as the live run would have.
 */
export interface CheckpointIntent {
  logIndex: number;
  time: number;
  signers: SignerSet;
}

/** A record of the checkpoint log other than a checkpoint, as handed to the opener. */
export type CheckpointLogAmendment =
  | { kind: 'cosign'; size: number; signature: MemberSignature }
  | { kind: 'divergence'; divergence: Divergence }
  | ({ kind: 'intent' } & CheckpointIntent);

const TAGGED = 0xffffffff;
const KIND_CHECKPOINT = 1;
const KIND_COSIGN = 2;
const KIND_DIVERGENCE = 3;
const KIND_INTENT = 4;

const u32 = (v: number) => {
  const b = new Uint8Array(4);
  writeU32BE(b, 0, v);
  return b;
};
const u64 = (v: number) => {
  const b = new Uint8Array(8);
  writeU64BE(b, 0, v);
  return b;
};
const tag = (kind: number) => concatBytes(u32(TAGGED), Uint8Array.of(kind));

function encodeSignatures(signatures: HeadSignature[]): Uint8Array {
  const sigs = new Uint8Array(4 + signatures.length * 96);
  writeU32BE(sigs, 0, signatures.length);
  signatures.forEach((g, i) => {
    sigs.set(g.publicKey, 4 + i * 96);
    sigs.set(g.signature, 4 + i * 96 + 32);
  });
  return sigs;
}

function encodeSignerSet(s: SignerSet): Uint8Array {
  return concatBytes(u32(s.quorum), u32(s.members.length), ...s.members.flatMap((m) => [u32(m.id), m.publicKey]));
}

function encodeRecord(s: StoredCheckpoint): Uint8Array {
  const msg = checkpointBytes(s.checkpoint);
  const edit = encodeEdit({ added: s.tables, appliedIndex: s.appliedIndex, compactPointers: s.compactPointers });
  if (!s.signers) return concatBytes(u32(msg.length), msg, encodeSignatures(s.signatures), edit);
  return concatBytes(tag(KIND_CHECKPOINT), u32(msg.length), msg, u64(s.time ?? 0), encodeSignerSet(s.signers), encodeSignatures(s.signatures), edit);
}

/** The record of a cosign amendment: `signature` on this node's head of `size`. */
export function encodeCosignRecord(size: number, g: MemberSignature): Uint8Array {
  return concatBytes(tag(KIND_COSIGN), u64(size), u32(g.id), g.publicKey, g.signature);
}

/** The record of a divergence. */
export function encodeDivergenceRecord(d: Divergence): Uint8Array {
  return concatBytes(tag(KIND_DIVERGENCE), u64(d.size), d.ownRoot, d.quorumRoot, u32(d.signers.length), ...d.signers.map(u32));
}

/** The record of a checkpoint intent. */
export function encodeIntentRecord(i: CheckpointIntent): Uint8Array {
  return concatBytes(tag(KIND_INTENT), u64(i.logIndex), u64(i.time), encodeSignerSet(i.signers));
}

/** Reads fields of one record, failing with `CorruptionError` past its end. */
class Reader {
  o = 0;
  constructor(readonly rec: Uint8Array) {}
  bad(d: string): CorruptionError {
    return new CorruptionError(CHECKPOINT_LOG_FILE, d);
  }
  need(n: number, what: string): void {
    if (this.o + n > this.rec.length) throw this.bad(`${what} truncated`);
  }
  u32(what: string): number {
    this.need(4, what);
    const v = readU32BE(this.rec, this.o);
    this.o += 4;
    return v;
  }
  u64(what: string): number {
    this.need(8, what);
    const v = readU64BE(this.rec, this.o);
    if (v === undefined) throw this.bad(`${what} above 2^53 - 1`);
    this.o += 8;
    return v;
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const v = this.rec.slice(this.o, this.o + n);
    this.o += n;
    return v;
  }
  end(what: string): void {
    if (this.o !== this.rec.length) throw this.bad(`${what} has ${this.rec.length - this.o} trailing bytes`);
  }
}

function decodeSignerSet(r: Reader): SignerSet {
  const quorum = r.u32('signer set');
  const m = r.u32('signer set');
  if (m > 0xffff) throw r.bad(`signer set of ${m} members`);
  const members: SignerSet['members'] = [];
  for (let i = 0; i < m; i++) members.push({ id: r.u32('signer id'), publicKey: r.bytes(32, 'signer key') });
  return { quorum, members };
}

function decodeCheckpointBody(r: Reader, tagged: boolean): StoredCheckpoint {
  const n = r.u32('record');
  let checkpoint: Checkpoint;
  try {
    checkpoint = parseCheckpointBytes(r.bytes(n, 'checkpoint message'));
  } catch (err) {
    throw r.bad(`checkpoint message: ${(err as Error).message}`);
  }
  let time: number | undefined;
  let signers: SignerSet | undefined;
  if (tagged) {
    time = r.u64('time');
    signers = decodeSignerSet(r);
  }
  const count = r.u32('signatures');
  r.need(count * 96, 'signatures');
  const signatures: HeadSignature[] = [];
  for (let i = 0; i < count; i++) signatures.push({ publicKey: r.bytes(32, 'signature'), signature: r.bytes(64, 'signature') });
  const edit = decodeEdit(r.rec.subarray(r.o), CHECKPOINT_LOG_FILE);
  const stored: StoredCheckpoint = { checkpoint, signatures, tables: edit.added ?? [] };
  if (edit.appliedIndex !== undefined) stored.appliedIndex = edit.appliedIndex;
  if (edit.compactPointers && edit.compactPointers.length > 0) stored.compactPointers = edit.compactPointers;
  if (time !== undefined) stored.time = time;
  if (signers) stored.signers = signers;
  // A v2 message commits to its signer set: the record's set must be the one it names.
  if (checkpoint.signerSetHash !== undefined && (!signers || !Buffer.from(signerSetHash(signers, nodeHasher)).equals(Buffer.from(checkpoint.signerSetHash)))) {
    throw r.bad('the signer set does not match the checkpoint message');
  }
  return stored;
}

/** Decodes one checkpoint log record. Throws `CorruptionError`. */
export function decodeRecord(rec: Uint8Array): StoredCheckpoint | CheckpointLogAmendment {
  const r = new Reader(rec);
  if (rec.length < 4) throw r.bad('record too short');
  if (readU32BE(rec, 0) !== TAGGED) return decodeCheckpointBody(r, false);
  r.o = 4;
  const kind = r.bytes(1, 'record kind')[0];
  switch (kind) {
    case KIND_CHECKPOINT:
      return decodeCheckpointBody(r, true);
    case KIND_COSIGN: {
      const size = r.u64('cosign size');
      const signature: MemberSignature = { id: r.u32('cosign id'), publicKey: r.bytes(32, 'cosign key'), signature: r.bytes(64, 'cosign signature') };
      r.end('cosign record');
      return { kind: 'cosign', size, signature };
    }
    case KIND_DIVERGENCE: {
      const size = r.u64('divergence size');
      const ownRoot = r.bytes(32, 'divergence root');
      const quorumRoot = r.bytes(32, 'divergence root');
      const k = r.u32('divergence signers');
      r.need(4 * k, 'divergence signers');
      const signers: number[] = [];
      for (let i = 0; i < k; i++) signers.push(r.u32('divergence signer'));
      r.end('divergence record');
      return { kind: 'divergence', divergence: { size, ownRoot, quorumRoot, signers } };
    }
    case KIND_INTENT: {
      const logIndex = r.u64('intent index');
      const time = r.u64('intent time');
      const signers = decodeSignerSet(r);
      r.end('intent record');
      return { kind: 'intent', logIndex, time, signers };
    }
    default:
      throw r.bad(`unknown record kind ${kind}`);
  }
}

/** True when a decoded record is a checkpoint (not an amendment). */
export function isCheckpointRecord(r: StoredCheckpoint | CheckpointLogAmendment): r is StoredCheckpoint {
  return 'checkpoint' in r;
}

/**
 * The certificate of a checkpoint that changed the signer set, as this replica holds it: its own
 * record's signature and every signature a cosign entry brought (`signatures`), the new set, and
 * the keys whose signature came through a cosign entry (`logged`, hex) — the part every replica
 * holds alike, since the record's own signature is each replica's own.
 */
export interface SetChangeCertificate {
  signatures: HeadSignature[];
  signers: SignerSet;
  logged: Set<string>;
  /** External-log mode: the index of the log entry that asked for the checkpoint (its record's `appliedIndex`). */
  appliedIndex?: number;
}

/**
 * An append to the checkpoint log failed (a full disk, no descriptor left, an I/O error): the record
 * does not exist, nothing else changed, and the next append first cuts the file back to its last
 * synced record. The failure passes: the engine treats it as a recoverable write fault.
 */
export class CheckpointLogWriteError extends ProofKVError {
  constructor(cause: unknown) {
    super(ErrorCode.IO_ERROR, `checkpoint log append failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'CheckpointLogWriteError';
  }
}

/** The checkpoint log of one node. */
export class CheckpointLog {
  readonly tree = new LogTree(nodeHasher);
  private last: StoredCheckpoint | undefined;
  private readonly checkpoints: Checkpoint[] = [];
  /**
   * Signer set of each checkpoint (a legacy record's: its first signer alone, quorum 1); equal
   * consecutive sets share one object.
   */
  private readonly sets: SignerSet[] = [];
  /**
   * Signer-set changes: the signatures and set of each v2 checkpoint whose `signerSetHash` differs
   * from its predecessor's (or whose predecessor is v1 or absent), by index — what a client walks
   * to adopt a new set (docs/proofs.md §5.6). One entry per membership change.
   */
  private readonly setChanges = new Map<number, SetChangeCertificate>();

  /** Set after a failed append or sync: the length of the file's last synced record. */
  private brokenAt: number | null = null;
  /**
   * Deferred mode: the records appended and not yet covered by a sync, with the writer's length
   * after each, in order. Written again after a failed write or sync (their effects are in memory).
   */
  private deferred: Array<{ record: Uint8Array; end: number }> = [];
  private deferredBytes = 0;
  /** {@link setDeferSyncs}. */
  private deferSyncs = false;

  private constructor(
    private writer: JournalWriter,
    private readonly file: string,
  ) {}

  /**
   * Turns deferred syncs on or off (off when opened). Deferred, checkpoint, intent and cosign
   * records are written at once (readable, and kept by a killed process) but made durable only by
   * {@link sync}, which the engine awaits before every manifest edit that raises its recorded log
   * index, beside the session table's persist (docs/replication.md § Co-signing, Crash safety).
   * Sound in external-log mode when the external log holds every entry durably before it is
   * applied (a Raft log that syncs): a record lost to a power loss is then of an entry after that
   * index, which the next open applies again (`ProofDB.deferCheckpointLogSyncs`). Divergence
   * records are synced at once. Turning deferral off syncs the deferred records first.
   */
  async setDeferSyncs(on: boolean): Promise<void> {
    if (!on) await this.sync();
    this.deferSyncs = on;
  }

  /**
   * Opens (creating if missing) the log in `dir`, rebuilding the tree. A torn tail is truncated.
   * `visit` sees every record in file order, a checkpoint once it is in the tree.
   */
  static open(dir: string, visit?: (rec: StoredCheckpoint | CheckpointLogAmendment, log: CheckpointLog) => void): CheckpointLog {
    const file = path.join(dir, CHECKPOINT_LOG_FILE);
    let records: Uint8Array[] = [];
    let length = 0;
    if (fs.existsSync(file)) {
      const bytes = fs.readFileSync(file);
      const j = readJournal(bytes, CHECKPOINT_LOG_FILE);
      records = j.records;
      length = j.validLength;
    }
    const log = new CheckpointLog(
      fs.existsSync(file) ? JournalWriter.open(file, { existingLength: length, syncMode: SYNC_MODE }) : JournalWriter.open(file, { syncMode: SYNC_MODE }),
      file,
    );
    for (const bytes of records) {
      const rec = decodeRecord(bytes);
      if (isCheckpointRecord(rec)) log.add(rec, false);
      else if (rec.kind === 'cosign') log.noteCosign(rec.size, rec.signature);
      visit?.(rec, log);
    }
    return log;
  }

  private add(s: StoredCheckpoint, check = true): void {
    const c = s.checkpoint;
    if (c.index !== this.tree.size) {
      throw new CorruptionError(CHECKPOINT_LOG_FILE, `checkpoint index ${c.index}, want ${this.tree.size}`);
    }
    if (check && this.last && !(c.prevCheckpointHash && Buffer.from(c.prevCheckpointHash).equals(Buffer.from(checkpointHash(this.last.checkpoint, nodeHasher))))) {
      throw new Error('checkpoint log: new checkpoint does not link to the previous one');
    }
    this.tree.append(checkpointLeafHash(c, nodeHasher));
    const before = this.checkpoints[c.index - 1]?.signerSetHash;
    if (c.signerSetHash !== undefined && s.signers && !(before && Buffer.from(before).equals(Buffer.from(c.signerSetHash)))) {
      this.setChanges.set(c.index, { signatures: s.signatures, signers: s.signers, logged: new Set(), ...(s.appliedIndex === undefined ? {} : { appliedIndex: s.appliedIndex }) });
    }
    this.checkpoints.push(c);
    const prevSet = this.sets[this.sets.length - 1];
    const set = s.signers ?? soloSignerSet(s.signatures[0]?.publicKey ?? new Uint8Array(32));
    this.sets.push(prevSet && sameSignerSet(prevSet, set) ? prevSet : set);
    this.last = s;
  }

  /** The signer set of checkpoint `i` (undefined for a missing checkpoint). */
  signersOf(i: number): SignerSet | undefined {
    return this.sets[i];
  }

  /**
   * The stored signatures and signer set of checkpoint `i` when it changed the signer set (see
   * {@link setChanges}); undefined for any other checkpoint.
   */
  setChangeAt(i: number): SetChangeCertificate | undefined {
    return this.setChanges.get(i);
  }

  /**
   * Indexes of the checkpoints in `[from, before)` that changed the signer set (see
   * {@link setChanges}), increasing, at most `limit` of them. Walks the changes (one per membership
   * change) from the oldest.
   */
  setChangeIndexes(from: number, before: number, limit: number): number[] {
    const out: number[] = [];
    // Map order is insertion order, which is index order: checkpoints are added in order, and a
    // failed append removes only the last one.
    for (const i of this.setChanges.keys()) {
      if (out.length >= limit || i >= before) break;
      if (i >= from) out.push(i);
    }
    return out;
  }

  /**
   * An accepted cosign on the head of `size`: when checkpoint `size - 1` changed the signer set,
   * the signature joins that change's certificate (which a client walks to adopt the new set).
   */
  noteCosign(size: number, g: HeadSignature): void {
    const change = this.setChanges.get(size - 1);
    if (!change) return;
    change.logged.add(Buffer.from(g.publicKey).toString('hex'));
    if (!change.signatures.some((x) => Buffer.from(x.publicKey).equals(Buffer.from(g.publicKey)))) {
      change.signatures = [...change.signatures, { publicKey: g.publicKey, signature: g.signature }];
    }
  }

  /** Number of checkpoints. */
  get size(): number {
    return this.tree.size;
  }

  /** The latest stored checkpoint. */
  latest(): StoredCheckpoint | undefined {
    return this.last;
  }

  /** Checkpoint `i`. */
  at(i: number): Checkpoint | undefined {
    return this.checkpoints[i];
  }

  /** The head after `size` checkpoints (default: all). */
  head(size = this.size): LogHead {
    return { size, root: this.tree.root(size) };
  }

  /** The next checkpoint's link fields. */
  nextLink(): { index: number; prevCheckpointHash?: Uint8Array } {
    const prev = this.last?.checkpoint;
    return prev ? { index: prev.index + 1, prevCheckpointHash: checkpointHash(prev, nodeHasher) } : { index: 0 };
  }

  /**
   * Appends a checkpoint and syncs it (deferred mode: writes it; see {@link sync}). On failure
   * nothing changes in memory and the checkpoint does not exist: its signature was never
   * published. The file may hold part or all of the record (after a failed `fdatasync` its state
   * is unknown), so the next append first cuts the file back to the end of the last synced record
   * (synced), writes the deferred records again, and continues with a new writer; until that
   * succeeds, appends keep failing with the OS error and nothing else changes.
   */
  async append(s: StoredCheckpoint): Promise<void> {
    const prev = { last: this.last, size: this.tree.size };
    this.add(s);
    await this.write(encodeRecord(s), () => {
      this.tree.truncate(prev.size);
      this.checkpoints.length = prev.size;
      this.sets.length = prev.size;
      this.setChanges.delete(prev.size);
      this.last = prev.last;
    });
  }

  /**
   * Appends an amendment record ({@link encodeCosignRecord}, {@link encodeIntentRecord},
   * {@link encodeDivergenceRecord}), synced unless deferred; `sync` forces the sync (a divergence).
   * On failure it does not exist (same rules as {@link append}).
   */
  async appendAmendment(record: Uint8Array, options: { sync?: boolean } = {}): Promise<void> {
    await this.write(record, () => undefined, options.sync === true);
  }

  /**
   * Makes every record appended so far durable (deferred mode; otherwise they are already). After
   * a failed append or sync it first repairs the file ({@link repair}), which writes the deferred
   * records again. Throws {@link CheckpointLogWriteError} when the file cannot be synced: the
   * records stay deferred, and the next call tries again.
   */
  async sync(): Promise<void> {
    if (this.brokenAt !== null) return this.repair();
    if (this.deferred.length === 0) return;
    try {
      await this.writer.flush({ sync: true });
    } catch (err) {
      this.brokenAt = this.writer.syncedLength;
      throw new CheckpointLogWriteError(err);
    }
    this.dropSynced();
  }

  /** Bytes of the file known durable: what a power loss now would leave (tests). */
  get syncedLength(): number {
    return this.brokenAt ?? this.writer.syncedLength;
  }

  /**
   * After a failed append or sync: cuts the file back to its last synced record (synced) with a
   * new writer, and writes the deferred records again (synced), now rather than at the next
   * append, so that a caller recovering from the failure learns whether the file can be written
   * again. Throws {@link CheckpointLogWriteError} while it cannot; does nothing when nothing failed.
   */
  async repair(): Promise<void> {
    if (this.brokenAt === null) return;
    try {
      await this.writer.close().catch(() => undefined);
      this.writer = JournalWriter.open(this.file, { existingLength: this.brokenAt, syncDirectory: !this.writer.directorySynced, syncMode: SYNC_MODE });
      if (this.deferred.length > 0) {
        for (const d of this.deferred) d.end = this.writer.addRecord(d.record);
        await this.writer.flush({ sync: true });
        this.dropSynced();
      }
      this.brokenAt = null;
    } catch (err) {
      throw new CheckpointLogWriteError(err);
    }
  }

  private async write(record: Uint8Array, undo: () => void, sync = false): Promise<void> {
    // (Awaited only when there is something to repair: otherwise the record is written and its
    // sync started in the caller's own turn.)
    if (this.brokenAt !== null) {
      try {
        await this.repair();
      } catch (err) {
        undo();
        throw err;
      }
    }
    let held = false;
    try {
      const end = this.writer.addRecord(record);
      if (this.deferSyncs) {
        this.deferred.push({ record, end });
        this.deferredBytes += record.length;
        held = true;
      }
      await this.writer.flush({ sync: !this.deferSyncs || sync || this.deferredBytes > MAX_DEFERRED_BYTES });
    } catch (err) {
      if (held) {
        this.deferred.pop();
        this.deferredBytes -= record.length;
      }
      undo();
      this.brokenAt = this.writer.syncedLength;
      throw new CheckpointLogWriteError(err);
    }
    this.dropSynced();
  }

  /** Forgets the deferred records a completed sync covers. */
  private dropSynced(): void {
    const synced = this.writer.syncedLength;
    let k = 0;
    while (k < this.deferred.length && this.deferred[k].end <= synced) this.deferredBytes -= this.deferred[k++].record.length;
    if (k > 0) this.deferred.splice(0, k);
  }

  /** Closes the file. */
  async close(): Promise<void> {
    // A broken writer's failure was reported by the append that hit it; every synced record is intact.
    if (this.brokenAt !== null) await this.writer.close().catch(() => undefined);
    else await this.writer.close();
  }
}

/** The {@link Version} a stored checkpoint's table list describes. */
export function versionOfStored(s: StoredCheckpoint): Version {
  return Version.empty().apply({ added: s.tables });
}
