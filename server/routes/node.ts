/**
 * Node routes: status, health, Prometheus metrics and the OpenAPI document.
 * @module
 */
import { ErrorCode, ProofKVError, type SignedCheckpoint } from '../../src/index.js';
import { send } from '../codec.js';
import { checkpointWire, type AppContext } from '../context.js';
import { bytesOnDisk } from '../metrics.js';
import { queryOf } from '../keys.js';
import { errors, ok } from '../openapi.js';
import type { RouteDef } from '../route_table.js';
import { MAX_BATCH_OPS } from './kv.js';

/** Node routes; `openapi` returns the document (built from the full route table by the app). */
export function nodeRoutes(ctx: AppContext, openapi: () => Record<string, unknown>, metricsRole: 'admin' | 'none'): RouteDef[] {
  const { db, info, limits, metrics } = ctx;

  const status: RouteDef = {
    method: 'get',
    path: '/v1/status',
    role: 'read',
    body: 'none',
    name: 'status',
    doc: { summary: 'Node status', responses: { ...ok('Status', 'Identity, role, last checkpoint, sizes and limits'), ...errors(401, 403) } },
    handler(req, res) {
      queryOf(res).only([]);
      let last: SignedCheckpoint | undefined;
      try {
        last = db.latestCheckpoint();
      } catch (err) {
        if (!(err instanceof ProofKVError && err.code === ErrorCode.CHECKPOINT_UNAVAILABLE)) throw err;
      }
      send(req, res, {
        role: 'leader',
        nodeId: info.nodeId,
        publicKey: info.publicKey,
        lastCheckpoint: last ? checkpointWire(last) : undefined,
        lastSeq: db.stats().lastSeq,
        tables: db.tables().length,
        bytesOnDisk: bytesOnDisk(db.location),
        version: info.version,
        limits: { ...limits, maxBatchOps: MAX_BATCH_OPS },
      });
    },
  };

  const health: RouteDef = {
    method: 'get',
    path: '/healthz',
    role: 'none',
    body: 'none',
    name: 'healthz',
    doc: { summary: 'Liveness', responses: { ...ok('Health', 'The node is serving'), ...errors(503) } },
    handler(req, res) {
      send(req, res, { ok: true });
    },
  };

  const prom: RouteDef = {
    method: 'get',
    path: '/metrics',
    role: metricsRole,
    body: 'none',
    name: 'metrics',
    doc: {
      summary: 'Prometheus metrics',
      responses: { '200': { description: 'Prometheus text exposition', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors(401, 403) },
    },
    async handler(_req, res) {
      const text = await metrics.registry.metrics();
      res.status(200).setHeader('Content-Type', metrics.registry.contentType);
      res.end(text);
    },
  };

  const doc: RouteDef = {
    method: 'get',
    path: '/openapi.json',
    role: 'none',
    body: 'none',
    name: 'openapi',
    doc: {
      summary: 'This API as OpenAPI 3.1',
      responses: { '200': { description: 'The OpenAPI document', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
    handler(_req, res) {
      res.status(200).json(openapi());
    },
  };

  return [status, health, prom, doc];
}
