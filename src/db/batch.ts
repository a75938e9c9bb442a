/**
 * Write batches: several puts and deletes applied atomically, in order, at consecutive seqs.
 * @module
 */
import { toBytes } from '../../proofs/bytes.js';
import { Kind } from '../../proofs/hash.js';

/** One operation of a batch, before its version is resolved. */
export interface BatchOp {
  kind: Kind;
  key: Uint8Array;
  value: Uint8Array;
  /** Explicit version (`putWithVersion`); otherwise the key's next version. */
  version?: number;
}

/**
 * A batch of writes, built with chained calls and applied with `db.write(batch)`. Either every
 * operation applies or none does. Keys and values may be strings (UTF-8) or bytes; bytes are
 * copied when added, so later changes to the caller's buffers do not leak in.
 */
export class WriteBatch {
  /** The operations, in order. */
  readonly ops: BatchOp[] = [];

  /** Adds a put at the key's next version. */
  put(key: Uint8Array | string, value: Uint8Array | string): this {
    this.ops.push({ kind: Kind.PUT, key: copy(key), value: copy(value) });
    return this;
  }

  /** Adds a put at an explicit version, which must exceed the key's latest version. */
  putWithVersion(key: Uint8Array | string, value: Uint8Array | string, version: number): this {
    this.ops.push({ kind: Kind.PUT, key: copy(key), value: copy(value), version });
    return this;
  }

  /** Adds a tombstone at the key's next version. */
  delete(key: Uint8Array | string): this {
    this.ops.push({ kind: Kind.DELETE, key: copy(key), value: new Uint8Array(0) });
    return this;
  }

  /** Number of operations. */
  get length(): number {
    return this.ops.length;
  }

  /** Removes every operation. */
  clear(): this {
    this.ops.length = 0;
    return this;
  }
}

/** A private copy as a plain Uint8Array (a Buffer's `slice` would share memory with the caller). */
function copy(x: Uint8Array | string): Uint8Array {
  return typeof x === 'string' ? toBytes(x) : new Uint8Array(x);
}
