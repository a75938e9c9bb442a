/**
 * What the stream front runs for each request: {@link StreamRoutes}, built by the app
 * (`server/app.ts` `createApp`) from the cores of the HTTP routes and the checks of their chain,
 * so that both fronts answer alike. Types only: the stream depends on them, not on the app.
 * @module
 */
import type { Answer } from '../answer.js';
import type { Role } from '../auth.js';
import type { KeyCore } from '../routes/key_request.js';

/** A hot route as the stream runs it: its name (in metrics), the role it needs, its core. */
export interface StreamRoute {
  name: string;
  role: Role;
  core: KeyCore;
}

/**
 * What the stream runs for each request (docs/stream-protocol.md): the cores of the HTTP routes
 * and the checks of their chain, so that both fronts answer alike.
 */
export interface StreamRoutes {
  get: StreamRoute;
  put: StreamRoute;
  delete: StreamRoute;
  proof: StreamRoute;
  /** The largest value of a `PUT` (the HTTP route's body-parser limit). */
  maxValueBodyBytes: number;
  /** The admission gate of a `ProofKV-Min-Head` value (`minHeadWait` of `server/app.ts`). */
  admit(raw: string | undefined): Promise<void> | undefined;
  /** True once shutdown started: new requests get `503 UNAVAILABLE`. */
  isClosing(): boolean;
  /** The leader's client URL when this member is a follower that knows it: `ProofKV-Leader` on every answer. */
  leaderHint(): string | undefined;
  /** The problem answer to `err`, counted and logged as the HTTP error middleware counts and logs it. */
  fail(err: unknown, route: string, remote: string | undefined): Answer;
  /** Records a request served on the stream (latency metric and debug log). */
  served(route: StreamRoute, status: number, seconds: number): void;
}
