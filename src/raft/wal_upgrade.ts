/**
 * The one-time conversion of a Raft log written by {@link LevelStorage} (a data directory of a
 * version before the segment files) into a `WalStorage` directory.
 *
 * The old log is opened and read whole (snapshot, the entries kept behind it, the entries after
 * it, hard state); the new log is written into `<wal>.tmp`, synced with its directory, and only
 * then renamed to `<wal>` (the parent directory synced). A crash before the rename leaves the old
 * log as it was and a leftover `<wal>.tmp`, which the next attempt deletes; after the rename the
 * old directory is stale and `WalStorage.open` deletes it.
 * @module
 */

import { LevelStorage } from './level_storage.js';
import { EntryType, type ConfState, type Entry } from './types.js';
import type { LogImage } from './wal_format.js';

/**
 * Reads the LevelDB log in `levelDir` whole, as the image of a new segment log (`WalStorage.open`
 * writes it into `<wal>.tmp`, syncs and renames it).
 */
export async function readLevelLog(levelDir: string, initial: ConfState): Promise<LogImage> {
  const old = await LevelStorage.open(levelDir, initial);
  try {
    const snapshot = old.snapshot();
    const first = old.firstIndex();
    const last = old.lastIndex();
    const entries: Entry[] = [];
    // The dummy entry before the first (its term is all the old log keeps of it): written so the
    // converted log starts at the same first index.
    if (first - 1 < snapshot.metadata.index) entries.push({ index: first - 1, term: old.term(first - 1), type: EntryType.Normal, data: new Uint8Array(0) });
    if (first <= last) entries.push(...old.entries(first, last + 1, Infinity));
    return { snapshot, hardState: old.initialState().hardState, compactedTo: first - 1, entries };
  } finally {
    await old.close();
  }
}
