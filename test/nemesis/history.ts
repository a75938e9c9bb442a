/**
 * The recorded history of a nemesis run: one {@link OpRecord} per client operation (invocation and
 * completion time, outcome, result) and one {@link FaultEvent} per nemesis step. The workload
 * (`workload.ts`) writes it, the checkers (`check.ts`) and the report (`report.ts`) read it.
 *
 * Times are milliseconds since the start of the run on `performance.now()`, so they are
 * monotonic and comparable between clients of one process. An operation whose outcome is unknown
 * (a timeout, a `503` after the request may have been sent) is `info` and has `ret = Infinity`:
 * for the checkers it may take effect at any point after its call, or never.
 * @module
 */

/** `ok`: done as answered; `fail`: certainly not done (or, `CONDITION_FAILED`, a definite no); `info`: unknown. */
export type Outcome = 'ok' | 'fail' | 'info';

/** The kinds of operation the workload issues. */
export type OpKind =
  | 'put'
  | 'put-if-version'
  | 'put-if-absent'
  | 'delete'
  | 'append'
  | 'batch'
  | 'get'
  | 'get-serializable'
  | 'history'
  | 'verified-get'
  | 'verified-history';

/** Every {@link OpKind}, in a fixed order (for tables). */
export const OP_KINDS: readonly OpKind[] = ['put', 'put-if-version', 'put-if-absent', 'delete', 'append', 'batch', 'get', 'get-serializable', 'history', 'verified-get', 'verified-history'];

/** Kinds that write. */
export const WRITE_KINDS: ReadonlySet<OpKind> = new Set<OpKind>(['put', 'put-if-version', 'put-if-absent', 'delete', 'append', 'batch']);

/** One version of a key as a read saw it (`value` null: a tombstone). */
export interface VersionValue {
  version: number;
  value: string | null;
}

/** One client operation. */
export interface OpRecord {
  /** Unique in the run, increasing with the invocation. */
  id: number;
  /** The client (0-based). */
  client: number;
  /** `c3` for client 3. */
  process: string;
  kind: OpKind;
  /** The key (a batch: its first member's key; all members are in `ops`). */
  key: string;
  /**
   * The value written: a put's value, an append's suffix (the key's new value is the old live
   * value followed by it). Every value the workload writes is unique in the run.
   */
  value?: string;
  /** Batch members (value undefined: a delete), on distinct keys. */
  ops?: Array<{ key: string; value?: string }>;
  /** `put-if-version`: the version the key's newest version must be. */
  ifVersion?: number;
  /** Invocation time, ms since the run started. */
  call: number;
  /** Completion time; `Infinity` when the outcome is unknown (`info`). */
  ret: number;
  outcome: Outcome;
  /** The error code of a `fail` or `info` (`CONDITION_FAILED`, `UNAVAILABLE`, `TIMEOUT`, …). */
  error?: string;
  /**
   * What an `ok` operation returned: a write's `version` (a batch: `versions`, one per member,
   * with their values); a get's `value` (null when absent or deleted) and `version` (none when
   * absent or deleted, except for a verified get of a tombstone); a history read's `versions`
   * from `minVersion` on, `complete` when they run up to the newest version; a verified read's
   * `checkpointSize` (the size of the log head it was proven against).
   */
  result?: {
    version?: number;
    value?: string | null;
    versions?: VersionValue[];
    checkpointSize?: number;
    /** History reads: true when `versions` runs up to the key's newest version (the last page). */
    complete?: boolean;
    /** History reads: the lowest version asked for (`versions` holds every version from it). */
    minVersion?: number;
  };
  /** The member URL the SDK last sent this operation to, when known. */
  endpoint: string;
  /** A write's idempotency session: the SDK's `ProofKV-Client-Id` and `ProofKV-Request-Seq`. */
  session?: { clientId: string; seq: number };
}

/** One nemesis step: what was done to which members, from `start` to `end` (ms since the run started). */
export interface FaultEvent {
  id: number;
  /** `kill`, `pause`, `partition`, `slow`, … (the schedule's names). */
  kind: string;
  /** Member ids it acted on. */
  targets: number[];
  start: number;
  end: number;
  detail?: string;
}

/** Whether `op` writes. */
export function isWrite(op: OpRecord): boolean {
  return WRITE_KINDS.has(op.kind);
}

/**
 * The per-key writes of an operation: a batch's members, or the operation itself (`value`
 * undefined for a delete). Reads have none.
 */
export function writesOf(op: OpRecord): Array<{ key: string; value?: string; kind: 'put' | 'append' | 'delete' }> {
  switch (op.kind) {
    case 'put':
    case 'put-if-version':
    case 'put-if-absent':
      return [{ key: op.key, value: op.value, kind: 'put' }];
    case 'append':
      return [{ key: op.key, value: op.value, kind: 'append' }];
    case 'delete':
      return [{ key: op.key, kind: 'delete' }];
    case 'batch':
      return (op.ops ?? []).map((m) => (m.value === undefined ? { key: m.key, kind: 'delete' as const } : { key: m.key, value: m.value, kind: 'put' as const }));
    default:
      return [];
  }
}

/**
 * An append-only, bounded list of operations: at most `cap` are kept (the oldest stay; later
 * ones are counted in `dropped`, and the checkers report the history as truncated).
 */
export class HistoryLog {
  private readonly ops: OpRecord[] = [];
  /** Operations not kept because the log was full. */
  dropped = 0;

  constructor(readonly cap = 500_000) {
    if (!Number.isInteger(cap) || cap < 1) throw new RangeError('cap must be a positive integer');
  }

  /** Keeps `op` (or counts it as dropped); returns whether it was kept. */
  add(op: OpRecord): boolean {
    if (this.ops.length >= this.cap) {
      this.dropped++;
      return false;
    }
    this.ops.push(op);
    return true;
  }

  /** The operations kept, by id. */
  list(): OpRecord[] {
    return this.ops.slice().sort((a, b) => a.id - b.id);
  }

  get size(): number {
    return this.ops.length;
  }
}
