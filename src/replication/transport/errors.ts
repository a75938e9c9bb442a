/**
 * {@link TransportError}: every failure the peer transport reports on purpose, with a stable code.
 * @module
 */

/** Stable codes of {@link TransportError}. */
export enum TransportErrorCode {
  /** Bytes that are not a well-formed encoding (a message batch, a header, a chunk answer). */
  Malformed = 'TRANSPORT_MALFORMED',
  /** A bad argument or option: nothing was started, sent or changed. */
  InvalidArgument = 'TRANSPORT_INVALID_ARGUMENT',
  /** The member could not be reached (connection refused or reset, timeout, not a current peer). */
  Unreachable = 'TRANSPORT_UNREACHABLE',
  /** The member answered but refused the request (authentication, membership, bounds). */
  Refused = 'TRANSPORT_REFUSED',
  /** The member does not hold the asked snapshot or file. */
  NotFound = 'TRANSPORT_NOT_FOUND',
  /** The transport is closed. */
  Closed = 'TRANSPORT_CLOSED',
}

/** A failure of the peer transport; switch on `code`. */
export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransportError';
  }
}
