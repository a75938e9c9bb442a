/**
 * What witnesses and tlog tools read: checkpoint notes (C2SP tlog-checkpoint signed notes, with
 * witness cosignatures) at `GET /v1/checkpoints/latest/note` and `GET /v1/checkpoints/{size}/note`,
 * as `text/plain; charset=utf-8` (built by `server/notes.ts`), and the table set behind the latest
 * checkpoint for auditing witnesses, `GET /v1/checkpoints/latest/tables`.
 * @module
 */
import { ErrorCode, ProofKVError } from '../../src/index.js';
import { send as sendWire } from '../codec.js';
import type { AppContext } from '../context.js';
import { HttpError } from '../errors.js';
import { queryOf } from '../keys.js';
import { errors } from '../openapi.js';
import type { RouteDef } from '../route_table.js';

const TEXT = 'text/plain; charset=utf-8';
const noteResponse = { '200': { description: 'The signed checkpoint note, with the cosignatures the node holds for it', content: { 'text/plain': { schema: { type: 'string' } } } } };

/** Note routes; empty when the node has no note signer. */
export function noteRoutes(ctx: AppContext): RouteDef[] {
  const notes = ctx.notes;
  if (!notes) return [];
  const send = (res: Parameters<RouteDef['handler']>[1], size?: number) => {
    let text: string;
    try {
      text = notes.note(size);
    } catch (err) {
      if (err instanceof ProofKVError && (err.code === ErrorCode.CHECKPOINT_UNAVAILABLE || err.code === ErrorCode.INVALID_ARGUMENT)) throw new HttpError('NOT_FOUND', err.message);
      throw err;
    }
    res.status(200).setHeader('Content-Type', TEXT);
    res.end(text);
  };
  const { db } = ctx;
  return [
    {
      method: 'get',
      path: '/v1/checkpoints/latest/tables',
      role: 'read',
      body: 'none',
      name: 'checkpoint_tables',
      doc: {
        summary: 'The table set behind the latest checkpoint, for auditors',
        description: 'The latest checkpoint, the head it ends (size index + 1), its RFC 9162 inclusion path there, and the descriptors (docs/proofs.md §8.2) its MasterRoot commits to, in read order (docs/witness.md, auditing witness).',
        responses: { '200': { description: '{ checkpoint, head, inclusion, descriptors: [{ level, position, smallest, largest, entryCount, tableRoot }] }', content: { 'application/json': { schema: { type: 'object' } }, 'application/cbor': { schema: { type: 'object' } } } }, ...errors(401, 403, 404) },
      },
      handler(req, res) {
        queryOf(res).only([]);
        let t;
        try {
          t = db.checkpointTables();
        } catch (err) {
          if (err instanceof ProofKVError && err.code === ErrorCode.CHECKPOINT_UNAVAILABLE) throw new HttpError('NOT_FOUND', err.message);
          throw err;
        }
        const c = t.checkpoint;
        sendWire(req, res, {
          checkpoint: { index: c.index, seq: c.seq, masterRoot: c.masterRoot, prevCheckpointHash: c.prevCheckpointHash, time: c.time, signerSetHash: c.signerSetHash },
          head: { size: t.head.size, root: t.head.root },
          inclusion: t.inclusion,
          descriptors: t.descriptors.map((d) => ({ level: d.level, position: d.position, smallest: d.smallest, largest: d.largest, entryCount: d.entryCount, tableRoot: d.tableRoot })),
        });
      },
    },
    {
      method: 'get',
      path: '/v1/checkpoints/latest/note',
      role: 'read',
      body: 'none',
      name: 'checkpoint_note_latest',
      doc: { summary: 'Latest checkpoint as a signed note', description: 'C2SP tlog-checkpoint: origin, size, base64 root; the node\'s note signature and witness cosignatures (docs/witness.md).', responses: { ...noteResponse, ...errors(401, 403, 404) } },
      handler(_req, res) {
        queryOf(res).only([]);
        send(res);
      },
    },
    {
      method: 'get',
      path: '/v1/checkpoints/:size/note',
      role: 'read',
      body: 'none',
      name: 'checkpoint_note',
      doc: {
        summary: 'Checkpoint note by log size',
        description: 'The signed note of the log head of `size` (1 <= size <= the latest size).',
        parameters: [{ name: 'size', in: 'path', required: true, description: 'Log size, from 1', schema: { type: 'integer', minimum: 1 } }],
        responses: { ...noteResponse, ...errors(400, 401, 403, 404) },
      },
      handler(req, res) {
        queryOf(res).only([]);
        const raw = req.params.size;
        if (typeof raw !== 'string' || !/^[1-9][0-9]{0,15}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
          throw new HttpError('INVALID_ARGUMENT', 'log size must be a decimal integer from 1');
        }
        send(res, Number(raw));
      },
    },
  ];
}
