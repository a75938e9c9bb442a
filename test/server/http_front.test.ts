/**
 * The light front (server/http_front.ts) against express alone: the same requests, sent to the
 * node's listener and to a second server running only the express app over the same node, must get
 * the same status, headers and body — hostile and malformed ones above all. And the front must
 * really serve the hot routes itself (express's app is not entered for them).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProofNode } from '../../server/node.js';
import type { Express } from 'express';
import { MAX_HEADER_BYTES } from '../../server/node.js';
import { call, json, pct, startLocalNode } from './harness.js';

const R = 'front-read-token';
const W = 'front-write-token';
const A = 'front-admin-token';

/** Headers that differ between two servers or two moments by nature. */
const VOLATILE = new Set(['date', 'connection', 'keep-alive']);

interface Raw {
  status: number;
  headers: Headers;
  raw: Buffer;
}

/** One request, the answer unparsed (a HEAD answer has a JSON type and no body). */
async function send(base: string, method: string, p: string, init: { body?: Uint8Array | string; headers?: Record<string, string>; token?: string } = {}): Promise<Raw> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const r = await fetch(base + p, { method, headers, body: init.body, signal: AbortSignal.timeout(20_000) });
  return { status: r.status, headers: r.headers, raw: Buffer.from(await r.arrayBuffer()) };
}

function headersOf(r: Raw): Record<string, string> {
  const out: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    if (!VOLATILE.has(k)) out[k] = v;
  });
  return out;
}

interface Case {
  name: string;
  method: string;
  path: string;
  body?: Uint8Array | string;
  headers?: Record<string, string>;
  token?: string;
}

describe('the light front answers exactly as express does', () => {
  let node: ProofNode;
  let expressOnly: http.Server;
  let expressUrl: string;
  let entered = 0;

  beforeAll(async () => {
    node = await startLocalNode(undefined, undefined, {
      tokens: [
        { token: R, role: 'read' },
        { token: W, role: 'write' },
        { token: A, role: 'admin' },
      ],
    });
    // Count the requests that enter express (its app calls app.handle for each).
    const app = node.built.app as Express & { handle: (...a: unknown[]) => unknown };
    const handle = app.handle.bind(app);
    app.handle = (...a: unknown[]) => {
      entered++;
      return handle(...a);
    };
    expressOnly = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES }, app);
    await new Promise<void>((resolve) => expressOnly.listen(0, '127.0.0.1', resolve));
    expressUrl = `http://127.0.0.1:${(expressOnly.address() as AddressInfo).port}`;
    // A key with two versions and a tombstoned key, then a checkpoint so proofs have something to prove.
    for (const [k, v] of [['k', 'one'], ['k', 'two'], ['gone', 'x']]) {
      expect((await call(node.url, 'PUT', `/v1/kv/${k}`, { body: v, headers: { 'content-type': 'application/octet-stream' }, token: W })).status).toBe(200);
    }
    expect((await call(node.url, 'DELETE', '/v1/kv/gone', { token: W })).status).toBe(200);
    expect((await call(node.url, 'POST', '/v1/checkpoints', { token: A })).status).toBe(200);
  }, 60_000);
  afterAll(async () => {
    await new Promise((r) => expressOnly?.close(r));
    await node?.shutdown('test');
  });

  const octet = { 'content-type': 'application/octet-stream' };
  const cases: Case[] = [
    { name: 'GET json', method: 'GET', path: '/v1/kv/k', token: R },
    { name: 'GET cbor', method: 'GET', path: '/v1/kv/k', token: R, headers: { accept: 'application/cbor' } },
    { name: 'GET raw value', method: 'GET', path: '/v1/kv/k', token: R, headers: { accept: 'application/octet-stream' } },
    { name: 'GET an older version', method: 'GET', path: '/v1/kv/k?version=1', token: R },
    { name: 'GET serializable, trailing slash', method: 'GET', path: '/v1/kv/k/?consistency=serializable', token: R },
    { name: 'GET base64url key', method: 'GET', path: '/v1/kv/aw?keyEncoding=base64url', token: R },
    { name: 'GET percent-escaped key', method: 'GET', path: `/v1/kv/${pct('k')}`, token: R },
    { name: 'GET absent key', method: 'GET', path: '/v1/kv/nothing', token: R },
    { name: 'GET deleted key', method: 'GET', path: '/v1/kv/gone', token: R },
    { name: 'GET without a token', method: 'GET', path: '/v1/kv/k' },
    { name: 'GET with an unknown token', method: 'GET', path: '/v1/kv/k', token: 'not-a-token' },
    { name: 'GET with a malformed Authorization', method: 'GET', path: '/v1/kv/k', headers: { authorization: 'Basic abc' } },
    { name: 'GET unknown query parameter', method: 'GET', path: '/v1/kv/k?nope=1', token: R },
    { name: 'GET repeated query parameter', method: 'GET', path: '/v1/kv/k?version=1&version=2', token: R },
    { name: 'GET bad version', method: 'GET', path: '/v1/kv/k?version=-1', token: R },
    { name: 'GET bad consistency', method: 'GET', path: '/v1/kv/k?consistency=maybe', token: R },
    { name: 'GET malformed escape', method: 'GET', path: '/v1/kv/%zz', token: R },
    { name: 'GET bad base64url key', method: 'GET', path: '/v1/kv/a=b?keyEncoding=base64url', token: R },
    { name: 'GET key too large', method: 'GET', path: `/v1/kv/${'a'.repeat(65537)}`, token: R },
    { name: 'GET empty key', method: 'GET', path: '/v1/kv/', token: R },
    { name: 'GET bad ProofKV-Min-Head', method: 'GET', path: '/v1/kv/k', token: R, headers: { 'proofkv-min-head': 'x' } },
    { name: 'HEAD', method: 'HEAD', path: '/v1/kv/k', token: R },
    { name: 'OPTIONS preflight', method: 'OPTIONS', path: '/v1/kv/k' },
    { name: 'POST on a key: 405', method: 'POST', path: '/v1/kv/k', token: W },
    { name: 'PATCH on a key: 405', method: 'PATCH', path: '/v1/kv/k', token: W },
    { name: 'proof json', method: 'GET', path: '/v1/kv/k/proof', token: R },
    { name: 'proof cbor, format 1', method: 'GET', path: '/v1/kv/k/proof?proofFormat=1', token: R, headers: { accept: 'application/cbor' } },
    { name: 'proof of absence', method: 'GET', path: '/v1/kv/nothing/proof', token: R },
    { name: 'proof bad format', method: 'GET', path: '/v1/kv/k/proof?proofFormat=3', token: R },
    { name: 'proof without a token', method: 'GET', path: '/v1/kv/k/proof' },
    { name: 'PUT on a proof: 405', method: 'PUT', path: '/v1/kv/k/proof', token: W, body: 'x', headers: octet },
    { name: 'PUT with a read token', method: 'PUT', path: '/v1/kv/k', token: R, body: 'x', headers: octet },
    { name: 'PUT failed condition', method: 'PUT', path: '/v1/kv/k?ifVersion=1', token: W, body: 'x', headers: octet },
    { name: 'PUT ifAbsent on a live key', method: 'PUT', path: '/v1/kv/k?ifAbsent=true', token: W, body: 'x', headers: octet },
    { name: 'PUT version not increasing', method: 'PUT', path: '/v1/kv/k?version=1', token: W, body: 'x', headers: octet },
    { name: 'PUT unsupported content type', method: 'PUT', path: '/v1/kv/k', token: W, body: 'x', headers: { 'content-type': 'text/plain' } },
    { name: 'PUT gzip body', method: 'PUT', path: '/v1/kv/k', token: W, body: 'x', headers: { ...octet, 'content-encoding': 'gzip' } },
    { name: 'PUT malformed JSON', method: 'PUT', path: '/v1/kv/k', token: W, ...json({ value: 1 }), body: '{"value":' },
    { name: 'PUT JSON with an unknown field', method: 'PUT', path: '/v1/kv/k', token: W, ...json({ valueUtf8: 'x', extra: 1 }) },
    { name: 'PUT value too large', method: 'PUT', path: '/v1/kv/k', token: W, body: new Uint8Array(5 * 1024 * 1024), headers: octet },
    { name: 'PUT body over the body limit', method: 'PUT', path: '/v1/kv/k', token: W, body: new Uint8Array(40 * 1024 * 1024), headers: octet },
    { name: 'DELETE with a read token', method: 'DELETE', path: '/v1/kv/k', token: R },
    { name: 'DELETE failed condition', method: 'DELETE', path: '/v1/kv/k?ifVersion=1', token: W },
    { name: 'DELETE with a query it does not take', method: 'DELETE', path: '/v1/kv/k?version=9', token: W },
    { name: 'batch without a token', method: 'POST', path: '/v1/batch', ...json({ ops: [] }) },
    { name: 'batch malformed', method: 'POST', path: '/v1/batch', token: W, ...json({}), body: '[1,' },
    { name: 'batch nested too deep', method: 'POST', path: '/v1/batch', token: W, ...json({}), body: '['.repeat(64) },
    { name: 'batch failed condition', method: 'POST', path: '/v1/batch', token: W, ...json({ ops: [{ op: 'put', key: 'aw', valueUtf8: 'x', ifVersion: 1 }] }) },
    { name: 'batch wrong media type', method: 'POST', path: '/v1/batch', token: W, body: 'x', headers: octet },
    { name: 'GET on batch: 405', method: 'GET', path: '/v1/batch', token: R },
  ];

  it.each(cases)('$name', async (c) => {
    const init = { body: c.body, headers: c.headers, token: c.token };
    const viaFront = await send(node.url, c.method, c.path, init);
    const viaExpress = await send(expressUrl, c.method, c.path, init);
    expect(viaFront.status).toBe(viaExpress.status);
    expect(headersOf(viaFront)).toEqual(headersOf(viaExpress));
    expect(viaFront.raw.toString('latin1')).toBe(viaExpress.raw.toString('latin1'));
  }, 60_000);

  it('successful writes answer alike (a version each), and the metrics label them by route', async () => {
    const a = await call(node.url, 'PUT', '/v1/kv/fresh-a', { body: 'v', headers: octet, token: W });
    const b = await call(expressUrl, 'PUT', '/v1/kv/fresh-b', { body: 'v', headers: octet, token: W });
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(Object.keys(a.body).sort()).toEqual(Object.keys(b.body).sort());
    expect(a.headers.get('content-type')).toBe(b.headers.get('content-type'));
    const batch = await call(node.url, 'POST', '/v1/batch', { token: W, ...json({ ops: [{ op: 'put', key: 'YmF0Y2g', valueUtf8: 'x' }] }) });
    expect(batch.status).toBe(200);
    const del = await call(node.url, 'DELETE', '/v1/kv/fresh-a', { token: W });
    expect(del.status).toBe(200);
    const metrics = (await call(node.url, 'GET', '/metrics', { token: A })).body as string;
    for (const [method, route] of [['PUT', 'kv_put'], ['GET', 'kv_get'], ['DELETE', 'kv_delete'], ['GET', 'kv_proof'], ['POST', 'batch']]) {
      expect(metrics).toMatch(new RegExp(`proofkv_http_request_duration_seconds_count\\{method="${method}",route="${route}",status="200"\\} [1-9]`));
    }
    expect(metrics).toMatch(/proofkv_refused_total\{reason="unauthenticated"\} [1-9]/);
  }, 60_000);

  it('serves the hot routes without entering express, and hands everything else to it', async () => {
    const before = entered;
    for (const p of ['/v1/kv/k', '/v1/kv/k/proof', '/v1/kv/nothing']) await send(node.url, 'GET', p, { token: R });
    await send(node.url, 'PUT', '/v1/kv/k?ifVersion=1', { body: 'x', headers: octet, token: W });
    await send(node.url, 'DELETE', '/v1/kv/k?ifVersion=1', { token: W });
    await send(node.url, 'POST', '/v1/batch', { token: W, ...json({ ops: [] }) });
    expect(entered).toBe(before);
    for (const [m, p] of [['HEAD', '/v1/kv/k'], ['OPTIONS', '/v1/kv/k'], ['GET', '/v1/kv/'], ['GET', '/v1/kv/k/history'], ['GET', '/v1/status'], ['POST', '/v1/kv/k']]) {
      await send(node.url, m, p, { token: A });
    }
    expect(entered).toBe(before + 6);
  }, 60_000);
});
