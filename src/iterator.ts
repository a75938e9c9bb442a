/**
 * The internal iterator contract shared by memtables, blocks, tables and merging iterators.
 * Synchronous on purpose: table blocks are read with positional reads through the block cache,
 * so a read that hits memory never waits for the event loop.
 * @module
 */

/**
 * A cursor over internal keys in engine order (see `keys.ts`). Positioning calls never throw for a
 * missing key; they leave the iterator invalid. A corrupt block throws `CorruptionError`.
 */
export interface InternalIterator {
  /** True when positioned at an entry. */
  valid(): boolean;
  seekToFirst(): void;
  seekToLast(): void;
  /** Positions at the first entry whose internal key is >= `target`. */
  seek(target: Uint8Array): void;
  /** Requires `valid()`. */
  next(): void;
  /** Requires `valid()`. */
  prev(): void;
  /** The current internal key. Requires `valid()`. The view may be reused after the next move. */
  key(): Uint8Array;
  /** The current value. Requires `valid()`. */
  value(): Uint8Array;
}
