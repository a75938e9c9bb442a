/**
 * Open table readers by file number, sharing one block cache. Every live table stays open (a
 * table is ~2 MiB, so a 10 GiB database keeps ~5k descriptors); a table is closed when its file
 * is deleted as obsolete.
 * @module
 */
import * as path from 'node:path';
import { BlockCache } from '../table/block_cache.js';
import { TableReader } from '../table/table_reader.js';
import { files } from '../version/version_set.js';

/** Lazily opened {@link TableReader}s. */
export class TableCache {
  private readonly readers = new Map<number, TableReader>();
  readonly blocks: BlockCache;

  constructor(
    private readonly dir: string,
    blockCacheSize: number,
  ) {
    this.blocks = new BlockCache(blockCacheSize);
  }

  /** The reader of table `number`, opened on first use. */
  get(number: number): TableReader {
    let r = this.readers.get(number);
    if (!r) {
      const name = files.table(number);
      r = TableReader.open(path.join(this.dir, name), { fileNumber: number, cache: this.blocks, fileName: name });
      this.readers.set(number, r);
    }
    return r;
  }

  /** Closes and forgets table `number`. */
  evict(number: number): void {
    const r = this.readers.get(number);
    if (r) {
      r.close();
      this.readers.delete(number);
    }
  }

  /** Closes every reader. */
  close(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
  }
}
