/**
 * The light front: the `node:http` request listener of a node. It serves the hot routes — `GET`,
 * `PUT` and `DELETE /v1/kv/{key}`, `GET /v1/kv/{key}/proof` and `POST /v1/batch` — by running
 * their middleware chains itself, and hands every other request (`HEAD`, `OPTIONS`, every other
 * route, anything it does not recognise) to the express app unchanged.
 *
 * A hot request runs exactly what express would run for it, in the same order and with the same
 * functions: the app's every-response middleware (node id, CORS, metrics, shutdown), the key and
 * query decoding, the route's chain from {@link routeChain} (tag, auth, admission gate, body
 * parser, handler), and the app's error middleware — so answers, error bodies and codes, limits,
 * headers and metrics are express's. What it leaves out is express's router: matching the URL
 * against every layer of the route table, one at a time, for every request (measured in
 * bench/README.md § "Where an HTTP request's time goes"). As express's own `app.handle` does, a
 * hot request and its response get express's request and response prototypes (`req.accepts`,
 * `res.status`) and fresh `res.locals`.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { RouteDef } from './route_table.js';

/** Route names the front serves itself (`RouteDef.name`). */
export const FRONT_ROUTES = ['kv_get', 'kv_put', 'kv_delete', 'kv_proof', 'batch'] as const;

/** An express error middleware. */
export type ErrorMiddleware = (err: unknown, req: Request, res: Response, next: NextFunction) => void;

/** What the front runs around a hot route's own chain. */
export interface FrontParts {
  /** The express app: every request the front does not serve itself, and the prototypes. */
  app: Express;
  /** The app's middleware that run before routing, in order (every-response headers, key decoding). */
  before: RequestHandler[];
  /** The chain of a route (`routeChain` of route_table.ts, with the app's middleware). */
  chain: (r: RouteDef) => RequestHandler[];
  /** What runs when a chain ends without an answer (the app's `405`/`404` middleware). */
  after: RequestHandler;
  /** The app's error middleware. */
  onError: ErrorMiddleware;
}

// `/v1/kv/{key}` or `/v1/kv/{key}/proof` (a trailing slash allowed, as express's non-strict
// routing allows it), with a non-empty key segment; the query is the key decoder's business.
const KV_PATH = /^\/v1\/kv\/[^/?]+(\/proof)?\/?(?:\?|$)/;
const BATCH_PATH = /^\/v1\/batch\/?(?:\?|$)/;

/**
 * The request listener of a node: the front over `parts.app`. `routes` must hold every name of
 * {@link FRONT_ROUTES} (the route table declares them; this throws otherwise).
 */
export function createFront(routes: readonly RouteDef[], parts: FrontParts): (req: IncomingMessage, res: ServerResponse) => void {
  const chainOf = (name: (typeof FRONT_ROUTES)[number]): RequestHandler[] => {
    const r = routes.find((x) => x.name === name);
    if (!r) throw new Error(`http_front: the route table has no ${name} route`);
    return [...parts.before, ...parts.chain(r), parts.after];
  };
  const kvGet = chainOf('kv_get');
  const kvPut = chainOf('kv_put');
  const kvDelete = chainOf('kv_delete');
  const kvProof = chainOf('kv_proof');
  const batch = chainOf('batch');

  /** The chain that serves `method url`, or undefined when express should. */
  const hot = (method: string | undefined, url: string): RequestHandler[] | undefined => {
    if (method === 'POST') return BATCH_PATH.test(url) ? batch : undefined;
    const m = KV_PATH.exec(url);
    if (!m) return undefined;
    if (m[1] !== undefined) return method === 'GET' ? kvProof : undefined;
    return method === 'GET' ? kvGet : method === 'PUT' ? kvPut : method === 'DELETE' ? kvDelete : undefined;
  };

  const { app, onError } = parts;
  return (rawReq, rawRes) => {
    const chain = hot(rawReq.method, rawReq.url ?? '');
    if (chain === undefined) {
      app(rawReq, rawRes);
      return;
    }
    // What express's app.handle does before routing (`x-powered-by` is disabled in the app).
    const req = rawReq as Request;
    const res = rawRes as Response;
    req.res = res;
    res.req = req;
    Object.setPrototypeOf(req, app.request);
    Object.setPrototypeOf(res, app.response);
    res.locals = Object.create(null) as Response['locals'];
    runChain(chain, req, res, onError);
  };
}

/**
 * Runs `chain` as express's router runs a route's handlers: each calls `next()` to go on or
 * `next(err)` to skip to `onError`; a thrown error or a rejected promise is `next(err)`. If the
 * error middleware itself throws, the answer is a bare `500` (express's final handler does the
 * same), or the connection is cut when the headers are already out.
 */
function runChain(chain: readonly RequestHandler[], req: Request, res: Response, onError: ErrorMiddleware): void {
  let i = 0;
  const fail = (err: unknown): void => {
    try {
      onError(err, req, res, () => undefined);
    } catch {
      if (res.headersSent) res.destroy();
      else {
        res.statusCode = 500;
        res.end();
      }
    }
  };
  const next: NextFunction = (err?: unknown) => {
    if (err !== undefined && err !== null) return fail(err);
    const h = chain[i++];
    if (h === undefined) return;
    try {
      const ret = h(req, res, next) as unknown;
      if (ret instanceof Promise) ret.then(undefined, (e: unknown) => next(e ?? new Error('rejected')));
    } catch (e) {
      next(e);
    }
  };
  next();
}
