/**
 * Table readers by file number, sharing one block cache. Tables are read whole into memory while a
 * byte budget lasts (LevelDB mmaps its tables for the same reason: a block read then costs no
 * system call) and hold no descriptor; the rest are read block by block from their files, with at
 * most `maxOpenTables` descriptors open ({@link OpenFiles}: the least recently used is closed, and
 * reopened, with a same-table check, on its next read). A reader stays in the map, with its index,
 * filter and Merkle block, until its file is deleted as obsolete; only its descriptor comes and goes.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptionError, ErrorCode, ProofKVError } from '../errors.js';
import { BlockCache } from '../table/block_cache.js';
import { OpenFiles } from '../table/open_files.js';
import { DEFAULT_MAX_OPEN_TABLES } from '../options.js';
import { TableReader } from '../table/table_reader.js';
import { files } from '../version/version_set.js';

/** Lazily opened {@link TableReader}s. */
export class TableCache {
  private readonly readers = new Map<number, TableReader>();
  /** Bytes of tables held in memory, by table number. */
  private readonly inMemory = new Map<number, number>();
  private memoryUsed = 0;
  readonly blocks: BlockCache;
  /** The descriptors of file-backed readers, at most `maxOpenTables`. */
  readonly files: OpenFiles;

  constructor(
    private readonly dir: string,
    blockCacheSize: number,
    private readonly memoryBudget = 0,
    maxOpenTables = DEFAULT_MAX_OPEN_TABLES,
  ) {
    this.blocks = new BlockCache(blockCacheSize);
    this.files = new OpenFiles(maxOpenTables);
  }

  /** Bytes of table files currently held in memory. */
  get memoryBytes(): number {
    return this.memoryUsed;
  }

  private open(number: number, name: string): TableReader {
    const file = path.join(this.dir, name);
    const opts = { fileNumber: number, cache: this.blocks, fileName: name, checksumOnce: true, openFiles: this.files };
    if (this.memoryBudget > 0) {
      const size = fs.statSync(file).size;
      if (this.memoryUsed + size <= this.memoryBudget) {
        const buf = fs.readFileSync(file);
        const r = TableReader.fromBytes(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), opts);
        this.inMemory.set(number, size);
        this.memoryUsed += size;
        return r;
      }
    }
    return TableReader.open(file, opts);
  }

  /** The reader of table `number`, opened on first use. */
  get(number: number): TableReader {
    let r = this.readers.get(number);
    if (!r) {
      const name = files.table(number);
      try {
        r = this.open(number, name);
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
    const held = this.inMemory.get(number);
    if (held !== undefined) {
      this.memoryUsed -= held;
      this.inMemory.delete(number);
    }
  }

  /** Closes every reader. */
  close(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
    this.inMemory.clear();
    this.memoryUsed = 0;
  }
}
