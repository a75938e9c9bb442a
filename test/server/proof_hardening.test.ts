/**
 * Issue 8 through a real `proofkv serve` process: the edge-proof flag of the proof routes
 * (docs/proofs.md §8.12), the `proofFormat` parameter (§8.10: compact by default, text-keyed on
 * request), and CBOR request bodies built to make a decoder do unbounded work
 * (value-sharing tags, indefinite lengths, deep nesting), which get a 400 and change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getProofCodec,
  getProofCodecV1,
  historyProofCodec,
  historyProofCodecV1,
  proofFormatOf,
  scanProofCodec,
  scanProofCodecV1,
  toHex,
  verifyGetProof,
  verifyHistoryProof,
  type TrustPolicy,
} from '../../proofs/index.js';
import { sharingBomb } from '../proofs/cbor_writer.js';
import { call, json, startServer, unb64, type ServerProc } from './harness.js';

let s: ServerProc;
let trust: TrustPolicy;
const te = new TextEncoder();
const req = (method: string, p: string, init?: Parameters<typeof call>[3]) => call(s.url, method, p, init);

beforeAll(async () => {
  // Only the checkpoints below: the layout is built by them, and the proofs compared below must
  // not see the head move between two requests (an automatic checkpoint did so once in CI).
  s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
  const st = await req('GET', '/v1/status');
  trust = { publicKeys: [unb64(st.body.publicKey)], quorum: 1 };
  // Four checkpoints. The first three's level-0 tables, all within [a1, m2], are compacted into
  // one level-1 table [a1, m2] at the third (a checkpoint leaves at most two level-0 tables, and
  // level 1 is empty, so level 0 goes into it: docs/engine.md § Checkpoints); the fourth leaves a
  // level-0 table [x1, x2] that covers none of the keys asked below but those.
  for (const k of ['a1', 'a2', 'a3']) expect((await req('PUT', `/v1/kv/${k}`, json({ valueUtf8: k }))).status).toBe(200);
  expect((await req('POST', '/v1/checkpoints')).status).toBe(200);
  for (const k of ['m1', 'm2', 'a2']) expect((await req('PUT', `/v1/kv/${k}`, json({ valueUtf8: `${k}-new` }))).status).toBe(200);
  expect((await req('POST', '/v1/checkpoints')).status).toBe(200);
  expect((await req('PUT', '/v1/kv/a3', json({ valueUtf8: 'a3-new' }))).status).toBe(200);
  expect((await req('POST', '/v1/checkpoints')).status).toBe(200);
  for (const k of ['x1', 'x2']) expect((await req('PUT', `/v1/kv/${k}`, json({ valueUtf8: k }))).status).toBe(200);
  expect((await req('POST', '/v1/checkpoints')).status).toBe(200);
});
afterAll(async () => {
  await s?.stop();
});

describe('proofFormat', () => {
  const hexOf = (x: unknown): unknown => JSON.parse(JSON.stringify(x, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v)));
  const routes = [
    { path: '/v1/kv/a2/proof', v1: getProofCodecV1, either: getProofCodec },
    { path: '/v1/kv/a2/history?proof=true', v1: historyProofCodecV1, either: historyProofCodec },
    { path: '/v1/kv?proof=true&prefix=a', v1: scanProofCodecV1, either: scanProofCodec },
  ];

  it('proofs are compact (format 2) by default; proofFormat=1 gives the same proof text-keyed, larger', async () => {
    for (const r of routes) {
      const sep = r.path.includes('?') ? '&' : '?';
      const compact = unb64((await req('GET', r.path)).body.proof);
      const explicit = unb64((await req('GET', `${r.path}${sep}proofFormat=2`)).body.proof);
      const textKeyed = unb64((await req('GET', `${r.path}${sep}proofFormat=1`)).body.proof);
      expect(proofFormatOf(compact), r.path).toBe(2);
      expect(explicit).toEqual(compact);
      expect(proofFormatOf(textKeyed), r.path).toBe(1);
      expect(compact.length, r.path).toBeLessThan(textKeyed.length);
      // The text-keyed bytes are the format-1 encoding of the same proof, and both codecs read them.
      expect(hexOf(r.v1.decode(textKeyed))).toEqual(hexOf(r.either.decode(compact)));
      expect(hexOf(r.either.decode(textKeyed))).toEqual(hexOf(r.either.decode(compact)));
      expect(() => r.v1.decode(compact)).toThrow(/want text/);
    }
    expect(verifyGetProof(getProofCodec.decode(unb64((await req('GET', '/v1/kv/a2/proof?proofFormat=1')).body.proof)), { key: te.encode('a2') }, { trust })).toMatchObject({ ok: true });
  });

  it('a format other than 1 or 2, or proofFormat without a proof: 400', async () => {
    for (const p of ['/v1/kv/a2/proof?proofFormat=3', '/v1/kv/a2/proof?proofFormat=0', '/v1/kv/a2/proof?proofFormat=x', '/v1/kv/a2/history?proofFormat=1', '/v1/kv?prefix=a&proofFormat=2']) {
      const r = await req('GET', p);
      expect(r.status, p).toBe(400);
      expect(r.body.code, p).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('edges flag', () => {
  it('GET /proof?edges=true carries edge windows that verify only with edges: true', async () => {
    let withEdgeWindows = 0;
    for (const k of ['a0', 'a1', 'a2', 'b', 'm1', 'z']) {
      const key = te.encode(k);
      const plain = getProofCodec.decode(unb64((await req('GET', `/v1/kv/${k}/proof`)).body.proof));
      const withEdges = getProofCodec.decode(unb64((await req('GET', `/v1/kv/${k}/proof?edges=true`)).body.proof));
      expect(verifyGetProof(withEdges, { key, edges: true }, { trust })).toMatchObject({ ok: true });
      expect(verifyGetProof(plain, { key }, { trust })).toMatchObject({ ok: true });
      // A read that consults no table outside its range needs no edge window: both forms agree.
      if (withEdges.body.windows.length === plain.body.windows.length) continue;
      withEdgeWindows++;
      expect(verifyGetProof(plain, { key, edges: true }, { trust })).toMatchObject({ ok: false, reason: 'MISSING_WINDOW' });
      expect(verifyGetProof(withEdges, { key }, { trust })).toMatchObject({ ok: false, reason: 'UNEXPECTED_ELEMENT' });
    }
    expect(withEdgeWindows).toBeGreaterThanOrEqual(3);
  });

  it('history: edges=true needs proof=true, and its proof verifies with edges: true', async () => {
    expect((await req('GET', '/v1/kv/a2/history?edges=true')).status).toBe(400);
    const r = await req('GET', '/v1/kv/m2/history?proof=true&edges=true');
    expect(r.status).toBe(200);
    const proof = historyProofCodec.decode(unb64(r.body.proof));
    const q = { key: te.encode('m2'), minVersion: r.body.minVersion, maxVersion: r.body.maxVersion, limit: r.body.limit, edges: true };
    expect(verifyHistoryProof(proof, q, { trust })).toMatchObject({ ok: true, entries: [{ version: 1 }] });
  });
});

describe('CBOR request bodies that would make a decoder do unbounded work', () => {
  it('are refused with 400 and write nothing', async () => {
    const bodies = [
      sharingBomb(100),
      new Uint8Array(50_000).fill(0x9f),
      new Uint8Array(50_000).fill(0x81),
      new Uint8Array([0xa1, 0x65, ...te.encode('value'), 0x5a, 0xff, 0xff, 0xff, 0xff, 0x00]),
    ];
    for (const body of bodies) {
      for (const p of ['/v1/kv/bomb', '/v1/batch']) {
        const r = await req(p === '/v1/batch' ? 'POST' : 'PUT', p, { body, headers: { 'content-type': 'application/cbor' } });
        expect(r.status, p).toBe(400);
        expect(r.body.code).toBe('BAD_REQUEST');
      }
    }
    expect((await req('GET', '/v1/kv/bomb')).status).toBe(404);
  });
});
