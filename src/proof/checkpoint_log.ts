/**
 * The persistent checkpoint log: one journal-format record per checkpoint, appended and synced,
 * in `CHECKPOINTS`. Each record holds the checkpoint message, the node's signature on the log
 * head it produced, and the checkpoint's table set (as a version edit), so that after a restart
 * the node can still prove reads against its latest checkpoint.
 *
 * ```
 * record = u32 BE len || checkpoint message (docs/proofs.md)
 *       || u32 BE n || n × (publicKey[32] || signature[64])     signatures on the head of size index+1
 *       || (v2 checkpoint message only) u32 BE len || signer set message (0x1A…, proofs/signer_set.ts)
 *       || version edit: tag 6 entries (the tables of the checkpoint, in read order) and, in
 *          external-log mode, tag 10 (the log index of the entry that asked for it)
 * ```
 * In memory the log is an RFC 9162 tree ({@link LogTree}) rebuilt from the records on open.
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
import { parseSignerSetBytes, signerSetBytes, signerSetHash, type SignerSet } from '../../proofs/signer_set.js';
import { readU32BE, writeU32BE, concatBytes } from '../../proofs/bytes.js';
import { LogTree } from '../../proofs/log.js';
import { CorruptionError } from '../errors.js';
import { JournalWriter } from '../journal/writer.js';
import { readJournal } from '../journal/reader.js';
import { nodeHasher } from '../table/node_hasher.js';
import { decodeEdit, encodeEdit, type TableMeta } from '../version/edit.js';
import { Version } from '../version/version.js';

/** File name of the checkpoint log. */
export const CHECKPOINT_LOG_FILE = 'CHECKPOINTS';

/** One stored checkpoint. */
export interface StoredCheckpoint {
  checkpoint: Checkpoint;
  /** Signatures on the head of size `checkpoint.index + 1`. */
  signatures: HeadSignature[];
  /** The table set the checkpoint's MasterRoot commits to. */
  tables: Array<[level: number, meta: TableMeta]>;
  /** External-log mode: the index of the log entry that asked for the checkpoint. */
  appliedIndex?: number;
  /** The signer set a v2 checkpoint commits to (its `signerSetHash`); absent for v1. */
  signers?: SignerSet;
}

function encodeRecord(s: StoredCheckpoint): Uint8Array {
  const msg = checkpointBytes(s.checkpoint);
  const head = new Uint8Array(8);
  writeU32BE(head, 0, msg.length);
  const sigs = new Uint8Array(4 + s.signatures.length * 96);
  writeU32BE(sigs, 0, s.signatures.length);
  s.signatures.forEach((g, i) => {
    sigs.set(g.publicKey, 4 + i * 96);
    sigs.set(g.signature, 4 + i * 96 + 32);
  });
  const set = s.checkpoint.signerSetHash !== undefined ? signerSetBytes(s.signers!) : new Uint8Array(0);
  const setLen = new Uint8Array(set.length > 0 ? 4 : 0);
  if (set.length > 0) writeU32BE(setLen, 0, set.length);
  return concatBytes(head.subarray(0, 4), msg, sigs, setLen, set, encodeEdit({ added: s.tables, appliedIndex: s.appliedIndex }));
}

/** Decodes one checkpoint log record. Throws `CorruptionError`. */
export function decodeRecord(rec: Uint8Array): StoredCheckpoint {
  const bad = (d: string) => new CorruptionError(CHECKPOINT_LOG_FILE, d);
  if (rec.length < 4) throw bad('record too short');
  const n = readU32BE(rec, 0);
  if (4 + n + 4 > rec.length) throw bad('record truncated');
  let checkpoint: Checkpoint;
  try {
    checkpoint = parseCheckpointBytes(rec.slice(4, 4 + n));
  } catch (err) {
    throw bad(`checkpoint message: ${(err as Error).message}`);
  }
  let o = 4 + n;
  const count = readU32BE(rec, o);
  o += 4;
  if (o + count * 96 > rec.length) throw bad('signatures truncated');
  const signatures: HeadSignature[] = [];
  for (let i = 0; i < count; i++) {
    signatures.push({ publicKey: rec.slice(o, o + 32), signature: rec.slice(o + 32, o + 96) });
    o += 96;
  }
  let signers: SignerSet | undefined;
  if (checkpoint.signerSetHash !== undefined) {
    if (o + 4 > rec.length) throw bad('signer set truncated');
    const len = readU32BE(rec, o);
    if (o + 4 + len > rec.length) throw bad('signer set truncated');
    try {
      signers = parseSignerSetBytes(rec.slice(o + 4, o + 4 + len));
    } catch (err) {
      throw bad(`signer set: ${(err as Error).message}`);
    }
    if (!Buffer.from(signerSetHash(signers, nodeHasher)).equals(Buffer.from(checkpoint.signerSetHash))) throw bad('signer set does not match the checkpoint');
    o += 4 + len;
  }
  const edit = decodeEdit(rec.subarray(o), CHECKPOINT_LOG_FILE);
  const stored: StoredCheckpoint = { checkpoint, signatures, tables: edit.added ?? [] };
  if (signers) stored.signers = signers;
  if (edit.appliedIndex !== undefined) stored.appliedIndex = edit.appliedIndex;
  return stored;
}

/** The checkpoint log of one node. */
export class CheckpointLog {
  readonly tree = new LogTree(nodeHasher);
  private last: StoredCheckpoint | undefined;
  /** Table sets of checkpoints whose proofs can still be served, by index. */
  readonly retained = new Map<number, { stored: StoredCheckpoint; version: Version }>();
  private readonly checkpoints: Checkpoint[] = [];
  /**
   * Signer-set changes: the signatures and set of each v2 checkpoint whose `signerSetHash` differs
   * from its predecessor's (or whose predecessor is v1 or absent), by index — what a client walks
   * to adopt a new set (docs/proofs.md §5.6). One entry per membership change.
   */
  private readonly setChanges = new Map<number, { signatures: HeadSignature[]; signers: SignerSet }>();

  /** Set after a failed append: the length of the file's last synced record. */
  private brokenAt: number | null = null;

  private constructor(
    private writer: JournalWriter,
    private readonly file: string,
  ) {}

  /** Opens (creating if missing) the log in `dir`, rebuilding the tree. A torn tail is truncated. */
  static open(dir: string): CheckpointLog {
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
      fs.existsSync(file) ? JournalWriter.open(file, { existingLength: length }) : JournalWriter.open(file),
      file,
    );
    for (const rec of records) log.add(decodeRecord(rec), false);
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
      this.setChanges.set(c.index, { signatures: s.signatures, signers: s.signers });
    }
    this.checkpoints.push(c);
    this.last = s;
  }

  /**
   * The stored signatures and signer set of checkpoint `i` when it changed the signer set (see
   * {@link setChanges}); undefined for any other checkpoint.
   */
  setChangeAt(i: number): { signatures: HeadSignature[]; signers: SignerSet } | undefined {
    return this.setChanges.get(i);
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
   * Appends and syncs a checkpoint. On failure nothing changes in memory and the checkpoint does
   * not exist: its signature was never published. The file may hold part or all of the record
   * (after a failed `fdatasync` its state is unknown), so the next append first cuts the file back
   * to the end of the last synced record (synced) and continues with a new writer; until that
   * succeeds, appends keep failing with the OS error and nothing else changes.
   */
  async append(s: StoredCheckpoint): Promise<void> {
    if (this.brokenAt !== null) {
      await this.writer.close().catch(() => undefined);
      this.writer = JournalWriter.open(this.file, { existingLength: this.brokenAt });
      this.brokenAt = null;
    }
    const before = this.writer.length;
    const prev = { last: this.last, size: this.tree.size };
    this.add(s);
    try {
      this.writer.addRecord(encodeRecord(s));
      await this.writer.flush({ sync: true });
    } catch (err) {
      this.tree.truncate(prev.size);
      this.checkpoints.length = prev.size;
      this.setChanges.delete(prev.size);
      this.last = prev.last;
      this.brokenAt = before;
      throw err;
    }
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
