/**
 * The route table: every HTTP route is declared once, as a {@link RouteDef} holding its method,
 * path, role, request parser, handler and OpenAPI description. {@link registerRoutes} mounts the
 * table on express and `openapi.ts` builds the OpenAPI document from the same table, so the two
 * cannot drift apart.
 * @module
 */
import type { Request, RequestHandler, Response } from 'express';
import type { RouteRole } from './auth.js';

/** HTTP methods the API uses. */
export type Method = 'get' | 'put' | 'post' | 'delete';

/** An OpenAPI 3.1 parameter object (the subset the table uses). */
export interface ParamDoc {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  description: string;
  schema: Record<string, unknown>;
}

/** The OpenAPI description of a route. */
export interface RouteDoc {
  summary: string;
  description?: string;
  parameters?: ParamDoc[];
  /** Media type → schema of the request body. */
  requestBody?: { required: boolean; content: Record<string, Record<string, unknown>> };
  /** Status → description and (optional) media type → schema. */
  responses: Record<string, { description: string; content?: Record<string, Record<string, unknown>> }>;
}

/** Which body parser a route needs. */
export type BodyKind = 'none' | 'value' | 'batch';

/** One route. */
export interface RouteDef {
  method: Method;
  /** Express path (`:name` parameters). */
  path: string;
  role: RouteRole;
  body: BodyKind;
  /** Name of the route in metrics labels (stable, low cardinality). */
  name: string;
  doc: RouteDoc;
  handler: (req: Request, res: Response) => Promise<void> | void;
}

/** Converts an express path (`/v1/kv/:key`) to an OpenAPI path (`/v1/kv/{key}`). */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** Middleware factories {@link registerRoutes} needs for each route. */
export interface RouteMiddleware {
  auth: (role: RouteRole) => RequestHandler;
  parser: (body: BodyKind) => RequestHandler[];
  /** Runs before auth (e.g. labels the request for metrics). */
  tag: (route: RouteDef) => RequestHandler;
  /** Run after auth, before the body parser (e.g. a gate that may hold the request). */
  admitted?: RequestHandler[];
}

/**
 * The middleware chain of route `r`: tag, auth, the admitted-request middleware, body parser, then
 * the handler, whose rejections go to `next` (the error handler). Express's router and the light
 * front (`server/http_front.ts`) run the same chain.
 */
export function routeChain(r: RouteDef, mw: RouteMiddleware): RequestHandler[] {
  const run: RequestHandler = async (req, res, next) => {
    try {
      await r.handler(req, res);
    } catch (err) {
      next(err);
    }
  };
  return [mw.tag(r), mw.auth(r.role), ...(mw.admitted ?? []), ...mw.parser(r.body), run];
}

/** Mounts every route of `routes` on `router` with its {@link routeChain}. */
export function registerRoutes(
  router: { [M in Method]: (path: string, ...handlers: RequestHandler[]) => unknown },
  routes: readonly RouteDef[],
  mw: RouteMiddleware,
): void {
  for (const r of routes) router[r.method](r.path, ...routeChain(r, mw));
}

/** The methods each path of `routes` allows (for `405` answers), keyed by express path. */
export function allowedMethods(routes: readonly RouteDef[]): Map<string, Method[]> {
  const m = new Map<string, Method[]>();
  for (const r of routes) m.set(r.path, [...(m.get(r.path) ?? []), r.method]);
  return m;
}
