/**
 * streamFetch against a scripted stream server on 127.0.0.1 (no ProofKV node): what it sends,
 * answers out of order, and hostile or broken answers — an answer for an id not in flight, an
 * over-long length, a frame cut by the connection's end, a connection error frame, garbage — each
 * fails the requests in flight with a TypeError whose cause is a StreamProtocolError with its
 * code (as fetch fails on a network error), never resolves one request with another's answer, and
 * the next request opens a new connection. Also: aborts, the in-flight and queued-bytes bounds, a
 * refused upgrade (HTTP for that endpoint), and the SDK's failover over a dead endpoint.
 */
import * as net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStateStore, ProofKVClient, ProofKVNetworkError } from '../../client-sdk/index.js';
import { StreamAccept, StreamOp, StreamProtocolError, type StreamErrorCode } from '../../client-sdk/stream_codec.js';
import { streamFetch, type StreamFetch } from '../../client-sdk/stream_fetch.js';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { ScriptedStreamServer } from './stream_helpers.js';

let srv: ScriptedStreamServer;
let sf: StreamFetch;
const json = { accept: 'application/json' };
const text = (r: Response) => r.text();

/** The code of the StreamProtocolError behind a fetch-like rejection. */
async function failureCode(p: Promise<unknown>): Promise<StreamErrorCode> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TypeError);
  const cause = (err as TypeError).cause;
  expect(cause).toBeInstanceOf(StreamProtocolError);
  return (cause as StreamProtocolError).code;
}

/** Resolves when the server has seen `n` requests in total. */
async function requestsSeen(n: number): Promise<void> {
  for (let i = 0; i < 2000 && srv.connections.reduce((k, c) => k + c.requests.length, 0) < n; i++) await new Promise((r) => setTimeout(r, 5));
  expect(srv.connections.reduce((k, c) => k + c.requests.length, 0)).toBeGreaterThanOrEqual(n);
}

beforeEach(async () => {
  srv = await new ScriptedStreamServer().start();
  sf = streamFetch();
});
afterEach(async () => {
  sf.close();
  await srv.close();
});

describe('streamFetch against a scripted server', () => {
  it('sends the request as the spec frames it and turns the answer into a Response', async () => {
    srv.onRequest = (r, c) => c.answer({ id: r.id, status: 200, headers: [['Content-Type', 'application/json'], ['ProofKV-Version', '3']], body: '{"ok":1}' });
    const res = await sf(`${srv.url}/v1/kv/a%20b?consistency=linearizable`, { method: 'GET', headers: { ...json, authorization: 'Bearer tok', 'proofkv-min-head': '4', 'x-other': 'dropped' } });
    expect(res.status).toBe(200);
    expect(await text(res)).toBe('{"ok":1}');
    expect(res.headers.get('proofkv-version')).toBe('3');
    expect(res.headers.get('proofkv-node-id')).toBe('scripted');
    const [c] = srv.connections;
    expect(c.handshake.authorization).toBe('Bearer tok');
    expect(c.requests[0]).toMatchObject({ op: StreamOp.GET, accept: StreamAccept.JSON, query: 'consistency=linearizable', headers: [['proofkv-min-head', '4']] });
    expect(new TextDecoder().decode(c.requests[0].key)).toBe('a b');
    expect(sf.stats()).toMatchObject({ streamed: 1, http: 0, opened: 1, open: 1 });
    // Other routes go over HTTP.
    const st = await sf(`${srv.url}/v1/status`, { method: 'GET', headers: json });
    expect(await st.json()).toEqual({ http: true });
    expect(srv.httpSeen).toEqual(['GET /v1/status']);
    expect(sf.stats().http).toBe(1);
  });

  it('answers out of order reach their own requests', async () => {
    srv.onRequest = (_r, c) => {
      if (c.requests.length < 3) return;
      for (const r of [...c.requests].reverse()) c.answer({ id: r.id, status: 200, body: new TextDecoder().decode(r.key) });
    };
    const got = await Promise.all(['k1', 'k2', 'k3'].map(async (k) => text(await sf(`${srv.url}/v1/kv/${k}`, { headers: json }))));
    expect(got).toEqual(['k1', 'k2', 'k3']);
    expect(srv.connections).toHaveLength(1);
  });

  it('the requests issued in one event-loop turn go out in one socket write', async () => {
    srv.onRequest = (r, c) => c.answer({ id: r.id, status: 200, body: 'ok' });
    await sf(`${srv.url}/v1/kv/open`, { headers: json }); // the connection is open
    const port = Number(new URL(srv.url).port);
    const writes: number[] = [];
    const original = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
      if (this.remotePort === port) writes.push((args[0] as Uint8Array).length);
      return (original as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof original;
    try {
      const all = Array.from({ length: 10 }, (_, i) => sf(`${srv.url}/v1/kv/batch${i}`, { headers: json }).then(text));
      expect(await Promise.all(all)).toEqual(Array(10).fill('ok'));
    } finally {
      net.Socket.prototype.write = original;
    }
    expect(writes).toHaveLength(1);
    expect(srv.connections[0].requests).toHaveLength(11);
  });

  it('a 204 answer has no body; problem answers keep status and body', async () => {
    srv.onRequest = (r, c) => c.answer(r.op === StreamOp.DELETE ? { id: r.id, status: 204 } : { id: r.id, status: 409, headers: [['Content-Type', 'application/problem+json']], body: '{"code":"CONDITION_FAILED"}' });
    const d = await sf(`${srv.url}/v1/kv/k`, { method: 'DELETE', headers: json });
    expect(d.status).toBe(204);
    expect(d.body).toBeNull();
    const p = await sf(`${srv.url}/v1/kv/k`, { method: 'PUT', headers: { ...json, 'content-type': 'application/octet-stream' }, body: 'v' });
    expect(p.status).toBe(409);
    expect(await p.json()).toEqual({ code: 'CONDITION_FAILED' });
  });

  const hostile: [string, (c: Parameters<ScriptedStreamServer['onRequest']>[1]) => void, StreamErrorCode][] = [
    ['an answer for an id not in flight', (c) => c.answer({ id: 999, status: 200, body: 'forged' }), 'UNKNOWN_ID'],
    ['an over-long length', (c) => c.write(Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1)), 'FRAME_TOO_LONG'],
    ['a frame cut by the end of the connection', (c) => {
      c.write(Uint8Array.of(0, 0, 0, 50, 0, 0, 0, 1, 0, 200));
      c.socket.end();
    }, 'TRUNCATED_FRAME'],
    ['a connection error frame', (c) => c.answer({ id: 0, status: 400, headers: [['Content-Type', 'application/problem+json']], body: '{"code":"STREAM_PROTOCOL","detail":"bad"}' }), 'CONNECTION_ERROR'],
    ['a status no Response can carry', (c) => c.answer({ id: c.requests[0].id, status: 101 }), 'MALFORMED_FRAME'],
    ['headers that are not lines', (c) => {
      const f = new Uint8Array(4 + 8 + 3);
      const dv = new DataView(f.buffer);
      dv.setUint32(0, 11);
      dv.setUint32(4, c.requests[0].id);
      dv.setUint16(8, 200);
      dv.setUint16(10, 3);
      f.set([0x00, 0x01, 0x02], 12);
      c.write(f);
    }, 'MALFORMED_FRAME'],
    ['the node closing with requests in flight', (c) => c.socket.destroy(), 'CONNECTION_CLOSED'],
  ];
  for (const [name, act, code] of hostile) {
    it(`${name}: every request in flight fails (${code}), none gets another's answer, the next connection works`, async () => {
      srv.onRequest = (_r, c) => {
        if (c === srv.connections[0] && c.requests.length === 2) act(c);
        else if (c !== srv.connections[0]) c.answer({ id: _r.id, status: 200, body: 'fresh' });
      };
      const a = sf(`${srv.url}/v1/kv/a`, { headers: json });
      const b = sf(`${srv.url}/v1/kv/b`, { headers: json });
      expect(await failureCode(a)).toBe(code);
      expect(await failureCode(b)).toBe(code);
      const again = await sf(`${srv.url}/v1/kv/a`, { headers: json });
      expect(await text(again)).toBe('fresh');
      expect(srv.connections).toHaveLength(2);
    });
  }

  it('after a connection fails, the requests that follow share one new connection', async () => {
    srv.onRequest = (r, c) => {
      if (c === srv.connections[0]) c.socket.destroy();
      else c.answer({ id: r.id, status: 200, body: 'ok' });
    };
    expect(await failureCode(sf(`${srv.url}/v1/kv/a`, { headers: json }))).toBe('CONNECTION_CLOSED');
    const all = await Promise.all(Array.from({ length: 5 }, (_, i) => sf(`${srv.url}/v1/kv/k${i}`, { headers: json }).then(text)));
    expect(all).toEqual(Array(5).fill('ok'));
    expect(srv.connections).toHaveLength(2);
    expect(sf.stats()).toMatchObject({ opened: 2, open: 1 });
  });

  it('an aborted request rejects with its reason; its late answer is dropped and the connection goes on', async () => {
    const ctl = new AbortController();
    srv.onRequest = (r, c) => {
      if (new TextDecoder().decode(r.key) === 'slow') return;
      c.answer({ id: r.id, status: 200, body: 'ok' });
    };
    const slow = sf(`${srv.url}/v1/kv/slow`, { headers: json, signal: ctl.signal });
    await requestsSeen(1);
    ctl.abort(new Error('gave up'));
    await expect(slow).rejects.toThrow('gave up');
    // The server answers the abandoned id late: dropped, not an unknown id.
    srv.connections[0].answer({ id: srv.connections[0].requests[0].id, status: 200, body: 'late' });
    expect(await text(await sf(`${srv.url}/v1/kv/fast`, { headers: json }))).toBe('ok');
    expect(srv.connections).toHaveLength(1);
    // An already aborted signal never sends.
    const pre = new AbortController();
    pre.abort(new Error('before'));
    await expect(sf(`${srv.url}/v1/kv/x`, { headers: json, signal: pre.signal })).rejects.toThrow('before');
    expect(srv.connections[0].requests).toHaveLength(2);
  });

  it('a node that never answers the upgrade: the request aborts with its signal, and the connect timeout fails it like fetch', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      const ctl = new AbortController();
      const pending = sf(`${url}/v1/kv/k`, { headers: json, signal: ctl.signal });
      ctl.abort(new Error('timed out by the caller'));
      await expect(pending).rejects.toThrow('timed out by the caller');
      const short = streamFetch({ connectTimeoutMs: 50 });
      expect(await failureCode(short(`${url}/v1/kv/k`, { headers: json }))).toBe('HANDSHAKE_FAILED');
      short.close();
    } finally {
      silent.close();
    }
  });

  it('a node that upgrades and then never answers: the requests fail (ANSWER_TIMEOUT) instead of hanging, and the next one reconnects', async () => {
    sf = streamFetch({ answerTimeoutMs: 100 });
    srv.onRequest = () => undefined;
    // No signal: without the timeout these would wait for ever.
    const silent = [sf(`${srv.url}/v1/kv/a`, { headers: json }), sf(`${srv.url}/v1/kv/b`, { headers: json })];
    const bounded = <T>(p: Promise<T>) => Promise.race([p, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))]);
    expect(await bounded(failureCode(silent[0]))).toBe('ANSWER_TIMEOUT');
    expect(await bounded(failureCode(silent[1]))).toBe('ANSWER_TIMEOUT');
    expect(srv.connections).toHaveLength(1);
    srv.onRequest = (r, c) => c.answer({ id: r.id, status: 200, body: 'back' });
    expect(await text(await sf(`${srv.url}/v1/kv/c`, { headers: json }))).toBe('back');
    expect(srv.connections).toHaveLength(2);
  });

  it('the slots of abandoned requests that a node never answers are given back: the connection is replaced, not stuck', async () => {
    sf = streamFetch({ maxInFlight: 2, answerTimeoutMs: 100 });
    srv.onRequest = () => undefined;
    // Two requests the caller gives up on fill both slots; the node never answers them.
    for (const k of ['a', 'b']) {
      const ctl = new AbortController();
      const p = sf(`${srv.url}/v1/kv/${k}`, { headers: json, signal: ctl.signal });
      await requestsSeen(k === 'a' ? 1 : 2);
      ctl.abort(new Error('given up'));
      await expect(p).rejects.toThrow('given up');
    }
    srv.onRequest = (r, c) => c.answer({ id: r.id, status: 200, body: 'served' });
    const next = sf(`${srv.url}/v1/kv/c`, { headers: json });
    const got = await Promise.race([next.then(text, (e: unknown) => e), new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))]);
    // The first connection is failed by its silence (its waiting request with it); the SDK's retry of a
    // network failure opens a new one. Here, the caller retries once.
    expect(got).not.toBe('hung');
    if (got !== 'served') expect((got as TypeError).cause).toMatchObject({ code: 'ANSWER_TIMEOUT' });
    const answer = got === 'served' ? got : await text(await sf(`${srv.url}/v1/kv/c`, { headers: json }));
    expect(answer).toBe('served');
    expect(srv.connections.length).toBeGreaterThanOrEqual(2);
  });

  it('at most maxInFlight requests are written; the next goes out when one is answered', async () => {
    sf = streamFetch({ maxInFlight: 2 });
    srv.onRequest = () => undefined;
    const all = ['a', 'b', 'c'].map((k) => sf(`${srv.url}/v1/kv/${k}`, { headers: json }).then(text));
    await requestsSeen(2);
    // Give the client every chance to write the third: it must not.
    await new Promise((r) => setTimeout(r, 100));
    const c = srv.connections[0];
    expect(c.requests.map((r) => new TextDecoder().decode(r.key))).toEqual(['a', 'b']);
    c.answer({ id: c.requests[1].id, status: 200, body: 'b' });
    await requestsSeen(3);
    expect(new TextDecoder().decode(c.requests[2].key)).toBe('c');
    c.answer({ id: c.requests[0].id, status: 200, body: 'a' });
    c.answer({ id: c.requests[2].id, status: 200, body: 'c' });
    expect(await Promise.all(all)).toEqual(['a', 'b', 'c']);
  });

  it('past maxQueuedBytes a request fails like a network error (CLIENT_BOUND) and the others are unaffected', async () => {
    sf = streamFetch({ maxInFlight: 1, maxQueuedBytes: 3000 });
    srv.onRequest = () => undefined;
    const put = (n: number) => sf(`${srv.url}/v1/kv/k${n}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(1000) });
    const first = put(1);
    await requestsSeen(1);
    const queued = [put(2), put(3)];
    expect(await failureCode(put(4))).toBe('CLIENT_BOUND');
    const c = srv.connections[0];
    c.answer({ id: c.requests[0].id, status: 200, body: '1' });
    expect(await text(await first)).toBe('1');
    await requestsSeen(2);
    c.answer({ id: c.requests[1].id, status: 200, body: '2' });
    await requestsSeen(3);
    c.answer({ id: c.requests[2].id, status: 200, body: '3' });
    expect(await Promise.all(queued.map(async (q) => text(await q)))).toEqual(['2', '3']);
  });

  it('an answer over maxAnswerBytes fails the connection before it is buffered', async () => {
    sf = streamFetch({ maxAnswerBytes: 1024 });
    srv.onRequest = (r, c) => c.answer({ id: r.id, status: 200, body: new Uint8Array(2000) });
    expect(await failureCode(sf(`${srv.url}/v1/kv/big`, { headers: json }))).toBe('FRAME_TOO_LONG');
  });

  it('a refused upgrade sends that request, and the endpoint for a while, over HTTP', async () => {
    srv.refuse = 426;
    srv.onHttp = (m, u) => ({ status: 200, body: JSON.stringify({ via: 'http', m, u }) });
    const r = await sf(`${srv.url}/v1/kv/k?version=2`, { headers: json });
    expect(await r.json()).toEqual({ via: 'http', m: 'GET', u: '/v1/kv/k?version=2' });
    await sf(`${srv.url}/v1/kv/k2`, { headers: json });
    expect(srv.httpSeen).toEqual(['GET /v1/kv/k?version=2', 'GET /v1/kv/k2']);
    expect(sf.stats()).toMatchObject({ streamed: 0, http: 2, opened: 0 });
  });

  it('a 421 NOT_LEADER answer over the stream carries ProofKV-Leader, and the SDK follows it to that endpoint', async () => {
    const leader = await new ScriptedStreamServer().start();
    try {
      srv.onRequest = (r, c) =>
        c.answer({ id: r.id, status: 421, headers: [['ProofKV-Leader', leader.url], ['Content-Type', 'application/problem+json']], body: '{"code":"NOT_LEADER"}' });
      leader.onRequest = (r, c) => c.answer({ id: r.id, status: 200, headers: [['Content-Type', 'application/json']], body: '{"version":2,"seq":9,"time":1700000000000}' });
      const client = new ProofKVClient({
        endpoints: [srv.url, leader.url],
        trust: { publicKeys: [generateKeyPair().publicKey], quorum: 1 },
        retries: 0,
        fetch: sf,
      });
      expect(await client.put('k', 'v')).toEqual({ version: 2, seq: 9, time: 1700000000000 });
      expect(client.transport.preferred).toBe(leader.url);
      // The same write, with the same idempotency pair, went to both.
      const [a, b] = [srv.connections[0].requests[0], leader.connections[0].requests[0]];
      expect(b.headers).toEqual(a.headers);
      expect(sf.stats()).toMatchObject({ streamed: 2, opened: 2 });
    } finally {
      await leader.close();
    }
  });

  it('a hostile node cannot send the token elsewhere: a 3xx answer is refused, a ProofKV-Leader outside the endpoints is not followed', async () => {
    const elsewhere = await new ScriptedStreamServer().start();
    try {
      elsewhere.onRequest = (r, c) => c.answer({ id: r.id, status: 200, headers: [['Content-Type', 'application/json']], body: '{"version":1,"seq":1,"time":1700000000000}' });
      const client = new ProofKVClient({ endpoints: [srv.url], token: 'secret-token', trust: { publicKeys: [generateKeyPair().publicKey], quorum: 1 }, retries: 0, fetch: sf });
      srv.onRequest = (r, c) => c.answer({ id: r.id, status: 307, headers: [['Location', `${elsewhere.url}/v1/kv/k`]], body: '' });
      await expect(client.put('k', 'v')).rejects.toMatchObject({ status: 307, problem: { code: 'REDIRECT_REFUSED' } });
      srv.onRequest = (r, c) =>
        c.answer({ id: r.id, status: 421, headers: [['ProofKV-Leader', elsewhere.url], ['Content-Type', 'application/problem+json']], body: '{"code":"NOT_LEADER"}' });
      await expect(client.put('k', 'v')).rejects.toBeDefined();
      // Nothing reached the other server: no handshake (which would carry the token), no HTTP request.
      expect(elsewhere.connections).toHaveLength(0);
      expect(elsewhere.httpSeen).toEqual([]);
      expect(srv.connections[0].handshake.authorization).toBe('Bearer secret-token');
    } finally {
      await elsewhere.close();
    }
  });

  it('a dead endpoint rejects like fetch (TypeError), so the SDK fails over to the next one', async () => {
    const dead = net.createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise((resolve) => dead.close(resolve));
    await expect(sf(`http://127.0.0.1:${port}/v1/kv/k`, { headers: json })).rejects.toBeInstanceOf(TypeError);

    srv.onRequest = (r, c) => c.answer({ id: r.id, status: 200, headers: [['Content-Type', 'application/json']], body: '{"version":1,"seq":7,"time":1700000000000}' });
    const client = new ProofKVClient({
      endpoints: [`http://127.0.0.1:${port}`, srv.url],
      trust: { publicKeys: [generateKeyPair().publicKey], quorum: 1 },
      stateStore: new MemoryStateStore(),
      retries: 2,
      retryDelayMs: 0,
      fetch: sf,
    });
    expect(await client.put('k', 'v')).toEqual({ version: 1, seq: 7, time: 1700000000000 });
    const req = srv.connections[0].requests[0];
    expect(req.op).toBe(StreamOp.PUT);
    expect(new TextDecoder().decode(req.value)).toBe('v');
    expect(req.headers.map(([n]) => n).sort()).toEqual(['proofkv-client-id', 'proofkv-request-seq']);
    // With every endpoint dead the SDK's own error comes out, as over HTTP.
    const alone = new ProofKVClient({ endpoints: [`http://127.0.0.1:${port}`], trust: { publicKeys: [generateKeyPair().publicKey], quorum: 1 }, retries: 1, retryDelayMs: 0, fetch: sf });
    await expect(alone.put('k', 'v')).rejects.toBeInstanceOf(ProofKVNetworkError);
  });
});
