/**
 * The latest version of recently written keys, beyond the memtables. A write resolves its key's
 * latest version to number the new one (`DBCore.latestVersion`); a key last written before the
 * memtable was frozen — every key after a checkpoint, which flushes the memtable — would otherwise
 * be looked up in the tables, a table-cache and block read on the apply of every write (about a
 * tenth of a cluster leader's event loop at 100 PUTs in flight, bench/README.md).
 *
 * Exact, not a guess: every write records its key's version here as it enters the memtable, and
 * the tables never lose a key's newest entry (versions and tombstones are history, never garbage:
 * `src/compaction/compact.ts`), so a key found here has this version in the tables too. A key
 * not found here is looked up as before. The memo lives as long as the open engine: a snapshot
 * install reopens the engine and starts an empty one.
 *
 * Bounded by bytes: two generations of at most half the bound each, the newer taking every
 * record; when a record would take it past half the bound it becomes the older one and the
 * previous older one is dropped (keys written recently stay, keys not written for a while fall out).
 * @module
 */

/** What one memo entry costs beyond its key: a Map entry, a number, the string's header (estimate). */
const ENTRY_OVERHEAD_BYTES = 64;

/** Default bound of the memo, bytes (about 16k keys of 16 bytes in each generation). */
export const VERSION_MEMO_BYTES = 2 * 1024 * 1024;

/** See the module documentation. */
export class VersionMemo {
  private newer = new Map<string, number>();
  private older = new Map<string, number>();
  private newerBytes = 0;
  private olderBytes = 0;

  /** @param capacity the bound of both generations together, bytes. */
  constructor(readonly capacity = VERSION_MEMO_BYTES) {}

  /** The latest version recorded for key `id` (its latin1 string), or undefined. */
  get(id: string): number | undefined {
    return this.newer.get(id) ?? this.older.get(id);
  }

  /** Records `version` as key `id`'s latest. */
  set(id: string, version: number): void {
    if (this.newer.has(id)) {
      this.newer.set(id, version);
      return;
    }
    const cost = id.length + ENTRY_OVERHEAD_BYTES;
    if (this.newerBytes + cost > this.capacity / 2) {
      this.older = this.newer;
      this.olderBytes = this.newerBytes;
      this.newer = new Map();
      this.newerBytes = 0;
      // A key larger than a generation is not kept (it is looked up in the tables).
      if (cost > this.capacity / 2) return;
    }
    this.newer.set(id, version);
    this.newerBytes += cost;
  }

  /** Bytes held, estimated as the bound counts them. */
  bytes(): number {
    return this.newerBytes + this.olderBytes;
  }

  /** Keys held (both generations; a key in both counts twice). */
  get size(): number {
    return this.newer.size + this.older.size;
  }
}
