/**
 * {@link Answer}: a route's answer before it meets a transport. Its own module so that the codec
 * (`codec.ts`, which builds answers) and the errors (`errors.ts`, whose problem answers the codec's
 * callers send) both use it without importing each other.
 * @module
 */

/**
 * A route's answer before it meets a transport: status, headers (in the order HTTP sets them) and
 * body. The HTTP front sends it with `sendAnswer` (`codec.ts`); the stream (`server/stream/`) frames it.
 */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  /** Absent: no body. */
  body?: string | Buffer;
}
