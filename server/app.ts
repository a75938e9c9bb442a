/**
 * The express application: one route table (kv, proofs, checkpoints, node), mounted behind
 * per-route auth and body parsers, with node-id and CORS headers (every `OPTIONS` request is a
 * preflight answered `204`), latency metrics, `405`/`404` answers and a problem+json error handler. The app holds no state of its own; {@link ProofNode} owns the
 * database, the write path and the HTTP server. The node's request listener is the light front
 * of `http_front.ts` over this app: it runs the same middleware for the hot key-value routes
 * without express's router.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import { Authenticator, type RouteRole } from './auth.js';
import { certifiedSize, waitForCertified, type AppContext } from './context.js';
import { bodyReader } from './codec.js';
import { errorHandler, HttpError, problemAnswer, toHttpError } from './errors.js';
import { canonicalKeyPath } from './keys.js';
import { buildOpenApi } from './openapi.js';
import { createFront } from './http_front.js';
import { allowedMethods, registerRoutes, routeChain, type BodyKind, type RouteDef, type RouteMiddleware } from './route_table.js';
import { checkpointRoutes } from './routes/checkpoints.js';
import { clusterRoutes } from './routes/cluster.js';
import { kvCores, kvRoutes } from './routes/kv.js';
import type { KeyCore } from './routes/key_request.js';
import { nodeRoutes } from './routes/node.js';
import { noteRoutes } from './routes/notes.js';
import { proofCore, proofRoutes } from './routes/proofs.js';
import { explorerRoutes } from './ui.js';
import { streamHandshakeRoute } from './stream/index.js';
import type { StreamRoute, StreamRoutes } from './stream/routes.js';

export type { StreamRoute, StreamRoutes } from './stream/routes.js';
import { trace } from '../src/replication/trace.js';
import { LogBudget, DEFAULT_LOG_LINES_PER_SECOND } from './log_budget.js';

/** What {@link createApp} needs besides the route context. */
export interface AppOptions {
  /** Token check of every route. */
  auth: Authenticator;
  /** Request and error logs. */
  logger: Logger;
  /** True once shutdown started: new requests get `503 UNAVAILABLE`. */
  isClosing?: () => boolean;
  /**
   * Most `refused request` log lines a second (default {@link DEFAULT_LOG_LINES_PER_SECOND});
   * every refusal is still counted in `proofkv_refused_total`, and a line after suppressed ones
   * says how many (`suppressed`).
   */
  refusedLogLinesPerSecond?: number;
}

/** The app and the route table it was built from. */
export interface BuiltApp {
  /** The express application (an HTTP request listener); {@link listener} runs in front of it. */
  app: Express;
  /** The node's HTTP request listener: the light front (`http_front.ts`) over {@link app}. */
  listener: (req: IncomingMessage, res: ServerResponse) => void;
  /** The route table it was built from. */
  routes: RouteDef[];
  /** The OpenAPI document of {@link routes}. */
  openapi: () => Record<string, unknown>;
  /** The hot routes as the stream (`server/stream/`) runs them. */
  stream: StreamRoutes;
}

/** Response headers a browser client may read. */
const EXPOSED_HEADERS = 'ProofKV-Node-Id, ProofKV-Version, ProofKV-Seq, ProofKV-Kind, ProofKV-Replayed, ProofKV-Leader, WWW-Authenticate, Allow';

/** Matches an express path with `:params` (one segment each). */
/** How long a request with `ProofKV-Min-Head` waits for this member's certified head to reach it. */
export const MIN_HEAD_WAIT_MS = 2000;

/**
 * `ProofKV-Min-Head: <size>`: a verifying client names the log size it already trusts. A member
 * whose certified head is smaller — a replica still catching up, e.g. just restarted — waits for
 * it up to {@link MIN_HEAD_WAIT_MS}, then answers `503 UNAVAILABLE` so that the client asks
 * another member, rather than serving an honest but older head that the client would have to
 * reject as a rollback. A server that ignores the header gains nothing: the client still checks
 * every head it receives against the one it trusts.
 */
function minHeadGate(ctx: AppContext): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    let wait: Promise<void> | undefined;
    try {
      wait = minHeadWait(ctx, req.headers['proofkv-min-head']);
    } catch (err) {
      return next(err);
    }
    if (wait === undefined) return next();
    void wait.then(() => next(), next);
  };
}

/**
 * The gate of {@link minHeadGate} for a `ProofKV-Min-Head` value: undefined when the request may
 * go on at once, a promise that settles when it may (or rejects `503 UNAVAILABLE`); throws
 * `400 INVALID_ARGUMENT` for a malformed value. The stream runs the same gate.
 */
export function minHeadWait(ctx: AppContext, raw: string | string[] | undefined): Promise<void> | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !/^[0-9]{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new HttpError('INVALID_ARGUMENT', 'ProofKV-Min-Head must be a decimal log size');
  }
  const want = Number(raw);
  if (certifiedSize(ctx.db) >= want) return undefined;
  return waitForCertified(ctx.db, want, MIN_HEAD_WAIT_MS).then((ok) => {
    if (!ok) throw new HttpError('UNAVAILABLE', `this member's certified log size ${certifiedSize(ctx.db)} is below the ${want} the client already trusts: it is catching up`);
  });
}

function pathMatcher(p: string): RegExp {
  const src = p.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/');
  return new RegExp(`^${src}/?$`);
}

/** The route name a request matched, or `unmatched`. */
function routeOf(req: Request): string {
  return (req.res?.locals.route as string | undefined) ?? 'unmatched';
}

/** Builds the express app of a node. */
export function createApp(ctx: AppContext, options: AppOptions): BuiltApp {
  const { auth, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', false);

  let doc: Record<string, unknown> | undefined;
  const openapi = () => (doc ??= buildOpenApi(routes, ctx.info.version));
  const routes: RouteDef[] = [
    ...kvRoutes(ctx),
    ...proofRoutes(ctx),
    ...noteRoutes(ctx),
    ...checkpointRoutes(ctx),
    ...clusterRoutes(ctx),
    ...nodeRoutes(ctx, openapi, auth.open ? 'none' : 'admin'),
    streamHandshakeRoute(),
  ];

  // Every response: node id, latency metric, debug log.
  const everyResponse = (req: Request, res: Response, next: NextFunction) => {
    const start = process.hrtime.bigint();
    trace('http', req.method);
    res.setHeader('ProofKV-Node-Id', ctx.info.nodeId);
    // A follower names the leader: clients send their requests there (docs/cluster.md).
    const leader = ctx.cluster?.leaderHint?.();
    if (leader !== undefined) res.setHeader('ProofKV-Leader', leader);
    res.on('finish', () => {
      trace('http-end', req.method);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const route = (res.locals.route as string | undefined) ?? 'unmatched';
      ctx.metrics.observeHttp(req.method, route, res.statusCode, seconds);
      if (logger.isLevelEnabled('debug')) logger.debug({ method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 1e4) / 10 }, 'request');
    });
    // CORS for browser clients: tokens travel in Authorization, never in cookies, so any origin may call.
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, PUT, POST, DELETE');
      res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, Accept, ProofKV-Client-Id, ProofKV-Request-Seq, ProofKV-Min-Head');
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    if (options.isClosing?.()) {
      res.setHeader('Connection', 'close');
      next(new HttpError('UNAVAILABLE', 'the node is shutting down'));
      return;
    }
    next();
  };
  app.use(everyResponse);
  app.use(canonicalKeyPath);
  // The explorer's static files (server/ui.ts); public, like /healthz.
  app.use('/ui', explorerRoutes());

  const parsers: Record<BodyKind, RequestHandler[]> = {
    none: [],
    value: [express.raw({ type: () => true, limit: ctx.limits.maxValueBodyBytes, inflate: false })],
    batch: [bodyReader(ctx.limits.maxBatchBodyBytes)],
  };
  const middleware: RouteMiddleware = {
    auth: (role: RouteRole) => auth.require(role),
    // After auth: a request without the rights it needs never waits here (nor learns this member's head).
    admitted: [minHeadGate(ctx)],
    parser: (b) => parsers[b],
    tag: (r) => (_req, res, next) => {
      res.locals.route = r.name;
      next();
    },
  };
  registerRoutes(app, routes, middleware);

  // A known path with another method: 405; anything else: 404.
  const allowed = [...allowedMethods(routes)].map(([p, methods]) => ({ re: pathMatcher(p), methods }));
  const notRouted = (req: Request, _res: Response, next: NextFunction) => {
    const path = req.path;
    const hit = allowed.filter((a) => a.re.test(path));
    if (hit.length > 0) {
      const methods = [...new Set(hit.flatMap((h) => h.methods.map((m) => m.toUpperCase())))];
      if (methods.includes('GET')) methods.push('HEAD');
      next(new HttpError('METHOD_NOT_ALLOWED', `${req.method} is not allowed here; allowed: ${methods.join(', ')}`, { Allow: methods.join(', ') }));
      return;
    }
    next(new HttpError('NOT_FOUND', 'no such route'));
  };
  app.use(notRouted);
  const refusedLines = new LogBudget(options.refusedLogLinesPerSecond);
  /** Logs an error answer; a refused request is also counted by its reason. */
  const report = (err: unknown, method: string | undefined, route: string, remote: string | undefined, answer: HttpError): void => {
    if (answer.status >= 500 && answer.code !== 'UNAVAILABLE') {
      logger.error({ err, method, route, status: answer.status, code: answer.code }, 'request failed');
      return;
    }
    // Every refused request is counted and logged with its reason (the stable code) — not the key
    // or body — up to the log budget's lines a second; a line then says how many it stood for.
    ctx.metrics.refused.inc({ reason: answer.code.toLowerCase() });
    const suppressed = refusedLines.take();
    if (suppressed === undefined) return;
    logger.warn({ method, route, status: answer.status, code: answer.code, detail: answer.message, remote, ...(suppressed > 0 ? { suppressed } : {}) }, 'refused request');
  };
  const onError = errorHandler((err, req, answer) => report(err, req.method, routeOf(req), req.socket.remoteAddress, answer));
  app.use(onError);
  const listener = createFront(routes, { app, before: [everyResponse, canonicalKeyPath], chain: (r) => routeChain(r, middleware), after: notRouted, onError });

  const routeOfName = (name: string): RouteDef => routes.find((r) => r.name === name)!;
  const streamRoute = (name: string, core: KeyCore): StreamRoute => {
    const role = routeOfName(name).role;
    if (role === 'none') throw new Error(`app: the stream's route ${name} must need a role`);
    return { name, role, core };
  };
  const kv = kvCores(ctx);
  const stream: StreamRoutes = {
    get: streamRoute('kv_get', kv.get),
    put: streamRoute('kv_put', kv.put),
    delete: streamRoute('kv_delete', kv.delete),
    proof: streamRoute('kv_proof', proofCore(ctx)),
    maxValueBodyBytes: ctx.limits.maxValueBodyBytes,
    admit: (raw) => minHeadWait(ctx, raw),
    isClosing: () => options.isClosing?.() ?? false,
    leaderHint: () => ctx.cluster?.leaderHint?.(),
    fail(err, route, remote) {
      const h = toHttpError(err);
      report(err, 'STREAM', route, remote, h);
      return problemAnswer(h);
    },
    served(route, status, seconds) {
      ctx.metrics.observeStream(route.name, status, seconds);
      if (logger.isLevelEnabled('debug')) logger.debug({ method: 'STREAM', route: route.name, status, ms: Math.round(seconds * 1e4) / 10 }, 'request');
    },
  };
  return { app, listener, routes, openapi, stream };
}
