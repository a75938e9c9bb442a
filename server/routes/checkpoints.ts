/**
 * Checkpoints: take one on demand, read the latest, read one by index with its RFC 9162
 * inclusion path in the latest head, and consistency proofs between two log sizes.
 * @module
 */
import { ErrorCode, ProofKVError } from '../../src/index.js';
import { MAX_VERSION } from '../../src/keys.js';
import { send, type Wire } from '../codec.js';
import { checkpointWire, sessionOf, waitForCertified, type AppContext } from '../context.js';
import { HttpError } from '../errors.js';
import { queryOf } from '../keys.js';
import { errors, ok, queryParam, sessionParams } from '../openapi.js';
import type { RouteDef } from '../route_table.js';
import type { SetChange } from '../../proofs/set_changes.js';

/** Most signer-set changes in one page of `GET /v1/checkpoints/set-changes` (and its default `limit`). */
export const SET_CHANGES_PAGE_MAX = 64;
/**
 * About the most raw bytes of set changes in one page past its first change (see `setChangeBytes`):
 * as JSON (at most about 1.8 times that) a page stays below the SDK's 1 MiB cap on control answers.
 */
export const SET_CHANGES_PAGE_BYTES = 512 * 1024;

/** How long `POST /v1/checkpoints` waits for a quorum to certify the checkpoint it took, ms. */
export const CERTIFY_WAIT_MS = 10_000;

/** Checkpoint routes. `latest` and `consistency` come before `{index}`. */
export function checkpointRoutes(ctx: AppContext): RouteDef[] {
  const { db, writePath, metrics } = ctx;

  const create: RouteDef = {
    method: 'post',
    path: '/v1/checkpoints',
    role: 'admin',
    body: 'none',
    name: 'checkpoint_create',
    doc: {
      summary: 'Take a checkpoint',
      description: 'Flushes the memtable, installs finished compactions, appends the checkpoint to the log and signs the new head.',
      parameters: [...sessionParams],
      responses: { ...ok('SignedCheckpoint', 'The new signed checkpoint'), ...errors(400, 401, 403, 409, 421, 422, 503) },
    },
    async handler(req, res) {
      queryOf(res).only([]);
      const outcome = await metrics.timeCheckpoint('request', () => writePath.propose({ type: 'checkpoint', time: Date.now(), session: sessionOf(req) }));
      if (outcome.type !== 'checkpoint') throw new Error('unexpected outcome');
      if (outcome.replayed) res.setHeader('ProofKV-Replayed', 'true');
      // A cluster member's checkpoint is served once a quorum certified it (its signatures come
      // through the log): answer with the certified head that covers it.
      const size = outcome.checkpoint.head.size;
      if (!(await waitForCertified(ctx.db, size, CERTIFY_WAIT_MS))) {
        throw new HttpError('UNAVAILABLE', `checkpoint ${size - 1} was taken but a quorum has not certified it within ${CERTIFY_WAIT_MS} ms`);
      }
      const certified = ctx.db.latestCheckpoint();
      send(req, res, { ...checkpointWire(certified), cosignatures: ctx.notes?.cosignatureLines(certified.head) });
    },
  };

  const latest: RouteDef = {
    method: 'get',
    path: '/v1/checkpoints/latest',
    role: 'read',
    body: 'none',
    name: 'checkpoint_latest',
    doc: {
      summary: 'Latest checkpoint',
      responses: { ...ok('SignedCheckpoint', 'The latest signed checkpoint'), ...errors(401, 403, 404) },
    },
    handler(req, res) {
      queryOf(res).only([]);
      const latest = db.latestCheckpoint();
      send(req, res, { ...checkpointWire(latest), cosignatures: ctx.notes?.cosignatureLines(latest.head) });
    },
  };

  const consistency: RouteDef = {
    method: 'get',
    path: '/v1/checkpoints/consistency',
    role: 'read',
    body: 'none',
    name: 'checkpoint_consistency',
    doc: {
      summary: 'Consistency proof',
      description: 'RFC 9162 §2.1.4 consistency proof that the log head of size `to` extends the one of size `from` (1 <= from <= to <= log size).',
      parameters: [
        queryParam('from', 'Older log size', { type: 'integer', minimum: 1 }, true),
        queryParam('to', 'Newer log size (default: the latest)', { type: 'integer', minimum: 1 }),
      ],
      responses: { ...ok('Consistency', 'The proof'), ...errors(400, 401, 403, 404) },
    },
    handler(req, res) {
      const q = queryOf(res);
      q.only(['from', 'to']);
      const size = db.latestCheckpoint().head.size;
      const from = q.int('from', 1, MAX_VERSION, undefined);
      if (from === undefined) throw new HttpError('INVALID_ARGUMENT', 'from is required');
      const to = q.int('to', 1, MAX_VERSION, size)!;
      if (to > size) throw new HttpError('NOT_FOUND', `log size ${to} does not exist yet (latest ${size})`);
      if (from > to) throw new HttpError('INVALID_ARGUMENT', `from ${from} exceeds to ${to}`);
      send(req, res, { from, to, proof: db.consistencyProof(from, to) });
    },
  };

  const setChanges: RouteDef = {
    method: 'get',
    path: '/v1/checkpoints/set-changes',
    role: 'read',
    body: 'none',
    name: 'checkpoint_set_changes',
    doc: {
      summary: 'Signer-set changes',
      description:
        'The checkpoints `from .. size - 1` that changed the signer set, oldest first (docs/proofs.md §5.6), each proven against the certified head of size `size`: ' +
        'its own certificate (head of size index + 1, signatures, inclusion, new `signers`), the consistency proof from that head to `size`, and its predecessor ' +
        `(checkpoint index - 1, its inclusion in the change's head, the set it commits to). At most \`limit\` (<= ${SET_CHANGES_PAGE_MAX}) changes and about ${SET_CHANGES_PAGE_BYTES / 1024} KiB (raw bytes) per page; ` +
        '`next`, when present, is the `from` of the next page.',
      parameters: [
        queryParam('from', 'First checkpoint index to list changes at (default 0)', { type: 'integer', minimum: 0 }),
        queryParam('size', 'Log size of the head the changes are proven against (default: the latest)', { type: 'integer', minimum: 1 }),
        queryParam('limit', `Most changes in this page (default and at most ${SET_CHANGES_PAGE_MAX})`, { type: 'integer', minimum: 1, maximum: SET_CHANGES_PAGE_MAX }),
      ],
      responses: { ...ok('SetChanges', 'One page of set changes'), ...errors(400, 401, 403, 404) },
    },
    handler(req, res) {
      const q = queryOf(res);
      q.only(['from', 'size', 'limit']);
      const latest = db.latestCheckpoint().head.size;
      const from = q.int('from', 0, MAX_VERSION, 0)!;
      const size = q.int('size', 1, MAX_VERSION, latest)!;
      const limit = q.int('limit', 1, SET_CHANGES_PAGE_MAX, SET_CHANGES_PAGE_MAX)!;
      if (size > latest) throw new HttpError('NOT_FOUND', `log size ${size} does not exist yet (latest ${latest})`);
      const page = db.signerSetChanges(from, size, limit, SET_CHANGES_PAGE_BYTES);
      send(req, res, { from, size, changes: page.changes.map(setChangeWire), next: page.next });
    },
  };

  const byIndex: RouteDef = {
    method: 'get',
    path: '/v1/checkpoints/:index',
    role: 'read',
    body: 'none',
    name: 'checkpoint_at',
    doc: {
      summary: 'Checkpoint by index',
      description:
        'Checkpoint `index` with the latest signed head and the RFC 9162 inclusion path of the checkpoint in it. ' +
        'When checkpoint `index` changed the signer set (docs/proofs.md §5.6), `setChange` is its own certificate: the head of size `index + 1`, its signatures, the inclusion there and the new `signers`.',
      parameters: [{ name: 'index', in: 'path', required: true, description: 'Checkpoint index, from 0', schema: { type: 'integer', minimum: 0 } }],
      responses: { ...ok('CheckpointWithInclusion', 'The checkpoint, head, signatures and inclusion path'), ...errors(400, 401, 403, 404) },
    },
    handler(req, res) {
      queryOf(res).only([]);
      const raw = req.params.index;
      if (typeof raw !== 'string' || !/^[0-9]{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        throw new HttpError('INVALID_ARGUMENT', 'checkpoint index must be a decimal integer');
      }
      const index = Number(raw);
      const size = db.latestCheckpoint().head.size;
      if (index >= size) throw new HttpError('NOT_FOUND', `checkpoint ${index} does not exist (log size ${size})`);
      let c;
      try {
        c = db.checkpointAt(index);
      } catch (err) {
        if (err instanceof ProofKVError && err.code === ErrorCode.INVALID_ARGUMENT) throw new HttpError('NOT_FOUND', err.message);
        throw err;
      }
      const setChange = c.setChange ? { ...checkpointWire(c.setChange), inclusion: c.setChange.inclusion } : undefined;
      send(req, res, { ...checkpointWire(c), inclusion: c.inclusion, setChange, cosignatures: ctx.notes?.cosignatureLines(c.head) });
    },
  };

  return [create, latest, consistency, setChanges, byIndex];
}

/** A listed set change on the wire: the certificate as `setChange` of `GET /v1/checkpoints/{index}`, plus `consistency` and `previous`. */
function setChangeWire(c: SetChange): { [k: string]: Wire } {
  const out: { [k: string]: Wire } = { ...checkpointWire(c), inclusion: c.inclusion, consistency: c.consistency };
  if (c.previous) {
    const p = c.previous;
    const prev = checkpointWire({ checkpoint: p.checkpoint, head: c.head, signatures: [], signers: p.signers });
    out.previous = { checkpoint: prev.checkpoint, inclusion: p.inclusion, signers: prev.signers };
  }
  return out;
}
