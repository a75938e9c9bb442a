/**
 * Open table readers by file number, sharing one block cache. Every live table stays open (a
 * table is ~2 MiB, so a 10 GiB database keeps ~5k descriptors); a table is closed when its file
 * is deleted as obsolete.
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, ErrorCode, ProofKVError } from '../errors.js';
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
      try {
        r = TableReader.open(path.join(this.dir, name), { fileNumber: number, cache: this.blocks, fileName: name });
      } catch (err) {
        if (err instanceof ProofKVError) throw err;
        // The manifest names this table: a missing file is lost data, not an absent key.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CorruptionError(name, 'table file named by the manifest is missing');
        throw new ProofKVError(ErrorCode.IO_ERROR, `opening ${name}: ${(err as Error).message}`, { cause: err });
      }
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
