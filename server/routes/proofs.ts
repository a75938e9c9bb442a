/**
 * Proofs and history: `GET /v1/kv/{key}/proof` (a get proof against the latest checkpoint) and
 * `GET /v1/kv/{key}/history` (versions oldest first, optionally with a history proof).
 *
 * A history `cursor` is opaque to clients: base64url of `h1:<next minVersion>`.
 * @module
 */
import { proofCodecs } from '../../proofs/lsm_encoding.js';
import { inTimeWindow, type TimeWindow } from '../../proofs/lsm_time.js';
import { MAX_VERSION } from '../../src/keys.js';
import type { ProofDB } from '../../src/index.js';
import type { Request, Response } from 'express';
import { answerOf, fromBase64Url, send, sendAnswer, toBase64Url, type Wire } from '../codec.js';
import { keyRequestOf, type KeyCore } from './key_request.js';
import { entryWire, type AppContext } from '../context.js';
import { HttpError } from '../errors.js';
import { keyOf, queryOf, type Query } from '../keys.js';
import { consistencyParam, errors, keyEncodingParam, keyParam, ok, queryParam } from '../openapi.js';
import type { RouteDef } from '../route_table.js';

/** Most history entries in one page. */
export const MAX_HISTORY_LIMIT = 1000;

/** The opaque history cursor for continuing at `minVersion`. */
export function historyCursor(minVersion: number): string {
  return toBase64Url(new TextEncoder().encode(`h1:${minVersion}`));
}

/** The `minVersion` of a history cursor; `400 INVALID_ARGUMENT` if it is not one. */
export function parseHistoryCursor(c: string): number {
  const text = new TextDecoder().decode(fromBase64Url(c, 'cursor'));
  const m = /^h1:([0-9]{1,16})$/.exec(text);
  const n = m ? Number(m[1]) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new HttpError('INVALID_ARGUMENT', 'cursor is not a history cursor');
  return n;
}

/**
 * The `proofFormat` query parameter of the proof routes: 2 (default) for the compact encoding, 1
 * for the text-keyed one that servers sent before it (docs/proofs.md §8.10, docs/http-api.md).
 */
export const proofFormatParam = queryParam(
  'proofFormat',
  'With a proof: its encoding, `2` (default: compact, integer map keys) or `1` (text map keys, what servers sent before format 2; docs/proofs.md §8.10)',
  { type: 'integer', enum: [1, 2] },
);

/** The proof format a request asks for (`proofFormat`, default 2); `400 INVALID_ARGUMENT` outside 1..2 or without a proof. */
export function proofFormatOfQuery(q: Query, withProof = true): 1 | 2 {
  if (q.has('proofFormat') && !withProof) throw new HttpError('INVALID_ARGUMENT', 'proofFormat needs proof=true');
  return q.int('proofFormat', 1, 2, 2) as 1 | 2;
}

/** A proven scan page as `GET /v1/kv?proof=true` asks for it. */
export interface ScanPageRequest {
  start: Uint8Array;
  end?: Uint8Array;
  limit: number;
  includeTombstones: boolean;
  edges: boolean;
  checkpoint?: number;
  /** The proof's encoding (`proofFormat`). */
  format: 1 | 2;
}

/**
 * Sends a proven scan page (docs/http-api.md): the entries of the latest checkpoint with a scan
 * proof of exactly the echoed `start`, `end` and `limit`. When the values pass the page's byte
 * budget the limit is halved (each page still covers at least one key), so `limit` may come back
 * smaller than asked. `cursor` is the proof's bound: the next page asks for keys after it.
 */
export async function sendScanPage(ctx: AppContext, req: Request, res: Response, r: ScanPageRequest): Promise<void> {
  const { db, metrics, limits } = ctx;
  let limit = r.limit;
  const page = () => db.scanWithProof({ start: r.start, end: r.end, limit, includeTombstones: r.includeTombstones, edges: r.edges, checkpoint: r.checkpoint });
  let p = await page();
  const bytes = () => p.entries.reduce((n, e) => n + e.value.length, 0);
  while (limit > 1 && p.entries.length > 1 && bytes() > limits.maxPageBytes) {
    limit = Math.floor(limit / 2);
    p = await page();
  }
  metrics.reads.inc({ op: 'scan_proof' });
  send(req, res, {
    items: p.entries.map((e) => entryWire(e)),
    cursor: p.proof.bound ? toBase64Url(p.proof.bound) : undefined,
    start: r.start,
    end: r.end,
    limit,
    proof: proofCodecs(r.format).scan.encodeTrusted(p.proof),
  });
}

/** The core of `GET /v1/kv/{key}/proof`, shared by its HTTP route and the stream. */
export function proofCore(ctx: AppContext): KeyCore {
  const { db, metrics } = ctx;
  return async (r) => {
    const q = r.query;
    q.only(['version', 'checkpoint', 'edges', 'keyEncoding', 'proofFormat']);
    const format = proofFormatOfQuery(q);
    const version = q.int('version', 0, MAX_VERSION, undefined, 'INVALID_VERSION');
    const checkpoint = q.int('checkpoint', 0, MAX_VERSION, undefined);
    if (r.beforeRead) await r.beforeRead();
    const p = await db.getWithProof(r.key, { version, checkpoint, edges: q.flag('edges') });
    metrics.reads.inc({ op: 'proof' });
    return answerOf(r.accept === 'cbor' ? 'cbor' : 'json', {
      entry: p.entry ? entryWire(p.entry) : undefined,
      proof: proofCodecs(format).get.encodeTrusted(p.proof),
      cosignatures: ctx.notes?.cosignatureLines(p.proof.certificate.head),
    });
  };
}

/** Proof and history routes. */
export function proofRoutes(ctx: AppContext): RouteDef[] {
  const { db, metrics, limits } = ctx;
  const proofOf = proofCore(ctx);

  const proof: RouteDef = {
    method: 'get',
    path: '/v1/kv/:key/proof',
    role: 'read',
    body: 'none',
    name: 'kv_proof',
    doc: {
      summary: 'Read with a proof',
      description:
        'The newest entry at or below `version` at the latest checkpoint, with a get proof (`getProofCodec`, format `proofFormat`). Without `entry`, the proof proves absence. ' +
        'Writes after the checkpoint are covered from the next one on.',
      parameters: [
        keyParam,
        keyEncodingParam,
        queryParam('version', 'Newest entry at or below this version, 0 .. 2^53-1 (default latest)', { type: 'integer', minimum: 0 }),
        queryParam('checkpoint', 'Checkpoint index; only the latest is served', { type: 'integer', minimum: 0 }),
        queryParam('edges', 'Also prove the first or last entry of every consulted table that does not cover the key (edge proofs, docs/proofs.md §8.12); verify with `edges: true`', { type: 'boolean' }),
        proofFormatParam,
      ],
      responses: { ...ok('GetProofResponse', 'The entry (if any) and the proof'), ...errors(400, 401, 403, 404, 413) },
    },
    async handler(req, res) {
      sendAnswer(res, await proofOf(keyRequestOf(req, res)));
    },
  };

  const history: RouteDef = {
    method: 'get',
    path: '/v1/kv/:key/history',
    role: 'read',
    body: 'none',
    name: 'kv_history',
    doc: {
      summary: 'Version history',
      description:
        'Versions in [`min`, `max`], oldest first, tombstones included; at most `limit` and about 4 MiB of values per page, continue with `nextCursor`. ' +
        'With `proof=true` the entries are those of the latest checkpoint, with a history proof (`historyProofCodec`) of exactly the echoed ' +
        '`minVersion`, `maxVersion` and `limit`.',
      parameters: [
        keyParam,
        keyEncodingParam,
        queryParam('min', 'Lowest version, inclusive (default 0)', { type: 'integer', minimum: 0 }),
        queryParam('max', 'Highest version, inclusive (default 2^53-1)', { type: 'integer', minimum: 0 }),
        queryParam('limit', `Entries per page, 1 .. ${MAX_HISTORY_LIMIT} (default 100)`, { type: 'integer', minimum: 1, maximum: MAX_HISTORY_LIMIT }),
        queryParam('cursor', 'The `nextCursor` of the previous page', { type: 'string' }),
        queryParam('since', 'Only versions committed at or after this time: ms since the epoch or ISO 8601 (docs/http-api.md § Commit times)', { type: 'string' }),
        queryParam('until', 'Only versions committed at or before this time: ms since the epoch or ISO 8601', { type: 'string' }),
        queryParam('proof', 'Include a history proof', { type: 'boolean' }),
        queryParam('checkpoint', 'With proof: checkpoint index; only the latest is served', { type: 'integer', minimum: 0 }),
        queryParam('edges', 'With proof: also prove the first or last entry of every consulted table that does not cover the key (edge proofs, docs/proofs.md §8.12); verify with `edges: true`', { type: 'boolean' }),
        proofFormatParam,
        consistencyParam,
      ],
      responses: { ...ok('HistoryResponse', 'A page of history'), ...errors(400, 401, 403, 404, 413) },
    },
    async handler(req, res) {
      const q = queryOf(res);
      q.only(['min', 'max', 'limit', 'cursor', 'since', 'until', 'proof', 'checkpoint', 'edges', 'keyEncoding', 'consistency', 'proofFormat']);
      const key = keyOf(res);
      let min = q.int('min', 0, MAX_VERSION, 0, 'INVALID_VERSION')!;
      const max = q.int('max', 0, MAX_VERSION, MAX_VERSION, 'INVALID_VERSION')!;
      let limit = q.int('limit', 1, MAX_HISTORY_LIMIT, 100)!;
      const cursor = q.text('cursor');
      if (cursor !== undefined) min = Math.max(min, parseHistoryCursor(cursor));
      const withProof = q.flag('proof');
      const checkpoint = q.int('checkpoint', 0, MAX_VERSION, undefined);
      if (checkpoint !== undefined && !withProof) throw new HttpError('INVALID_ARGUMENT', 'checkpoint needs proof=true');
      const edges = q.flag('edges');
      if (edges && !withProof) throw new HttpError('INVALID_ARGUMENT', 'edges needs proof=true');
      const format = proofFormatOfQuery(q, withProof);
      const window: TimeWindow = { since: q.time('since'), until: q.time('until') };
      if (window.since !== undefined && window.until !== undefined && window.since > window.until) {
        throw new HttpError('INVALID_ARGUMENT', `since ${window.since} is after until ${window.until}`);
      }
      const timed = window.since !== undefined || window.until !== undefined;
      const consistency = q.consistency();
      if (withProof && q.has('consistency')) throw new HttpError('INVALID_ARGUMENT', 'consistency applies to plain reads; a proof answers from the latest certified checkpoint');
      if (!withProof) await ctx.writePath.readBarrier(consistency);
      if (min > max) {
        if (cursor !== undefined) {
          // A cursor past the range: the history is complete.
          send(req, res, { entries: [], minVersion: min, maxVersion: max, limit });
          return;
        }
        throw new HttpError('INVALID_VERSION', `min ${min} exceeds max ${max}`);
      }
      // A time window starts at the newest version committed before `since` (proven outside the
      // window, docs/proofs.md §8.12); the client accepts a page that starts there.
      const askedMin = min;
      if (window.since !== undefined) min = (await versionBefore(db, key, min, max, window.since)) ?? min;
      // The page, cut by the byte budget (the current history bounds the checkpoint's: versions
      // are append-only, so the checkpoint's entries in the range are a prefix of these).
      const current = await db.getVersionHistory(key, { minVersion: min, maxVersion: max, limit: limit + 1 });
      let bytes = 0;
      let fit = 0;
      for (const e of current) {
        if (fit >= limit || (fit > 0 && bytes + e.value.length > limits.maxPageBytes)) break;
        bytes += e.value.length;
        fit++;
      }
      if (!withProof) {
        metrics.reads.inc({ op: 'history' });
        const page = current.slice(0, fit);
        // With `until`, a version committed after it ends the history.
        const more = current.length > fit && !(window.until !== undefined && page.some((e) => e.time > window.until!));
        const body: { [k: string]: Wire } = {
          entries: page.filter((e) => inTimeWindow(e.time, window)).map((e) => entryWire(e)),
          nextCursor: more ? historyCursor(page[page.length - 1].version + 1) : undefined,
          minVersion: min,
          maxVersion: max,
          limit,
        };
        send(req, res, body);
        return;
      }
      if (fit > 0 && fit < limit && current.length > fit) limit = fit;
      let r = await db.getVersionHistoryWithProof(key, { minVersion: min, maxVersion: max, limit, checkpoint, edges });
      if (min > askedMin && (r.entries.length === 0 || r.entries[0].time >= window.since!)) {
        // The boundary version is newer than the checkpoint: prove the page from the asked version.
        min = askedMin;
        r = await db.getVersionHistoryWithProof(key, { minVersion: min, maxVersion: max, limit, checkpoint, edges });
      }
      metrics.reads.inc({ op: 'history_proof' });
      const ended = window.until !== undefined && r.entries.some((e) => e.time > window.until!);
      send(req, res, {
        entries: (timed ? r.entries.filter((e) => inTimeWindow(e.time, window)) : r.entries).map((e) => entryWire(e)),
        nextCursor: r.nextMinVersion !== undefined && !ended ? historyCursor(r.nextMinVersion) : undefined,
        minVersion: min,
        maxVersion: max,
        limit,
        proof: proofCodecs(format).history.encodeTrusted(r.proof),
        cosignatures: ctx.notes?.cosignatureLines(r.proof.certificate.head),
      });
    },
  };

  return [proof, history];
}

/**
 * The newest version of `key` in [min, max] committed before `since` (the current history, read
 * in pages of 1000), or undefined when there is none. Times never decrease with the version, so
 * the scan stops at the first version committed at or after `since`.
 */
async function versionBefore(db: ProofDB, key: Uint8Array, min: number, max: number, since: number): Promise<number | undefined> {
  let found: number | undefined;
  for (let from = min; from <= max; ) {
    const page = await db.getVersionHistory(key, { minVersion: from, maxVersion: max, limit: 1000 });
    for (const e of page) {
      if (e.time >= since) return found;
      found = e.version;
    }
    if (page.length < 1000) return found;
    from = page[page.length - 1].version + 1;
  }
  return found;
}
