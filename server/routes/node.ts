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
import { errorCodeOf } from '../../src/db/core.js';
import type { ProofDB } from '../../src/index.js';
import type { Wire } from '../codec.js';
import type { WritePath } from '../write_path.js';

/**
 * The write state for `/v1/status`: `ok` (a write sent now is taken), `no-leader` (no fault, but
 * this member knows no leader: a write is refused as retryable until one is elected), `paused` (a
 * fault the node retries by itself) or `stopped` (a fault that needs a restart), with the fault's
 * component, errno code, start time and attempts. Never a file path.
 */
export function writesWire(db: ProofDB, wp?: WritePath): { [k: string]: Wire } {
  const f = db.writeFault() ?? wp?.writeFault?.();
  if (!f) return wp?.leaderKnown?.() === false ? { state: 'no-leader' } : { state: 'ok' };
  return {
    state: f.recoverable ? 'paused' : 'stopped',
    fault: {
      component: f.component,
      code: errorCodeOf(f.error),
      lastCode: f.lastError ? errorCodeOf(f.lastError) : undefined,
      since: new Date(f.since).toISOString(),
      attempts: f.attempts,
    },
  };
}

/**
 * A replica that diverged from what a quorum certified (docs/replication.md, Co-signing): the log
 * size, its own root and the quorum's, the members that signed the quorum's. Absent when healthy.
 */
export function divergenceWire(db: ProofDB): { [k: string]: Wire } | undefined {
  const d = db.divergence();
  if (!d) return undefined;
  return { size: d.size, ownRoot: d.ownRoot, quorumRoot: d.quorumRoot, signers: d.signers };
}

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
      const cluster = ctx.cluster;
      const view = cluster?.view();
      send(req, res, {
        role: view ? view.role : 'leader',
        cluster: cluster && view
          ? {
              clusterId: cluster.clusterId,
              id: view.id,
              term: view.term,
              leader: view.leader,
              leaderUrl: cluster.members.find((m) => m.id === view.leader)?.clientUrl,
              commit: view.commit,
              applied: view.applied,
              firstIndex: view.firstIndex,
              snapshotIndex: view.snapshotIndex,
              lastIndex: view.lastIndex,
              voters: view.voters,
              learners: view.learners,
              setChangePending: cluster.setChangePending?.(),
              members: cluster.members.map((m) => ({ id: m.id, clientUrl: m.clientUrl, publicKey: m.publicKey })),
            }
          : undefined,
        writes: writesWire(db, ctx.writePath),
        sync: db.options.sync,
        nodeId: info.nodeId,
        publicKey: info.publicKey,
        lastCheckpoint: last ? checkpointWire(last) : undefined,
        divergence: divergenceWire(db),
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

  const ready: RouteDef = {
    method: 'get',
    path: '/readyz',
    role: 'none',
    body: 'none',
    name: 'readyz',
    doc: {
      summary: 'Readiness: the engine is open, takes writes (no write fault, a leader known) and has a checkpoint to prove against',
      responses: { ...ok('Ready', 'The node takes writes and serves proofs'), ...errors(503) },
    },
    handler(req, res) {
      const reasons: string[] = [];
      const fault = db.writeFault() ?? ctx.writePath.writeFault?.();
      if (fault) reasons.push(`write fault: ${fault.component} (${errorCodeOf(fault.error)})`);
      else if (ctx.writePath.leaderKnown?.() === false) reasons.push('no leader known');
      const d = db.divergence();
      if (d) reasons.push(`diverged at checkpoint-log size ${d.size}`);
      try {
        db.latestCheckpoint();
      } catch (err) {
        if (!(err instanceof ProofKVError && err.code === ErrorCode.CHECKPOINT_UNAVAILABLE)) throw err;
        reasons.push('no checkpoint yet');
      }
      send(req, res, reasons.length === 0 ? { ready: true } : { ready: false, reasons }, reasons.length === 0 ? 200 : 503);
    },
  };

  const rotations: RouteDef = {
    method: 'get',
    path: '/v1/key-rotations',
    role: 'read',
    body: 'none',
    name: 'key_rotations',
    doc: {
      summary: 'Signed key rotation statements, oldest first',
      description:
        'Each statement says that the checkpoint log head of size logSize was the last signed by oldPublicKey and larger heads are signed by newPublicKey. ' +
        'newSignature is by the new key; oldSignature, by the old key, is absent when the old key was lost. ' +
        'Message: "proofkv-key-rotation-v1\\n" || u64 BE logSize || oldPublicKey || newPublicKey.',
      responses: { ...ok('KeyRotations', 'The rotations'), ...errors(401, 403) },
    },
    handler(req, res) {
      queryOf(res).only([]);
      send(req, res, {
        rotations: db.keyRotations().rotations.map((r) => ({
          logSize: r.logSize,
          oldPublicKey: r.oldPublicKey,
          newPublicKey: r.newPublicKey,
          oldSignature: r.oldSignature,
          newSignature: r.newSignature,
          time: r.time,
        })),
      });
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

  return [status, health, ready, rotations, prom, doc];
}
