/**
 * A bound on open table file descriptors — the role of LevelDB's `max_open_files`. Every
 * file-backed {@link TableReader} registers its descriptor here; opening one more than the limit
 * first closes the least recently used descriptor. A closed reader stays valid: its index, filter
 * and Merkle block are in memory, and its next block read reopens the file (and checks that it is
 * the same table). Reads are synchronous, so no descriptor is in use across an await and any
 * descriptor but the one being opened may be closed at any time: iterators and proofs need no pin.
 * @module
 */

/** A holder of one descriptor that can give it up and reopen it later. */
export interface Reopenable {
  /** Closes the descriptor; the next read reopens it. Called by {@link OpenFiles} only. */
  release(): void;
}

/** An LRU of open descriptors, at most `limit` of them. */
export class OpenFiles {
  /** Open holders, least recently used first (a Map keeps insertion order). */
  private readonly open = new Map<Reopenable, true>();
  /** Times a released descriptor was opened again. */
  reopens = 0;

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`open file limit must be an integer >= 1, got ${limit}`);
  }

  /** Number of descriptors open. */
  get count(): number {
    return this.open.size;
  }

  /** `f` is about to open its descriptor: closes least recently used ones until there is room. */
  admit(f: Reopenable): void {
    this.open.delete(f);
    while (this.open.size >= this.limit) {
      const oldest = this.open.keys().next().value as Reopenable;
      this.open.delete(oldest);
      oldest.release();
    }
    this.open.set(f, true);
  }

  /** `f` read through its open descriptor: it becomes the most recently used. */
  touch(f: Reopenable): void {
    if (this.open.delete(f)) this.open.set(f, true);
  }

  /** `f` closed its descriptor (for good, or after a failed open). */
  forget(f: Reopenable): void {
    this.open.delete(f);
  }
}
