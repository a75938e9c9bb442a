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
import {
  checkCrc, entryBytes, getU64, hardStateBytes, parseEntry, parseHardState, parseSnapshot, putU64, snapshotBytes, withCrc,
} from './codec.js';
import { MirroredStorage, type PersistRequest, type StagedWrite } from './mirrored_storage.js';
import { MemoryStorage } from './storage.js';
import {
  RaftError, RaftErrorCode,
  type ConfState, type Entry, type HardState, type Snapshot,
} from './types.js';

type Batch = Array<{ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }>;

const HARD_KEY = Uint8Array.of(0x68); // "h"
const SNAP_KEY = Uint8Array.of(0x73); // "s"
const ENTRY_PREFIX = 0x65; // "e"

const u64 = putU64;
const readU64 = getU64;

export { withCrc };

/** Encodes the key of entry `index`. */
export function entryKey(index: number): Uint8Array {
  const k = new Uint8Array(9);
  k[0] = ENTRY_PREFIX;
  u64(new DataView(k.buffer), 1, index);
  return k;
}

/** Encodes a hard state value. */
export function encodeHardState(hs: HardState): Uint8Array {
  return withCrc(hardStateBytes(hs));
}

/** Decodes {@link encodeHardState}; throws `ERR_CORRUPT`. */
export function decodeHardState(v: Uint8Array): HardState {
  return parseHardState(checkCrc('hard state', v));
}

/** Encodes an entry value (the index is in the key). */
export function encodeEntry(e: Entry): Uint8Array {
  return withCrc(entryBytes(e));
}

/** Decodes {@link encodeEntry}; throws `ERR_CORRUPT`. */
export function decodeEntry(index: number, v: Uint8Array): Entry {
  return parseEntry(index, checkCrc(`entry ${index}`, v));
}

/** Encodes a snapshot value. */
export function encodeSnapshot(s: Snapshot): Uint8Array {
  return withCrc(snapshotBytes(s));
}

/** Decodes {@link encodeSnapshot}; throws `ERR_CORRUPT`. */
export function decodeSnapshot(v: Uint8Array): Snapshot {
  return parseSnapshot(checkCrc('snapshot', v));
}

export type { PersistRequest };

/** Raft storage on classic-level. Not safe for concurrent `save` calls: await each one. */
export class LevelStorage extends MirroredStorage {
  private constructor(private db: ClassicLevel<Uint8Array, Uint8Array>, mem: MemoryStorage) {
    super(mem);
  }

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

  /** One atomic batch (see {@link MirroredStorage.save}). */
  protected async write(w: StagedWrite, sync: boolean): Promise<boolean> {
    const ops: Batch = [];
    let last = w.prevLast;
    if (w.snapshot) {
      for (let i = w.prevFirst; i <= w.prevLast; i++) ops.push({ type: 'del', key: entryKey(i) });
      ops.push({ type: 'put', key: SNAP_KEY, value: encodeSnapshot(w.snapshot) });
      last = w.snapshot.metadata.index;
    }
    if (w.entries.length > 0) {
      for (const e of w.entries) ops.push({ type: 'put', key: entryKey(e.index), value: encodeEntry(e) });
      const newLast = w.entries[w.entries.length - 1].index;
      for (let i = newLast + 1; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) });
    }
    if (w.hardState) ops.push({ type: 'put', key: HARD_KEY, value: encodeHardState(w.hardState) });
    if (ops.length === 0) return false;
    await this.db.batch(ops, { sync });
    return true;
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

  /** The snapshot and a pending hard state in one synced batch. */
  protected async writeSnapshot(snap: Snapshot, pendingHard: HardState | null): Promise<void> {
    const ops: Batch = [{ type: 'put', key: SNAP_KEY, value: encodeSnapshot(snap) }];
    if (pendingHard) ops.push({ type: 'put', key: HARD_KEY, value: encodeHardState(pendingHard) });
    await this.db.batch(ops, { sync: true });
  }

  /** Drops entries up to `index`, which must not be beyond the snapshot. */
  async compact(index: number): Promise<void> {
    this.checkCompact(index);
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
