/**
 * A least-recently-used map bounded by bytes: each value is inserted with its charge (an estimate
 * of the heap it holds), and least recently used values are evicted until the total fits the
 * capacity. A value larger than the whole capacity is not kept. Synchronous, single-threaded.
 * @module
 */

/** LRU map with a byte budget. */
export class ByteLru<K, V> {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  private readonly map = new Map<K, { value: V; charge: number }>();
  private used = 0;
  /** Lookups that found a value. */
  hits = 0;
  /** Lookups that did not. */
  misses = 0;

  constructor(readonly capacity: number) {
    if (!Number.isFinite(capacity) || capacity < 0) throw new RangeError(`bad cache capacity ${capacity}`);
  }

  /** Bytes charged by the values held. */
  get bytes(): number {
    return this.used;
  }

  /** Values held. */
  get count(): number {
    return this.map.size;
  }

  /** The value of `key`, marked most recently used. */
  get(key: K): V | undefined {
    const e = this.map.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  /** Inserts (or replaces) `key`, then evicts until the total charge fits. */
  set(key: K, value: V, charge: number): void {
    this.delete(key);
    if (charge > this.capacity) return;
    this.map.set(key, { value, charge });
    this.used += charge;
    for (const [k, e] of this.map) {
      if (this.used <= this.capacity) break;
      this.map.delete(k);
      this.used -= e.charge;
    }
  }

  /** Removes `key`. */
  delete(key: K): void {
    const e = this.map.get(key);
    if (e) {
      this.map.delete(key);
      this.used -= e.charge;
    }
  }
}
