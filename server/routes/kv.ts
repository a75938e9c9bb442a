/**
 * Keys and values: `PUT`/`GET`/`DELETE /v1/kv/{key}` (writes with optional `ifVersion` /
 * `ifAbsent` conditions), `POST /v1/kv/{key}/append`, `POST /v1/batch` (atomic) and
 * `GET /v1/kv` (scan over latest live values with a cursor; with `proof=true`, a proven page).
 * @module
 */
import { compareBytes } from '../../proofs/bytes.js';
import { MAX_VERSION } from '../../src/keys.js';
import type { IteratorOptions } from '../../src/index.js';
import {
  answerOf,
  jsonAnswer,
  bodyType,
  bodyTypeOf,
  bytesField,
  field,
  fromBase64Url,
  parseStructuredBody,
  yieldToEventLoop,
  rawBody,
  send,
  sendAnswer,
  toBase64Url,
  toJsonWire,
  versionField,
  type Answer,
  type Wire,
} from '../codec.js';
import { entryWire, sessionOf, sessionOfHeaders, timeWire, type AppContext, type Limits } from '../context.js';
import { HttpError } from '../errors.js';
import { checkKeySize, keyOf, queryOf } from '../keys.js';
import { body, consistencyParam, errors, jsonCbor, keyEncodingParam, keyParam, ok, queryParam, sessionParams } from '../openapi.js';
import type { RouteDef } from '../route_table.js';
import { keySuccessor, prefixEnd } from '../../proofs/lsm_scan.js';
import { proofFormatOfQuery, proofFormatParam, sendScanPage } from './proofs.js';
import type { BatchCommandOp, CommandCondition, WriteCommand, WriteOutcome } from '../write_path.js';
import type { Query } from '../keys.js';
import { keyRequestOf, type KeyCore, type KeyRequest } from './key_request.js';

/** The label set of a counted GET (one object for every request). */
const GET_READ = { op: 'get' } as const;

/** Most operations in one batch. */
export const MAX_BATCH_OPS = 10_000;
/** Most items in one scan page. */
export const MAX_SCAN_LIMIT = 1000;

const writeResult = (o: WriteOutcome): Wire => {
  if (o.type !== 'put' && o.type !== 'delete' && o.type !== 'append') throw new Error('unexpected outcome');
  return { version: o.result.version, seq: o.result.seq, ...timeWire(o.result.time) };
};

/**
 * The JSON text of a single-key write's result: exactly what `JSON.stringify` of the
 * {@link answerOf} walk of `writeResult(o)` gives (same fields in the same order, integers in the
 * same form), written straight. It is every PUT's answer over the stream and HTTP, and the walk —
 * an object, its spread, `Object.entries`, a second object, then `JSON.stringify` — cost about
 * as much again as the text itself (bench/README.md § The next user-space CPU of a PUT).
 */
export function writeResultJson(o: WriteOutcome): string {
  if (o.type !== 'put' && o.type !== 'delete' && o.type !== 'append') throw new Error('unexpected outcome');
  const { version, seq, time } = o.result;
  // Integers print the same through a template as through JSON.stringify; anything else (never
  // expected) takes the generic path.
  if (!Number.isSafeInteger(version) || !Number.isSafeInteger(seq) || !Number.isSafeInteger(time)) return JSON.stringify(toJsonWire(writeResult(o)));
  const { timeIso } = timeWire(time);
  return timeIso === undefined ? `{"version":${version},"seq":${seq},"time":${time}}` : `{"version":${version},"seq":${seq},"time":${time},"timeIso":"${timeIso}"}`;
}

const CONDITION_DOC =
  ' With `ifVersion=N` only if the key\'s newest version is N (a tombstone\'s version matches; 0: never written), with `ifAbsent=true` only if it has ' +
  'no live version; otherwise `409 CONDITION_FAILED` with `currentVersion`, `absent` and `key` in the problem body, and nothing is written.';
const ifVersionParam = queryParam('ifVersion', 'Write only if the key\'s newest version (a tombstone\'s included) is this one; 0: never written', { type: 'integer', minimum: 0 });
const ifAbsentParam = queryParam('ifAbsent', 'Write only if the key has no live version (never written, or deleted)', { type: 'boolean' });

/** The `ifVersion` / `ifAbsent` query condition (at most one; `ifAbsent` only where `absentAllowed`). */
function queryCondition(q: Query, absentAllowed: boolean): CommandCondition {
  const ifVersion = q.int('ifVersion', 0, MAX_VERSION, undefined, 'INVALID_VERSION');
  const ifAbsent = absentAllowed && q.flag('ifAbsent');
  if (ifVersion !== undefined && ifAbsent) throw new HttpError('INVALID_ARGUMENT', 'give ifVersion or ifAbsent, not both');
  return ifVersion !== undefined ? { ifVersion } : ifAbsent ? { ifAbsent } : {};
}

/** The `ifVersion` / `ifAbsent` fields of a batch operation. */
function fieldCondition(op: Record<string, unknown>, at: string): CommandCondition {
  const v = field(op, 'ifVersion');
  const a = field(op, 'ifAbsent');
  if (a !== undefined && typeof a !== 'boolean') throw new HttpError('INVALID_ARGUMENT', `${at}.ifAbsent must be a boolean`);
  if (v !== undefined && a === true) throw new HttpError('INVALID_ARGUMENT', `${at}: give ifVersion or ifAbsent, not both`);
  if (v !== undefined) return { ifVersion: versionField(v, `${at}.ifVersion`, 0) };
  return a === true ? { ifAbsent: true } : {};
}

/** The cores of `GET`, `PUT` and `DELETE /v1/kv/{key}`, shared by their HTTP routes and the stream. */
export function kvCores(ctx: AppContext): { get: KeyCore; put: KeyCore; delete: KeyCore } {
  const { db, writePath, limits, metrics } = ctx;
  const checkValue = valueChecker(limits);

  /** The answer to a single-key write: its version and seq (`ProofKV-Replayed` on a replay). */
  const answerOne = (r: KeyRequest, outcome: WriteOutcome): Answer => {
    const a = r.accept === 'cbor' ? answerOf('cbor', writeResult(outcome)) : jsonAnswer(writeResultJson(outcome));
    if (outcome.replayed) a.headers = { 'ProofKV-Replayed': 'true', ...a.headers };
    return a;
  };

  /**
   * Checks a single-key write's request (`command`: its checks, then the command) and proposes it.
   * Not an async function: the answer follows the proposal's outcome by one promise hop, where
   * the `await`s of two nested async functions took two (each hop lets the Raft loop's own
   * continuation run first; docs/replication.md § Decisions). A check that fails rejects, as before.
   */
  const proposeOne = (r: KeyRequest, command: (r: KeyRequest) => WriteCommand): Promise<Answer> => {
    let proposed: Promise<WriteOutcome>;
    try {
      proposed = writePath.propose(command(r));
    } catch (err) {
      return Promise.reject(err);
    }
    return proposed.then((outcome) => answerOne(r, outcome));
  };

  const putCommand = (r: KeyRequest): WriteCommand => {
    const q = r.query;
    q.only(['version', 'keyEncoding', 'ifVersion', 'ifAbsent']);
    let version = q.int('version', 1, MAX_VERSION, undefined, 'INVALID_VERSION');
    const condition = queryCondition(q, true);
    const { value, fields } = valueBodyOf(r.header('content-type'), r.body, ['version'], checkValue);
    const bv = fields && field(fields, 'version');
    if (bv !== undefined) {
      const n = versionField(bv);
      if (version !== undefined && version !== n) throw new HttpError('INVALID_VERSION', `version ${n} in the body differs from version ${version} in the query`);
      version = n;
    }
    return { type: 'put', key: r.key, value, version, ...condition, session: sessionOfHeaders(r.header), time: Date.now() };
  };
  const put: KeyCore = (r) => proposeOne(r, putCommand);

  const get: KeyCore = async (r) => {
    const q = r.query;
    q.only(['version', 'keyEncoding', 'consistency']);
    const version = q.int('version', 0, MAX_VERSION, undefined, 'INVALID_VERSION');
    await writePath.readBarrier(q.consistency());
    if (r.beforeRead) await r.beforeRead();
    const e = await db.getWithVersion(r.key, version ?? MAX_VERSION);
    metrics.reads.inc(GET_READ);
    if (!e) throw new HttpError('NOT_FOUND', version === undefined ? 'key not found' : `key has no version at or below ${version}`);
    if (version === undefined && e.kind === 'delete') throw new HttpError('NOT_FOUND', `key was deleted at version ${e.version}`);
    if (r.accept === 'octet') {
      return {
        status: 200,
        headers: { 'ProofKV-Version': String(e.version), 'ProofKV-Seq': String(e.seq), 'ProofKV-Kind': e.kind, 'Content-Type': 'application/octet-stream', Vary: 'Accept' },
        body: Buffer.from(e.value.buffer, e.value.byteOffset, e.value.byteLength),
      };
    }
    return answerOf(r.accept, entryWire(e));
  };

  const deleteCommand = (r: KeyRequest): WriteCommand => {
    const q = r.query;
    q.only(['keyEncoding', 'ifVersion']);
    return { type: 'delete', key: r.key, ...queryCondition(q, false), session: sessionOfHeaders(r.header), time: Date.now() };
  };
  const del: KeyCore = (r) => proposeOne(r, deleteCommand);

  return { get, put, delete: del };
}

/** Passes a value through, or throws `413 VALUE_TOO_LARGE` past `limits.maxValueSize`. */
function valueChecker(limits: Limits): (v: Uint8Array) => Uint8Array {
  return (v) => {
    if (v.length > limits.maxValueSize) throw new HttpError('VALUE_TOO_LARGE', `value is ${v.length} bytes, limit ${limits.maxValueSize}`);
    return v;
  };
}

/**
 * The value of a `PUT`/append body of media type `contentType`: the raw bytes
 * (`application/octet-stream`), or `value` / `valueUtf8` of a JSON or CBOR object that may also
 * hold the `extra` fields (returned in `fields`). `checkValue` refuses a value over the limit.
 */
function valueBodyOf(
  contentType: string | string[] | undefined,
  raw: Uint8Array,
  extra: string[],
  checkValue: (v: Uint8Array) => Uint8Array,
): { value: Uint8Array; fields?: Record<string, unknown> } {
  const type = bodyTypeOf(contentType, ['octet', 'json', 'cbor']);
  if (type === 'octet') return { value: checkValue(raw) };
  const o = parseStructuredBody(type, raw);
  for (const k of Object.keys(o)) {
    if (k !== 'value' && k !== 'valueUtf8' && !extra.includes(k)) throw new HttpError('INVALID_ARGUMENT', `unknown field ${JSON.stringify(k.slice(0, 64))}`);
  }
  return { value: structuredValue(type, o, 'body', checkValue), fields: o };
}

/** `value` or `valueUtf8` of a JSON/CBOR object, checked by `checkValue`. */
function structuredValue(type: 'json' | 'cbor', o: Record<string, unknown>, what: string, checkValue: (v: Uint8Array) => Uint8Array): Uint8Array {
  const v = field(o, 'value');
  const t = field(o, 'valueUtf8');
  if (v !== undefined && t !== undefined) throw new HttpError('INVALID_ARGUMENT', `${what}: give value or valueUtf8, not both`);
  if (t !== undefined) {
    if (typeof t !== 'string') throw new HttpError('INVALID_ARGUMENT', `${what}: valueUtf8 must be a string`);
    return checkValue(new TextEncoder().encode(t));
  }
  if (v === undefined) throw new HttpError('INVALID_ARGUMENT', `${what}: value is missing`);
  return checkValue(bytesField(type, v, `${what}: value`));
}

/** Routes of keys and values. */
export function kvRoutes(ctx: AppContext): RouteDef[] {
  const { db, writePath, limits, metrics } = ctx;
  const cores = kvCores(ctx);
  const checkValue = valueChecker(limits);

  /** `value` or `valueUtf8` of a JSON/CBOR object. */
  const valueOf = (type: 'json' | 'cbor', o: Record<string, unknown>, what: string): Uint8Array => structuredValue(type, o, what, checkValue);

  /** Proposes a single-key write and answers with its version and seq (`ProofKV-Replayed` on a replay). */
  const proposeOne = async (req: Parameters<RouteDef['handler']>[0], res: Parameters<RouteDef['handler']>[1], cmd: WriteCommand): Promise<void> => {
    const outcome = await writePath.propose(cmd);
    if (outcome.replayed) res.setHeader('ProofKV-Replayed', 'true');
    send(req, res, writeResult(outcome));
  };

  const put: RouteDef = {
    method: 'put',
    path: '/v1/kv/:key',
    role: 'write',
    body: 'value',
    name: 'kv_put',
    doc: {
      summary: 'Write a value',
      description: 'Writes at the next version of the key, or at `version` (query or body), which must exceed the latest.' + CONDITION_DOC,
      parameters: [keyParam, keyEncodingParam, queryParam('version', 'Explicit version, 1 .. 2^53-1', { type: 'integer', minimum: 1 }), ifVersionParam, ifAbsentParam, ...sessionParams],
      requestBody: body(
        { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
        'PutBody',
      ),
      responses: { ...ok('WriteResult', 'The version and seq the write was given'), ...errors(400, 401, 403, 409, 413, 415, 421, 422, 503) },
    },
    async handler(req, res) {
      sendAnswer(res, await cores.put(keyRequestOf(req, res)));
    },
  };

  const get: RouteDef = {
    method: 'get',
    path: '/v1/kv/:key',
    role: 'read',
    body: 'none',
    name: 'kv_get',
    doc: {
      summary: 'Read a value',
      description:
        'The latest value (404 when absent or deleted), or with `version` the newest entry at or below it (a tombstone as `kind: "delete"`). ' +
        'With `Accept: application/octet-stream` the raw value, with headers `ProofKV-Version`, `ProofKV-Seq` and `ProofKV-Kind`.',
      parameters: [keyParam, keyEncodingParam, queryParam('version', 'Read the newest entry at or below this version, 0 .. 2^53-1', { type: 'integer', minimum: 0 }), consistencyParam],
      responses: {
        '200': {
          description: 'The entry',
          content: { ...jsonCbor('Entry'), 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
        },
        ...errors(400, 401, 403, 404, 413),
      },
    },
    async handler(req, res) {
      sendAnswer(res, await cores.get(keyRequestOf(req, res, true)));
    },
  };

  const del: RouteDef = {
    method: 'delete',
    path: '/v1/kv/:key',
    role: 'write',
    body: 'none',
    name: 'kv_delete',
    doc: {
      summary: 'Delete a key',
      description:
        'Writes a tombstone at the next version; history keeps it. With `ifVersion=N` only if the key\'s newest version is N; otherwise `409 CONDITION_FAILED` ' +
        'with `currentVersion`, `absent` and `key` in the problem body.',
      parameters: [keyParam, keyEncodingParam, ifVersionParam, ...sessionParams],
      responses: { ...ok('WriteResult', 'The version and seq of the tombstone'), ...errors(400, 401, 403, 409, 413, 421, 422, 503) },
    },
    async handler(req, res) {
      sendAnswer(res, await cores.delete(keyRequestOf(req, res)));
    },
  };

  const append: RouteDef = {
    method: 'post',
    path: '/v1/kv/:key/append',
    role: 'write',
    body: 'value',
    name: 'kv_append',
    doc: {
      summary: 'Append to a value',
      description:
        'Writes at the next version the key\'s newest live value (empty when absent or deleted) followed by the body\'s bytes, computed where the write ' +
        'is applied (after every write ordered before it). A result above the value size limit is `413 VALUE_TOO_LARGE` and writes nothing. ' +
        'Not idempotent: send a client session to make retries safe.' + CONDITION_DOC,
      parameters: [keyParam, keyEncodingParam, ifVersionParam, ifAbsentParam, ...sessionParams],
      requestBody: body({ 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } }, 'AppendBody'),
      responses: { ...ok('WriteResult', 'The version and seq the append was given'), ...errors(400, 401, 403, 409, 413, 415, 421, 422, 503) },
    },
    async handler(req, res) {
      const q = queryOf(res);
      q.only(['keyEncoding', 'ifVersion', 'ifAbsent']);
      const key = keyOf(res);
      const condition = queryCondition(q, true);
      const { value } = valueBodyOf(req.headers['content-type'], rawBody(req), [], checkValue);
      await proposeOne(req, res, { type: 'append', key, value, ...condition, session: sessionOf(req), time: Date.now() });
    },
  };

  const batch: RouteDef = {
    method: 'post',
    path: '/v1/batch',
    role: 'write',
    body: 'batch',
    name: 'batch',
    doc: {
      summary: 'Write a batch atomically',
      description:
        `Up to ${MAX_BATCH_OPS} puts, deletes and appends, applied all or none, in order. Later operations on a key see the versions (and values) of earlier ones. ` +
        'An operation may carry `ifVersion` (puts, deletes, appends) or `ifAbsent` (puts, appends); one failed condition fails the whole batch with ' +
        '`409 CONDITION_FAILED` (`index` in the problem body names the operation) and nothing is written.',
      parameters: [...sessionParams],
      requestBody: body({}, 'BatchBody'),
      responses: { ...ok('BatchResult', 'One result per operation, in order'), ...errors(400, 401, 403, 409, 413, 415, 421, 422, 503) },
    },
    async handler(req, res) {
      queryOf(res).only([]);
      const type = bodyType(req, ['json', 'cbor']) as 'json' | 'cbor';
      const o = parseStructuredBody(type, rawBody(req));
      // A large batch is work in stages; let other requests (health checks) in between them.
      await yieldToEventLoop();
      for (const k of Object.keys(o)) if (k !== 'ops') throw new HttpError('INVALID_ARGUMENT', `unknown field ${JSON.stringify(k.slice(0, 64))}`);
      const list = field(o, 'ops');
      if (!Array.isArray(list)) throw new HttpError('INVALID_ARGUMENT', 'ops must be an array');
      if (list.length > MAX_BATCH_OPS) throw new HttpError('PAYLOAD_TOO_LARGE', `a batch holds at most ${MAX_BATCH_OPS} operations, got ${list.length}`);
      const ops: BatchCommandOp[] = list.map((item: unknown, i): BatchCommandOp => {
        const at = `ops[${i}]`;
        if (item === null || typeof item !== 'object' || Array.isArray(item) || item instanceof Uint8Array) {
          throw new HttpError('INVALID_ARGUMENT', `${at} must be an object`);
        }
        const op = item as Record<string, unknown>;
        const kind = field(op, 'op');
        const key = bytesField(type, field(op, 'key'), `${at}.key`);
        checkKeySize(key, `${at}.key`);
        const allowed = kind === 'delete' ? ['op', 'key', 'ifVersion'] : kind === 'append' ? ['op', 'key', 'value', 'valueUtf8', 'ifVersion', 'ifAbsent'] : ['op', 'key', 'value', 'valueUtf8', 'version', 'ifVersion', 'ifAbsent'];
        if (kind !== 'put' && kind !== 'delete' && kind !== 'append') throw new HttpError('INVALID_ARGUMENT', `${at}.op must be "put", "delete" or "append"`);
        for (const k of Object.keys(op)) {
          if (!allowed.includes(k)) throw new HttpError('INVALID_ARGUMENT', `${at}: unknown field ${JSON.stringify(k.slice(0, 64))}`);
        }
        const condition = fieldCondition(op, at);
        if (kind === 'delete') return { op: 'delete', key, ...condition };
        const value = valueOf(type, op, at);
        if (kind === 'append') return { op: 'append', key, value, ...condition };
        const v = field(op, 'version');
        return v === undefined ? { op: 'put', key, value, ...condition } : { op: 'put', key, value, version: versionField(v, `${at}.version`), ...condition };
      });
      await yieldToEventLoop();
      const outcome = await writePath.propose({ type: 'batch', ops, session: sessionOf(req), time: Date.now() });
      if (outcome.type !== 'batch') throw new Error('unexpected outcome');
      if (outcome.replayed) res.setHeader('ProofKV-Replayed', 'true');
      send(req, res, { results: outcome.results.map((r) => ({ version: r.version, seq: r.seq, ...timeWire(r.time) })) });
    },
  };

  const scan: RouteDef = {
    method: 'get',
    path: '/v1/kv',
    role: 'read',
    body: 'none',
    name: 'kv_scan',
    doc: {
      summary: 'Scan latest values',
      description:
        'Latest live values in key order within `prefix`, `start` (inclusive) and `end` (exclusive). A page holds at most `limit` items and about ' +
        '4 MiB of values (always at least one item); continue with `cursor` while the response has one. ' +
        'With `proof=true` the page is that of the latest checkpoint, with a scan proof (`scanProofCodec`, docs/proofs.md §8.9.1) of exactly the echoed ' +
        '`start`, `end` and `limit` (keys covered, deleted ones included; halved while the values pass the byte budget); its `cursor` is the proof\'s bound, ' +
        'the page\'s last key.',
      parameters: [
        queryParam('prefix', 'Only keys with this prefix', { type: 'string' }),
        queryParam('start', 'Lower bound, inclusive', { type: 'string' }),
        queryParam('end', 'Upper bound, exclusive', { type: 'string' }),
        queryParam('limit', `Items per page, 1 .. ${MAX_SCAN_LIMIT} (default 100)`, { type: 'integer', minimum: 1, maximum: MAX_SCAN_LIMIT }),
        queryParam('cursor', 'The `cursor` of the previous page', { type: 'string' }),
        keyEncodingParam,
        queryParam('proof', 'Answer from the latest checkpoint with a scan proof', { type: 'boolean' }),
        queryParam('includeTombstones', 'With proof: also return keys whose newest version is a tombstone', { type: 'boolean' }),
        queryParam('edges', 'With proof: also prove the edge entries of consulted tables that do not overlap the range (docs/proofs.md §8.12)', { type: 'boolean' }),
        queryParam('checkpoint', 'With proof: checkpoint index; only the latest is served', { type: 'integer', minimum: 0 }),
        proofFormatParam,
        consistencyParam,
      ],
      responses: { ...ok('ScanPage', 'A page of items'), ...errors(400, 401, 403, 404, 413) },
    },
    async handler(req, res) {
      const q = queryOf(res);
      q.only(['prefix', 'start', 'end', 'limit', 'cursor', 'keyEncoding', 'proof', 'includeTombstones', 'edges', 'checkpoint', 'consistency', 'proofFormat']);
      const withProof = q.flag('proof');
      const consistency = q.consistency();
      if (withProof && q.has('consistency')) throw new HttpError('INVALID_ARGUMENT', 'consistency applies to plain reads; a proof answers from the latest certified checkpoint');
      const proofFlags = { includeTombstones: q.flag('includeTombstones'), edges: q.flag('edges'), checkpoint: q.int('checkpoint', 0, MAX_VERSION, undefined), format: proofFormatOfQuery(q, withProof) };
      if (!withProof && (proofFlags.includeTombstones || proofFlags.edges || proofFlags.checkpoint !== undefined)) {
        throw new HttpError('INVALID_ARGUMENT', 'includeTombstones, edges and checkpoint need proof=true');
      }
      const prefix = q.keyBytes('prefix', true);
      const start = q.keyBytes('start', true);
      const end = q.keyBytes('end', true);
      const limit = q.int('limit', 1, MAX_SCAN_LIMIT, 100)!;
      const cursorText = q.text('cursor');
      const cursor = cursorText === undefined ? undefined : fromBase64Url(cursorText, 'cursor');
      if (cursor && cursor.length === 0) throw new HttpError('INVALID_ARGUMENT', 'cursor is empty');
      if (cursor) checkKeySize(cursor, 'cursor');

      // Tightest lower and upper bounds.
      const lowers: { key: Uint8Array; inclusive: boolean }[] = [];
      if (prefix && prefix.length > 0) lowers.push({ key: prefix, inclusive: true });
      if (start && start.length > 0) lowers.push({ key: start, inclusive: true });
      if (cursor) lowers.push({ key: cursor, inclusive: false });
      const uppers: Uint8Array[] = [];
      const pe = prefix && prefix.length > 0 ? prefixEnd(prefix) : undefined;
      if (pe) uppers.push(pe);
      if (end && end.length > 0) uppers.push(end);
      const opts: IteratorOptions = {};
      let lower: { key: Uint8Array; inclusive: boolean } | undefined;
      for (const l of lowers) {
        const c = lower ? compareBytes(l.key, lower.key) : 1;
        if (!lower || c > 0 || (c === 0 && !l.inclusive)) lower = l;
      }
      if (lower) opts[lower.inclusive ? 'gte' : 'gt'] = lower.key;
      let upper: Uint8Array | undefined;
      for (const u of uppers) if (!upper || compareBytes(u, upper) < 0) upper = u;
      if (upper) opts.lt = upper;
      if (withProof) {
        if (upper && lower && compareBytes(lower.key, upper) >= 0) throw new HttpError('INVALID_ARGUMENT', 'the range is empty');
        const start = !lower ? new Uint8Array(0) : lower.inclusive ? lower.key : keySuccessor(lower.key);
        await sendScanPage(ctx, req, res, { start, end: upper, limit, ...proofFlags });
        return;
      }

      await writePath.readBarrier(consistency);
      const items: Wire[] = [];
      let bytes = 0;
      let last: Uint8Array | undefined;
      let more = false;
      if (!(upper && lower && compareBytes(lower.key, upper) >= 0)) {
        const it = db.iterator(opts);
        try {
          while (!more) {
            const chunk = await it.nextv(Math.min(limit + 1, 256));
            if (chunk.length === 0) break;
            for (const e of chunk) {
              if (items.length >= limit || (items.length > 0 && bytes + e.value.length > limits.maxPageBytes)) {
                more = true;
                break;
              }
              items.push(entryWire(e));
              bytes += e.value.length;
              last = e.key;
            }
          }
        } finally {
          it.close();
        }
      }
      metrics.reads.inc({ op: 'scan' });
      send(req, res, { items, cursor: more && last ? toBase64Url(last) : undefined });
    },
  };

  return [scan, batch, put, get, del, append];
}

export { prefixEnd };
