/**
 * The request of a hot key route (`GET`, `PUT`, `DELETE /v1/kv/{key}`, `GET /v1/kv/{key}/proof`)
 * as its core sees it, whichever front received it: the HTTP front or the stream (`server/stream/`).
 * @module
 */
import type { Request, Response } from 'express';
import { negotiate, rawBody, type Answer, type ResponseType } from '../codec.js';
import type { HeaderGetter } from '../context.js';
import { keyOf, queryOf, type Query } from '../keys.js';

/**
 * What a hot key route reads of a request, whichever front received it (the HTTP front or the
 * stream, `server/stream/`): the key bytes, the parsed query, the headers it reads, the body, and
 * the negotiated answer encoding.
 */
export interface KeyRequest {
  key: Uint8Array;
  query: Query;
  /** A request header by lower-case name. */
  header: HeaderGetter;
  /** The request body (the raw parser's bytes; empty when there is none). */
  body: Uint8Array;
  /** The answer encoding (`octet`: the raw value, `GET` only; the other routes answer JSON for it). */
  accept: ResponseType;
  /** Called by a read route right before it reads, after any ReadIndex wait (the stream's answer bound; absent over HTTP). */
  beforeRead?: () => Promise<void>;
}

/** A hot key route's core: the answer, or a thrown `HttpError` (or engine error) the front maps. */
export type KeyCore = (r: KeyRequest) => Promise<Answer>;

/** The {@link KeyRequest} of an HTTP request, after the front's key decoding and body parser. */
export function keyRequestOf(req: Request, res: Response, allowOctet = false): KeyRequest {
  return { key: keyOf(res), query: queryOf(res), header: (name) => req.headers[name], body: rawBody(req), accept: negotiate(req, allowOctet) };
}

