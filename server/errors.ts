/**
 * HTTP errors: every failure a route reports is an {@link HttpError} with a stable `code`, sent as
 * `application/problem+json` (RFC 9457). Engine errors ({@link ProofKVError}) and body-parser
 * errors are mapped here; anything else becomes `500 INTERNAL` with its detail hidden. No stack
 * trace ever reaches a client.
 * @module
 */
import type { NextFunction, Request, Response } from 'express';
import { ConditionFailedError, ProofKVError } from '../src/errors.js';
import { WriteFaultError } from '../src/db/write_fault.js';
import type { Answer } from './answer.js';

/** Stable error codes of the HTTP API (`docs/http-api.md`), with their status. */
export const HTTP_CODES = {
  INVALID_ARGUMENT: 400,
  EMPTY_KEY: 400,
  INVALID_VERSION: 400,
  BAD_REQUEST: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  KEY_TOO_LARGE: 413,
  VALUE_TOO_LARGE: 413,
  PAYLOAD_TOO_LARGE: 413,
  REQUEST_TIMEOUT: 408,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  VERSION_NOT_INCREASING: 409,
  CONDITION_FAILED: 409,
  REQUEST_SEQ_STALE: 409,
  MEMBERSHIP_CONFLICT: 409,
  MEMBERSHIP_PENDING: 409,
  IDEMPOTENCY_KEY_REUSED: 422,
  CHECKPOINT_UNAVAILABLE: 404,
  NOT_LEADER: 421,
  UPGRADE_REQUIRED: 426,
  STREAM_PROTOCOL: 400,
  UNAVAILABLE: 503,
  CORRUPTION: 500,
  IO_ERROR: 500,
  INTERNAL: 500,
} as const;

/** One of the stable HTTP error codes. */
export type HttpCode = keyof typeof HTTP_CODES;

const TITLES: Record<HttpCode, string> = {
  INVALID_ARGUMENT: 'Invalid argument',
  EMPTY_KEY: 'Empty key',
  INVALID_VERSION: 'Invalid version',
  BAD_REQUEST: 'Bad request',
  UNSUPPORTED_MEDIA_TYPE: 'Unsupported media type',
  KEY_TOO_LARGE: 'Key too large',
  VALUE_TOO_LARGE: 'Value too large',
  PAYLOAD_TOO_LARGE: 'Payload too large',
  REQUEST_TIMEOUT: 'Request timeout',
  UNAUTHENTICATED: 'Unauthenticated',
  FORBIDDEN: 'Forbidden',
  NOT_FOUND: 'Not found',
  METHOD_NOT_ALLOWED: 'Method not allowed',
  VERSION_NOT_INCREASING: 'Version not increasing',
  CONDITION_FAILED: 'Condition failed',
  REQUEST_SEQ_STALE: 'Request sequence number is stale',
  MEMBERSHIP_CONFLICT: 'Membership change conflicts with the cluster',
  MEMBERSHIP_PENDING: 'The previous signer-set change is not certified yet',
  IDEMPOTENCY_KEY_REUSED: 'Idempotency key reused for another request',
  CHECKPOINT_UNAVAILABLE: 'Checkpoint unavailable',
  NOT_LEADER: 'Not the leader',
  UPGRADE_REQUIRED: 'Upgrade required',
  STREAM_PROTOCOL: 'Stream protocol violation',
  UNAVAILABLE: 'Unavailable',
  CORRUPTION: 'Corruption',
  IO_ERROR: 'I/O error',
  INTERNAL: 'Internal error',
};

/** The body of an error response. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: HttpCode;
  detail?: string;
  /**
   * `CONDITION_FAILED` only: the key (base64url), its newest version (a tombstone's included, 0
   * when never written), whether it has no live version, and the failed operation's position in
   * its batch (0 for a single write).
   */
  key?: string;
  currentVersion?: number;
  absent?: boolean;
  index?: number;
}

/** Extension members of a problem document (RFC 9457 §3.2). */
export type ProblemMembers = Pick<Problem, 'key' | 'currentVersion' | 'absent' | 'index'>;

/** An error a route throws on purpose; the error handler sends it as problem+json. */
export class HttpError extends Error {
  /** The HTTP status of {@link code}. */
  readonly status: number;

  constructor(
    readonly code: HttpCode,
    detail: string,
    /** Extra response headers (e.g. `Allow`, `WWW-Authenticate`, `ProofKV-Leader`). */
    readonly headers: Record<string, string> = {},
    /** Extension members of the problem document. */
    readonly members: ProblemMembers = {},
  ) {
    super(detail);
    this.name = 'HttpError';
    this.status = HTTP_CODES[code];
  }
}

/** The problem document of `code`; `detail` is dropped for `INTERNAL`. */
export function problem(code: HttpCode, detail?: string): Problem {
  const slug = code.toLowerCase().replace(/_/g, '-');
  const p: Problem = { type: `https://proofkv.dev/errors/${slug}`, title: TITLES[code], status: HTTP_CODES[code], code };
  if (detail !== undefined && code !== 'INTERNAL') p.detail = detail;
  return p;
}

/** Engine codes that are not HTTP codes of their own. */
const ENGINE_MAP: Partial<Record<string, HttpCode>> = {
  DATABASE_CLOSED: 'UNAVAILABLE',
  // A diverged replica (docs/replication.md § Co-signing): clients go to another member.
  DIVERGED: 'UNAVAILABLE',
  DIRECTORY_LOCKED: 'UNAVAILABLE',
  BUSY: 'UNAVAILABLE',
  SNAPSHOT_RELEASED: 'INTERNAL',
};

interface ParserError {
  type?: unknown;
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
}

/**
 * Maps any thrown value to an {@link HttpError}: engine errors keep their code, body-parser and
 * router errors (they carry `status` < 500) become 400/413/415, everything else `INTERNAL`.
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof WriteFaultError && err.retryable) {
    // The engine is recovering from a transient fault by itself: try again shortly.
    return new HttpError('UNAVAILABLE', err.message, { 'Retry-After': '1' });
  }
  if (err instanceof ConditionFailedError) {
    const key = Buffer.from(err.key.buffer, err.key.byteOffset, err.key.byteLength).toString('base64url');
    return new HttpError('CONDITION_FAILED', err.message, {}, { key, currentVersion: err.currentVersion, absent: err.absent, index: err.index });
  }
  if (err instanceof ProofKVError) {
    const mapped = ENGINE_MAP[err.code] ?? (err.code in HTTP_CODES ? (err.code as HttpCode) : 'INTERNAL');
    return new HttpError(mapped, scrubPaths(err.message));
  }
  if (typeof err === 'object' && err !== null) {
    const e = err as ParserError;
    const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
    if (status !== undefined && status >= 400 && status < 500) {
      if (e.type === 'entity.too.large' || status === 413) return new HttpError('PAYLOAD_TOO_LARGE', 'request body exceeds the limit');
      if (status === 415) return new HttpError('UNSUPPORTED_MEDIA_TYPE', 'unsupported content encoding or charset');
      if (err instanceof URIError) return new HttpError('BAD_REQUEST', 'malformed percent-escape in the path');
      const detail = typeof e.type === 'string' ? `malformed request (${e.type})` : 'malformed request';
      return new HttpError('BAD_REQUEST', detail);
    }
  }
  return new HttpError('INTERNAL', 'internal error');
}

/**
 * `text` with every absolute file path replaced by `<path>`: engine messages name files for the
 * logs, answers never do (a path tells an attacker where the data lives and who runs the node).
 * A path is a `/` at the start or after a space, quote, `(`, `=` or `:`, up to the next space,
 * quote, `)` or `,`. Windows drive paths are replaced too.
 */
export function scrubPaths(text: string): string {
  return text.replace(/(^|[\s'"(=:])(?:\/|[A-Za-z]:[\\/])[^\s'"),]*/g, '$1<path>');
}

/** The problem+json answer of `err`, with its headers (the HTTP front and the stream send the same). */
export function problemAnswer(err: HttpError): Answer {
  return {
    status: err.status,
    headers: { ...err.headers, 'Content-Type': 'application/problem+json' },
    body: JSON.stringify({ ...problem(err.code, err.status >= 500 ? scrubPaths(err.message) : err.message), ...err.members }),
  };
}

/** Sends `err` as problem+json, with its headers. */
export function sendProblem(res: Response, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const a = problemAnswer(err);
  for (const [k, v] of Object.entries(a.headers)) res.setHeader(k, v);
  res.status(a.status);
  res.end(a.body);
}

/** Called for every error answer with the original error and its mapping (5xx are logged with their stack, never sent). */
export type ErrorReporter = (err: unknown, req: Request, answer: HttpError) => void;

/** The express error handler: maps, reports through `report`, responds. */
export function errorHandler(report: ErrorReporter) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const h = toHttpError(err);
    report(err, req, h);
    sendProblem(res, h);
  };
}
