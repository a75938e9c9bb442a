/**
 * The message streams of HttpTransport, attacked with raw connections on 127.0.0.1: a handshake
 * with a client token, from a non-member, with a bad MAC, replayed; frames tampered with (a
 * flipped byte anywhere), replayed on the same or on a new stream, reordered, over the size bound;
 * a recipient that does not prove its id; a slow reader (bounded queue, drops counted, a stalled
 * write breaks the stream); a second stream replacing the first; idle streams; a peer that
 * restarts on the same port.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { EntryType, MessageType, newMessage, type Message } from '../../src/raft/index.js';
import {
  FRAME_HEADER_BYTES, PeerHeader, PeerRoute, STREAM_PATH, STREAM_PROTOCOL, authHeaders, bodyDigest,
  encodeBatch, encodeFrame, encodeMessages, parseAuthHeaders, requestMac, streamAcceptMac, streamKey,
  type PeerClaims,
} from '../../src/replication/transport/index.js';
import { FrameReader } from '../../src/replication/transport/stream.js';
import { CLUSTER, SECRET, claims, closeAll, startCluster, startNode, waitFor } from './transport_helpers.js';

afterEach(closeAll);

const app = (from: number, to: number, i: number, data = Uint8Array.of(i & 0xff)): Message =>
  newMessage({ type: MessageType.App, from, to, term: 3, index: i, logTerm: 3, commit: i, entries: [{ term: 3, index: i + 1, type: EntryType.Normal, data }] });

const EMPTY_DIGEST = bodyDigest(new Uint8Array(0));

/** A raw stream handshake's outcome: the status and headers, and on `101` the socket and the frame key. */
interface RawStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  socket?: Socket;
  key?: Uint8Array;
  /** Resolves when the socket closes (at once when there is none). */
  closed: Promise<void>;
}

/** Opens a stream to `url` by hand with claims `c` signed with `secret`, plus `extra` headers. */
function rawStream(url: string, c: PeerClaims, extra: Record<string, string> = {}, secret = SECRET): Promise<RawStream> {
  const mac = requestMac(secret, PeerRoute.Stream, c, '', EMPTY_DIGEST);
  return new Promise((resolve) => {
    const req = http.request(new URL(STREAM_PATH, url), {
      method: 'GET', agent: false,
      headers: { ...authHeaders(c, mac), connection: 'Upgrade', upgrade: STREAM_PROTOCOL, ...extra },
    });
    req.on('error', () => resolve({ status: 0, headers: {}, closed: Promise.resolve() }));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, closed: Promise.resolve() }));
    });
    req.on('upgrade', (res, socket: Socket) => {
      socket.on('error', () => undefined);
      const closed = new Promise<void>((r) => socket.on('close', () => r()));
      const nonce = Buffer.from(String(res.headers[PeerHeader.nonce]), 'hex');
      resolve({ status: res.statusCode ?? 0, headers: res.headers, socket, key: streamKey(SECRET, mac, nonce), closed });
    });
    req.end();
  });
}

/** Frames 1..n of messages `app(from, to, i)` for i in 1..n under `key`. */
function frames(key: Uint8Array, from: number, to: number, n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => encodeFrame(key, i + 1, encodeMessages([app(from, to, i + 1)])));
}

describe('stream handshake', () => {
  it('a member opens a stream; the answer proves the recipient id; frames are delivered in order', async () => {
    const [, b] = await startCluster(2);
    const c = claims(1, 2, { epoch: Date.now() });
    const s = await rawStream(b.t.url, c);
    expect(s.status).toBe(101);
    expect(s.headers[PeerHeader.from]).toBe('2');
    expect(s.headers[PeerHeader.to]).toBe('1');
    const nonce = Buffer.from(String(s.headers[PeerHeader.nonce]), 'hex');
    const reqMac = parseAuthHeaders(authHeaders(c, requestMac(SECRET, PeerRoute.Stream, c, '', EMPTY_DIGEST)))!.mac;
    expect(Buffer.from(String(s.headers[PeerHeader.mac]), 'hex')).toEqual(Buffer.from(streamAcceptMac(SECRET, CLUSTER, 2, 1, nonce, reqMac)));
    for (const f of frames(s.key!, 1, 2, 3)) s.socket!.write(f);
    await waitFor(() => b.received.length === 3, 'three frames delivered');
    expect(b.received.map((m) => m.index)).toEqual([1, 2, 3]);
    expect(b.t.stats().peers[0].streamsAccepted).toBe(1);
    s.socket!.destroy();
  });

  it('refuses a client token, a non-member, another cluster or recipient, a bad MAC, a stale time, a replayed handshake; opens nothing', async () => {
    const [, b] = await startCluster(2);
    const epoch = Date.now();
    const good = claims(1, 2, { epoch });
    const cases: Array<[Promise<RawStream>, number, string]> = [
      [rawStream(b.t.url, claims(1, 2, { epoch }), { authorization: 'Bearer client-token' }), 400, 'authorization-header'],
      [rawStream(b.t.url, claims(9, 2, { epoch })), 403, 'not-member'],
      [rawStream(b.t.url, claims(1, 2, { epoch, clusterId: 'other' })), 403, 'wrong-cluster'],
      [rawStream(b.t.url, claims(1, 3, { epoch })), 403, 'wrong-recipient'],
      [rawStream(b.t.url, claims(1, 2, { epoch }), {}, new Uint8Array(32)), 401, 'bad-mac'],
      [rawStream(b.t.url, claims(1, 2, { epoch, time: Date.now() - 3_600_000 })), 401, 'clock-skew'],
      [rawStream(b.t.url, claims(1, 2, { epoch }), { upgrade: 'websocket' }), 400, 'bad-request'],
    ];
    for (const [p, status, reason] of cases) {
      const r = await p;
      expect([r.status, r.headers[PeerHeader.refusal]]).toEqual([status, reason]);
      expect(r.socket).toBeUndefined();
    }
    // a client token alone (no peer claims) never opens a stream either
    const tokenOnly = await new Promise<number>((resolve) => {
      const req = http.request(new URL(STREAM_PATH, b.t.url), { agent: false, headers: { connection: 'Upgrade', upgrade: STREAM_PROTOCOL, authorization: 'Bearer x' } });
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('upgrade', (res, socket: Socket) => {
        socket.destroy();
        resolve(101);
      });
      req.on('error', () => resolve(0));
      req.end();
    });
    expect(tokenOnly).toBe(400);
    const first = await rawStream(b.t.url, good);
    expect(first.status).toBe(101);
    const replayed = await rawStream(b.t.url, good); // the same claims and MAC again
    expect([replayed.status, replayed.headers[PeerHeader.refusal]]).toEqual([409, 'replay']);
    expect(b.t.stats().peers[0].streamsAccepted).toBe(1);
    first.socket!.destroy();
  });

  it('a sender refuses a recipient that does not prove its id: no frame is written to it', async () => {
    let written = 0;
    let dials = 0;
    const sockets: Socket[] = [];
    const fake = http.createServer();
    fake.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
      dials++;
      sockets.push(socket);
      socket.on('data', (d: Buffer) => (written += d.length));
      socket.on('error', () => undefined);
      const auth = parseAuthHeaders(req.headers)!;
      // a well-formed answer from member 2, but signed with another secret
      const nonce = Buffer.alloc(16, 7);
      const mac = streamAcceptMac(new Uint8Array(32), CLUSTER, 2, 1, nonce, auth.mac);
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${STREAM_PROTOCOL}\r\n${PeerHeader.from}: 2\r\n${PeerHeader.to}: 1\r\n${PeerHeader.nonce}: ${nonce.toString('hex')}\r\n${PeerHeader.mac}: ${Buffer.from(mac).toString('hex')}\r\n\r\n`);
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const a = await startNode(1, { backoffMs: { base: 5, max: 10 } });
      a.t.setPeers([{ id: 2, peerUrl: `http://127.0.0.1:${(fake.address() as AddressInfo).port}` }]);
      for (let i = 0; i < 50 && a.t.stats().peers[0].failedStreams < 2; i++) {
        a.t.send([app(1, 2, i)]);
        await new Promise((r) => setTimeout(r, 10));
      }
      const s = a.t.stats().peers[0];
      expect(s.failedStreams).toBeGreaterThanOrEqual(2);
      expect(s.streamsOpened).toBe(0);
      expect(s.sentMessages).toBe(0);
      expect(dials).toBeGreaterThanOrEqual(2);
      expect(written).toBe(0);
      expect(a.unreachable.length).toBeGreaterThan(0);
    } finally {
      for (const s of sockets) s.destroy();
      fake.closeAllConnections();
      await new Promise((r) => fake.close(r));
    }
  });
});

describe('stream frames', () => {
  async function openStream() {
    const [, b] = await startCluster(2);
    const s = await rawStream(b.t.url, claims(1, 2, { epoch: Date.now() }));
    expect(s.status).toBe(101);
    return { b, s };
  }

  it('a flipped byte anywhere in a frame (length aside): refused, stream closed, nothing of it or after it delivered', async () => {
    const f = frames(new Uint8Array(32), 1, 2, 2)[1];
    // seq bytes, MAC bytes, body bytes (the type, an index, the entry data, the last byte)
    const positions = [4, 11, 12, 30, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + 3, f.length - 1];
    for (const pos of positions) {
      const { b, s } = await openStream();
      const [one, two, three] = frames(s.key!, 1, 2, 3);
      s.socket!.write(one);
      await waitFor(() => b.received.length === 1, 'the first frame');
      const bad = Buffer.from(two);
      bad[pos] ^= 0x01;
      s.socket!.write(Buffer.concat([bad, three]));
      await s.closed;
      expect(b.received.map((m) => m.index)).toEqual([1]);
      const refused = b.t.stats().refused;
      expect(refused[pos < 12 ? 'replay' : 'bad-mac']).toBe(1);
      await closeAll();
    }
  });

  it('a coalesced frame (several messages of one turn) with a flipped byte, or replayed, is refused whole: none of its messages delivered', async () => {
    const batch = (key: Uint8Array, seq: number, first: number) => encodeFrame(key, seq, encodeMessages([app(1, 2, first), app(1, 2, first + 1), app(1, 2, first + 2)]));
    for (const attack of ['flip', 'replay'] as const) {
      const { b, s } = await openStream();
      const one = batch(s.key!, 1, 1);
      s.socket!.write(one);
      await waitFor(() => b.received.length === 3, 'the first coalesced frame');
      let next: Buffer = one; // replayed as it was
      if (attack === 'flip') {
        next = batch(s.key!, 2, 4);
        next[next.length - 20] ^= 0x01; // inside the second message
      }
      s.socket!.write(next);
      await s.closed;
      expect(b.received.map((m) => m.index)).toEqual([1, 2, 3]);
      expect(b.t.stats().refused[attack === 'flip' ? 'bad-mac' : 'replay']).toBe(1);
      await closeAll();
    }
  });

  it('a frame replayed on the same stream or reordered is refused and the stream closed', async () => {
    for (const order of [[0, 0], [0, 2, 1], [1]]) {
      const { b, s } = await openStream();
      const fs = frames(s.key!, 1, 2, 3);
      s.socket!.write(Buffer.concat(order.map((i) => fs[i])));
      await s.closed;
      const want = order[0] === 0 ? [1] : [];
      expect(b.received.map((m) => m.index)).toEqual(want);
      expect(b.t.stats().refused.replay).toBe(1);
      await closeAll();
    }
  });

  it('a frame captured on one stream and replayed on a new stream is refused, the new stream closed', async () => {
    const { b, s } = await openStream();
    const captured = frames(s.key!, 1, 2, 1)[0];
    s.socket!.write(captured);
    await waitFor(() => b.received.length === 1, 'the original frame');
    s.socket!.destroy();
    const again = await rawStream(b.t.url, claims(1, 2, { epoch: Date.now() + 1 }));
    expect(again.status).toBe(101);
    again.socket!.write(captured); // seq 1, but under the first stream's key
    await again.closed;
    expect(b.received.length).toBe(1);
    expect(b.t.stats().refused['bad-mac']).toBe(1);
  });

  it('a frame over the size bound is refused from its header, before its body is read', async () => {
    const [, b] = await startCluster(2, { maxBatchBytes: 64 << 10 });
    const s = await rawStream(b.t.url, claims(1, 2, { epoch: Date.now() }));
    const ok = encodeFrame(s.key!, 1, encodeMessages([app(1, 2, 1, new Uint8Array((64 << 10) - 200))]));
    s.socket!.write(ok);
    await waitFor(() => b.received.length === 1, 'a frame just under the bound');
    const big = encodeFrame(s.key!, 2, encodeMessages([app(1, 2, 2, new Uint8Array(64 << 10))]));
    s.socket!.write(big.subarray(0, FRAME_HEADER_BYTES)); // the header alone: the length is enough
    await s.closed;
    expect(b.received.length).toBe(1);
    expect(b.t.stats().refused['too-large']).toBe(1);
  });

  it('a frame whose messages claim another sender or recipient is refused, the stream closed', async () => {
    for (const m of [app(3, 2, 1), app(1, 3, 1)]) {
      const { b, s } = await openStream();
      s.socket!.write(encodeFrame(s.key!, 1, encodeMessages([m])));
      await s.closed;
      expect(b.received).toEqual([]);
      expect(b.t.stats().refused['sender-mismatch']).toBe(1);
      await closeAll();
    }
  });

  it('a second stream of the same sender replaces the first; a removed member\'s stream is closed', async () => {
    const { b, s } = await openStream();
    const second = await rawStream(b.t.url, claims(1, 2, { epoch: Date.now() + 1 }));
    expect(second.status).toBe(101);
    await s.closed;
    second.socket!.write(frames(second.key!, 1, 2, 1)[0]);
    await waitFor(() => b.received.length === 1, 'delivery on the second stream');
    expect(b.t.stats().peers[0].streamsAccepted).toBe(2);
    b.t.setPeers([]);
    await second.closed;
  });
});

describe('stream lifetime and bounds', () => {
  it('an idle stream stays open (the sender writes keep-alives); a silent raw stream is closed', async () => {
    // Keep-alives every 200 ms against a 600 ms idle timeout: a sender's event loop stalled for
    // 150 ms on a loaded machine (seen at load 13 with a 150 ms timeout) does not break the stream.
    const [a, b] = await startCluster(2, { idleTimeoutMs: 600 });
    a.t.send([app(1, 2, 1)]);
    await waitFor(() => b.received.length === 1, 'first delivery');
    const bytes = b.t.stats().peers[0].receivedBytes;
    await waitFor(() => b.t.stats().peers[0].receivedBytes >= bytes + 6 * EMPTY_BATCH_BYTES, 'several keep-alives');
    expect(a.t.stats().peers[0].streamsOpened).toBe(1);
    expect(a.t.stats().peers[0].failedStreams).toBe(0);
    expect(b.t.stats().peers[0].receivedBatches).toBe(1); // keep-alives are not batches
    const silent = await rawStream(b.t.url, claims(1, 2, { epoch: Date.now() + 1 }));
    expect(silent.status).toBe(101);
    await silent.closed; // closed by the recipient's idle timeout
  });

  it('a slow reader: the queue stays within its bound, drops are counted, the stalled stream breaks and is dialed again', async () => {
    const sockets: Socket[] = [];
    const fake = http.createServer();
    fake.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      const auth = parseAuthHeaders(req.headers)!;
      const nonce = Buffer.alloc(16, sockets.length);
      const mac = streamAcceptMac(SECRET, CLUSTER, 2, 1, nonce, auth.mac);
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${STREAM_PROTOCOL}\r\n${PeerHeader.from}: 2\r\n${PeerHeader.to}: 1\r\n${PeerHeader.nonce}: ${nonce.toString('hex')}\r\n${PeerHeader.mac}: ${Buffer.from(mac).toString('hex')}\r\n\r\n`);
      socket.pause(); // never reads
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const maxQueueBytes = 64 << 10;
      const a = await startNode(1, { maxQueueBytes, maxBatchBytes: 64 << 10, requestTimeoutMs: 300, backoffMs: { base: 5, max: 10 } });
      a.t.setPeers([{ id: 2, peerUrl: `http://127.0.0.1:${(fake.address() as AddressInfo).port}` }]);
      a.t.send([app(1, 2, 0)]);
      await waitFor(() => a.t.stats().peers[0].streamsOpened === 1, 'the stream open');
      const payload = new Uint8Array(1000);
      for (let i = 0; i < 200_000 && a.t.stats().peers[0].droppedMessages === 0; i++) {
        a.t.send([app(1, 2, i, payload)]);
        expect(a.t.stats().peers[0].queuedBytes).toBeLessThanOrEqual(maxQueueBytes);
        // The sends of one turn are written together when it ends: yield before they fill the
        // queue, so that the socket's buffers fill first and the queue then backs up behind them.
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      const s = a.t.stats().peers[0];
      expect(s.droppedMessages).toBeGreaterThan(0);
      expect(s.streamsOpened).toBe(1);
      expect(a.unreachable).toContain(2);
      // the write that waits for the reader stalls past requestTimeoutMs: the stream breaks, a new one is dialed
      await waitFor(() => a.t.stats().peers[0].failedStreams >= 1, 'the stalled stream broken');
      a.t.send([app(1, 2, 0)]);
      await waitFor(() => sockets.length >= 2 && a.t.stats().peers[0].streamsOpened >= 2, 'a new stream');
    } finally {
      for (const s of sockets) s.destroy();
      fake.closeAllConnections();
      await new Promise((r) => fake.close(r));
    }
  });

  it('reconnects after the peer restarts on the same address', async () => {
    const [a, b] = await startCluster(2, { backoffMs: { base: 5, max: 20 } });
    a.t.send([app(1, 2, 1)]);
    await waitFor(() => b.received.length === 1, 'first delivery');
    const port = b.t.address().port;
    await b.t.close();
    await waitFor(() => a.unreachable.includes(2), 'the broken stream reported');
    const b2 = await startNode(2, { listen: { host: '127.0.0.1', port } });
    b2.t.setPeers([{ id: 1, peerUrl: a.t.url }, { id: 2, peerUrl: b2.t.url }]);
    // Raft retransmits: keep sending until the restarted peer has one
    for (let i = 2; i < 500 && b2.received.length === 0; i++) {
      a.t.send([app(1, 2, i)]);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(b2.received.length).toBeGreaterThan(0);
    expect(a.t.stats().peers[0].streamsOpened).toBe(2);
    expect(b2.t.stats().peers[0].streamsAccepted).toBe(1);
  });
});

const EMPTY_BATCH_BYTES = encodeBatch([]).length;

describe('frame MAC', () => {
  it('is HMAC-SHA256(key, seq || length || body), for bodies on both sides of the one-shot bound and keys of any length', () => {
    for (const keyLen of [32, 64, 100]) {
      const key = new Uint8Array(keyLen).map((_, i) => (i * 37 + keyLen) & 0xff);
      for (const [seq, size] of [[1, 0], [2, 100], [3, 3000], [0x1_0000_0002, 64 * 1024], [5, 64 * 1024 + 1], [6, 200_000]]) {
        const body = new Uint8Array(size).map((_, i) => (i * 7 + seq) & 0xff);
        const frame = encodeFrame(key, seq, body);
        const want = createHmac('sha256', key).update(frame.subarray(4, 12)).update(frame.subarray(0, 4)).update(body).digest();
        expect(Buffer.from(frame.subarray(12, FRAME_HEADER_BYTES)).equals(want), `key ${keyLen} B, body ${size} B`).toBe(true);
      }
    }
    // The reader checks with the same MAC: frames in order pass, a flipped MAC byte is refused.
    const key = new Uint8Array(32).fill(9);
    const reader = new FrameReader(key, 1 << 20);
    const frames = [encodeFrame(key, 1, new Uint8Array(10)), encodeFrame(key, 2, new Uint8Array(70_000).fill(1))];
    expect(reader.push(Buffer.concat(frames)).bodies.map((b) => b.length)).toEqual([10, 70_000]);
    const bad = encodeFrame(key, 3, new Uint8Array(5));
    bad[20] ^= 1;
    expect(reader.push(bad)).toEqual({ bodies: [], refused: 'bad-mac' });
  });
});
