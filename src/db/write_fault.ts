/**
 * A write fault of the engine and the error that refuses writes during one (docs/engine.md §
 * Errors): their own module, re-exported by `core.ts`, so that the server's error mapping (and
 * with it the command line) can name them without loading the engine.
 * @module
 */
import { constants as osConstants } from 'node:os';
import { ErrorCode, ProofKVError } from '../errors.js';

/**
 * A fault of the write side the engine is in. While one is set, writes and checkpoints are refused
 * with a {@link WriteFaultError}; reads go on. A recoverable fault is retried in the background with
 * exponential backoff (50 ms doubling up to 5 s) and clears
 * by itself once the retry succeeds; an unrecoverable one (an unexpected failure that leaves the
 * write path in an unknown state) holds until the database is reopened.
 */
export interface WriteFault {
  /**
   * What failed: the journal (write, sync, or opening a new one), a flush/compaction install, or an
   * append to the checkpoint log (a checkpoint, its intent, or a cosignature: not recorded; the
   * command is refused and may be sent again).
   */
  component: 'journal' | 'flush' | 'checkpoint-log' | 'internal';
  /** The first error of the fault. */
  error: Error;
  /** The error of the latest failed recovery attempt, if any. */
  lastError?: Error;
  /** When the fault began (ms since the epoch). */
  since: number;
  /** Recovery attempts so far. */
  attempts: number;
  /** True when the engine retries by itself. */
  recoverable: boolean;
}

const errnoConstants: Record<string, number> = osConstants.errno;

/** The errno code of an OS error (`EMFILE`, `ENOSPC`, ...), or the error's name. Never a path. */
export function errorCodeOf(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 5 && e instanceof Error; i++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
    // Errors from the compaction worker arrive as messages ("…: EMFILE: too many open files, …").
    for (const m of e.message.matchAll(/\bE[A-Z0-9]{2,}\b/g)) if (m[0] in errnoConstants) return m[0];
    e = e.cause;
  }
  return err instanceof Error ? err.name : 'Error';
}

/**
 * Writes are refused because the engine is in a {@link WriteFault}. Code `IO_ERROR`; `retryable`
 * says whether the engine is recovering by itself (the HTTP server answers `503` then). The message
 * names the component and the errno code, never a file path.
 */
export class WriteFaultError extends ProofKVError {
  /** True when the fault is being retried and the write may be sent again later. */
  readonly retryable: boolean;
  constructor(fault: WriteFault) {
    super(
      ErrorCode.IO_ERROR,
      fault.recoverable
        ? `writes are paused: ${fault.component} failed (${errorCodeOf(fault.error)}); the node retries by itself`
        : `writes stopped: ${fault.component} failed (${errorCodeOf(fault.error)}); reopen the database`,
      { cause: fault.error },
    );
    this.name = 'WriteFaultError';
    this.retryable = fault.recoverable;
  }
}
