/**
 * The version set: the current {@link Version}, the counters, and the manifest that makes them
 * durable.
 *
 * The manifest (`MANIFEST-NNNNNN`) is a journal-format file of {@link VersionEdit} records: a full
 * snapshot first, then one edit per install. `CURRENT` names the live manifest and is switched by
 * writing `CURRENT.tmp`, syncing it and renaming it over `CURRENT` (atomic on POSIX), then syncing
 * the directory. An open appends to the live manifest and rewrites it as one snapshot only once it
 * has grown past {@link VersionSet.MAX_MANIFEST_BYTES}. A torn last edit (a crash while appending
 * it) is ignored: that install never completed. A whole last record that fails its checksum is
 * damage, and so is a manifest that names missing tables (checked at open by the engine).
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptionError, ErrorCode, ProofKVError } from '../errors.js';
import { JournalWriter } from '../journal/writer.js';
import { readJournal } from '../journal/reader.js';
import { COMPARATOR_NAME, decodeEdit, encodeEdit, type TableMeta, type VersionEdit } from './edit.js';
import type { Shape } from '../options.js';
import { Version } from './version.js';
import { syncDir } from '../util/durable.js';

/** File names in a database directory. */
export const files = {
  current: 'CURRENT',
  lock: 'LOCK',
  manifest: (n: number) => `MANIFEST-${String(n).padStart(6, '0')}`,
  table: (n: number) => `${String(n).padStart(6, '0')}.sst`,
  journal: (n: number) => `${String(n).padStart(6, '0')}.log`,
};

/** True when a whole physical record (header and payload) starts at `off` (after block padding). */
function completeRecordAt(bytes: Uint8Array, off: number): boolean {
  const BLOCK = 32768;
  if (BLOCK - (off % BLOCK) < 7) off += BLOCK - (off % BLOCK);
  if (bytes.length - off < 7) return false;
  const len = bytes[off + 4] | (bytes[off + 5] << 8);
  const type = bytes[off + 6];
  // Only a FULL record is a whole edit: a FIRST fragment whose later fragments are missing is a
  // torn multi-block edit, which a crash can leave.
  return type === 1 && off + 7 + len <= bytes.length;
}

/**
 * How the manifest's edits are synced: in the threadpool, so that an install's `fdatasync` no
 * longer stops the event loop (a member's Raft loop, its reads and its transport) for the device
 * flush. An edit still takes effect only once it is durable ({@link VersionSet.logAndApply}).
 */
const MANIFEST_SYNC_MODE = 'threadpool' as const;

/** The current version plus the counters the manifest persists. */
export class VersionSet {
  current = Version.empty();
  nextTableNumber = 1;
  /** An append to the manifest failed: the next edit goes to a new manifest. */
  private manifestBroken = false;
  nextJournalNumber = 1;
  /** Oldest journal needed by recovery. */
  logNumber = 0;
  /** Every record with seq <= flushedSeq is in a table. */
  flushedSeq = 0;
  /** Highest seq assigned as of the last edit (the journal may hold more). */
  lastSeq = 0;
  /** External-log mode: every log entry with index <= this has its effect in the tables. */
  appliedIndex = 0;
  /** External-log mode: the latest log index whose checkpoint table set is complete. */
  checkpointIndex = 0;
  /**
   * Commit time of the latest write whose effect is in the tables; undefined when no edit of the
   * manifest carried one (a directory written before commit times: the engine refuses it).
   */
  lastTime: number | undefined = undefined;
  /**
   * The shape options the database was created with; undefined when no edit recorded one (a
   * database from before shapes were recorded, until its first open records it).
   */
  shape: Shape | undefined = undefined;
  /** Per level: where the next round-robin compaction starts. */
  readonly pointers = new Map<number, Uint8Array>();
  private manifest: JournalWriter | null = null;
  private manifestNumber = 0;
  /** Valid length of the recovered manifest (where appending resumes). */
  private manifestLength = 0;

  /** Manifests larger than this are rewritten as one snapshot at open. */
  static readonly MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

  private constructor(readonly dir: string) {}

  /** Reads `CURRENT` and its manifest. Returns null when the directory has no database. */
  static recover(dir: string): VersionSet | null {
    const currentPath = path.join(dir, files.current);
    if (!fs.existsSync(currentPath)) {
      // No CURRENT next to database files is damage, not an empty directory: never start afresh
      // over data.
      const leftovers = fs.readdirSync(dir).filter((n) => /^MANIFEST-\d+$|^\d+\.(sst|log)$/.test(n));
      if (leftovers.length > 0) {
        throw new CorruptionError(files.current, `missing, but the directory holds ${leftovers.slice(0, 3).join(', ')}${leftovers.length > 3 ? ', ...' : ''}`);
      }
      return null;
    }
    const current = fs.readFileSync(currentPath, 'utf8');
    const m = /^MANIFEST-(\d{6,})\n$/.exec(current);
    if (!m) throw new CorruptionError(files.current, `CURRENT does not name a manifest: ${JSON.stringify(current.slice(0, 40))}`);
    const vs = new VersionSet(dir);
    vs.manifestNumber = Number(m[1]);
    const name = files.manifest(vs.manifestNumber);
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(path.join(dir, name));
    } catch (err) {
      throw new CorruptionError(name, `manifest named by CURRENT cannot be read: ${(err as Error).message}`);
    }
    const { records, validLength, tornTail } = readJournal(bytes, name);
    if (records.length === 0) throw new CorruptionError(name, 'manifest holds no complete edit');
    if (tornTail && completeRecordAt(bytes, validLength)) {
      // A crash leaves a prefix of the last edit; a whole record that fails its checksum is damage.
      throw new CorruptionError(name, 'the last edit is complete but fails its checksum', validLength);
    }
    vs.manifestLength = validLength;
    let first = true;
    for (const rec of records) {
      const edit = decodeEdit(rec, name);
      if (first) {
        if (edit.comparator !== COMPARATOR_NAME) {
          throw new CorruptionError(name, `comparator ${edit.comparator ?? '(none)'}, want ${COMPARATOR_NAME}`);
        }
        first = false;
      }
      vs.applyCounters(edit);
      vs.current = vs.current.apply(edit);
    }
    return vs;
  }

  /**
   * The shape recorded in the manifest of `dir`, or undefined when it has none, or no readable
   * manifest (a snapshot install stages a manifest with the member's own shape).
   */
  static recordedShape(dir: string): Shape | undefined {
    try {
      return VersionSet.recover(dir)?.shape;
    } catch {
      return undefined;
    }
  }

  /** A new, empty version set (the caller then writes a manifest with {@link writeNewManifest}). */
  static create(dir: string): VersionSet {
    return new VersionSet(dir);
  }

  /**
   * Every counter only grows. An edit carries the counters as they were when it was written; the
   * live values may have moved on while its sync was in flight, so they are merged with max.
   */
  private applyCounters(e: VersionEdit): void {
    if (e.logNumber !== undefined) this.logNumber = Math.max(this.logNumber, e.logNumber);
    if (e.nextTableNumber !== undefined) this.nextTableNumber = Math.max(this.nextTableNumber, e.nextTableNumber);
    if (e.nextJournalNumber !== undefined) this.nextJournalNumber = Math.max(this.nextJournalNumber, e.nextJournalNumber);
    if (e.flushedSeq !== undefined) this.flushedSeq = Math.max(this.flushedSeq, e.flushedSeq);
    if (e.lastSeq !== undefined) this.lastSeq = Math.max(this.lastSeq, e.lastSeq);
    if (e.appliedIndex !== undefined) this.appliedIndex = Math.max(this.appliedIndex, e.appliedIndex);
    if (e.checkpointIndex !== undefined) this.checkpointIndex = Math.max(this.checkpointIndex, e.checkpointIndex);
    if (e.lastTime !== undefined) this.lastTime = Math.max(this.lastTime ?? 0, e.lastTime);
    if (e.shape !== undefined) this.shape = e.shape;
    for (const [level, key] of e.compactPointers ?? []) this.pointers.set(level, key);
  }

  /** A snapshot edit describing the whole state. */
  private snapshotEdit(): VersionEdit {
    const added: Array<[number, TableMeta]> = [];
    this.current.levels.forEach((tables, level) => tables.forEach((t) => added.push([level, t])));
    return {
      comparator: COMPARATOR_NAME,
      logNumber: this.logNumber,
      nextTableNumber: this.nextTableNumber,
      nextJournalNumber: this.nextJournalNumber,
      flushedSeq: this.flushedSeq,
      lastSeq: this.lastSeq,
      // Only databases that ran in external-log mode carry these (journal-mode manifests are unchanged).
      appliedIndex: this.appliedIndex > 0 ? this.appliedIndex : undefined,
      checkpointIndex: this.checkpointIndex > 0 ? this.checkpointIndex : undefined,
      lastTime: this.lastTime ?? 0,
      shape: this.shape,
      compactPointers: [...this.pointers.entries()].sort((a, b) => a[0] - b[0]),
      added,
    };
  }

  /**
   * Starts a fresh manifest holding a snapshot of the state, switches `CURRENT` to it and deletes
   * the previous manifest.
   */
  async writeNewManifest(): Promise<void> {
    const old = this.manifestNumber;
    const number = old + 1;
    const name = files.manifest(number);
    const p = path.join(this.dir, name);
    try {
      fs.rmSync(p, { force: true });
      const w = JournalWriter.open(p, { syncMode: MANIFEST_SYNC_MODE });
      w.addRecord(encodeEdit(this.snapshotEdit()));
      await w.flush({ sync: true });
      const tmp = path.join(this.dir, `${files.current}.tmp`);
      fs.writeFileSync(tmp, `${name}\n`);
      const fd = fs.openSync(tmp, 'r+');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, path.join(this.dir, files.current));
      syncDir(this.dir);
      // A broken writer rethrows its failure on close; the new manifest is current already.
      if (this.manifest) await this.manifest.close().catch(() => undefined);
      this.manifest = w;
      this.manifestNumber = number;
      if (old > 0) fs.rmSync(path.join(this.dir, files.manifest(old)), { force: true });
    } catch (err) {
      if (err instanceof ProofKVError) throw err;
      throw new ProofKVError(ErrorCode.IO_ERROR, `writing manifest ${name}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Continues the recovered manifest (a torn last edit is cut off), or starts a new one when it
   * is missing or has grown past {@link MAX_MANIFEST_BYTES}. Appending instead of rewriting at
   * every open means a failed open leaves `CURRENT` and the manifest as they were.
   */
  async openManifest(): Promise<void> {
    if (this.manifestNumber === 0 || this.manifestLength > VersionSet.MAX_MANIFEST_BYTES) {
      await this.writeNewManifest();
      return;
    }
    const p = path.join(this.dir, files.manifest(this.manifestNumber));
    try {
      this.manifest = JournalWriter.open(p, { existingLength: this.manifestLength, syncMode: MANIFEST_SYNC_MODE });
    } catch (err) {
      if (err instanceof ProofKVError) throw err;
      throw new ProofKVError(ErrorCode.IO_ERROR, `opening manifest: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Appends `edit` to the manifest (synced), then makes it current and calls `onApplied` in the same step. */
  async logAndApply(edit: VersionEdit, onApplied?: () => void): Promise<Version> {
    if (!this.manifest) throw new Error('version set: no manifest open');
    // After a failed append the manifest's tail is unknown (and its writer refuses more): continue
    // in a fresh manifest holding a snapshot of the state in memory, which never had that edit.
    if (this.manifestBroken) {
      await this.writeNewManifest();
      this.manifestBroken = false;
    }
    edit.nextTableNumber = this.nextTableNumber;
    edit.nextJournalNumber = this.nextJournalNumber;
    try {
      this.manifest.addRecord(encodeEdit(edit));
      await this.manifest.flush({ sync: true });
    } catch (err) {
      this.manifestBroken = true;
      throw err;
    }
    this.applyCounters(edit);
    this.current = this.current.apply(edit);
    // In the same synchronous step as the switch: no reader can see a half-installed state.
    onApplied?.();
    return this.current;
  }

  /** Closes the manifest file. */
  async close(): Promise<void> {
    if (this.manifest) await this.manifest.close();
    this.manifest = null;
  }
}
