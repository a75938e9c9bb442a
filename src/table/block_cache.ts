/**
 * A least-recently-used cache of decoded data blocks, keyed by (file number, block offset) and
 * bounded by bytes. One cache is shared by all table readers of a database.
 * @module
 */
import type { Block } from './block.js';

/** Default capacity: 8 MiB. */
export const DEFAULT_BLOCK_CACHE_BYTES = 8 * 1024 * 1024;

interface Node {
  file: number;
  offset: number;
  block: Block;
  charge: number;
  prev: Node | null;
  next: Node | null;
}

/**
 * LRU of decoded blocks. `get` marks an entry most recently used; `insert` evicts least recently
 * used entries until the total charge fits the capacity (a block larger than the whole capacity is
 * not cached). Synchronous and single-threaded, like the readers that share it.
 */
export class BlockCache {
  private readonly files = new Map<number, Map<number, Node>>();
  /** Most recently used end of the list. */
  private head: Node | null = null;
  /** Least recently used end of the list. */
  private tail: Node | null = null;
  private used = 0;
  private count = 0;
  /** Lookups that found a block. */
  hits = 0;
  /** Lookups that did not. */
  misses = 0;

  constructor(readonly capacity = DEFAULT_BLOCK_CACHE_BYTES) {
    if (!Number.isFinite(capacity) || capacity < 0) throw new RangeError(`bad block cache capacity ${capacity}`);
  }

  /** Bytes currently charged. */
  get size(): number {
    return this.used;
  }

  /** Number of cached blocks. */
  get length(): number {
    return this.count;
  }

  /** The cached block of `file` at `offset`, or undefined. */
  get(file: number, offset: number): Block | undefined {
    const node = this.files.get(file)?.get(offset);
    if (node === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (this.head !== node) {
      this.unlink(node);
      this.pushFront(node);
    }
    return node.block;
  }

  /** Caches `block` (replacing any block at the same key) and evicts to fit. */
  insert(file: number, offset: number, block: Block): void {
    const charge = block.charge;
    let perFile = this.files.get(file);
    const old = perFile?.get(offset);
    if (old !== undefined) this.remove(old);
    if (charge > this.capacity) return;
    if (perFile === undefined) {
      perFile = new Map();
      this.files.set(file, perFile);
    }
    const node: Node = { file, offset, block, charge, prev: null, next: null };
    perFile.set(offset, node);
    this.pushFront(node);
    this.used += charge;
    this.count++;
    while (this.used > this.capacity && this.tail !== null) this.remove(this.tail);
  }

  /** Drops every block of `file` (call when a table file is deleted). */
  evictFile(file: number): void {
    const perFile = this.files.get(file);
    if (perFile === undefined) return;
    for (const node of [...perFile.values()]) this.remove(node);
  }

  /** Drops everything. */
  clear(): void {
    this.files.clear();
    this.head = this.tail = null;
    this.used = 0;
    this.count = 0;
  }

  private remove(node: Node): void {
    this.unlink(node);
    const perFile = this.files.get(node.file);
    if (perFile !== undefined) {
      perFile.delete(node.offset);
      if (perFile.size === 0) this.files.delete(node.file);
    }
    this.used -= node.charge;
    this.count--;
  }

  private unlink(node: Node): void {
    if (node.prev !== null) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next !== null) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = null;
  }

  private pushFront(node: Node): void {
    node.next = this.head;
    node.prev = null;
    if (this.head !== null) this.head.prev = node;
    this.head = node;
    if (this.tail === null) this.tail = node;
  }
}
