/**
 * The stream protocol (docs/stream-protocol.md) against real nodes over real sockets, through the
 * test client written from the spec (`stream_client.ts`), never the server's own codec:
 * every op answers what its HTTP route answers (status, meaningful headers, body) for successes
 * and errors; rights at the handshake and per request; hostile input answered or closing only its
 * own connection, writing nothing; back-pressure on a client that does not read; shutdown.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { decode as cborDecode } from 'cbor-x';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../server/config.js';
import type { ProofNode } from '../../server/node.js';
import { until } from '../cluster/in_process.js';
import { call, pct, startLocalNode, tmpDir, type Reply } from './harness.js';
import { ACCEPT, OP, encodeRequest, isClient, nonReaders, openStream, type StreamAnswer, type StreamClient, type StreamRequest } from './stream_client.js';

/** The answer headers the spec says a stream answer carries. */
const MEANINGFUL = ['proofkv-replayed', 'proofkv-leader', 'retry-after', 'proofkv-version', 'proofkv-seq', 'proofkv-kind', 'content-type'];

const headersOf = (a: StreamAnswer): Record<string, string> => Object.fromEntries(a.headers.map(([k, v]) => [k.toLowerCase(), v]));
const meaningfulHttp = (r: Reply): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const k of MEANINGFUL) {
    const v = r.headers.get(k);
    if (v !== null) out[k] = v;
  }
  return out;
};

/** A body with `time` and `timeIso` removed everywhere (two nodes commit at different instants). */
function timeless(contentType: string, raw: Uint8Array): unknown {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (k !== 'time' && k !== 'timeIso') out[k] = strip(x);
      return out;
    }
    return v;
  };
  if (contentType.includes('json')) return strip(JSON.parse(new TextDecoder().decode(raw)));
  if (contentType.startsWith('application/cbor')) return strip(cborDecode(new Uint8Array(raw)));
  return Buffer.from(raw).toString('hex');
}

/** Expects the stream answer `s` to be the HTTP answer `h`: status, meaningful headers, body bytes (or bodies without times). */
function expectSame(h: Reply, s: StreamAnswer, what: string, times: 'identical' | 'ignore' = 'identical'): void {
  expect(s.status, what).toBe(h.status);
  expect(headersOf(s), what).toEqual(meaningfulHttp(h));
  if (times === 'identical') expect(s.body.toString('hex'), what).toBe(Buffer.from(h.raw).toString('hex'));
  else expect(timeless(headersOf(s)['content-type'] ?? '', s.body), what).toEqual(timeless(h.headers.get('content-type') ?? '', h.raw));
}

/** One request in both forms. */
interface Case {
  what: string;
  method: 'GET' | 'PUT' | 'DELETE';
  op: number;
  key: string | Uint8Array;
  query?: string;
  headers?: Record<string, string>;
  value?: string | Uint8Array;
  accept?: number;
  proof?: boolean;
}

const ACCEPT_HTTP: Record<number, string> = { [ACCEPT.CBOR]: 'application/cbor', [ACCEPT.JSON]: 'application/json', [ACCEPT.RAW]: 'application/octet-stream' };

function viaHttp(url: string, c: Case): Promise<Reply> {
  const path = `/v1/kv/${pct(c.key)}${c.proof ? '/proof' : ''}${c.query ? `?${c.query}` : ''}`;
  const headers: Record<string, string> = { ...c.headers, accept: ACCEPT_HTTP[c.accept ?? ACCEPT.JSON] };
  if (c.value !== undefined) headers['content-type'] = 'application/octet-stream';
  return call(url, c.method, path, { headers, body: c.value === undefined ? undefined : typeof c.value === 'string' ? new TextEncoder().encode(c.value) : c.value });
}

let nextId = 1;
function viaStream(s: StreamClient, c: Case): Promise<StreamAnswer> {
  return s.request({ id: nextId++, op: c.op, key: c.key, query: c.query, headers: c.headers, value: c.value, accept: c.accept ?? ACCEPT.JSON });
}

const MAX_VALUE = 1024;
const MAX_KEY = 200;

describe('stream answers what HTTP answers', () => {
  let httpNode: ProofNode;
  let streamNode: ProofNode;
  let s: StreamClient;
  beforeAll(async () => {
    // Two nodes given the same requests in the same order, one over HTTP and one over the
    // stream: their answers differ only in commit times.
    httpNode = await startLocalNode({ maxValueSize: MAX_VALUE, maxKeySize: MAX_KEY });
    streamNode = await startLocalNode({ maxValueSize: MAX_VALUE, maxKeySize: MAX_KEY });
    const c = await openStream(streamNode.url);
    if (!isClient(c)) throw new Error(`handshake refused: ${c.status} ${c.body}`);
    s = c;
  });
  afterAll(async () => {
    s?.close();
    await httpNode?.shutdown('test');
    await streamNode?.shutdown('test');
  });

  it('the 101 answer names the node and the protocol', () => {
    expect(s.handshake.upgrade).toBe('proofkv-stream/1');
    expect(s.handshake.connection).toBe('Upgrade');
    expect(s.handshake['proofkv-node-id']).toBe(streamNode.nodeId);
  });

  it('successes and errors of PUT, GET, DELETE and PROOF, in the same order on both nodes', async () => {
    const session = (seq: number) => ({ 'ProofKV-Client-Id': 'client-1', 'ProofKV-Request-Seq': String(seq) });
    const bin = Uint8Array.from([0, 255, 47, 37, 63, 10]);
    const cases: Case[] = [
      { what: 'PROOF before any checkpoint', method: 'GET', op: OP.PROOF, key: 'a', proof: true },
      { what: 'GET absent', method: 'GET', op: OP.GET, key: 'a' },
      { what: 'PUT', method: 'PUT', op: OP.PUT, key: 'a', value: 'one' },
      { what: 'PUT binary key, CBOR answer', method: 'PUT', op: OP.PUT, key: bin, value: bin, accept: ACCEPT.CBOR },
      { what: 'PUT ifVersion ok', method: 'PUT', op: OP.PUT, key: 'a', query: 'ifVersion=1', value: 'two' },
      { what: 'PUT condition failed', method: 'PUT', op: OP.PUT, key: 'a', query: 'ifVersion=1', value: 'three' },
      { what: 'PUT ifAbsent on a live key', method: 'PUT', op: OP.PUT, key: 'a', query: 'ifAbsent=true', value: 'x' },
      { what: 'PUT bad version', method: 'PUT', op: OP.PUT, key: 'a', query: 'version=abc', value: 'x' },
      { what: 'PUT version not increasing', method: 'PUT', op: OP.PUT, key: 'a', query: 'version=1', value: 'x' },
      { what: 'PUT unknown parameter', method: 'PUT', op: OP.PUT, key: 'a', query: 'colour=red', value: 'x' },
      { what: 'PUT repeated parameter', method: 'PUT', op: OP.PUT, key: 'a', query: 'ifVersion=1&ifVersion=2', value: 'x' },
      { what: 'PUT ifVersion and ifAbsent', method: 'PUT', op: OP.PUT, key: 'a', query: 'ifVersion=2&ifAbsent=true', value: 'x' },
      { what: 'PUT with a session', method: 'PUT', op: OP.PUT, key: 's', value: 'first', headers: session(1) },
      { what: 'PUT replayed', method: 'PUT', op: OP.PUT, key: 's', value: 'first', headers: session(1) },
      { what: 'PUT idempotency key reused', method: 'PUT', op: OP.PUT, key: 's', value: 'other', headers: session(1) },
      { what: 'PUT session without seq', method: 'PUT', op: OP.PUT, key: 's', value: 'x', headers: { 'ProofKV-Client-Id': 'client-1' } },
      { what: 'PUT value too large', method: 'PUT', op: OP.PUT, key: 'big', value: new Uint8Array(MAX_VALUE + 1) },
      { what: 'PUT value at the limit', method: 'PUT', op: OP.PUT, key: 'big', value: new Uint8Array(MAX_VALUE).fill(7) },
      { what: 'PUT key too large', method: 'PUT', op: OP.PUT, key: 'k'.repeat(MAX_KEY + 1), value: 'x' },
      { what: 'PUT empty key', method: 'PUT', op: OP.PUT, key: '', value: 'x' },
      { what: 'PUT empty value', method: 'PUT', op: OP.PUT, key: 'e', value: '' },
      { what: 'GET JSON', method: 'GET', op: OP.GET, key: 'a' },
      { what: 'GET CBOR', method: 'GET', op: OP.GET, key: 'a', accept: ACCEPT.CBOR },
      { what: 'GET raw', method: 'GET', op: OP.GET, key: 'a', accept: ACCEPT.RAW },
      { what: 'GET at a version', method: 'GET', op: OP.GET, key: 'a', query: 'version=1' },
      { what: 'GET bad version', method: 'GET', op: OP.GET, key: 'a', query: 'version=-1' },
      { what: 'GET serializable', method: 'GET', op: OP.GET, key: bin, query: 'consistency=serializable', accept: ACCEPT.RAW },
      { what: 'GET bad consistency', method: 'GET', op: OP.GET, key: 'a', query: 'consistency=eventual' },
      { what: 'GET bad min head', method: 'GET', op: OP.GET, key: 'a', headers: { 'ProofKV-Min-Head': 'x' } },
      { what: 'GET min head met', method: 'GET', op: OP.GET, key: 'a', headers: { 'ProofKV-Min-Head': '0' } },
      { what: 'GET key too large', method: 'GET', op: OP.GET, key: 'k'.repeat(MAX_KEY + 1) },
      { what: 'DELETE condition failed', method: 'DELETE', op: OP.DELETE, key: 'a', query: 'ifVersion=7' },
      { what: 'DELETE ifAbsent is not a DELETE parameter', method: 'DELETE', op: OP.DELETE, key: 'a', query: 'ifAbsent=true' },
      { what: 'DELETE', method: 'DELETE', op: OP.DELETE, key: 'a', query: 'ifVersion=2' },
      { what: 'GET deleted', method: 'GET', op: OP.GET, key: 'a' },
      { what: 'GET deleted at its version, raw', method: 'GET', op: OP.GET, key: 'a', query: 'version=3', accept: ACCEPT.RAW },
      { what: 'DELETE with a session', method: 'DELETE', op: OP.DELETE, key: 's', headers: session(2) },
      { what: 'DELETE replayed', method: 'DELETE', op: OP.DELETE, key: 's', headers: session(2) },
      { what: 'DELETE stale seq', method: 'DELETE', op: OP.DELETE, key: 's', headers: session(0) },
      { what: 'PROOF bad format', method: 'GET', op: OP.PROOF, key: 'a', proof: true, query: 'proofFormat=3' },
    ];
    for (const c of cases) {
      const h = await viaHttp(httpNode.url, c);
      const st = await viaStream(s, c);
      expectSame(h, st, c.what, 'ignore');
    }
    // The cases did reach the routes: a sample of what they answered.
    const byWhat = async (what: string) => (await viaHttp(httpNode.url, cases.find((c) => c.what === what)!)).status;
    expect(await byWhat('PUT idempotency key reused')).toBe(422);
    expect(await byWhat('PUT condition failed')).toBe(409);
    expect(await byWhat('PUT key too large')).toBe(413);
    expect(httpNode.db.stats().lastSeq).toBe(streamNode.db.stats().lastSeq);
  });

  it('reads of one node are byte-identical over both fronts, proofs included', async () => {
    await streamNode.writePath.propose({ type: 'checkpoint', time: Date.now() });
    const reads: Case[] = [
      { what: 'GET JSON', method: 'GET', op: OP.GET, key: 'big' },
      { what: 'GET CBOR', method: 'GET', op: OP.GET, key: 'big', accept: ACCEPT.CBOR },
      { what: 'GET raw', method: 'GET', op: OP.GET, key: 'big', accept: ACCEPT.RAW },
      { what: 'GET tombstone at its version, CBOR', method: 'GET', op: OP.GET, key: 'a', query: 'version=3', accept: ACCEPT.CBOR },
      { what: 'GET absent', method: 'GET', op: OP.GET, key: 'nothing' },
      { what: 'PROOF JSON', method: 'GET', op: OP.PROOF, key: 'big', proof: true },
      { what: 'PROOF CBOR with edges, format 1', method: 'GET', op: OP.PROOF, key: 'big', proof: true, query: 'edges=true&proofFormat=1', accept: ACCEPT.CBOR },
      { what: 'PROOF of absence', method: 'GET', op: OP.PROOF, key: 'nothing', proof: true },
      { what: 'PROOF at a version', method: 'GET', op: OP.PROOF, key: 'a', proof: true, query: 'version=1' },
      { what: 'PROOF of a checkpoint not served', method: 'GET', op: OP.PROOF, key: 'a', proof: true, query: 'checkpoint=99' },
    ];
    for (const c of reads) expectSame(await viaHttp(streamNode.url, c), await viaStream(s, c), c.what);
  });

  it('the writes of one connection are proposed in arrival order', async () => {
    const ids = Array.from({ length: 100 }, () => nextId++);
    // All 100 in one socket write, none waiting for another's answer.
    const answers = Promise.all(ids.map((id) => s.next((a) => a.id === id)));
    s.write(Buffer.concat(ids.map((id, i) => encodeRequest({ id, op: OP.PUT, key: 'ordered', value: `w${i}` }))));
    const versions = (await answers).map((a) => JSON.parse(a.body.toString()).version as number);
    expect(versions).toEqual(ids.map((_, i) => i + 1));
    const last = await s.request({ id: nextId++, op: OP.GET, key: 'ordered', accept: ACCEPT.RAW });
    expect(last.body.toString()).toBe('w99');
  });

  it('PING answers 204 without headers or body; keyEncoding is refused (keys are raw bytes)', async () => {
    const p = await s.request({ id: nextId++, op: OP.PING });
    expect([p.status, p.headers.length, p.body.length]).toEqual([204, 0, 0]);
    const k = await s.request({ id: nextId++, op: OP.GET, key: 'a', query: 'keyEncoding=base64url' });
    expect(k.status).toBe(400);
    expect(JSON.parse(k.body.toString()).code).toBe('INVALID_ARGUMENT');
  });

  it('many requests in flight on one connection are all answered, each under its id', async () => {
    const n = 500;
    const ids = Array.from({ length: n }, () => nextId++);
    const answers = await Promise.all(ids.map((id, i) => s.request({ id, op: i % 2 ? OP.GET : OP.PUT, key: `m${i >> 1}`, value: i % 2 ? undefined : `v${i}`, accept: ACCEPT.RAW * (i % 2) })));
    answers.forEach((a, i) => {
      expect(a.id).toBe(ids[i]);
      // A GET sent before its PUT was acknowledged may or may not see it (as over HTTP).
      if (i % 2) expect(a.status === 404 || (a.status === 200 && a.body.toString() === `v${i - 1}`), `answer ${i}`).toBe(true);
      else expect(a.status).toBe(200);
    });
    // Once acknowledged, every write is read back.
    for (let i = 0; i < n; i += 2) {
      const g = await s.request({ id: nextId++, op: OP.GET, key: `m${i >> 1}`, accept: ACCEPT.RAW });
      expect(g.body.toString()).toBe(`v${i}`);
    }
  });
});

describe('stream rights', () => {
  let node: ProofNode;
  beforeAll(async () => {
    node = await startLocalNode(undefined, undefined, {
      tokens: [
        { token: 'reader-token', role: 'read' },
        { token: 'writer-token', role: 'write' },
      ],
    });
  });
  afterAll(() => node?.shutdown('test'));

  it('no token or a wrong token: 401 at the handshake, as over HTTP', async () => {
    for (const token of [undefined, 'wrong-token']) {
      const r = await openStream(node.url, { token });
      if (isClient(r)) throw new Error('handshake accepted');
      const h = await call(node.url, 'GET', '/v1/kv/a', { token });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="proofkv"');
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect(r.body).toBe(new TextDecoder().decode(h.raw));
    }
  });

  it('a wrong Upgrade, none at all, or another method: 426 / 405', async () => {
    const wrong = await openStream(node.url, { token: 'reader-token', upgrade: 'websocket' });
    expect(isClient(wrong) ? 101 : wrong.status).toBe(426);
    if (!isClient(wrong)) {
      expect(wrong.headers.upgrade).toBe('proofkv-stream/1');
      expect(JSON.parse(wrong.body).code).toBe('UPGRADE_REQUIRED');
    }
    const none = await call(node.url, 'GET', '/v1/stream', { token: 'reader-token' });
    expect(none.status).toBe(426);
    expect(none.headers.get('upgrade')).toBe('proofkv-stream/1');
    const post = await openStream(node.url, { token: 'reader-token', method: 'POST' });
    expect(isClient(post) ? 101 : post.status).toBe(405);
  });

  it('a read token reads but its PUT and DELETE are 403 and write nothing; a write token writes', async () => {
    const w = await openStream(node.url, { token: 'writer-token' });
    const r = await openStream(node.url, { token: 'reader-token' });
    if (!isClient(w) || !isClient(r)) throw new Error('handshake refused');
    expect((await w.request({ id: 1, op: OP.PUT, key: 'k', value: 'by writer' })).status).toBe(200);
    const before = node.db.stats().lastSeq;
    const put = await r.request({ id: 1, op: OP.PUT, key: 'k', value: 'by reader' });
    const del = await r.request({ id: 2, op: OP.DELETE, key: 'k' });
    const httpPut = await call(node.url, 'PUT', '/v1/kv/k', { token: 'reader-token', body: 'by reader', headers: { 'content-type': 'application/octet-stream' } });
    expectSame(httpPut, put, 'PUT with a read token');
    expect(del.status).toBe(403);
    expect(node.db.stats().lastSeq).toBe(before);
    const get = await r.request({ id: 3, op: OP.GET, key: 'k', accept: ACCEPT.RAW });
    expect([get.status, get.body.toString()]).toEqual([200, 'by writer']);
    w.close();
    r.close();
  });

  it('bytes pipelined after a refused handshake reach nothing: neither frames nor an HTTP request with a good token', async () => {
    const before = node.db.stats().lastSeq;
    const frame = encodeRequest({ id: 1, op: OP.PUT, key: 'pipelined', value: 'v' });
    const httpPut = 'PUT /v1/kv/pipelined HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer writer-token\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\n\r\nv';
    for (const [auth, after] of [['', frame], ['Authorization: Bearer wrong\r\n', Buffer.from(httpPut)], ['Authorization: Bearer reader-token\r\nUpgrade: websocket\r\n', frame]] as const) {
      const answer = await new Promise<string>((resolve, reject) => {
        const sock = net.connect(Number(new URL(node.url).port), '127.0.0.1', () => {
          const upgrade = auth.includes('Upgrade:') ? '' : 'Upgrade: proofkv-stream/1\r\n';
          sock.write(Buffer.concat([Buffer.from(`GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n${upgrade}${auth}\r\n`), after]));
        });
        const cut = setTimeout(() => sock.destroy(), 5000);
        let text = '';
        sock.on('data', (d) => (text += d.toString('latin1')));
        sock.on('close', () => (clearTimeout(cut), resolve(text)));
        sock.on('error', reject);
      });
      // One HTTP answer (the refusal), nothing after it.
      expect(answer.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(answer.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 (401|426) /);
    }
    expect(node.db.stats().lastSeq).toBe(before);
  });
});

describe('stream over TLS, and its metrics', () => {
  it('upgrades an HTTPS connection with the node certificate; requests and connections are counted', async () => {
    const dir = tmpDir();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { cwd: dir, stdio: 'pipe' });
    const cert = fs.readFileSync(path.join(dir, 'c.pem'));
    const node = await startLocalNode(undefined, undefined, { tls: { cert, key: fs.readFileSync(path.join(dir, 'k.pem')) } });
    try {
      expect(node.url).toMatch(/^https:/);
      const c = await openStream(node.url, { ca: cert });
      if (!isClient(c)) throw new Error('handshake refused');
      expect((await c.request({ id: 1, op: OP.PUT, key: 't', value: 'over tls' })).status).toBe(200);
      const g = await c.request({ id: 2, op: OP.GET, key: 't', accept: ACCEPT.RAW });
      expect([g.status, g.body.toString()]).toEqual([200, 'over tls']);
      expect((await c.request({ id: 3, op: OP.GET, key: 'absent' })).status).toBe(404);
      const text = await node.metrics.registry.metrics();
      expect(text).toMatch(/proofkv_stream_request_duration_seconds_count\{route="kv_put",status="200"\} 1\b/);
      expect(text).toMatch(/proofkv_stream_request_duration_seconds_count\{route="kv_get",status="404"\} 1\b/);
      expect(text).toMatch(/^proofkv_stream_connections 1$/m);
      // A plain-TCP client on the TLS port gets no stream.
      await expect(openStream(node.url.replace('https:', 'http:'))).rejects.toThrow();
      c.close();
    } finally {
      await node.shutdown('test');
    }
  });
});

describe('stream connections and the connection limit', () => {
  it('count toward maxConnections like HTTP ones; closing one frees a place', async () => {
    const node = await startLocalNode(undefined, undefined, { edge: { maxConnections: 2 } });
    try {
      const a = await openStream(node.url);
      const b = await openStream(node.url);
      if (!isClient(a) || !isClient(b)) throw new Error('handshake refused');
      // The third connection is closed at accept, before any handshake answer.
      await expect(openStream(node.url)).rejects.toThrow();
      a.close();
      await until('the limit frees a place', async () => (await openStream(node.url).then((c) => (isClient(c) && c.close(), true), () => false)));
      expect((await b.request({ id: 1, op: OP.PING })).status).toBe(204);
      b.close();
    } finally {
      await node.shutdown('test');
    }
  });
});

describe('stream connections and the HTTP timeouts', () => {
  it('an upgraded connection outlives the request and keep-alive timeouts (they are HTTP\'s)', async () => {
    const node = await startLocalNode(undefined, undefined, { edge: { headersTimeoutMs: 200, requestTimeoutMs: 300, keepAliveTimeoutMs: 200 } });
    try {
      const c = await openStream(node.url);
      if (!isClient(c)) throw new Error('handshake refused');
      // Idle for several times every HTTP timeout (checked every 50 ms here).
      await new Promise((r) => setTimeout(r, 1500));
      expect(c.closed).toBe(false);
      expect((await c.request({ id: 1, op: OP.PING })).status).toBe(204);
      c.close();
    } finally {
      await node.shutdown('test');
    }
  });
});

describe('Upgrade headers on other paths', () => {
  let node: ProofNode;
  beforeAll(async () => {
    node = await startLocalNode();
    await node.writePath.propose({ type: 'put', key: new TextEncoder().encode('x'), value: new TextEncoder().encode('plain'), time: Date.now() });
  });
  afterAll(() => node?.shutdown('test'));

  it('a bodiless request (curl --http2 sends Upgrade: h2c) is served as HTTP and its connection closed; one with a body is 400', async () => {
    const get = await openStream(node.url, { path: '/v1/kv/x', upgrade: 'h2c' });
    if (isClient(get)) throw new Error('upgraded');
    const plain = await call(node.url, 'GET', '/v1/kv/x');
    expect([get.status, get.body]).toEqual([200, new TextDecoder().decode(plain.raw)]);
    expect(get.headers.connection).toBe('close');
    // A body node no longer parses: refused, and nothing written.
    const before = node.db.stats().lastSeq;
    const put = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(Number(new URL(node.url).port), '127.0.0.1', () => {
        sock.write('PUT /v1/kv/y HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nabc');
      });
      let text = '';
      sock.on('data', (d) => (text += d.toString()));
      sock.on('close', () => resolve(text));
      sock.on('error', reject);
    });
    expect(put.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(node.db.stats().lastSeq).toBe(before);
  });

  it('a handshake that declares a body is refused 400, and the body is not run as frames', async () => {
    const before = node.db.stats().lastSeq;
    const frame = encodeRequest({ id: 1, op: OP.PUT, key: 'smuggled', value: 'v' });
    for (const framing of [`Content-Length: ${frame.length}\r\n`, 'Transfer-Encoding: chunked\r\n']) {
      const body = framing.startsWith('Content') ? frame : Buffer.concat([Buffer.from(`${frame.length.toString(16)}\r\n`), frame, Buffer.from('\r\n0\r\n\r\n')]);
      const answer = await new Promise<string>((resolve, reject) => {
        const sock = net.connect(Number(new URL(node.url).port), '127.0.0.1', () => {
          sock.write(Buffer.concat([Buffer.from(`GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: proofkv-stream/1\r\n${framing}\r\n`), body]));
        });
        let text = '';
        // An upgraded connection would stay open: cut it after 5 s, so the assertion below says why.
        const cut = setTimeout(() => sock.destroy(), 5000);
        sock.on('data', (d) => (text += d.toString('latin1')));
        sock.on('close', () => (clearTimeout(cut), resolve(text)));
        sock.on('error', reject);
      });
      expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
      expect(answer).toContain('"code":"BAD_REQUEST"');
    }
    expect(node.db.stats().lastSeq).toBe(before);
    expect(new TextDecoder().decode((await call(node.url, 'GET', '/v1/kv/smuggled')).raw)).toContain('NOT_FOUND');
  });
});

describe('hostile input on the stream', () => {
  let node: ProofNode;
  beforeAll(async () => {
    node = await startLocalNode({ maxValueSize: MAX_VALUE });
  });
  afterAll(() => node?.shutdown('test'));

  const open = async (): Promise<StreamClient> => {
    const c = await openStream(node.url);
    if (!isClient(c)) throw new Error('handshake refused');
    return c;
  };
  const problemCode = (a: StreamAnswer): string => JSON.parse(a.body.toString()).code;

  /** Sends `bytes` on a fresh connection; expects the id-0 connection error and the close. */
  async function expectConnectionError(bytes: Buffer, end = false): Promise<void> {
    const c = await open();
    const err = c.next((a) => a.id === 0);
    c.write(bytes);
    if (end) c.socket.end();
    const a = await err;
    expect(a.status).toBe(400);
    expect(problemCode(a)).toBe('STREAM_PROTOCOL');
    await c.whenClosed();
  }

  it('connection errors close only their connection, write nothing, and the node serves others', async () => {
    const other = await open();
    expect((await other.request({ id: 1, op: OP.PUT, key: 'kept', value: 'v' })).status).toBe(200);
    const before = node.db.stats().lastSeq;
    // A length over the bound (key + value + 64 KiB), announced before any of its bytes.
    const over = Buffer.alloc(8);
    over.writeUInt32BE(200 * 1024 + MAX_VALUE, 0);
    await expectConnectionError(over);
    // A length shorter than the fixed fields.
    const short = Buffer.alloc(8);
    short.writeUInt32BE(4, 0);
    await expectConnectionError(short);
    // Id 0.
    await expectConnectionError(encodeRequest({ id: 0, op: OP.PUT, key: 'z', value: 'zero' }));
    // A PUT cut by the connection's end (its frame is 20 bytes).
    const cut = encodeRequest({ id: 5, op: OP.PUT, key: 'z', value: 'cut' });
    expect(cut.length).toBe(20);
    await expectConnectionError(cut.subarray(0, 15), true);
    // Garbage after the handshake (an HTTP request: "GET " is a length of 1.2 GB).
    await expectConnectionError(Buffer.from('GET /v1/kv/z HTTP/1.1\r\n\r\n'));
    expect(node.db.stats().lastSeq).toBe(before);
    const get = await other.request({ id: 2, op: OP.GET, key: 'kept', accept: ACCEPT.RAW });
    expect([get.status, get.body.toString()]).toEqual([200, 'v']);
    other.close();
  });

  it('well-framed bad requests get a 400 with their id, and the connection goes on', async () => {
    const c = await open();
    const before = node.db.stats().lastSeq;
    const bad: [StreamRequest, string][] = [
      [{ id: 1, op: 9, key: 'z' }, 'unknown op'],
      [{ id: 2, op: OP.GET, key: 'z', value: 'no' }, 'a value on a GET'],
      [{ id: 3, op: OP.DELETE, key: 'z', value: 'no' }, 'a value on a DELETE'],
      [{ id: 4, op: OP.PUT, key: 'z', value: 'v', accept: ACCEPT.RAW }, 'raw accept on a PUT'],
      [{ id: 5, op: OP.GET, key: 'z', accept: 7 }, 'an unknown accept'],
      [{ id: 6, op: OP.PING, value: 'x' }, 'a PING with a value'],
    ];
    for (const [r, what] of bad) {
      const a = await c.request(r);
      expect([a.id, a.status, problemCode(a)], what).toEqual([r.id, 400, 'STREAM_PROTOCOL']);
    }
    // Lengths inside the frame that overrun it: the key claims more bytes than the frame holds.
    const f = encodeRequest({ id: 7, op: OP.GET, key: 'z' });
    f.writeUInt16BE(500, 10);
    const overrun = c.next((a) => a.id === 7);
    c.write(f);
    expect(problemCode(await overrun)).toBe('STREAM_PROTOCOL');
    // Header lines without a colon.
    const h = await c.request({ id: 8, op: OP.PUT, key: 'z', value: 'v', headers: { 'no-colon-here\nbad': 'x' } });
    expect([h.status, problemCode(h)]).toEqual([400, 'STREAM_PROTOCOL']);
    expect(node.db.stats().lastSeq).toBe(before);
    expect((await c.request({ id: 9, op: OP.PING })).status).toBe(204);
    c.close();
  });

  it('a duplicate id in flight is refused with that id; the first request is still answered', async () => {
    const c = await open();
    // The admission gate holds a request that asks for a head this node does not have (up to 2 s).
    const all = c.next((a) => a.id === 1 && a.status !== 400);
    const dup = c.next((a) => a.id === 1 && a.status === 400);
    c.write(encodeRequest({ id: 1, op: OP.GET, key: 'kept', headers: { 'ProofKV-Min-Head': '1000' } }));
    c.write(encodeRequest({ id: 1, op: OP.PUT, key: 'dup', value: 'no' }));
    const d = await dup;
    expect(problemCode(d)).toBe('STREAM_PROTOCOL');
    const first = await all;
    expect([first.status, problemCode(first)]).toEqual([503, 'UNAVAILABLE']);
    const get = await c.request({ id: 2, op: OP.GET, key: 'dup' });
    expect(get.status).toBe(404);
    c.close();
  });
});

describe('stream back-pressure', () => {
  const VALUE = 16 * 1024;
  const IN_FLIGHT = 64;
  const BUFFERED = 256 * 1024;
  let node: ProofNode;
  beforeAll(async () => {
    node = await startLocalNode(undefined, undefined, { edge: { maxStreamInFlight: IN_FLIGHT, maxStreamBufferedBytes: BUFFERED } });
  });
  afterAll(() => node?.shutdown('test'));

  it('a client that sends 5,000 requests and reads nothing holds a bounded buffer; all answers arrive once it reads', async () => {
    const c = await openStream(node.url);
    if (!isClient(c)) throw new Error('handshake refused');
    const value = Buffer.alloc(VALUE, 0x61);
    expect((await c.request({ id: 1, op: OP.PUT, key: 'v', value })).status).toBe(200);
    const server = [...node.stream.connections][0];
    c.socket.pause();
    const N = 5000;
    const frames = Buffer.concat(Array.from({ length: N }, (_, i) => encodeRequest({ id: 2 + i, op: OP.GET, key: 'v', accept: ACCEPT.RAW })));
    c.write(frames);
    // Wait until the server stopped reading and nothing is in flight (a bound on the wait, not a timing assertion).
    const end = Date.now() + 20_000;
    let last = -1;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      if (server.stats.pauses > 0 && server.inFlightCount === 0 && server.stats.answered === last) break;
      last = server.stats.answered;
    }
    expect(server.stats.pauses).toBeGreaterThan(0);
    // It stopped: far fewer than all answers were produced while nobody read them.
    expect(server.stats.answered).toBeLessThan(N);
    // Unsent bytes: the bound, plus at most the answers in flight when it was crossed.
    const answerBytes = VALUE + 200;
    expect(server.stats.peakBuffered).toBeLessThanOrEqual(BUFFERED + IN_FLIGHT * answerBytes);
    expect(server.stats.peakInFlight).toBeLessThanOrEqual(IN_FLIGHT);
    // Now read: every answer arrives, once, under its id.
    const got = new Set<number>();
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got.size} answers in 60 s`)), 60_000);
      const check = () => {
        for (const a of c.received.splice(0)) {
          if (a.id === 1) continue;
          expect(a.status).toBe(200);
          expect(a.body.length).toBe(VALUE);
          expect(got.has(a.id)).toBe(false);
          got.add(a.id);
        }
        if (got.size === N) {
          clearTimeout(timer);
          resolve();
        } else setTimeout(check, 20);
      };
      check();
    });
    c.socket.resume();
    await done;
    expect(server.stats.peakBuffered).toBeLessThanOrEqual(BUFFERED + IN_FLIGHT * answerBytes);
    c.close();
  }, 90_000);
});

describe('stream request bytes in flight', () => {
  const VALUE = 128 * 1024;
  const IN_FLIGHT_BYTES = 512 * 1024;
  let node: ProofNode;
  beforeAll(async () => {
    node = await startLocalNode(undefined, undefined, { edge: { maxStreamInFlightBytes: IN_FLIGHT_BYTES } });
  });
  afterAll(() => node?.shutdown('test'));

  it('PUTs of large values sent at once: the requests held stay under maxStreamInFlightBytes (plus one frame), and every one is answered and written', async () => {
    const c = await openStream(node.url);
    if (!isClient(c)) throw new Error('handshake refused');
    const N = 40;
    const frames = Buffer.concat(Array.from({ length: N }, (_, i) => encodeRequest({ id: 1 + i, op: OP.PUT, key: `big-${i}`, value: Buffer.alloc(VALUE, 0x41 + (i % 26)) })));
    const answers = new Map<number, number>();
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${answers.size} answers in 60 s`)), 60_000);
      const check = () => {
        for (const a of c.received.splice(0)) answers.set(a.id, a.status);
        if (answers.size === N) {
          clearTimeout(timer);
          resolve();
        } else setTimeout(check, 20);
      };
      check();
    });
    c.write(frames);
    await done;
    expect([...answers.values()].every((st) => st === 200)).toBe(true);
    const server = [...node.stream.connections][0];
    expect(server.stats.peakInFlightBytes).toBeGreaterThan(0);
    expect(server.stats.peakInFlightBytes).toBeLessThanOrEqual(IN_FLIGHT_BYTES + VALUE + 1024);
    expect(server.stats.pauses).toBeGreaterThan(0);
    // A value larger than the bound alone still gets through.
    const huge = await c.request({ id: 1000, op: OP.PUT, key: 'huge', value: Buffer.alloc(IN_FLIGHT_BYTES + 1, 0x5a) });
    expect(huge.status).toBe(200);
    for (let i = 0; i < N; i += 13) {
      const got = await c.request({ id: 2000 + i, op: OP.GET, key: `big-${i}`, accept: ACCEPT.RAW });
      expect(got.status).toBe(200);
      expect(Buffer.compare(got.body, Buffer.alloc(VALUE, 0x41 + (i % 26)))).toBe(0);
    }
    c.close();
  }, 90_000);
});

describe('the node-wide answer budget (attacker: many connections that never read, each under its own bounds)', () => {
  const VALUE = 256 * 1024;
  // Above the node's floor (two JSON reads' worst case, 17.3 MB with the default frame bound).
  const NODE_ANSWERS = 20 * 1024 * 1024;

  it('reads of all connections hold at most the node budget; the others wait; shutdown gives every byte back', async () => {
    const node = await startLocalNode(undefined, undefined, { edge: { maxStreamAnswerBytes: NODE_ANSWERS, maxStreamBufferedBytes: 64 * 1024 * 1024 }, drainTimeoutMs: 500 });
    const w = await openStream(node.url);
    if (!isClient(w)) throw new Error('handshake refused');
    expect((await w.request({ id: 1, op: OP.PUT, key: 'v', value: Buffer.alloc(VALUE, 0x61) })).status).toBe(200);
    w.close();
    // Six connections, 100 raw GETs each (25 MiB of answers each: more than the kernel's socket buffers take), none read:
    // each alone may hold 64 MiB of unsent answers and 256 MiB of reads' answers (a raw read reserves 1.18 MB).
    const clients = await nonReaders(node.url, 6, 100, 'v');
    const budget = node.stream.budgets.answers;
    // A bound on the wait (until reads wait for the node's bytes and no answer moves), not a timing assertion.
    const end = Date.now() + 20_000;
    const answered = () => [...node.stream.connections].reduce((n, c) => n + c.stats.answered, 0);
    let last = -1;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      if (budget.waiting > 0 && answered() === last) break;
      last = answered();
    }
    expect(budget.waiting, `${answered()} answered`).toBeGreaterThan(0);
    expect(answered()).toBeLessThan(600);
    expect(budget.capacity).toBe(NODE_ANSWERS);
    expect(budget.stats.peak).toBeLessThanOrEqual(NODE_ANSWERS);
    expect(budget.used).toBeGreaterThan(0);
    // The operator sees it in /metrics: the bytes held, the capacity, the waiters.
    const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const metric = (name: string, b: string) => Number(new RegExp(`^${name}\\{budget="${b}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(metric('proofkv_stream_budget_capacity_bytes', 'answers')).toBe(NODE_ANSWERS);
    expect(metric('proofkv_stream_budget_bytes', 'answers')).toBeGreaterThan(0);
    expect(metric('proofkv_stream_budget_bytes', 'answers')).toBeLessThanOrEqual(NODE_ANSWERS);
    expect(metric('proofkv_stream_budget_waiting', 'answers')).toBeGreaterThan(0);
    expect(metric('proofkv_stream_budget_waits_total', 'answers')).toBeGreaterThan(0);
    expect(metric('proofkv_stream_budget_evictions_total', 'requests')).toBe(0);
    await node.shutdown('test');
    expect([budget.used, budget.waiting, node.stream.budgets.requests.used]).toEqual([0, 0, 0]);
    for (const c of clients) c.close();
  }, 90_000);
});

describe('stream and node shutdown', () => {
  it('in-flight answers go out, new requests get 503, then the connection closes', async () => {
    const node = await startLocalNode();
    const c = await openStream(node.url);
    if (!isClient(c)) throw new Error('handshake refused');
    expect((await c.request({ id: 1, op: OP.PUT, key: 'k', value: 'v' })).status).toBe(200);
    // In flight across the start of shutdown: held by the admission gate.
    const held = c.next((a) => a.id === 2);
    c.write(encodeRequest({ id: 2, op: OP.GET, key: 'k', headers: { 'ProofKV-Min-Head': '1000' } }));
    await new Promise((r) => setTimeout(r, 100));
    const stopping = node.shutdown('test');
    const late = await c.request({ id: 3, op: OP.PUT, key: 'late', value: 'no' });
    expect(late.status).toBe(503);
    expect(JSON.parse(late.body.toString()).detail).toBe('the node is shutting down');
    expect((await held).status).toBe(503);
    await c.whenClosed();
    await stopping;
  });
});

describe('stream settings', () => {
  const fileWith = (o: Record<string, unknown>): string => {
    const f = path.join(tmpDir(), 'config.json');
    fs.writeFileSync(f, JSON.stringify(o));
    return f;
  };
  it('maxStreamInFlight, maxStreamBufferedBytes and maxStreamInFlightBytes come from the config file, with defaults and bounds', () => {
    const none = resolveConfig({}, {}, new Set());
    expect([none.edge.maxStreamInFlight, none.edge.maxStreamBufferedBytes, none.edge.maxStreamInFlightBytes]).toEqual([1024, 8 * 1024 * 1024, 16 * 1024 * 1024]);
    const set = resolveConfig({ config: fileWith({ maxStreamInFlight: 16, maxStreamBufferedBytes: 65536, maxStreamInFlightBytes: 131072 }) }, {}, new Set());
    expect([set.edge.maxStreamInFlight, set.edge.maxStreamBufferedBytes, set.edge.maxStreamInFlightBytes]).toEqual([16, 65536, 131072]);
    expect(() => resolveConfig({ config: fileWith({ maxStreamInFlightBytes: 1000 }) }, {}, new Set())).toThrow(/maxStreamInFlightBytes/);
    expect(() => resolveConfig({ config: fileWith({ maxStreamInFlight: 0 }) }, {}, new Set())).toThrow(ConfigError);
    expect(() => resolveConfig({ config: fileWith({ maxStreamBufferedBytes: 1000 }) }, {}, new Set())).toThrow(/maxStreamBufferedBytes/);
  });

  it('maxStreamAnswerBytes and maxStreamRequestBytes (node-wide) come from the config file, with defaults and bounds', () => {
    const none = resolveConfig({}, {}, new Set());
    expect([none.edge.maxStreamAnswerBytes, none.edge.maxStreamRequestBytes]).toEqual([512 * 1024 * 1024, 256 * 1024 * 1024]);
    const set = resolveConfig({ config: fileWith({ maxStreamAnswerBytes: 2 ** 20, maxStreamRequestBytes: 3 * 2 ** 20 }) }, {}, new Set());
    expect([set.edge.maxStreamAnswerBytes, set.edge.maxStreamRequestBytes]).toEqual([2 ** 20, 3 * 2 ** 20]);
    for (const bad of [1000, -1, 1.5, 'big', 2 ** 37]) {
      expect(() => resolveConfig({ config: fileWith({ maxStreamAnswerBytes: bad }) }, {}, new Set())).toThrow(ConfigError);
      expect(() => resolveConfig({ config: fileWith({ maxStreamRequestBytes: bad }) }, {}, new Set())).toThrow(/maxStreamRequestBytes/);
    }
  });
});
