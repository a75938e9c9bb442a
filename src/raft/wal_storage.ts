/**
 * {@link WalStorage}: the Raft log, hard state and snapshot as records in preallocated segment
 * files, in the manner of etcd's WAL. One `save` is one write at the end of the newest segment and,
 * when it must be synced, one `fdatasync` — never one per entry — or, when nothing unsynced
 * precedes it in the segment, that one write through an `O_DSYNC` descriptor alone. Segments are filled with zeros
 * to their size before they are used (by a file pipeline, one segment ahead of need), so the
 * `fdatasync` of a write in place changes no file size or block map and is cheap. Reads are served
 * from an in-memory mirror rebuilt at open ({@link MirroredStorage}), so the core's synchronous
 * storage interface never waits for I/O.
 *
 * Files in the log's directory: `<seq>.wal` (seq as 16 hex digits, from 0), and at most one
 * `<seq>.wal.tmp` being preallocated (deleted at open). Segment `seq` is
 * `min(segmentBytes, 64 KiB · 2^seq)` bytes (a small log stays small; a busy one reaches
 * `segmentBytes`, 64 MiB by default); one write larger than that grows its segment. Every segment
 * begins with its header and the state as it stood (snapshot, hard state, compaction point), so
 * the older segments can be deleted once a snapshot has compacted the log past them. The record
 * format and the repair rule are in `wal_format.ts`; `docs/raft.md` describes both.
 *
 * What a save writes, and when a commit-only hard state waits, is {@link MirroredStorage}'s rule.
 * @module
 */

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { getU64, hardStateBytes, parseEntry, parseHardState, parseSnapshot, putU64, snapshotBytes, view } from './codec.js';
import { MirroredStorage, type StagedWrite } from './mirrored_storage.js';
import { MemoryStorage, emptyHardState } from './storage.js';
import { RaftError, RaftErrorCode, type ConfState, type Entry, type HardState, type Snapshot } from './types.js';
import { RecordType, SnapshotKind, encodeRecords, framedSize, scanSegment, type LogImage, type RecordToWrite, type WalRecord } from './wal_format.js';
import { syncDirAsync } from '../util/durable.js';

export type { LogImage } from './wal_format.js';

/** Default largest segment size: 64 MiB, as etcd's. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Size of segment 0; each next one doubles, up to the largest size. */
export const FIRST_SEGMENT_BYTES = 64 * 1024;

/** Options of {@link WalStorage.open}. */
export interface WalOptions {
  /** Largest segment size in bytes (default {@link DEFAULT_SEGMENT_BYTES}); at least 4 KiB. */
  readonly segmentBytes?: number;
  /**
   * The directory of a Raft log written by {@link LevelStorage} (a data directory of an older
   * version). When the segment directory does not exist yet and this one does, it is converted
   * once (see `wal_upgrade.ts`); once the segment directory exists, a leftover one is deleted.
   */
  readonly upgradeFrom?: string;
}

/** File name of segment `seq`. */
export function segmentName(seq: number): string {
  return `${seq.toString(16).padStart(16, '0')}.wal`;
}

const SEGMENT_RE = /^([0-9a-f]{16})\.wal$/;

/** Size of segment `seq` under a largest size of `max`. */
export function segmentSize(seq: number, max: number): number {
  return seq >= 32 ? max : Math.min(max, FIRST_SEGMENT_BYTES * 2 ** seq);
}

/** `O_DSYNC` where the platform has it (not on Windows: synced saves then `fdatasync`). */
const O_DSYNC: number | undefined = fs.constants.O_DSYNC;

// One zero buffer for every preallocation and repair (a fixed 1 MiB).
const ZERO_CHUNK = new Uint8Array(1024 * 1024);

async function writeAll(fh: fsp.FileHandle, b: Uint8Array, pos: number): Promise<void> {
  let done = 0;
  while (done < b.length) {
    const { bytesWritten } = await fh.write(b, done, b.length - done, pos + done);
    if (bytesWritten <= 0) throw new RaftError(RaftErrorCode.Unavailable, `short write at ${pos + done}`);
    done += bytesWritten;
  }
}

async function writeZeros(fh: fsp.FileHandle, from: number, to: number): Promise<void> {
  for (let off = from; off < to; off += ZERO_CHUNK.length) {
    await writeAll(fh, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, to - off)), off);
  }
}

/** A segment file ready to be used: zero-filled to its size and synced, under its temporary name. */
interface Prealloc {
  readonly seq: number;
  readonly tmp: string;
  readonly fh: fsp.FileHandle;
  readonly size: number;
}

/** What the log holds on disk for one segment. */
interface Segment {
  readonly seq: number;
  readonly path: string;
  /** Lowest entry index written in this segment (Infinity when none): decides when it can go. */
  minIndex: number;
}

function u64Record(type: RecordType, v: number): [RecordType, Uint8Array] {
  const b = new Uint8Array(8);
  putU64(view(b), 0, v);
  return [type, b];
}

function snapshotRecord(kind: SnapshotKind, s: Snapshot): [RecordType, Uint8Array] {
  const body = snapshotBytes(s);
  const b = new Uint8Array(1 + body.length);
  b[0] = kind;
  b.set(body, 1);
  return [RecordType.Snapshot, b];
}

/**
 * Replays records into a {@link LogImage} (pure). Entry records append with Raft's rule (an entry
 * at an index the log already has replaces it and everything after it); a gap is corruption.
 */
export class Replay {
  snapshot: Snapshot;
  hardState: HardState = emptyHardState;
  compactedTo = 0;
  entries: Entry[] = [];

  constructor(initial: ConfState) {
    this.snapshot = { metadata: { index: 0, term: 0, confState: initial }, data: new Uint8Array(0) };
  }

  /** Applies one record; returns the index of an entry record (else undefined). */
  apply(rec: WalRecord, where: string): number | undefined {
    const corrupt = (why: string): never => { throw new RaftError(RaftErrorCode.Corrupt, `Raft log ${where} at offset ${rec.offset}: ${why}`); };
    const b = rec.body;
    switch (rec.type) {
      case RecordType.Segment:
        return undefined;
      case RecordType.Entry: {
        if (b.length < 8) corrupt('entry record too short');
        const index = getU64(view(b), 0);
        const e = parseEntry(index, b.subarray(8));
        const ents = this.entries;
        if (ents.length === 0 || index < ents[0].index) this.entries = [e];
        else {
          const next = ents[0].index + ents.length;
          if (index > next) corrupt(`entry ${index} after entry ${next - 1} (gap)`);
          ents.length = index - ents[0].index;
          ents.push(e);
        }
        return index;
      }
      case RecordType.HardState:
        this.hardState = parseHardState(b);
        return undefined;
      case RecordType.Snapshot: {
        if (b.length < 1 || b[0] > SnapshotKind.Installed) corrupt('bad snapshot kind');
        const s = parseSnapshot(b.subarray(1));
        if (s.metadata.index < this.snapshot.metadata.index) {
          if (b[0] === SnapshotKind.Base) return undefined;
          corrupt(`snapshot ${s.metadata.index} older than ${this.snapshot.metadata.index}`);
        }
        this.snapshot = s;
        if (b[0] === SnapshotKind.Installed) this.entries = [];
        return undefined;
      }
      case RecordType.Compact:
        if (b.length !== 8) corrupt('bad compact record');
        this.compactedTo = Math.max(this.compactedTo, getU64(view(b), 0));
        return undefined;
      default:
        return corrupt(`record type ${rec.type as number}`);
    }
  }

  /** The image: entries from the compaction point (or the snapshot) on. */
  image(): LogImage {
    return { snapshot: this.snapshot, hardState: this.hardState, compactedTo: this.compactedTo, entries: this.entries };
  }
}

/**
 * Builds the in-memory mirror of an image: the snapshot, the margin behind it (the contiguous
 * entries from the compaction point to the snapshot's index, ending with its term), the entries
 * after it, the hard state. Throws `ERR_CORRUPT` on a gap after the snapshot or a commit beyond
 * the last entry.
 */
export function mirrorOf(img: LogImage): MemoryStorage {
  const snap = img.snapshot.metadata;
  const mem = new MemoryStorage(snap.confState);
  mem.applySnapshot(img.snapshot);
  const behind = img.entries.filter((e) => e.index >= img.compactedTo && e.index <= snap.index);
  if (behind.length >= 2 && behind[behind.length - 1].index === snap.index && behind[behind.length - 1].term === snap.term) mem.restoreBehind(behind);
  const after = img.entries.filter((e) => e.index > snap.index);
  if (after.length > 0 && after[0].index !== snap.index + 1) {
    throw new RaftError(RaftErrorCode.Corrupt, `Raft log: entries resume at ${after[0].index} after the snapshot at ${snap.index} (gap)`);
  }
  mem.append(after);
  // A snapshot's index is committed, so the commit index is at least that (a save of a snapshot
  // whose Ready carried no hard state would otherwise leave a commit below it on disk).
  const hs = img.hardState.commit < snap.index ? { ...img.hardState, commit: snap.index } : img.hardState;
  if (hs.commit > mem.lastIndex()) throw new RaftError(RaftErrorCode.Corrupt, `hard state commit ${hs.commit} beyond last index ${mem.lastIndex()}`);
  mem.setHardState(hs);
  return mem;
}

/** Raft storage in preallocated segment files. Not safe for concurrent calls: await each one. */
export class WalStorage extends MirroredStorage {
  /** The segment being preallocated for the next cut. */
  private next: Promise<Prealloc> | null = null;
  /** A segment was renamed into place and the directory not yet synced. */
  private dirUnsynced = false;
  /** Bytes of the newest segment were written (maybe in part) up to here: a failed write's extent. */
  private dirtyTo: number;
  /**
   * The newest segment may hold bytes written since its last sync (an unsynced save, or anything
   * before this process opened it): the next synced save then writes and `fdatasync`s the whole
   * file. Otherwise it writes through {@link dsync} alone.
   */
  private unsynced = true;
  /**
   * The newest segment opened `O_DSYNC` (lazily, for synced saves): one write that returns once
   * its bytes are durable, one threadpool job instead of a write and an `fdatasync` (measured:
   * ~30 µs less CPU and ~35 µs less wall time per synced save; docs/raft.md). It syncs only the
   * range it writes, hence {@link unsynced}.
   */
  private dsync: fsp.FileHandle | null = null;

  private constructor(
    private readonly dir: string,
    private readonly maxSegment: number,
    mem: MemoryStorage,
    private compactedTo: number,
    private readonly segments: Segment[],
    private fh: fsp.FileHandle,
    /** Where the next write goes in the newest segment. */
    private offset: number,
    /** The newest segment's allocated size. */
    private size: number,
  ) {
    super(mem);
    this.dirtyTo = offset;
  }

  /**
   * Opens (or creates) the log in directory `dir`. A new log starts empty with membership
   * `initial` (used only when the directory holds no snapshot yet). A torn tail of the newest
   * segment is cut back (overwritten with zeros, synced); a bad record before a whole one throws
   * `ERR_CORRUPT` and changes nothing.
   */
  static async open(dir: string, initial: ConfState = { voters: [], learners: [] }, options: WalOptions = {}): Promise<WalStorage> {
    const max = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isSafeInteger(max) || max < 4096) throw new RaftError(RaftErrorCode.Unavailable, `segmentBytes must be an integer of at least 4096, got ${max}`);
    if (options.upgradeFrom !== undefined) {
      if (!fs.existsSync(dir) && fs.existsSync(options.upgradeFrom)) {
        const { readLevelLog } = await import('./wal_upgrade.js');
        // Into `<wal>.tmp`, synced, then renamed (create): the old log stays until that is done.
        await WalStorage.create(dir, await readLevelLog(options.upgradeFrom, initial), max);
      }
      if (fs.existsSync(dir) && fs.existsSync(options.upgradeFrom)) await fsp.rm(options.upgradeFrom, { recursive: true, force: true });
    }
    if (!fs.existsSync(dir)) {
      const img: LogImage = { snapshot: { metadata: { index: 0, term: 0, confState: initial }, data: new Uint8Array(0) }, hardState: emptyHardState, compactedTo: 0, entries: [] };
      await WalStorage.create(dir, img, max);
    }
    const names = await fsp.readdir(dir);
    for (const n of names) if (n.endsWith('.wal.tmp')) await fsp.rm(path.join(dir, n), { force: true });
    const seqs = names.map((n) => SEGMENT_RE.exec(n)).filter((m): m is RegExpExecArray => m !== null).map((m) => parseInt(m[1], 16)).sort((a, b) => a - b);
    if (seqs.length === 0) throw new RaftError(RaftErrorCode.Corrupt, `Raft log ${dir}: no segment files`);
    for (let i = 1; i < seqs.length; i++) {
      if (seqs[i] !== seqs[i - 1] + 1) throw new RaftError(RaftErrorCode.Corrupt, `Raft log ${dir}: segment ${segmentName(seqs[i - 1] + 1)} is missing`);
    }
    const replay = new Replay(initial);
    const segments: Segment[] = [];
    let end = 0;
    let dirtyEnd = 0;
    let size = 0;
    for (let i = 0; i < seqs.length; i++) {
      const name = segmentName(seqs[i]);
      const p = path.join(dir, name);
      const bytes = await fsp.readFile(p);
      const scanned = scanSegment(name, seqs[i], bytes, i === seqs.length - 1);
      const seg: Segment = { seq: seqs[i], path: p, minIndex: Infinity };
      for (const r of scanned.records) {
        const index = replay.apply(r, `segment ${name}`);
        if (index !== undefined) seg.minIndex = Math.min(seg.minIndex, index);
      }
      segments.push(seg);
      ({ end, dirtyEnd } = scanned);
      size = bytes.length;
    }
    const img = replay.image();
    const mem = mirrorOf(img);
    const last = segments[segments.length - 1];
    const fh = await fsp.open(last.path, 'r+');
    try {
      if (dirtyEnd > end) {
        // The torn tail: zeros again, synced, before anything is written after it.
        await writeZeros(fh, end, dirtyEnd);
        await fh.datasync();
      }
      const s = new WalStorage(dir, max, mem, img.compactedTo, segments, fh, end, Math.max(size, segmentSize(last.seq, max)));
      if (end === 0) await s.append([], true, Infinity);
      return s;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Writes `img` as a new log in directory `dir` (which must not exist), atomically: segment 0 is
   * written and synced in `<dir>.tmp` (a leftover one is deleted first), which is synced and then
   * renamed to `dir`, and the parent directory is synced. A crash before the rename leaves no
   * `dir`. Used for a new log and by the conversion of an old one.
   */
  static async create(dir: string, img: LogImage, maxSegment: number): Promise<void> {
    const tmp = `${dir}.tmp`;
    await fsp.rm(tmp, { recursive: true, force: true });
    await fsp.mkdir(tmp, { recursive: true });
    const records: RecordToWrite[] = [...baseRecords(0, img.snapshot, img.hardState, img.compactedTo)];
    for (const e of img.entries) records.push(e);
    const buf = encodeRecords(records);
    const pre = await preallocate(tmp, 0, Math.max(segmentSize(0, maxSegment), buf.length));
    try {
      await writeAll(pre.fh, buf, 0);
      await pre.fh.datasync();
    } finally {
      await pre.fh.close();
    }
    await fsp.rename(pre.tmp, path.join(tmp, segmentName(0)));
    await syncDirAsync(tmp);
    await fsp.rename(tmp, dir);
    await syncDirAsync(path.dirname(dir));
  }

  /** Segment files of the log, oldest first (their sequence numbers). */
  segmentSeqs(): number[] { return this.segments.map((s) => s.seq); }

  /** One write of records: the snapshot, the entries, the hard state last (see {@link MirroredStorage.save}). */
  protected async write(w: StagedWrite, sync: boolean): Promise<boolean> {
    const records: RecordToWrite[] = [];
    if (w.snapshot) records.push(snapshotRecord(SnapshotKind.Installed, w.snapshot));
    // Entries are written into the frame in place (no record body of their own first).
    for (const e of w.entries) records.push(e);
    if (w.hardState) records.push([RecordType.HardState, hardStateBytes(w.hardState)]);
    if (records.length === 0) return false;
    await this.append(records, sync, w.entries.length > 0 ? w.entries[0].index : Infinity);
    return true;
  }

  /**
   * Appends records at the end of the newest segment (beginning the next one first when they do
   * not fit), as one frame in one write, synced when `sync`. `minIndex` is the lowest entry index among them.
   */
  private async append(records: ReadonlyArray<RecordToWrite>, sync: boolean, minIndex: number): Promise<void> {
    const bytes = framedSize(records);
    if (this.offset > 0 && this.offset + bytes > this.size) await this.cut();
    if (this.dirUnsynced) {
      await syncDirAsync(this.dir);
      this.dirUnsynced = false;
    }
    const seg = this.segments[this.segments.length - 1];
    const all = this.offset === 0 ? [...baseRecords(seg.seq, this.mem.snapshot(), this.mem.initialState().hardState, this.compactedTo), ...records] : records;
    const buf = encodeRecords(all);
    this.dirtyTo = Math.max(this.dirtyTo, this.offset + buf.length);
    if (sync && !this.unsynced && O_DSYNC !== undefined) {
      this.dsync ??= await fsp.open(seg.path, fs.constants.O_WRONLY | O_DSYNC);
      await writeAll(this.dsync, buf, this.offset);
    } else {
      // An unsynced write stays unsynced until a later save's `fdatasync` (a commit-only hard
      // state, `sync: false`): an `O_DSYNC` write after it would make the later frame durable
      // and not this one, and a crash would then find a bad frame before a good one.
      this.unsynced = true;
      await writeAll(this.fh, buf, this.offset);
      if (sync) {
        await this.fh.datasync();
        this.unsynced = false;
      }
    }
    this.offset += buf.length;
    seg.minIndex = Math.min(seg.minIndex, minIndex);
    if (this.next === null && this.offset > this.size / 2) {
      const next = preallocate(this.dir, seg.seq + 1, segmentSize(seg.seq + 1, this.maxSegment));
      next.catch(() => undefined);
      this.next = next;
    }
  }

  /** Syncs and leaves the newest segment, and takes the preallocated next one (made now if none). */
  private async cut(): Promise<void> {
    await this.fh.datasync();
    const seq = this.segments[this.segments.length - 1].seq + 1;
    const pre = await (this.next ?? preallocate(this.dir, seq, segmentSize(seq, this.maxSegment)));
    this.next = null;
    const p = path.join(this.dir, segmentName(seq));
    try {
      await fsp.rename(pre.tmp, p);
    } catch (err) {
      await pre.fh.close().catch(() => undefined);
      await fsp.rm(pre.tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    await this.fh.close().catch(() => undefined);
    await this.closeDsync();
    this.segments.push({ seq, path: p, minIndex: Infinity });
    this.fh = pre.fh;
    // Zero-filled and synced by preallocate: nothing in it is unsynced.
    this.unsynced = false;
    this.offset = 0;
    this.dirtyTo = 0;
    this.size = pre.size;
    this.dirUnsynced = true;
  }

  /**
   * After a failed {@link save}: reopens the newest segment, overwrites with zeros whatever the
   * failed write may have left after the last good record, syncs it, and writes the hard state
   * (synced). The disk then holds exactly what the saves that succeeded wrote. `from` (the failed
   * write's first index) is not needed here: nothing of the failed write is kept. Throws when the
   * file cannot be written yet (the caller tries again later); reads keep working meanwhile.
   */
  async reopen(from: number): Promise<void> {
    void from;
    const next = this.next;
    this.next = null;
    if (next) await next.then((p) => p.fh.close().then(() => fsp.rm(p.tmp, { force: true })), () => undefined).catch(() => undefined);
    await this.fh.close().catch(() => undefined);
    await this.closeDsync();
    this.unsynced = true;
    const seg = this.segments[this.segments.length - 1];
    this.fh = await fsp.open(seg.path, 'r+');
    if (this.dirtyTo > this.offset) await writeZeros(this.fh, this.offset, this.dirtyTo);
    await this.fh.datasync();
    this.unsynced = false;
    this.dirtyTo = this.offset;
    await this.append([[RecordType.HardState, hardStateBytes(this.mem.initialState().hardState)]], true, Infinity);
    this.pendingHard = null;
  }

  /** The snapshot record and a pending hard state in one synced write. */
  protected async writeSnapshot(snap: Snapshot, pendingHard: HardState | null): Promise<void> {
    const records: Array<[RecordType, Uint8Array]> = [snapshotRecord(SnapshotKind.Created, snap)];
    if (pendingHard) records.push([RecordType.HardState, hardStateBytes(pendingHard)]);
    await this.append(records, true, Infinity);
  }

  /**
   * Drops entries up to `index` (which becomes the dummy entry; it must not be beyond the
   * snapshot), records it (synced), then deletes the oldest segments whose every entry still
   * needed has been written again later: segment k goes when the lowest entry index written in
   * the segments after it is at most `index` (Raft appends contiguously, so every entry from there
   * on was last written after segment k). The newest segment is never deleted.
   */
  async compact(index: number): Promise<void> {
    this.checkCompact(index);
    this.compactMirror(index);
    this.compactedTo = Math.max(this.compactedTo, index);
    await this.append([u64Record(RecordType.Compact, index)], true, Infinity);
    let deleted = 0;
    for (;;) {
      if (this.segments.length - deleted < 2) break;
      let later = Infinity;
      for (let j = deleted + 1; j < this.segments.length; j++) later = Math.min(later, this.segments[j].minIndex);
      if (later > index) break;
      await fsp.rm(this.segments[deleted].path, { force: true });
      deleted++;
    }
    if (deleted > 0) {
      this.segments.splice(0, deleted);
      await syncDirAsync(this.dir);
    }
  }

  /** Writes a pending commit-only hard state, then closes the files. */
  async close(): Promise<void> {
    if (this.pendingHard) {
      await this.append([[RecordType.HardState, hardStateBytes(this.pendingHard)]], true, Infinity).catch(() => undefined);
      this.pendingHard = null;
    }
    const next = this.next;
    this.next = null;
    if (next) await next.then((p) => p.fh.close().then(() => fsp.rm(p.tmp, { force: true })), () => undefined).catch(() => undefined);
    await this.closeDsync();
    await this.fh.close();
  }

  /** Closes the newest segment's `O_DSYNC` descriptor, if open (a cut, a reopen, close). */
  private async closeDsync(): Promise<void> {
    const d = this.dsync;
    this.dsync = null;
    await d?.close().catch(() => undefined);
  }
}

/** The records that begin segment `seq`: its header and the state as it stands. */
function baseRecords(seq: number, snap: Snapshot, hs: HardState, compactedTo: number): Array<[RecordType, Uint8Array]> {
  return [
    u64Record(RecordType.Segment, seq),
    snapshotRecord(SnapshotKind.Base, snap),
    [RecordType.HardState, hardStateBytes(hs)],
    u64Record(RecordType.Compact, compactedTo),
  ];
}

/** Creates `<seq>.wal.tmp` in `dir`, zero-filled to `size` bytes and synced (etcd's file pipeline). */
async function preallocate(dir: string, seq: number, size: number): Promise<Prealloc> {
  const tmp = path.join(dir, `${segmentName(seq)}.tmp`);
  const fh = await fsp.open(tmp, 'w+');
  try {
    await writeZeros(fh, 0, size);
    await fh.sync();
    return { seq, tmp, fh, size };
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
