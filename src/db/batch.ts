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
  /**
   * Apply only if the key's newest version is this one; a tombstone's version matches (a deleted
   * key can be written back on the version its deletion got); 0 matches only a never-written key.
   */
  ifVersion?: number;
  /** Apply only if the key has no live version: never written, or its newest version is a tombstone. Puts and appends only. */
  ifAbsent?: boolean;
  /**
   * A put whose value is the key's newest live value (empty when absent) followed by `value`,
   * computed when the write is applied. Never with an explicit `version`.
   */
  append?: boolean;
}

/** Conditions of a write: at most one of the two (see {@link BatchOp}). */
export interface WriteCondition {
  /** Apply only if the key's newest version (a tombstone's included; 0: never written) is this one. */
  ifVersion?: number;
  /** Apply only if the key has no live version. Not for deletes. */
  ifAbsent?: boolean;
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
  put(key: Uint8Array | string, value: Uint8Array | string, condition: WriteCondition = {}): this {
    this.ops.push({ kind: Kind.PUT, key: copy(key), value: copy(value), ...conditionOf(condition) });
    return this;
  }

  /** Adds a put at an explicit version, which must exceed the key's latest version. */
  putWithVersion(key: Uint8Array | string, value: Uint8Array | string, version: number, condition: WriteCondition = {}): this {
    this.ops.push({ kind: Kind.PUT, key: copy(key), value: copy(value), version, ...conditionOf(condition) });
    return this;
  }

  /** Adds a tombstone at the key's next version. */
  delete(key: Uint8Array | string, condition: Pick<WriteCondition, 'ifVersion'> = {}): this {
    this.ops.push({ kind: Kind.DELETE, key: copy(key), value: new Uint8Array(0), ...conditionOf(condition) });
    return this;
  }

  /** Adds an append: a new version holding the key's newest live value followed by `suffix`. */
  append(key: Uint8Array | string, suffix: Uint8Array | string, condition: WriteCondition = {}): this {
    this.ops.push({ kind: Kind.PUT, key: copy(key), value: copy(suffix), append: true, ...conditionOf(condition) });
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

/** The condition fields that are set (undefined ones are left out, so ops compare equal). */
function conditionOf(c: WriteCondition): WriteCondition {
  const out: WriteCondition = {};
  if (c.ifVersion !== undefined) out.ifVersion = c.ifVersion;
  if (c.ifAbsent !== undefined) out.ifAbsent = c.ifAbsent;
  return out;
}

/** A private copy as a plain Uint8Array (a Buffer's `slice` would share memory with the caller). */
function copy(x: Uint8Array | string): Uint8Array {
  return typeof x === 'string' ? toBytes(x) : new Uint8Array(x);
}
