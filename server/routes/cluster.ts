/**
 * Cluster membership routes (admin): `GET /v1/cluster/members`, `POST /v1/cluster/members`,
 * `POST /v1/cluster/members/{id}/promote`, `DELETE /v1/cluster/members/{id}` — thin: they parse,
 * call {@link Membership} (src/replication/members.ts) and map its errors. docs/http-api.md,
 * docs/cluster.md § Membership.
 * @module
 */
import type { Request, Response } from 'express';
import { MembersError, MembersErrorCode, type Membership, type MemberView } from '../../src/replication/members.js';
import { bodyType, field, parseStructuredBody, rawBody, send, type Wire } from '../codec.js';
import type { AppContext } from '../context.js';
import { HttpError, type HttpCode } from '../errors.js';
import { queryOf } from '../keys.js';
import { body, errors, ok } from '../openapi.js';
import type { ParamDoc, RouteDef } from '../route_table.js';

const MEMBER_FIELDS = ['id', 'clientUrl', 'peerUrl', 'publicKey'];
const HTTP_OF: Record<MembersErrorCode, HttpCode> = {
  [MembersErrorCode.Malformed]: 'INVALID_ARGUMENT',
  [MembersErrorCode.Conflict]: 'MEMBERSHIP_CONFLICT',
  [MembersErrorCode.NotFound]: 'NOT_FOUND',
  [MembersErrorCode.Unavailable]: 'UNAVAILABLE',
  [MembersErrorCode.Pending]: 'MEMBERSHIP_PENDING',
};

const forceParam: ParamDoc = {
  name: 'force',
  in: 'query',
  required: false,
  description: 'Change the voters although the previous signer-set change is not certified by a quorum of its set and of the set before it yet (`409 MEMBERSHIP_PENDING` otherwise). A verifier trusting the older set cannot follow a change whose certificate never completes: for replacing a dead member (docs/cluster.md § Membership).',
  schema: { type: 'boolean' },
};

const idParam: ParamDoc = { name: 'id', in: 'path', required: true, description: 'Member id (1 .. 2^32-1)', schema: { type: 'integer', minimum: 1, maximum: 0xffff_ffff } };

/** A member on the wire: the key as 64 hex digits, as in cluster.json. */
export function memberWire(m: MemberView): { [k: string]: Wire } {
  return { id: m.id, clientUrl: m.clientUrl, peerUrl: m.peerUrl, publicKey: Buffer.from(m.publicKey).toString('hex'), role: m.role, leader: m.leader, match: m.match };
}

/** Runs `f`, mapping {@link MembersError} to its HTTP error. */
async function mapped<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof MembersError) throw new HttpError(HTTP_OF[err.code], err.message);
    throw err;
  }
}

function pathId(req: Request): number {
  const raw = String(req.params.id ?? '');
  if (!/^[1-9][0-9]{0,9}$/.test(raw) || Number(raw) > 0xffff_ffff) throw new HttpError('INVALID_ARGUMENT', `member id must be an integer 1 .. ${0xffff_ffff}`);
  return Number(raw);
}

/** The membership routes; without a member registry (not a cluster member) they answer 404. */
export function clusterRoutes(ctx: AppContext): RouteDef[] {
  const membership = (): Membership => {
    const m = ctx.cluster?.membership;
    if (!m) throw new HttpError('NOT_FOUND', 'this node is not a member of a cluster (serve --cluster)');
    return m;
  };
  const list = (req: Request, res: Response, status = 200, only?: number) => {
    const view = ctx.cluster!.view();
    const m = membership();
    const members = m.list();
    const one = only === undefined ? undefined : members.find((x) => x.id === only);
    send(req, res, one ? memberWire(one) : { leader: view.leader, term: view.term, members: members.map(memberWire), removed: m.removed() }, status);
  };

  const get: RouteDef = {
    method: 'get',
    path: '/v1/cluster/members',
    role: 'admin',
    body: 'none',
    name: 'cluster_members',
    doc: { summary: 'Members of the cluster', description: 'The member registry as this member applied it: every member with its URLs, key (hex), role (voter, learner, registered) and whether it leads; `match` (the leader\'s replication progress of the member) when answered by the leader; `removed`: the ids removed from the group, oldest first (never used again).', responses: { ...ok('Members', 'The members'), ...errors(401, 403, 404) } },
    handler(req, res) {
      queryOf(res).only([]);
      list(req, res);
    },
  };

  const add: RouteDef = {
    method: 'post',
    path: '/v1/cluster/members',
    role: 'admin',
    body: 'batch',
    name: 'cluster_member_add',
    doc: {
      summary: 'Add a member (as a learner)',
      description: 'Registers the member (a `member add` log entry) and adds it to the Raft group as a learner (`AddLearner`); start it with `serve --join`, then promote it once it caught up. Asking again for the same member finishes what is missing.',
      requestBody: body({}, 'MemberBody'),
      responses: { '201': { description: 'The member, now a learner', content: { 'application/json': { schema: { $ref: '#/components/schemas/Member' } } } }, ...errors(400, 401, 403, 404, 409, 413, 415, 503) },
    },
    async handler(req, res) {
      queryOf(res).only([]);
      const type = bodyType(req, ['json', 'cbor']) as 'json' | 'cbor';
      const o = parseStructuredBody(type, rawBody(req));
      for (const k of Object.keys(o)) if (!MEMBER_FIELDS.includes(k)) throw new HttpError('INVALID_ARGUMENT', `unknown field ${JSON.stringify(k.slice(0, 64))}`);
      const key = field(o, 'publicKey');
      if (typeof key !== 'string' || !/^[0-9a-fA-F]{64}$/.test(key)) throw new HttpError('INVALID_ARGUMENT', 'publicKey must be 64 hex digits (32 bytes)');
      const m = await mapped(() => membership().add({ id: field(o, 'id'), clientUrl: field(o, 'clientUrl'), peerUrl: field(o, 'peerUrl'), publicKey: new Uint8Array(Buffer.from(key, 'hex')) }));
      list(req, res, 201, m.id);
    },
  };

  const promote: RouteDef = {
    method: 'post',
    path: '/v1/cluster/members/:id/promote',
    role: 'admin',
    body: 'none',
    name: 'cluster_member_promote',
    doc: {
      summary: 'Promote a learner to voter',
      description: '`AddNode` of a learner that has caught up with the leader; `409 MEMBERSHIP_CONFLICT` while it has not (try again). From then on its signature counts in the signer set of every checkpoint. One signer-set change at a time: `409 MEMBERSHIP_PENDING` while the previous one is not recorded by a checkpoint certified by a quorum of its set and of the set before it (try again; the member that applies a change proposes that checkpoint), unless `force`.',
      parameters: [idParam, forceParam],
      responses: { ...ok('Member', 'The member, now a voter'), ...errors(400, 401, 403, 404, 409, 503) },
    },
    async handler(req, res) {
      const q = queryOf(res);
      q.only(['force']);
      const id = pathId(req);
      const force = q.flag('force');
      await mapped(() => membership().promote(id, { force }));
      list(req, res, 200, id);
    },
  };

  const remove: RouteDef = {
    method: 'delete',
    path: '/v1/cluster/members/:id',
    role: 'admin',
    body: 'none',
    name: 'cluster_member_remove',
    doc: {
      summary: 'Remove a member',
      description: 'Two steps for a voter, so that it signs the checkpoint that takes it out of the signer set: the first request demotes it to learner (`202` with the member: out of the signer set from the next checkpoint, still receiving the log); a request once that change is certified by a quorum of the new set and of the previous one removes it (`RemoveNode`, then a `member remove` log entry; `204`); `409 MEMBERSHIP_PENDING` until then, and while an earlier signer-set change is not certified. `force` removes at once, without waiting (a dead member cannot sign). A learner is removed in one step. A member cannot remove itself: send the request to another member. The removed member stops serving writes.',
      parameters: [idParam, forceParam],
      responses: { '202': { description: 'Demoted to learner: ask again once the change is certified', content: { 'application/json': { schema: { $ref: '#/components/schemas/Member' } } } }, '204': { description: 'Removed' }, ...errors(400, 401, 403, 404, 409, 503) },
    },
    async handler(req, res) {
      const q = queryOf(res);
      q.only(['force']);
      const id = pathId(req);
      const force = q.flag('force');
      const done = await mapped(() => membership().remove(id, { force }));
      if (done === 'demoted') list(req, res, 202, id);
      else res.status(204).end();
    },
  };

  return [get, add, promote, remove];
}
