/**
 * Typed errors of the client SDK. Isomorphic: no `node:` imports.
 *
 * - {@link ProofKVHttpError}: the server answered with an error (`application/problem+json`); its
 *   `status` and stable `code` come from the problem document (`docs/http-api.md`).
 * - {@link ProofKVResponseTooLargeError}: an answer larger than the request can need (not read).
 * - {@link ProofKVNetworkError}: no answer — connection refused or reset, DNS failure, timeout —
 *   after every retry and endpoint was tried; `cause` holds the last underlying error.
 * - {@link VerificationError} (from `proofkv/proofs`): a proof, signature, checkpoint or
 *   consistency check failed, or the server's answer disagrees with what its proof proves. A
 *   verified call that throws it never returns data. `reason` is a {@link Reason} code or one of
 *   the client's own {@link ClientReason} codes.
 * @module
 */
import { VerificationError, type Reason } from '../proofs/errors.js';

export { VerificationError };

/**
 * Verification failures the client adds to the verifiers' {@link Reason} codes. Stable and
 * append-only, like `Reason`.
 */
export const ClientReason = {
  /** The server's plain answer (entry, entries, checkpoint) disagrees with what its proof proves. */
  RESPONSE_MISMATCH: 'RESPONSE_MISMATCH',
  /** The trusted-state store holds state this client cannot use (other keys, unreadable, bad shape). */
  STATE_MISMATCH: 'STATE_MISMATCH',
  /** A verified write is not in the checkpoint that should hold it (other value, version or seq). */
  WRITE_NOT_PROVEN: 'WRITE_NOT_PROVEN',
  /**
   * A head is signed by a key the client does not trust and the node's key rotations do not lead
   * there from a trusted key: a statement does not verify, lacks the old key's signature (the key
   * was lost: confirm the new key out of band), or disagrees with the trusted head.
   */
  KEY_ROTATION_REFUSED: 'KEY_ROTATION_REFUSED',
} as const;

/** One of the {@link ClientReason} codes. */
export type ClientReason = (typeof ClientReason)[keyof typeof ClientReason];

/** Every reason a client-side {@link VerificationError} can carry. */
export type AnyReason = Reason | ClientReason;

/** Throws a {@link VerificationError} with a client reason. */
export function verificationFailure(reason: AnyReason, message: string): never {
  throw new VerificationError<AnyReason>(reason, message);
}

/** Base class of the SDK's transport errors. */
export class ProofKVClientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProofKVClientError';
  }
}

/** The fields of an RFC 9457 problem document as the ProofKV server sends them. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  code?: string;
  detail?: string;
  /** `CONDITION_FAILED`: the key whose condition failed (base64url). */
  key?: string;
  /** `CONDITION_FAILED`: the key's newest version (a tombstone's included; 0 when never written). */
  currentVersion?: number;
  /** `CONDITION_FAILED`: true when the key has no live version (never written, or deleted). */
  absent?: boolean;
  /** `CONDITION_FAILED`: position of the failed operation in its batch (0 for a single write). */
  index?: number;
}

/** The server answered with an HTTP error. `code` is the stable code of its problem document. */
export class ProofKVHttpError extends ProofKVClientError {
  /** HTTP status. */
  readonly status: number;
  /** Stable error code (`NOT_FOUND`, `VERSION_NOT_INCREASING`, …); `HTTP_<status>` without a problem body. */
  readonly code: string;
  /** The problem's `detail`, when there is one. */
  readonly detail?: string;
  /** The problem document as received. */
  readonly problem: Problem;
  /** The endpoint that answered. */
  readonly endpoint: string;
  /**
   * `CONDITION_FAILED` (409): the key's newest version when the condition was evaluated (a
   * tombstone's included; 0 when never written). Undefined for other errors.
   */
  readonly currentVersion?: number;
  /** `CONDITION_FAILED`: true when the key had no live version (never written, or deleted). */
  readonly absent?: boolean;

  constructor(status: number, problem: Problem, endpoint: string) {
    const code = typeof problem.code === 'string' ? problem.code : `HTTP_${status}`;
    const text = problem.detail ?? problem.title ?? `HTTP ${status}`;
    super(`${code} (${status}) from ${endpoint}: ${text}`);
    this.name = 'ProofKVHttpError';
    this.status = status;
    this.code = code;
    this.detail = problem.detail;
    this.problem = problem;
    this.endpoint = endpoint;
    if (code === 'CONDITION_FAILED') {
      if (Number.isSafeInteger(problem.currentVersion) && problem.currentVersion! >= 0) this.currentVersion = problem.currentVersion;
      if (typeof problem.absent === 'boolean') this.absent = problem.absent;
    }
  }
}

/**
 * A response body larger than the request can legitimately need (`Content-Length` or the bytes
 * streamed so far above the cap); the rest of the body is not read. Not retried.
 */
export class ProofKVResponseTooLargeError extends ProofKVClientError {
  constructor(
    /** The endpoint that sent it. */
    readonly endpoint: string,
    /** The cap, bytes. */
    readonly limit: number,
    /** The declared `Content-Length`, when it was the reason. */
    readonly declared?: number,
  ) {
    super(`response from ${endpoint} exceeds the ${limit}-byte cap of this request${declared === undefined ? '' : ` (Content-Length ${declared})`}`);
    this.name = 'ProofKVResponseTooLargeError';
  }
}

/** No usable answer from any endpoint: network failures or timeouts on every attempt. */
export class ProofKVNetworkError extends ProofKVClientError {
  /** The endpoint of the last attempt. */
  readonly endpoint: string;
  /** True when the last attempt ran out of time (`timeoutMs`). */
  readonly timedOut: boolean;
  /** How many attempts were made. */
  readonly attempts: number;

  constructor(endpoint: string, attempts: number, timedOut: boolean, cause: unknown) {
    const inner = (cause as { cause?: { code?: unknown } } | undefined)?.cause?.code;
    const why = timedOut ? 'timed out' : (cause instanceof Error ? cause.message : String(cause)) + (typeof inner === 'string' ? ` (${inner})` : '');
    super(`request failed after ${attempts} attempt(s), last at ${endpoint}: ${why}`, { cause });
    this.name = 'ProofKVNetworkError';
    this.endpoint = endpoint;
    this.timedOut = timedOut;
    this.attempts = attempts;
  }
}
