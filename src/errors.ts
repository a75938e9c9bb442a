/**
 * Typed errors with stable codes. Every failure the engine reports to a caller is a
 * {@link ProofKVError}; `code` is stable across releases and safe to switch on.
 * @module
 */

/** Stable error codes. */
export const ErrorCode = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  EMPTY_KEY: 'EMPTY_KEY',
  KEY_TOO_LARGE: 'KEY_TOO_LARGE',
  VALUE_TOO_LARGE: 'VALUE_TOO_LARGE',
  INVALID_VERSION: 'INVALID_VERSION',
  VERSION_NOT_INCREASING: 'VERSION_NOT_INCREASING',
  /** A conditional write (`ifVersion`, `ifAbsent`) whose condition did not hold: nothing was written. */
  CONDITION_FAILED: 'CONDITION_FAILED',
  DATABASE_CLOSED: 'DATABASE_CLOSED',
  DIRECTORY_LOCKED: 'DIRECTORY_LOCKED',
  SNAPSHOT_RELEASED: 'SNAPSHOT_RELEASED',
  CORRUPTION: 'CORRUPTION',
  IO_ERROR: 'IO_ERROR',
  /** No checkpoint yet, or the asked checkpoint's tables are no longer kept for proofs. */
  CHECKPOINT_UNAVAILABLE: 'CHECKPOINT_UNAVAILABLE',
  /**
   * This replica's checkpoint-log root differs from the one a quorum of its signer set certified
   * (docs/replication.md § Co-signing): it signs nothing, serves no proofs and takes no writes
   * until an operator replaces its data.
   */
  DIVERGED: 'DIVERGED',
  /** The directory was written by a release before commit times; this one does not read it. */
  OUTDATED_FORMAT: 'OUTDATED_FORMAT',
} as const;
/** One of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error the engine throws on purpose. */
export class ProofKVError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProofKVError';
  }
}

/** Bad input: the call changed nothing. */
export class InvalidArgumentError extends ProofKVError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'InvalidArgumentError';
  }
}

/** A write whose explicit version is not greater than the key's latest version. */
export class VersionConflictError extends ProofKVError {
  constructor(
    readonly key: Uint8Array,
    readonly version: number,
    readonly latestVersion: number,
  ) {
    super(
      ErrorCode.VERSION_NOT_INCREASING,
      `version ${version} is not greater than the key's latest version ${latestVersion}`,
    );
    this.name = 'VersionConflictError';
  }
}

/**
 * A conditional write whose condition did not hold (`ifVersion` is not the key's newest version,
 * or `ifAbsent` found a live version). Nothing was written: in a batch, no operation applied.
 */
export class ConditionFailedError extends ProofKVError {
  constructor(
    readonly key: Uint8Array,
    /** The key's newest version (a tombstone's included); 0 when it was never written. */
    readonly currentVersion: number,
    /** True when the key has no live version: never written, or its newest version is a tombstone. */
    readonly absent: boolean,
    /** Position of the failed operation in its batch (0 for a single write). */
    readonly index: number,
    condition: string,
  ) {
    super(
      ErrorCode.CONDITION_FAILED,
      `condition ${condition} failed${index > 0 ? ` at operation ${index}` : ''}: the key's newest version is ${currentVersion}${absent ? ' (absent)' : ''}`,
    );
    this.name = 'ConditionFailedError';
  }
}

/** Stored data failed a checksum or a format check. Corruption never reads as data. */
export class CorruptionError extends ProofKVError {
  constructor(
    readonly file: string,
    detail: string,
    readonly offset?: number,
  ) {
    super(ErrorCode.CORRUPTION, `corruption in ${file}${offset === undefined ? '' : ` at offset ${offset}`}: ${detail}`);
    this.name = 'CorruptionError';
  }
}

/**
 * The directory (a table, a journal, or the manifest) was written before commit times existed
 * (table format 1, journal tags 0x10/0x11, a manifest without `lastTime`). It is refused, not
 * migrated: export its records with the release that wrote it and import them into a new
 * directory (docs/storage.md § Commit times).
 */
export class OutdatedFormatError extends ProofKVError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(
      ErrorCode.OUTDATED_FORMAT,
      `${file} ${detail}: it was written before commit times; export it with the release that wrote it and import into a new directory`,
    );
    this.name = 'OutdatedFormatError';
  }
}

/** The database is closed, or was never opened. */
export class DatabaseClosedError extends ProofKVError {
  constructor() {
    super(ErrorCode.DATABASE_CLOSED, 'database is closed');
    this.name = 'DatabaseClosedError';
  }
}

/** Another open database (in this or a live process) holds the directory's lock. */
export class DirectoryLockedError extends ProofKVError {
  constructor(
    readonly dir: string,
    detail: string,
  ) {
    super(ErrorCode.DIRECTORY_LOCKED, `directory ${dir} is locked: ${detail}`);
    this.name = 'DirectoryLockedError';
  }
}
