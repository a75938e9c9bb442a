/**
 * `GET /v1/kv?proof=true` against a real `proofkv serve`: the proven page is verifiable with the
 * echoed range and limit, the limit is halved until the page's values fit the byte budget (the
 * proof then covers exactly that many keys and the cursor is its bound), and the proof-only
 * parameters are refused without `proof=true`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanProofCodec } from '../../proofs/lsm_encoding.js';
import { verifyScanProof } from '../../proofs/lsm_scan.js';
import { b64, call, startServer, unb64, type ServerProc } from './harness.js';

let s: ServerProc;
let trust: { publicKeys: Uint8Array[]; quorum: number };
const te = new TextEncoder();
const td = new TextDecoder();

beforeAll(async () => {
  s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
  // Six values of 1 000 000 bytes: 6 MB, more than the 4 MiB page budget.
  for (let i = 0; i < 6; i++) {
    const r = await call(s.url, 'PUT', `/v1/kv/big${i}`, { body: new Uint8Array(1_000_000).fill(i), headers: { 'content-type': 'application/octet-stream' } });
    expect(r.status).toBe(200);
  }
  for (const k of ['small/a', 'small/b', 'small/c']) expect((await call(s.url, 'PUT', `/v1/kv/${k.replace('/', '%2F')}`, { body: 'v', headers: { 'content-type': 'application/octet-stream' } })).status).toBe(200);
  expect((await call(s.url, 'POST', '/v1/checkpoints')).status).toBe(200);
  const status = await call(s.url, 'GET', '/v1/status');
  trust = { publicKeys: [unb64(status.body.publicKey)], quorum: 1 };
});
afterAll(async () => {
  await s?.stop();
});

describe('GET /v1/kv?proof=true', () => {
  it('serves a page whose proof verifies with the echoed start, end and limit', async () => {
    const r = await call(s.url, 'GET', `/v1/kv?prefix=${b64('small/')}&keyEncoding=base64url&proof=true&limit=2`);
    expect(r.status).toBe(200);
    expect(r.body.items.map((i: { key: string }) => td.decode(unb64(i.key)))).toEqual(['small/a', 'small/b']);
    expect(td.decode(unb64(r.body.cursor))).toBe('small/b');
    const proof = scanProofCodec.decode(unb64(r.body.proof));
    const f = verifyScanProof(proof, { start: unb64(r.body.start), end: unb64(r.body.end), limit: r.body.limit }, { trust });
    expect(f.ok && f.entries.map((e) => td.decode(e.key))).toEqual(['small/a', 'small/b']);
    expect(td.decode(unb64(r.body.start))).toBe('small/');
    expect(td.decode(unb64(r.body.end))).toBe('small0');
    // The next page, after the cursor.
    const n = await call(s.url, 'GET', `/v1/kv?prefix=${b64('small/')}&keyEncoding=base64url&proof=true&limit=2&cursor=${r.body.cursor}`);
    expect(n.body.items.map((i: { key: string }) => td.decode(unb64(i.key)))).toEqual(['small/c']);
    expect(n.body.cursor).toBeUndefined();
    expect(td.decode(unb64(n.body.start))).toBe('small/b\0');
    const g = verifyScanProof(scanProofCodec.decode(unb64(n.body.proof)), { start: unb64(n.body.start), end: unb64(n.body.end), limit: 2 }, { trust });
    expect(g.ok).toBe(true);
  });

  it('halves the limit until the values fit the page budget, and the proof covers exactly that', async () => {
    const r = await call(s.url, 'GET', `/v1/kv?prefix=${b64('big')}&keyEncoding=base64url&proof=true&limit=10`);
    expect(r.status).toBe(200);
    expect(r.body.limit).toBe(2);
    expect(r.body.items).toHaveLength(2);
    expect(td.decode(unb64(r.body.cursor))).toBe('big1');
    const f = verifyScanProof(scanProofCodec.decode(unb64(r.body.proof)), { start: te.encode('big'), end: te.encode('bih'), limit: 2 }, { trust });
    expect(f.ok && f.keysCovered).toBe(2);
    // Verified with the asked limit instead, the cut page is refused: the client must use the echo.
    const wrong = verifyScanProof(scanProofCodec.decode(unb64(r.body.proof)), { start: te.encode('big'), end: te.encode('bih'), limit: 10 }, { trust });
    expect(wrong.ok ? 'accepted' : wrong.reason).toBe('SCAN_BOUND');
  });

  it('refuses proof-only parameters without proof=true, and an empty range', async () => {
    for (const q of ['includeTombstones=true', 'edges=true', 'checkpoint=0']) {
      const r = await call(s.url, 'GET', `/v1/kv?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.code, q).toBe('INVALID_ARGUMENT');
    }
    const empty = await call(s.url, 'GET', `/v1/kv?start=${b64('b')}&end=${b64('a')}&keyEncoding=base64url&proof=true`);
    expect(empty.status).toBe(400);
  });
});
