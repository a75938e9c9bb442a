/**
 * Verification results and typed errors for every ProofKV verifier. Isomorphic: no `node:` imports.
 *
 * Verifiers never throw on malformed input: they return a {@link Verified} result, either
 * `{ ok: true, ... }` with the facts they proved, or a {@link VerifyFailure} carrying a stable
 * {@link Reason} code and a got/want message ("wrong proof size 3, want 4"). Callers that prefer
 * exceptions turn a failure into a {@link VerificationError} with {@link orThrow}. Decoders throw
 * only {@link DecodeError}, which is a `VerificationError` with reason `MALFORMED_ENCODING`.
 *
 * The reason codes are append-only and stable across releases: later verifiers (get and history
 * proofs) add their codes to {@link Reason}; no code is ever renamed, reused or removed.
 * @module
 */

/**
 * Stable failure codes. Append-only: add new codes at the end of the relevant group.
 */
export const Reason = {
  // --- input shape ---------------------------------------------------------------------------
  /** An argument has the wrong JavaScript type, or an integer is not a safe non-negative integer. */
  MALFORMED_INPUT: 'MALFORMED_INPUT',
  /** A hash, root or proof element is not exactly 32 bytes. */
  HASH_LENGTH: 'HASH_LENGTH',
  /** A CBOR (or binary) encoding is truncated, has the wrong shape, or is not canonical. */
  MALFORMED_ENCODING: 'MALFORMED_ENCODING',

  // --- Merkle proofs (RFC 9162 §2.1) ---------------------------------------------------------
  /** A leaf index is not below the tree size, or a range is empty or runs past the tree. */
  INDEX_OUT_OF_RANGE: 'INDEX_OUT_OF_RANGE',
  /** Tree sizes that no proof can relate (size1 = 0, size1 > size2, an empty tree). */
  INVALID_SIZE: 'INVALID_SIZE',
  /** The proof has the wrong number of elements for its index and size(s). */
  PROOF_SIZE: 'PROOF_SIZE',
  /** The root recomputed from the proof differs from the expected root. */
  ROOT_MISMATCH: 'ROOT_MISMATCH',
  /** Two leaves claimed adjacent are not at consecutive indexes. */
  NOT_ADJACENT: 'NOT_ADJACENT',

  // --- signatures and trust ------------------------------------------------------------------
  /** The trust policy itself is unusable (no keys, quorum < 1 or above the key count, bad key). */
  INVALID_TRUST_POLICY: 'INVALID_TRUST_POLICY',
  /** No signature at all was supplied. */
  MISSING_SIGNATURE: 'MISSING_SIGNATURE',
  /** A signature does not verify under its key (forged, tampered message, malformed bytes). */
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  /** A signature is by a key the client does not trust. */
  UNTRUSTED_KEY: 'UNTRUSTED_KEY',
  /** The same key signed more than once. */
  DUPLICATE_SIGNER: 'DUPLICATE_SIGNER',
  /** Fewer distinct trusted signers than the quorum. */
  QUORUM_NOT_MET: 'QUORUM_NOT_MET',

  // --- checkpoints and trusted state ---------------------------------------------------------
  /** A head is older (smaller) than the trusted one. */
  ROLLBACK: 'ROLLBACK',
  /** A head does not extend the trusted one (same size, other root; or no valid consistency). */
  FORK: 'FORK',
  /** A checkpoint does not link to its predecessor (index, seq or prevCheckpointHash). */
  CHAIN_MISMATCH: 'CHAIN_MISMATCH',
  /** The proof is at another checkpoint than the one asked for (or not the head's latest). */
  CHECKPOINT_MISMATCH: 'CHECKPOINT_MISMATCH',

  // --- get and history proofs ----------------------------------------------------------------
  /** A table the read must consult is not revealed, or a level's coverage is not shown. */
  MISSING_TABLE: 'MISSING_TABLE',
  /** A table whose key range covers the key has no window of entries. */
  MISSING_WINDOW: 'MISSING_WINDOW',
  /** A window does not reach past both sides of the searched position or interval. */
  WINDOW_NOT_BRACKETING: 'WINDOW_NOT_BRACKETING',
  /** Revealed entries are out of engine order, or blocks are not contiguous. */
  ENTRY_ORDER: 'ENTRY_ORDER',
  /** The proof carries a descriptor, window or value the read does not use. */
  UNEXPECTED_ELEMENT: 'UNEXPECTED_ELEMENT',
  /** A returned value does not hash to its entry's value hash, or a value is missing. */
  VALUE_MISMATCH: 'VALUE_MISMATCH',
  /** A history proof's covered bound is inconsistent with its limit. */
  HISTORY_BOUND: 'HISTORY_BOUND',
  /**
   * With edge proofs required: a table's proven first or last entry is not its descriptor's
   * `smallest` / `largest` (a signed key range that lies about the table's contents).
   */
  RANGE_MISMATCH: 'RANGE_MISMATCH',
  /** A key's proven versions have commit times that decrease as the version grows. */
  TIME_ORDER: 'TIME_ORDER',
  /**
   * A time-window history page skips versions below it without proving them older than `since`
   * (its first entry must be committed before `since`), or starts below the asked version.
   */
  TIME_BOUNDARY: 'TIME_BOUNDARY',

  // --- scan proofs ---------------------------------------------------------------------------
  /**
   * A scan proof's `bound` lies outside the asked range or does not end a page cut by the limit,
   * or the page covers more keys (or returns more values) than the limit allows.
   */
  SCAN_BOUND: 'SCAN_BOUND',

  // --- signer sets (checkpoint v2) -------------------------------------------------------------
  /**
   * A signer set is unusable: no members, ids not strictly increasing u32 above 0, a key that is
   * not 32 bytes or is listed twice, or a quorum outside [1, members].
   */
  INVALID_SIGNER_SET: 'INVALID_SIGNER_SET',
  /**
   * A signer set does not hash to the checkpoint's `signerSetHash`, is missing where a v2
   * checkpoint needs it, or is present for a v1 checkpoint (which commits to none).
   */
  SIGNER_SET_MISMATCH: 'SIGNER_SET_MISMATCH',
} as const;

/** One of the stable {@link Reason} codes. */
export type Reason = (typeof Reason)[keyof typeof Reason];

/** A failed verification: a stable reason and a human-readable got/want message. */
export interface VerifyFailure<R extends string = Reason> {
  readonly ok: false;
  readonly reason: R;
  readonly message: string;
}

/** A verification result: `{ ok: true }` plus the proven facts `T`, or a {@link VerifyFailure}. */
export type Verified<T extends object = object, R extends string = Reason> = ({ readonly ok: true } & T) | VerifyFailure<R>;

/** Builds a {@link VerifyFailure}. */
export function fail<R extends string = Reason>(reason: R, message: string): VerifyFailure<R> {
  return { ok: false, reason, message };
}

/** The success result without facts, shared to avoid allocation. */
export const OK: { readonly ok: true } = Object.freeze({ ok: true as const });

/**
 * A verification failed. `reason` is a stable code, safe to switch on; `message` is for humans.
 * Generic in the reason type so later verifiers may narrow or extend it.
 */
export class VerificationError<R extends string = Reason> extends Error {
  constructor(
    readonly reason: R,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'VerificationError';
  }

  /** The error for a failed result. */
  static from<R extends string>(failure: VerifyFailure<R>): VerificationError<R> {
    return new VerificationError(failure.reason, failure.message);
  }
}

/**
 * A malformed encoding: truncated, wrong type, wrong length, extra field, non-canonical.
 * `path` names the offending field (`"signatures[1].publicKey"`), or `""` for the whole input.
 */
export class DecodeError extends VerificationError<'MALFORMED_ENCODING'> {
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(Reason.MALFORMED_ENCODING, path === '' ? message : `${path}: ${message}`, options);
    this.name = 'DecodeError';
  }
}

/** Returns the facts of a successful result, or throws its {@link VerificationError}. */
export function orThrow<T extends object, R extends string>(result: Verified<T, R>): { readonly ok: true } & T {
  if (!result.ok) throw VerificationError.from(result);
  return result;
}
