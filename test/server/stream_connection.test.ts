/**
 * One stream connection's batching and answer encoding, on a fake socket: the answers completed
 * in one event-loop turn leave in one socket write (and those of later turns in later writes),
 * each frame laid out as docs/stream-protocol.md says (decoded here by the test client written from
 * that page alone), a raw value written as it was and left unaltered, and the route and status
 * handed to the metrics hook. The real node's answers are compared with HTTP's in stream.test.ts.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import * as net from 'node:net';
import type { Socket } from 'node:net';
import { Authenticator } from '../../server/auth.js';
import { StreamServer } from '../../server/stream/index.js';
import { describe, expect, it, vi } from 'vitest';
import type { StreamRoute, StreamRoutes } from '../../server/app.js';
import type { Answer } from '../../server/codec.js';
import { HttpError, problemAnswer, toHttpError } from '../../server/errors.js';
import type { KeyRequest } from '../../server/routes/key_request.js';
import { StreamConnection } from '../../server/stream/connection.js';
import { ByteBudget } from '../../server/stream/budget.js';
import { answerFrame, encodeAnswer, headerLines, writeAnswerFrame } from '../../server/stream/codec.js';
import { ACCEPT, AnswerDecoder, OP, encodeRequest } from './stream_client.js';

/** The parts of a socket a connection uses; records every write. */
class FakeSocket extends EventEmitter {
  readonly writes: Buffer[] = [];
  writableLength = 0;
  writableEnded = false;
  destroyed = false;
  remoteAddress = '127.0.0.1';
  setNoDelay(): void {}
  pause(): void {}
  resume(): void {}
  /** Write callbacks not called yet: a client that does not read (`hold`), or called at the next turn. */
  readonly pending: (() => void)[] = [];
  hold = false;
  write(b: Buffer, cb?: () => void): boolean {
    this.writes.push(Buffer.from(b));
    if (cb) {
      if (this.hold) this.pending.push(cb);
      else setImmediate(cb);
    }
    return true;
  }
  /** The client reads: every held write reaches the kernel. */
  drainAll(): void {
    this.hold = false;
    for (const cb of this.pending.splice(0)) cb();
  }
  end(): void {
    this.writableEnded = true;
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Routes whose GET core answers what `answer` says, when `gate` lets it. */
function fakeRoutes(answer: (r: KeyRequest) => Answer, gate: (r: KeyRequest) => Promise<void> = async () => {}, leader: () => string | undefined = () => undefined) {
  const served: [string, number][] = [];
  // As the real read cores: the gate (the ReadIndex wait), then the stream's hook, then the answer.
  const core = async (r: KeyRequest): Promise<Answer> => {
    await gate(r);
    if (r.beforeRead) await r.beforeRead();
    return answer(r);
  };
  const route = (name: string, role: 'read' | 'write'): StreamRoute => ({ name, role, core });
  const routes: StreamRoutes = {
    get: route('kv_get', 'read'),
    put: route('kv_put', 'write'),
    delete: route('kv_delete', 'write'),
    proof: route('kv_proof', 'read'),
    maxValueBodyBytes: 1 << 20,
    admit: () => undefined,
    isClosing: () => false,
    leaderHint: leader,
    fail: (err) => problemAnswer(toHttpError(err)),
    served: (r, status) => void served.push([r.name, status]),
  };
  return { routes, served };
}

function open(routes: StreamRoutes): { socket: FakeSocket; conn: StreamConnection } {
  const socket = new FakeSocket();
  const conn = new StreamConnection(socket as unknown as Socket, 'admin', routes, { maxFrameBytes: 1 << 21, maxInFlight: 64, maxBufferedBytes: 1 << 20, maxInFlightBytes: 1 << 24 });
  return { socket, conn };
}

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('one stream connection', () => {
  it('answers completed in one turn leave in one write, laid out as the spec says; a raw value is copied and unaltered', async () => {
    const value = Buffer.from('välue-ü\u{1F600}');
    const { routes, served } = fakeRoutes((r): Answer => {
      const key = text(r.key);
      if (key === 'raw') return { status: 200, headers: { 'ProofKV-Version': '7', 'ProofKV-Seq': '9', 'ProofKV-Kind': 'put', 'Content-Type': 'application/octet-stream', Vary: 'Accept' }, body: value };
      if (key === 'json') return { status: 200, headers: { Vary: 'Accept', 'Content-Type': 'application/json; charset=utf-8' }, body: '{"valueUtf8":"é\u{1F600}"}' };
      throw new HttpError('NOT_FOUND', `no ${key}`);
    });
    const { socket } = open(routes);
    const frames = Buffer.concat([
      encodeRequest({ id: 1, op: OP.GET, accept: ACCEPT.RAW, key: 'raw' }),
      encodeRequest({ id: 2, op: OP.GET, accept: ACCEPT.JSON, key: 'json' }),
      encodeRequest({ id: 3, op: OP.GET, accept: ACCEPT.JSON, key: 'none' }),
      encodeRequest({ id: 4, op: OP.PING }),
    ]);
    socket.emit('data', frames);
    await turn();
    await turn();
    expect(socket.writes).toHaveLength(1);
    // The value the core answered is left as it was (the turn's buffer holds a copy of it).
    expect(value.toString()).toBe('välue-ü\u{1F600}');
    const answers = new AnswerDecoder().push(socket.writes[0]);
    expect(answers.map((a) => [a.id, a.status])).toEqual([[4, 204], [1, 200], [2, 200], [3, 404]]);
    const byId = new Map(answers.map((a) => [a.id, a]));
    expect(byId.get(1)!.headers).toEqual([['ProofKV-Version', '7'], ['ProofKV-Seq', '9'], ['ProofKV-Kind', 'put'], ['Content-Type', 'application/octet-stream']]);
    expect(byId.get(1)!.body.equals(value)).toBe(true);
    expect(byId.get(2)!.body.toString()).toBe('{"valueUtf8":"é\u{1F600}"}');
    expect(JSON.parse(byId.get(3)!.body.toString())).toMatchObject({ code: 'NOT_FOUND', detail: 'no none' });
    expect(byId.get(4)!.headers).toEqual([]);
    expect(byId.get(4)!.body.length).toBe(0);
    expect(served.sort()).toEqual([['kv_get', 200], ['kv_get', 200], ['kv_get', 404]]);
  });

  it('a follower names the leader on every answer (ProofKV-Leader, after the route\'s own headers); an answer that names one already keeps its own', async () => {
    let leader: string | undefined = 'http://127.0.0.1:7001';
    const { routes } = fakeRoutes((r): Answer => {
      if (text(r.key) === 'own') return { status: 421, headers: { 'ProofKV-Leader': 'http://127.0.0.1:7003', 'Content-Type': 'application/problem+json' }, body: '{}' };
      if (text(r.key) === 'gone') throw new HttpError('NOT_FOUND', 'gone');
      return { status: 200, headers: { 'ProofKV-Version': '3', 'Content-Type': 'application/json; charset=utf-8' }, body: '{}' };
    }, undefined, () => leader);
    const { socket } = open(routes);
    socket.emit('data', Buffer.concat([encodeRequest({ id: 1, op: OP.GET, accept: ACCEPT.JSON, key: 'k' }), encodeRequest({ id: 2, op: OP.GET, accept: ACCEPT.JSON, key: 'gone' }), encodeRequest({ id: 3, op: OP.GET, accept: ACCEPT.JSON, key: 'own' })]));
    await turn();
    await turn();
    const byId = new Map(new AnswerDecoder().push(Buffer.concat(socket.writes)).map((a) => [a.id, a]));
    expect(byId.get(1)!.headers).toEqual([['ProofKV-Version', '3'], ['Content-Type', 'application/json; charset=utf-8'], ['ProofKV-Leader', 'http://127.0.0.1:7001']]);
    expect(byId.get(2)!.headers).toContainEqual(['ProofKV-Leader', 'http://127.0.0.1:7001']);
    expect(byId.get(3)!.headers.filter(([k]) => k === 'ProofKV-Leader')).toEqual([['ProofKV-Leader', 'http://127.0.0.1:7003']]);
    // The leader itself (or a member that knows none) adds nothing.
    leader = undefined;
    socket.writes.length = 0;
    socket.emit('data', encodeRequest({ id: 4, op: OP.GET, accept: ACCEPT.JSON, key: 'k' }));
    await turn();
    await turn();
    expect(new AnswerDecoder().push(Buffer.concat(socket.writes))[0].headers).toEqual([['ProofKV-Version', '3'], ['Content-Type', 'application/json; charset=utf-8']]);
  });

  it('answers completed in different turns leave in different writes, in completion order', async () => {
    const release = new Map<string, () => void>();
    const { routes } = fakeRoutes(
      (r) => ({ status: 200, headers: { 'Content-Type': 'application/octet-stream' }, body: Buffer.from(text(r.key)) }),
      (r) => new Promise<void>((res) => release.set(text(r.key), res)),
    );
    const { socket, conn } = open(routes);
    socket.emit('data', Buffer.concat(['a', 'b', 'c'].map((k, i) => encodeRequest({ id: i + 1, op: OP.GET, accept: ACCEPT.RAW, key: k }))));
    await turn();
    expect(conn.inFlightCount).toBe(3);
    expect(socket.writes).toHaveLength(0);
    release.get('b')!();
    await turn();
    await turn();
    release.get('c')!();
    release.get('a')!();
    await turn();
    await turn();
    expect(socket.writes).toHaveLength(2);
    const first = new AnswerDecoder().push(socket.writes[0]);
    const second = new AnswerDecoder().push(socket.writes[1]);
    expect(first.map((a) => [a.id, a.body.toString()])).toEqual([[2, 'b']]);
    expect(second.map((a) => [a.id, a.body.toString()])).toEqual([[3, 'c'], [1, 'a']]);
    expect(conn.inFlightCount).toBe(0);
    expect(conn.stats.answered).toBe(3);
  });

  it('the answer of the last request in flight is written at once, before the turn ends; with others in flight it waits for them or the turn', async () => {
    const release = new Map<string, () => void>();
    const { routes } = fakeRoutes(
      (r) => ({ status: 200, headers: {}, body: text(r.key) }),
      (r) => new Promise<void>((res) => release.set(text(r.key), res)),
    );
    const { socket, conn } = open(routes);
    socket.emit('data', encodeRequest({ id: 1, op: OP.GET, key: 'lone' }));
    await turn();
    expect(conn.inFlightCount).toBe(1);
    // An immediate queued before the answer exists runs before any the connection queues for it:
    // the answer must be written by then (before, it waited for the connection's own immediate).
    const atImmediate = new Promise<number>((resolve) => setImmediate(() => resolve(socket.writes.length)));
    release.get('lone')!();
    expect(await atImmediate).toBe(1);
    expect(new AnswerDecoder().push(socket.writes[0]).map((a) => [a.id, a.body.toString()])).toEqual([[1, 'lone']]);

    // Two in flight: the first answer waits (for the turn's write), the second takes both in one write.
    socket.emit('data', Buffer.concat([encodeRequest({ id: 2, op: OP.GET, key: 'x' }), encodeRequest({ id: 3, op: OP.GET, key: 'y' })]));
    await turn();
    const firstAlone = new Promise<number>((resolve) => setImmediate(() => resolve(socket.writes.length)));
    release.get('x')!();
    expect(await firstAlone).toBe(1);
    const bothAtOnce = new Promise<number>((resolve) => setImmediate(() => resolve(socket.writes.length)));
    release.get('y')!();
    expect(await bothAtOnce).toBe(2);
    expect(new AnswerDecoder().push(socket.writes[1]).map((a) => a.id)).toEqual([2, 3]);
    // The cancelled immediate writes nothing more.
    await turn();
    expect(socket.writes).toHaveLength(2);
  });

  it('answers of a chunk refused before any wait (during the read of the chunk) still leave in one write at the turn end', async () => {
    const { routes } = fakeRoutes(() => ({ status: 200, headers: {}, body: 'ok' }));
    const socket = new FakeSocket();
    // A read-only token: every PUT is refused by the role check, synchronously, while the chunk is read.
    new StreamConnection(socket as unknown as Socket, 'read', routes, { maxFrameBytes: 1 << 21, maxInFlight: 64, maxBufferedBytes: 1 << 20, maxInFlightBytes: 1 << 24 });
    socket.emit('data', Buffer.concat(Array.from({ length: 20 }, (_, i) => encodeRequest({ id: i + 1, op: OP.PUT, key: 'k', value: 'v' }))));
    await turn();
    await turn();
    expect(socket.writes).toHaveLength(1);
    const answers = new AnswerDecoder().push(socket.writes[0]);
    expect(answers).toHaveLength(20);
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([403]));
  });

  it('an answer whose header lines a frame cannot hold is answered with a problem under its id, and the others of its turn still go out', async () => {
    const { routes } = fakeRoutes((r): Answer =>
      text(r.key) === 'huge' ? { status: 200, headers: { 'ProofKV-Leader': 'x'.repeat(70_000) }, body: 'no' } : { status: 200, headers: {}, body: 'ok' },
    );
    const { socket } = open(routes);
    socket.emit('data', Buffer.concat([encodeRequest({ id: 5, op: OP.GET, key: 'huge' }), encodeRequest({ id: 6, op: OP.GET, key: 'fine' })]));
    await turn();
    await turn();
    expect(socket.writes).toHaveLength(1);
    const answers = new AnswerDecoder().push(socket.writes[0]);
    expect(answers.map((a) => [a.id, a.status])).toEqual([[5, 500], [6, 200]]);
    expect(answers[1].body.toString()).toBe('ok');
  });
});

describe('answers that are never in flight (attacker: a chunk of thousands of PINGs or bad requests)', () => {
  it('at most maxInFlight answers are queued per turn: reading stops there and resumes after the write; all are answered', async () => {
    const { routes } = fakeRoutes(() => ({ status: 200, headers: {}, body: 'ok' }));
    const { socket, conn } = open(routes);
    const N = 10_000;
    // PINGs and unknown ops: answered at once, never in flight, so maxInFlight alone did not stop them.
    socket.emit('data', Buffer.concat(Array.from({ length: N }, (_, i) => encodeRequest({ id: 1 + i, op: i % 2 === 0 ? OP.PING : (9 as 1) }))));
    for (let i = 0; i < 1000 && conn.stats.answered < N; i++) await turn();
    await turn();
    expect(conn.stats.answered).toBe(N);
    const perWrite = socket.writes.map((w) => new AnswerDecoder().push(w).length);
    expect(perWrite.reduce((a, b) => a + b, 0)).toBe(N);
    // The first version queued all 10,000 (objects of ~100 bytes counted as 12) in one turn.
    expect(Math.max(...perWrite)).toBeLessThanOrEqual(64);
    expect(conn.stats.pauses).toBeGreaterThan(0);
  });
});

describe('input assembly (attacker: a large frame sent in small pieces)', () => {
  it('a frame that arrives in many chunks is joined once, not once per chunk, and arrives intact', async () => {
    const value = Buffer.alloc(256 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 7 + 3) & 0xff;
    let got: Uint8Array | undefined;
    const { routes } = fakeRoutes((r) => {
      got = r.body;
      return { status: 204, headers: {} };
    });
    const { socket } = open(routes);
    const frame = Buffer.concat([encodeRequest({ id: 1, op: OP.PUT, key: 'big', value }), encodeRequest({ id: 2, op: OP.PING })]);
    // Every byte the connection copies to join chunks (Buffer.concat's results), while the frame arrives.
    const concat = vi.spyOn(Buffer, 'concat');
    let copied = 0;
    try {
      // 3 bytes first (a length field cut in two), then pieces of 512 bytes: 515 chunks.
      socket.emit('data', frame.subarray(0, 3));
      for (let at = 3; at < frame.length; at += 512) socket.emit('data', frame.subarray(at, Math.min(at + 512, frame.length)));
      copied = concat.mock.results.reduce((n, r) => n + (r.value as Buffer).length, 0);
    } finally {
      concat.mockRestore();
    }
    // Joined at most twice (the length field, then the whole frame); joined per chunk, it was 67 MB.
    expect(copied).toBeLessThanOrEqual(2 * frame.length);
    await turn();
    await turn();
    expect(Buffer.from(got!).equals(value)).toBe(true);
    const answers = new AnswerDecoder().push(Buffer.concat(socket.writes));
    expect(answers.map((a) => [a.id, a.status]).sort()).toEqual([[1, 204], [2, 204]]);
  });

  it('a connection that ends inside a frame held in pieces gets the connection error', async () => {
    const { routes } = fakeRoutes(() => ({ status: 204, headers: {} }));
    const { socket } = open(routes);
    const frame = encodeRequest({ id: 1, op: OP.PUT, key: 'k', value: Buffer.alloc(4000) });
    for (let at = 0; at < 3000; at += 1000) socket.emit('data', frame.subarray(at, at + 1000));
    socket.emit('end');
    await turn();
    await turn();
    const answers = new AnswerDecoder().push(Buffer.concat(socket.writes));
    expect(answers.map((a) => [a.id, a.status])).toEqual([[0, 400]]);
    expect(JSON.parse(answers[0].body.toString())).toMatchObject({ code: 'STREAM_PROTOCOL', detail: 'the connection ended inside a frame (3000 bytes of it received)' });
  });
});

describe('answer bytes of the reads in flight (attacker: many reads of a large value, never reading the answers)', () => {
  /** Limits where a raw read reserves 3072 bytes (a JSON one 22,528, a CBOR one 6,144): 4 raw ones fit in 13 KiB. */
  const small = { maxFrameBytes: 3072, maxInFlight: 64, maxBufferedBytes: 1 << 20, maxInFlightBytes: 1 << 20, maxAnswerReserveBytes: 13 * 1024 };

  it('reads wait in flight holding nothing; past their route hook at most the bound worth of reads build answers at once; all are answered', async () => {
    const release: (() => void)[] = [];
    const { routes } = fakeRoutes(
      (r) => ({ status: 200, headers: {}, body: text(r.key) }),
      () => new Promise<void>((res) => release.push(res)),
    );
    const socket = new FakeSocket();
    socket.hold = true;
    const conn = new StreamConnection(socket as unknown as Socket, 'admin', routes, small);
    const puts = Array.from({ length: 10 }, (_, i) => encodeRequest({ id: 1 + i, op: OP.PUT, key: `p${i}`, value: 'v' }));
    const gets = Array.from({ length: 20 }, (_, i) => encodeRequest({ id: 100 + i, op: OP.GET, key: `g${i}`, accept: ACCEPT.RAW }));
    socket.emit('data', Buffer.concat([...puts, ...gets]));
    await turn();
    // Every request is in flight (the ReadIndex wait holds no answer bytes): the first version held 14.
    expect(conn.inFlightCount).toBe(30);
    expect(conn.answerBytes).toBe(0);
    for (let i = 0; i < 200 && conn.stats.answered < 30; i++) {
      for (const r of release.splice(0)) r();
      socket.drainAll();
      socket.hold = true;
      await turn();
    }
    expect(conn.stats.answered).toBe(30);
    expect(conn.stats.peakReading).toBeLessThanOrEqual(4);
    expect(conn.stats.peakAnswerBytes).toBeLessThanOrEqual(13 * 1024);
    for (let i = 0; i < 3; i++) {
      socket.drainAll();
      await turn();
    }
    expect(conn.answerBytes).toBe(0);
    const ids = new AnswerDecoder().push(Buffer.concat(socket.writes)).map((a) => a.id);
    expect(ids.sort((a, b) => a - b)).toEqual([...Array.from({ length: 10 }, (_, i) => 1 + i), ...Array.from({ length: 20 }, (_, i) => 100 + i)]);
  });

  it('JSON reads: all in flight at once, built one at a time (each reserves its worst case only while it builds), each then holding its real answer size', async () => {
    const release: (() => void)[] = [];
    const { routes } = fakeRoutes(
      () => ({ status: 200, headers: {}, body: 'ok' }),
      () => new Promise<void>((res) => release.push(res)),
    );
    const socket = new FakeSocket();
    socket.hold = true;
    // Room for one JSON worst case (22,528) and a few small answers, where the first version let one JSON read in flight.
    const conn = new StreamConnection(socket as unknown as Socket, 'admin', routes, { ...small, maxAnswerReserveBytes: 23 * 1024 });
    socket.emit('data', Buffer.concat(Array.from({ length: 3 }, (_, i) => encodeRequest({ id: 1 + i, op: OP.GET, key: `j${i}`, accept: ACCEPT.JSON }))));
    await turn();
    expect(conn.inFlightCount).toBe(3);
    for (let i = 0; i < 50 && conn.stats.answered < 3; i++) {
      for (const r of release.splice(0)) r();
      await turn();
    }
    expect([conn.stats.answered, conn.stats.peakInFlight, conn.stats.peakReading]).toEqual([3, 3, 1]);
    // The client has not read: what the connection holds is the three answers' real frames (12 + 2 bytes each), not 3 × 22,528.
    expect(conn.answerBytes).toBe(3 * 14);
    for (let i = 0; i < 3; i++) {
      socket.drainAll();
      await turn();
    }
    expect(conn.answerBytes).toBe(0);
  });

  it('one read larger than the bound still runs when the connection holds nothing', async () => {
    const { routes } = fakeRoutes(() => ({ status: 200, headers: {}, body: 'ok' }));
    const socket = new FakeSocket();
    const conn = new StreamConnection(socket as unknown as Socket, 'admin', routes, { ...small, maxAnswerReserveBytes: 1000 });
    socket.emit('data', Buffer.concat([encodeRequest({ id: 1, op: OP.GET, key: 'a' }), encodeRequest({ id: 2, op: OP.PROOF, key: 'b' })]));
    for (let i = 0; i < 20 && conn.stats.answered < 2; i++) await turn();
    expect(conn.stats.answered).toBe(2);
    expect(conn.stats.peakReading).toBe(1);
  });
});

describe('the node-wide budgets (attacker: many connections, each under its own bounds)', () => {
  const small = { maxFrameBytes: 3072, maxInFlight: 64, maxBufferedBytes: 1 << 20, maxInFlightBytes: 1 << 20, maxAnswerReserveBytes: 13 * 1024 };
  /** Answers of 3,000 bytes: a raw read's frame is 3,012 of its 3,072 reserved. */
  const big = () => fakeRoutes(() => ({ status: 200, headers: {}, body: 'x'.repeat(3000) }));
  const budgets = (answers: number, requests = 1 << 30, stallMs = 60_000) => ({ answers: new ByteBudget(answers, stallMs), requests: new ByteBudget(requests, stallMs) });
  const gets = (n: number, from = 1) => Buffer.concat(Array.from({ length: n }, (_, i) => encodeRequest({ id: from + i, op: OP.GET, key: `g${i}`, accept: ACCEPT.RAW })));

  it('connections each below their own bound, together above the node bound, hold no more than it; all are answered as clients read, and every byte comes back', async () => {
    const { routes } = big();
    const b = budgets(2 * 3072);
    const conns = Array.from({ length: 5 }, () => {
      const socket = new FakeSocket();
      socket.hold = true;
      return { socket, conn: new StreamConnection(socket as unknown as Socket, 'admin', routes, small, b) };
    });
    for (const { socket } of conns) socket.emit('data', gets(4));
    for (let i = 0; i < 10; i++) await turn();
    // No client reads: two answers exist, the other 18 reads wait their turn (each connection alone would have
    // built 4), one per connection on the node's queue (the others behind it on their connection).
    expect(conns.reduce((n, c) => n + c.conn.stats.answered, 0)).toBe(2);
    expect(b.answers.waiting).toBe(5);
    expect(b.answers.used).toBeLessThanOrEqual(2 * 3072);
    for (let i = 0; i < 400 && conns.some((c) => c.conn.stats.answered < 4); i++) {
      for (const c of conns) c.socket.drainAll();
      for (const c of conns) c.socket.hold = true;
      await turn();
    }
    expect(conns.map((c) => c.conn.stats.answered)).toEqual([4, 4, 4, 4, 4]);
    expect(b.answers.stats.peak).toBeLessThanOrEqual(2 * 3072);
    for (let i = 0; i < 3; i++) {
      for (const c of conns) c.socket.drainAll();
      await turn();
    }
    expect([b.answers.used, b.requests.used]).toEqual([0, 0]);
  });

  it('a client that never reads cannot starve a fast one for ever: once the fast one waited stallMs, the stalled connection is cut and its bytes come back', async () => {
    const { routes } = big();
    const b = budgets(2 * 3072, 1 << 30, 50);
    const slow = new FakeSocket();
    slow.hold = true;
    const slowConn = new StreamConnection(slow as unknown as Socket, 'admin', routes, small, b);
    slow.emit('data', gets(4));
    for (let i = 0; i < 10; i++) await turn();
    expect(slowConn.stats.answered).toBe(2);
    const fast = new FakeSocket();
    const fastConn = new StreamConnection(fast as unknown as Socket, 'admin', routes, small, b);
    fast.emit('data', gets(3, 50));
    // Bounded wait (the stall check runs every 50 ms): the fast client's reads are answered.
    for (let i = 0; i < 200 && fastConn.stats.answered < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(fastConn.stats.answered).toBe(3);
    expect(slow.destroyed).toBe(true);
    expect(fast.destroyed).toBe(false);
    expect(b.answers.stats.evictions).toBe(1);
    for (let i = 0; i < 5; i++) await turn();
    expect(b.answers.used).toBe(0);
  });

  it('a slow reader that still reads is not stalled: its socket buffer shrinking counts as progress, not only whole writes taken', async () => {
    const { routes } = big();
    const socket = new FakeSocket();
    socket.hold = true;
    const conn = new StreamConnection(socket as unknown as Socket, 'admin', routes, small, budgets(1 << 20));
    expect(conn.stalledSince()).toBeUndefined();
    socket.emit('data', gets(1));
    for (let i = 0; i < 5 && conn.stats.answered < 1; i++) await turn();
    await turn();
    socket.writableLength = 3012;
    const first = conn.stalledSince()!;
    await new Promise((r) => setTimeout(r, 5));
    expect(conn.stalledSince()).toBe(first);
    socket.writableLength = 1000;
    await new Promise((r) => setTimeout(r, 5));
    expect(conn.stalledSince()!).toBeGreaterThan(first);
  });

  it('a connection that dies with reads waiting, building and unsent gives every byte back', async () => {
    const release: (() => void)[] = [];
    const { routes } = fakeRoutes(
      () => ({ status: 200, headers: {}, body: 'x'.repeat(3000) }),
      () => new Promise<void>((res) => release.push(res)),
    );
    const b = budgets(2 * 3072);
    const socket = new FakeSocket();
    socket.hold = true;
    const conn = new StreamConnection(socket as unknown as Socket, 'admin', routes, small, b);
    socket.emit('data', Buffer.concat([gets(6), encodeRequest({ id: 90, op: OP.PUT, key: 'p', value: 'v' })]));
    await turn();
    for (const r of release.splice(0)) r();
    for (let i = 0; i < 10; i++) await turn();
    // Two reads' answers built and unsent, one read waiting for the node's bytes, three behind it on the connection.
    expect(conn.stats.answered).toBe(3);
    expect(b.answers.waiting).toBe(1);
    expect(b.answers.used).toBeGreaterThan(0);
    socket.destroy();
    for (let i = 0; i < 10; i++) await turn();
    expect([b.answers.used, b.answers.waiting, b.requests.used]).toEqual([0, 0, 0]);
  });

  it('the node raises each budget to two of its largest requests (two JSON reads worst case, two frames), so none must wait for an empty budget', () => {
    const { routes } = fakeRoutes(() => ({ status: 200, headers: {}, body: 'ok' }));
    const server = (node: { maxAnswerBytes?: number; maxRequestBytes?: number }) =>
      new StreamServer({ routes, auth: new Authenticator([]), nodeId: 'n1', limits: small, node, listener: (_req, res) => res.end() });
    const tiny = server({ maxAnswerBytes: 1000, maxRequestBytes: 1000 });
    expect([tiny.budgets.answers.capacity, tiny.budgets.requests.capacity]).toEqual([2 * 22_528, 2 * 3072]);
    const given = server({ maxAnswerBytes: 1 << 20, maxRequestBytes: 1 << 20 });
    expect([given.budgets.answers.capacity, given.budgets.requests.capacity]).toEqual([1 << 20, 1 << 20]);
    const defaults = server({});
    expect([defaults.budgets.answers.capacity, defaults.budgets.requests.capacity]).toEqual([512 * 1024 * 1024, 256 * 1024 * 1024]);
  });

  it('frames refused as malformed (a connection error included) give their request bytes back', async () => {
    const { routes } = fakeRoutes(() => ({ status: 200, headers: {}, body: 'ok' }));
    const b = budgets(1 << 30, 1 << 20);
    for (let i = 0; i < 3; i++) {
      const socket = new FakeSocket();
      new StreamConnection(socket as unknown as Socket, 'admin', routes, small, b);
      // An unknown op (answered, the connection goes on), then id 0 (a connection error).
      socket.emit('data', Buffer.concat([encodeRequest({ id: 1, op: 9 as 1 }), encodeRequest({ id: 0, op: OP.GET, key: 'k' })]));
      await turn();
      // The first version kept every id-0 frame's bytes: a few thousand such connections and the node read no more frames.
      expect(b.requests.used).toBe(0);
    }
  });

  it('request frames in flight stay under the node request budget across connections; waiting frames are read as requests end', async () => {
    const release: (() => void)[] = [];
    const { routes } = fakeRoutes(
      () => ({ status: 200, headers: {}, body: 'ok' }),
      () => new Promise<void>((res) => release.push(res)),
    );
    const frame = encodeRequest({ id: 1, op: OP.PUT, key: 'k', value: 'v'.repeat(1000) });
    const b = budgets(1 << 30, 3 * frame.length);
    const conns = Array.from({ length: 3 }, () => {
      const socket = new FakeSocket();
      return { socket, conn: new StreamConnection(socket as unknown as Socket, 'admin', routes, small, b) };
    });
    for (const { socket } of conns) socket.emit('data', Buffer.concat(Array.from({ length: 4 }, (_, i) => encodeRequest({ id: 1 + i, op: OP.PUT, key: 'k', value: 'v'.repeat(1000) }))));
    await turn();
    expect(conns.reduce((n, c) => n + c.conn.inFlightCount, 0)).toBe(3);
    for (let i = 0; i < 200 && conns.some((c) => c.conn.stats.answered < 4); i++) {
      for (const r of release.splice(0)) r();
      await turn();
      expect(b.requests.used).toBeLessThanOrEqual(3 * frame.length);
    }
    expect(conns.map((c) => c.conn.stats.answered)).toEqual([4, 4, 4]);
    expect(b.requests.used).toBe(0);
  });
});

describe('idle and vanished clients (attacker: connections that hold a slot and send nothing)', () => {
  /** A node:http server on 127.0.0.1 with only the stream front, over `routes`, idle timeout `idleMs`. */
  async function streamNode(routes: StreamRoutes, idleMs: number) {
    const stream = new StreamServer({
      routes,
      auth: new Authenticator([]),
      nodeId: 'n1',
      limits: { maxFrameBytes: 1 << 20, maxInFlight: 8, maxBufferedBytes: 1 << 20, maxInFlightBytes: 1 << 20, idleTimeoutMs: idleMs },
      listener: (_req, res) => res.end(),
    });
    const server = createServer((_req, res) => res.end());
    server.on('upgrade', (req: IncomingMessage, socket: net.Socket, head: Buffer) => stream.handleUpgrade(req, socket, head));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    /** Opens a stream connection; resolves once upgraded, with what arrives after the 101 and whether the server ended it. */
    const connect = async () => {
      const s = net.connect(port, '127.0.0.1');
      const got = { bytes: Buffer.alloc(0), ended: false, head: '' };
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.write('GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: proofkv-stream/1\r\n\r\n');
        s.on('data', (c: Buffer) => {
          got.bytes = Buffer.concat([got.bytes, c]);
          const i = got.bytes.indexOf('\r\n\r\n');
          if (got.head === '' && i >= 0) {
            got.head = got.bytes.subarray(0, i).toString();
            got.bytes = got.bytes.subarray(i + 4);
            resolve();
          }
        });
      });
      s.on('end', () => {
        got.ended = true;
        s.end();
      });
      return { s, got };
    };
    const close = async () => {
      stream.destroyAll();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    };
    return { stream, connect, close };
  }

  /** Waits (bounded: 5 s) until `cond` holds. */
  async function until(cond: () => boolean): Promise<boolean> {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    return cond();
  }

  it('a connection that sends nothing after the handshake is ended after the idle timeout; one with a request in flight is not', async () => {
    let release: (() => void) | undefined;
    const { routes } = fakeRoutes(
      () => ({ status: 200, headers: {}, body: 'late' }),
      () => new Promise<void>((r) => (release = r)),
    );
    const node = await streamNode(routes, 150);
    try {
      const quiet = await node.connect();
      const busy = await node.connect();
      expect(quiet.got.head).toMatch(/^HTTP\/1.1 101/);
      expect(node.stream.connections.size).toBe(2);
      busy.s.write(encodeRequest({ id: 9, op: OP.GET, key: 'slow' }));
      expect(await until(() => quiet.got.ended)).toBe(true);
      // The quiet one ended cleanly (no connection error frame) and is gone from the node's set.
      expect(quiet.got.bytes.length).toBe(0);
      expect(await until(() => node.stream.connections.size === 1)).toBe(true);
      // The busy one outlived several idle periods with its request in flight, then gets its answer.
      await new Promise((r) => setTimeout(r, 400));
      expect(busy.got.ended).toBe(false);
      release!();
      expect(await until(() => busy.got.bytes.length > 0)).toBe(true);
      expect(new AnswerDecoder().push(busy.got.bytes).map((a) => [a.id, a.status, a.body.toString()])).toEqual([[9, 200, 'late']]);
      busy.s.destroy();
      quiet.s.destroy();
    } finally {
      await node.close();
    }
  });

  it('the handshake turns TCP keep-alive on, so a peer gone without a word is found', () => {
    const { routes } = fakeRoutes(() => ({ status: 204, headers: {} }));
    const stream = new StreamServer({ routes, auth: new Authenticator([]), nodeId: 'n1', limits: { maxFrameBytes: 1 << 20, maxInFlight: 8, maxBufferedBytes: 1 << 20, maxInFlightBytes: 1 << 20 }, listener: () => undefined });
    const socket = new FakeSocket();
    const calls: unknown[][] = [];
    Object.assign(socket, { setKeepAlive: (...a: unknown[]) => void calls.push(['keepAlive', ...a]), setTimeout: (...a: unknown[]) => void calls.push(['timeout', ...a]) });
    const req = { url: '/v1/stream', method: 'GET', headers: { upgrade: 'proofkv-stream/1', connection: 'Upgrade' } } as unknown as IncomingMessage;
    stream.handleUpgrade(req, socket as unknown as net.Socket, Buffer.alloc(0));
    expect(socket.writes[0].toString()).toMatch(/^HTTP\/1.1 101/);
    expect(calls).toContainEqual(['keepAlive', true, 60_000]);
    expect(calls).toContainEqual(['timeout', 300_000]);
  });
});

describe('answer frames', () => {
  it('several frames written into one buffer decode as each one encoded alone', () => {
    const specs: [number, number, [string, string][], string | Uint8Array | undefined][] = [
      [1, 200, [['ProofKV-Version', '1'], ['Content-Type', 'application/octet-stream']], new Uint8Array([0, 255, 1])],
      [0xffffffff, 404, [['Content-Type', 'application/problem+json']], '{"detail":"ü\u{1F600}"}'],
      [3, 204, [], undefined],
      [4, 200, [['ProofKV-Kind', 'pût']], ''],
    ];
    const frames = specs.map(([id, status, h, body]) => answerFrame(id, status, headerLines(h), body));
    const out = Buffer.alloc(frames.reduce((n, f) => n + f.size, 0));
    let at = 0;
    for (const f of frames) at = writeAnswerFrame(f, out, at);
    expect(at).toBe(out.length);
    expect(out.equals(Buffer.concat(specs.map(([id, status, h, body]) => encodeAnswer(id, status, h, body))))).toBe(true);
    const decoded = new AnswerDecoder().push(out);
    expect(decoded.map((d) => [d.id, d.status, d.headers, d.body.toString('hex')])).toEqual(
      specs.map(([id, status, h, body]) => [id, status, h, Buffer.from(body ?? '').toString('hex')]),
    );
  });

  it('header lines over 65535 bytes are a RangeError before anything is written', () => {
    expect(() => answerFrame(1, 200, headerLines([['A', 'é'.repeat(32_767)]]))).toThrow(RangeError);
    expect(() => answerFrame(1, 200, headerLines([['A', 'x'.repeat(65_531)]]))).not.toThrow();
  });
});
