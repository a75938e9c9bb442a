/**
 * The one-time conversion of a Raft log written by {@link LevelStorage} (a data directory of a
 * version before the segment files) into a {@link WalStorage} directory.
 *
 * The old log is opened and read whole (snapshot, the entries kept behind it, the entries after
 * it, hard state); the new log is written into `<wal>.tmp`, synced with its directory, and only
 * then renamed to `<wal>` (the parent directory synced). A crash before the rename leaves the old
 * log as it was and a leftover `<wal>.tmp`, which the next attempt deletes; after the rename the
 * old directory is stale and {@link WalStorage.open} deletes it.
 * @module
 */

import { LevelStorage } from './level_storage.js';
import { EntryType, type ConfState, type Entry } from './types.js';
import { WalStorage, type LogImage } from './wal_storage.js';

/** Converts the LevelDB log in `levelDir` into segment files in `walDir` (which must not exist). */
export async function convertLevelLog(levelDir: string, walDir: string, initial: ConfState, segmentBytes: number): Promise<void> {
  const old = await LevelStorage.open(levelDir, initial);
  let img: LogImage;
  try {
    const snapshot = old.snapshot();
    const first = old.firstIndex();
    const last = old.lastIndex();
    const entries: Entry[] = [];
    // The dummy entry before the first (its term is all the old log keeps of it): written so the
    // converted log starts at the same first index.
    if (first - 1 < snapshot.metadata.index) entries.push({ index: first - 1, term: old.term(first - 1), type: EntryType.Normal, data: new Uint8Array(0) });
    if (first <= last) entries.push(...old.entries(first, last + 1, Infinity));
    img = { snapshot, hardState: old.initialState().hardState, compactedTo: first - 1, entries };
  } finally {
    await old.close();
  }
  // Into `<wal>.tmp`, synced, then renamed (WalStorage.create).
  await WalStorage.create(walDir, img, segmentBytes);
}
