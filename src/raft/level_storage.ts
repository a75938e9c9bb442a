/**
 * {@link LevelStorage}: the Raft log and hard state on disk in classic-level (LevelDB), with
 * every write batched atomically and synced (`sync: true`) before `save` resolves — except a
 * hard state that only moves the commit index, which is kept in memory and written with the next
 * batch (or at close), as etcd does not sync it either: a lost commit index is recomputed. Reads are
 * served from an in-memory {@link MemoryStorage} mirror loaded at open, so the core's
 * synchronous {@link Storage} interface never waits for I/O.
 *
 * Keys and values (integers big-endian; every value ends with a CRC-32C of the bytes before it):
 * ```
 *   "h"                      → term:u64 | vote:u64 | commit:u64 | crc:u32
 *   "s"                      → index:u64 | term:u64 | nVoters:u32 | voter:u32 … | nLearners:u32 | learner:u32 …
 *                              | data … | crc:u32
 *   "e" index:u64            → term:u64 | type:u8 (0 normal, 1 conf change) | data … | crc:u32
 * ```
 * Entries on disk are exactly those after the snapshot index up to the last index; a reopened
 * log therefore starts right after the snapshot.
 * @module
 */

import { ClassicLevel } from 'classic-level';
import { crc32c } from '../util/crc32c.js';
import { MemoryStorage, type InitialState, type Storage } from './storage.js';
import {
  EntryType, RaftError, RaftErrorCode, invariant,
  type ConfState, type Entry, type HardState, type Snapshot,
} from './types.js';

type Batch = Array<{ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }>;

const HARD_KEY = Uint8Array.of(0x68); // "h"
const SNAP_KEY = Uint8Array.of(0x73); // "s"
const ENTRY_PREFIX = 0x65; // "e"

function u64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, Math.floor(v / 0x1_0000_0000));
  dv.setUint32(off + 4, v >>> 0);
}

function readU64(dv: DataView, off: number): number {
  return dv.getUint32(off) * 0x1_0000_0000 + dv.getUint32(off + 4);
}

/** `body || crc32c(body)`, the form of every stored value. */
export function withCrc(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 4);
  out.set(body);
  new DataView(out.buffer).setUint32(body.length, crc32c(body));
  return out;
}

function checkCrc(what: string, v: Uint8Array): Uint8Array {
  if (v.length < 4) throw new RaftError(RaftErrorCode.Corrupt, `${what}: value of ${v.length} bytes is too short`);
  const body = v.subarray(0, v.length - 4);
  const want = new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(v.length - 4);
  const got = crc32c(body);
  if (got !== want) throw new RaftError(RaftErrorCode.Corrupt, `${what}: checksum mismatch (got ${got}, want ${want})`);
  return body;
}

/** Encodes the key of entry `index`. */
export function entryKey(index: number): Uint8Array {
  const k = new Uint8Array(9);
  k[0] = ENTRY_PREFIX;
  u64(new DataView(k.buffer), 1, index);
  return k;
}

/** Encodes a hard state value. */
export function encodeHardState(hs: HardState): Uint8Array {
  const b = new Uint8Array(24);
  const dv = new DataView(b.buffer);
  u64(dv, 0, hs.term);
  u64(dv, 8, hs.vote);
  u64(dv, 16, hs.commit);
  return withCrc(b);
}

/** Decodes {@link encodeHardState}; throws `ERR_CORRUPT`. */
export function decodeHardState(v: Uint8Array): HardState {
  const b = checkCrc('hard state', v);
  if (b.length !== 24) throw new RaftError(RaftErrorCode.Corrupt, `hard state: ${b.length} bytes, want 24`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { term: readU64(dv, 0), vote: readU64(dv, 8), commit: readU64(dv, 16) };
}

/** Encodes an entry value (the index is in the key). */
export function encodeEntry(e: Entry): Uint8Array {
  const b = new Uint8Array(9 + e.data.length);
  const dv = new DataView(b.buffer);
  u64(dv, 0, e.term);
  b[8] = e.type === EntryType.ConfChange ? 1 : 0;
  b.set(e.data, 9);
  return withCrc(b);
}

/** Decodes {@link encodeEntry}; throws `ERR_CORRUPT`. */
export function decodeEntry(index: number, v: Uint8Array): Entry {
  const b = checkCrc(`entry ${index}`, v);
  if (b.length < 9 || b[8] > 1) throw new RaftError(RaftErrorCode.Corrupt, `entry ${index}: bad header`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { index, term: readU64(dv, 0), type: b[8] === 1 ? EntryType.ConfChange : EntryType.Normal, data: new Uint8Array(b.subarray(9)) };
}

/** Encodes a snapshot value. */
export function encodeSnapshot(s: Snapshot): Uint8Array {
  const { voters, learners } = s.metadata.confState;
  const b = new Uint8Array(16 + 4 + 4 * voters.length + 4 + 4 * learners.length + s.data.length);
  const dv = new DataView(b.buffer);
  u64(dv, 0, s.metadata.index);
  u64(dv, 8, s.metadata.term);
  let off = 16;
  for (const list of [voters, learners]) {
    dv.setUint32(off, list.length);
    off += 4;
    for (const id of list) { dv.setUint32(off, id); off += 4; }
  }
  b.set(s.data, off);
  return withCrc(b);
}

/** Decodes {@link encodeSnapshot}; throws `ERR_CORRUPT`. */
export function decodeSnapshot(v: Uint8Array): Snapshot {
  const b = checkCrc('snapshot', v);
  const bad = (): never => { throw new RaftError(RaftErrorCode.Corrupt, 'snapshot: truncated'); };
  if (b.length < 24) bad();
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const index = readU64(dv, 0);
  const term = readU64(dv, 8);
  let off = 16;
  const lists: number[][] = [];
  for (let l = 0; l < 2; l++) {
    if (off + 4 > b.length) bad();
    const n = dv.getUint32(off);
    off += 4;
    if (off + 4 * n > b.length) bad();
    const ids: number[] = [];
    for (let i = 0; i < n; i++) { ids.push(dv.getUint32(off)); off += 4; }
    lists.push(ids);
  }
  return { metadata: { index, term, confState: { voters: lists[0], learners: lists[1] } }, data: new Uint8Array(b.subarray(off)) };
}

/** What {@link LevelStorage.save} persists: the parts of a Ready that go to disk. */
export interface PersistRequest {
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot;
  /**
   * False when the write need not be synced: only the commit index changed (a Ready's
   * `mustSync`, as in etcd). Such a hard state alone is not written now but with the next
   * batch or at close. Default true.
   */
  readonly mustSync?: boolean;
}

/** Raft storage on classic-level. Not safe for concurrent `save` calls: await each one. */
export class LevelStorage implements Storage {
  /** A commit-only hard state not yet written (see {@link save}). */
  private pendingHard: HardState | null = null;

  private constructor(private db: ClassicLevel<Uint8Array, Uint8Array>, private readonly mem: MemoryStorage) {}

  /**
   * Opens (or creates) the log at `path`. A new log starts empty with membership
   * `initial` (used only when the directory holds no snapshot yet).
   */
  static async open(path: string, initial: ConfState = { voters: [], learners: [] }): Promise<LevelStorage> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(path, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    try {
      const mem = new MemoryStorage(initial);
      const sv = await db.get(SNAP_KEY);
      if (sv !== undefined) {
        const snap = decodeSnapshot(sv);
        mem.applySnapshot(snap);
        // The entries a compaction kept behind the snapshot (the margin for slow followers): the
        // contiguous run that ends at the snapshot's index with its term. Older keys (left by a
        // version that did not restore them) are deleted.
        const behind: Entry[] = [];
        for await (const [k, v] of db.iterator({ gte: entryKey(0), lte: entryKey(snap.metadata.index), reverse: true })) {
          const index = readU64(new DataView(k.buffer, k.byteOffset, k.byteLength), 1);
          if (index !== snap.metadata.index - behind.length) break;
          behind.push(decodeEntry(index, v));
        }
        behind.reverse();
        const restored = behind.length >= 2 && behind[behind.length - 1].term === snap.metadata.term;
        if (restored) mem.restoreBehind(behind);
        // Kept from the dummy entry on, so the run is the same at the next open.
        const keepFrom = restored ? behind[0].index : snap.metadata.index + 1;
        const stale: Batch = [];
        for await (const k of db.keys({ gte: entryKey(0), lt: entryKey(keepFrom) })) stale.push({ type: 'del', key: k });
        if (stale.length > 0) await db.batch(stale, { sync: true });
      }
      const first = Math.max(mem.firstIndex(), mem.snapshot().metadata.index + 1);
      const ents: Entry[] = [];
      for await (const [k, v] of db.iterator({ gte: entryKey(first), lte: entryKey(Number.MAX_SAFE_INTEGER) })) {
        const index = readU64(new DataView(k.buffer, k.byteOffset, k.byteLength), 1);
        const want = first + ents.length;
        if (index !== want) throw new RaftError(RaftErrorCode.Corrupt, `log: found entry ${index}, want ${want} (gap)`);
        ents.push(decodeEntry(index, v));
      }
      mem.append(ents);
      const hv = await db.get(HARD_KEY);
      if (hv !== undefined) {
        const hs = decodeHardState(hv);
        if (hs.commit > mem.lastIndex()) throw new RaftError(RaftErrorCode.Corrupt, `hard state commit ${hs.commit} beyond last index ${mem.lastIndex()}`);
        mem.setHardState(hs);
      }
      const s = new LevelStorage(db, mem);
      if (sv === undefined) await s.db.put(SNAP_KEY, encodeSnapshot(mem.snapshot()), { sync: true });
      return s;
    } catch (e) {
      await db.close();
      throw e;
    }
  }

  /** @inheritdoc */
  initialState(): InitialState { return this.mem.initialState(); }
  /** @inheritdoc */
  entries(lo: number, hi: number, maxSize: number): Entry[] { return this.mem.entries(lo, hi, maxSize); }
  /** @inheritdoc */
  term(i: number): number { return this.mem.term(i); }
  /** @inheritdoc */
  lastIndex(): number { return this.mem.lastIndex(); }
  /** @inheritdoc */
  firstIndex(): number { return this.mem.firstIndex(); }
  /** @inheritdoc */
  snapshot(): Snapshot { return this.mem.snapshot(); }

  /**
   * Writes a Ready's snapshot, entries and hard state in one atomic batch and syncs it. Only
   * after this resolves may the Ready's messages be sent. With `mustSync` false and nothing but a
   * hard state, the hard state (only its commit index moved) is written with the next batch or
   * at close: a crash may lose it, and the commit index is then recomputed. A Ready with nothing
   * to persist (no snapshot, entries or hard state) writes nothing and resolves at once.
   * `options.sync: false` writes without fdatasync even when the Ready must be synced (the
   * group's `sync: false`, `proofkv serve --no-sync`): the write survives a crash of the process,
   * not a power loss. Resolves true when the batch was synced.
   */
  async save(rd: PersistRequest, options: { sync?: boolean } = {}): Promise<boolean> {
    if (!rd.snapshot && rd.entries.length === 0) {
      // Nothing new (a Ready of messages or reads only): nothing to write; a commit-only hard
      // state still pending waits for the next batch, as it would have without this Ready.
      if (!rd.hardState) return false;
      if (rd.mustSync === false) {
        this.pendingHard = rd.hardState;
        this.mem.setHardState(rd.hardState);
        return false;
      }
    }
    const ops: Batch = [];
    let first = this.mem.firstIndex();
    let last = this.mem.lastIndex();
    if (rd.snapshot) {
      for (let i = first; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) });
      ops.push({ type: 'put', key: SNAP_KEY, value: encodeSnapshot(rd.snapshot) });
      first = rd.snapshot.metadata.index + 1;
      last = rd.snapshot.metadata.index;
    }
    let ents = rd.entries;
    if (ents.length > 0 && ents[0].index < first) ents = ents.slice(first - ents[0].index);
    if (ents.length > 0) {
      invariant(ents[0].index <= last + 1, `entries start at ${ents[0].index} after last ${last}`);
      for (const e of ents) ops.push({ type: 'put', key: entryKey(e.index), value: encodeEntry(e) });
      const newLast = ents[ents.length - 1].index;
      for (let i = newLast + 1; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) });
    }
    const hard = rd.hardState ?? this.pendingHard;
    if (hard) ops.push({ type: 'put', key: HARD_KEY, value: encodeHardState(hard) });
    if (ops.length === 0) return false;
    const sync = rd.mustSync !== false && options.sync !== false;
    await this.db.batch(ops, { sync });
    this.pendingHard = null;
    if (rd.snapshot) this.mem.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) this.mem.append(rd.entries);
    if (rd.hardState) this.mem.setHardState(rd.hardState);
    return sync;
  }

  /**
   * After a failed {@link save}: closes and reopens the database (LevelDB's own log may hold a
   * partial record of the failed batch, after which it must not append), then makes the disk
   * agree with what the saves that succeeded wrote: the snapshot, the entries from `from` (the
   * failed batch's first index) to the last index rewritten, every entry after it deleted, the
   * hard state rewritten — one synced batch. Throws when the database cannot be reopened or
   * written yet (the caller tries again later); reads of the log keep working meanwhile.
   */
  async reopen(from: number): Promise<void> {
    const location = this.db.location;
    await this.db.close().catch(() => undefined);
    const db = new ClassicLevel<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    try {
      const ops: Batch = [{ type: 'put', key: SNAP_KEY, value: encodeSnapshot(this.mem.snapshot()) }];
      const first = Math.max(from, this.mem.firstIndex());
      const last = this.mem.lastIndex();
      if (first <= last) for (const e of this.mem.entries(first, last + 1, Infinity)) ops.push({ type: 'put', key: entryKey(e.index), value: encodeEntry(e) });
      for await (const k of db.keys({ gt: entryKey(last), lte: entryKey(Number.MAX_SAFE_INTEGER) })) ops.push({ type: 'del', key: k });
      ops.push({ type: 'put', key: HARD_KEY, value: encodeHardState(this.mem.initialState().hardState) });
      await db.batch(ops, { sync: true });
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
    this.db = db;
    this.pendingHard = null;
  }

  /**
   * Records an application snapshot at `index` (synced), with a pending commit-only hard state in
   * the same batch: a snapshot at `index` on disk needs a stored commit of at least `index`.
   */
  async createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    const prev = this.mem.snapshot().metadata.index;
    if (index <= prev) throw new RaftError(RaftErrorCode.SnapOutOfDate, `snapshot ${index} not newer than ${prev}`);
    if (index > this.mem.lastIndex()) throw new RaftError(RaftErrorCode.Unavailable, `snapshot ${index} beyond last index ${this.mem.lastIndex()}`);
    const snap: Snapshot = { metadata: { index, term: this.mem.term(index), confState }, data };
    const ops: Batch = [{ type: 'put', key: SNAP_KEY, value: encodeSnapshot(snap) }];
    if (this.pendingHard) ops.push({ type: 'put', key: HARD_KEY, value: encodeHardState(this.pendingHard) });
    await this.db.batch(ops, { sync: true });
    this.pendingHard = null;
    return this.mem.createSnapshot(index, confState, data);
  }

  /** Drops entries up to `index`, which must not be beyond the snapshot. */
  async compact(index: number): Promise<void> {
    const snapIndex = this.mem.snapshot().metadata.index;
    if (index > snapIndex) throw new RaftError(RaftErrorCode.Unavailable, `compact ${index} beyond snapshot ${snapIndex}`);
    const first = this.mem.firstIndex();
    const ops: Batch = [];
    for (let i = first; i <= index; i++) ops.push({ type: 'del', key: entryKey(i) });
    this.mem.compact(index);
    if (ops.length > 0) await this.db.batch(ops, { sync: true });
  }

  /** Writes a pending commit-only hard state, then closes the database. */
  async close(): Promise<void> {
    if (this.pendingHard) {
      await this.db.put(HARD_KEY, encodeHardState(this.pendingHard), { sync: true }).catch(() => undefined);
      this.pendingHard = null;
    }
    await this.db.close();
  }
}
