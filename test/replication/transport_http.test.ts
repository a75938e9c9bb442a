/**
 * HttpTransport between real listeners on 127.0.0.1: three members exchanging batches in order
 * (on streams); every refusal of the peer listener's `POST` route (Authorization header, missing or bad MAC, altered body,
 * other cluster, other recipient, non-member, removed member, oversized body, replay, stale
 * time, stale epoch, malformed batch, forged `from`) answered with its status and reason and
 * never delivered; batching while a stream is being opened; bounded queues and unreachable reports for a
 * dead or silent peer; snapshot chunk reads; close.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { EntryType, MessageType, newMessage, type Message } from '../../src/raft/index.js';
import {
  HttpTransport, MESSAGES_PATH, PeerHeader, PeerRoute, SNAPSHOT_PATH, TransportError, TransportErrorCode,
  authHeaders, bodyDigest, encodeBatch, encodeMessage, encodeMessages, epochMac, requestMac,
} from '../../src/replication/transport/index.js';
import {
  CLUSTER, SECRET, claims, closeAll, deadUrl, rawRequest, signedPostHeaders, startCluster, startGate, startNode, waitFor,
} from './transport_helpers.js';

afterEach(closeAll);

const app = (from: number, to: number, i: number, data = Uint8Array.of(i & 0xff)): Message =>
  newMessage({ type: MessageType.App, from, to, term: 3, index: i, logTerm: 3, commit: i, entries: [{ term: 3, index: i + 1, type: EntryType.Normal, data }] });

async function expectRejects(p: Promise<unknown>, code: TransportErrorCode): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TransportError);
  expect((err as TransportError).code).toBe(code);
}

describe('HttpTransport: exchange', () => {
  it('three members exchange batches, in order per sender, each message authenticated to its sender', async () => {
    const nodes = await startCluster(3);
    for (let round = 0; round < 20; round++) {
      for (const a of nodes) {
        a.t.send(nodes.filter((b) => b !== a).flatMap((b) => [app(a.id, b.id, round * 2), app(a.id, b.id, round * 2 + 1)]));
      }
    }
    await waitFor(() => nodes.every((n) => n.received.length === 80 && n.t.stats().peers.every((p) => p.sentMessages === 40)), 'every batch delivered and answered');
    for (const b of nodes) {
      for (const a of nodes) {
        if (a === b) continue;
        const got = b.received.filter((m) => m.from === a.id);
        expect(got).toEqual(Array.from({ length: 40 }, (_, i) => app(a.id, b.id, i)));
      }
      const s = b.t.stats();
      expect(s.peers.map((p) => p.id)).toEqual(nodes.filter((x) => x !== b).map((x) => x.id));
      for (const p of s.peers) {
        expect(p.sentMessages).toBe(40);
        expect(p.receivedMessages).toBe(40);
        expect(p.droppedMessages).toBe(0);
        expect(p.sentBatches).toBeLessThanOrEqual(20);
        expect(p.receivedBytes).toBeGreaterThan(0);
      }
      expect(s.refused).toEqual({});
      expect(b.unreachable).toEqual([]);
    }
  });

  it('carries every message type with all its fields', async () => {
    const [a, b] = await startCluster(2);
    const ms: Message[] = [
      newMessage({ type: MessageType.Snap, from: 1, to: 2, term: 4, snapshot: { metadata: { index: 9, term: 3, confState: { voters: [1, 2], learners: [5] } }, offset: 0, total: 10, data: Uint8Array.of(1, 2, 3) } }),
      newMessage({ type: MessageType.SnapResp, from: 1, to: 2, term: 4, index: 9, offset: 3 }),
      newMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 4, commit: 8, context: Uint8Array.of(7) }),
      newMessage({ type: MessageType.Vote, from: 1, to: 2, term: 5, force: true }),
      newMessage({ type: MessageType.Prop, from: 1, to: 2, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: Uint8Array.of(0, 0, 0, 0, 3) }] }),
    ];
    a.t.send(ms);
    await waitFor(() => b.received.length === ms.length, 'delivery');
    expect(b.received).toEqual(ms);
  });

  it('sends never throw and drop what cannot travel (local types, unknown members)', async () => {
    const [a, b] = await startCluster(2);
    a.t.send([newMessage({ type: MessageType.Hup, from: 1, to: 2 }), app(1, 9, 1), null as unknown as Message, app(1, 2, 2)]);
    await waitFor(() => b.received.length === 1, 'delivery');
    expect(b.received).toEqual([app(1, 2, 2)]);
    const s = a.t.stats();
    expect(s.droppedUnknownPeer).toBe(2);
    expect(s.peers[0].droppedMessages).toBe(1);
  });
});

describe('HttpTransport: refusals', () => {
  /** Node 1 listens; node 2 is a member; crafted requests claim to come from 2. */
  async function listener() {
    const [one] = await startCluster(1);
    one.t.setPeers([{ id: 2, peerUrl: 'http://127.0.0.1:9' }]);
    const url = one.t.url + MESSAGES_PATH;
    const body = encodeMessages([app(2, 1, 1)]);
    return { one, url, body };
  }

  it('a correctly signed request is delivered (control for the cases below)', async () => {
    const { one, url, body } = await listener();
    const r = await rawRequest(url, 'POST', signedPostHeaders(claims(2, 1), body), body);
    expect(r.status).toBe(204);
    expect(one.received).toEqual([app(2, 1, 1)]);
  });

  it('refuses each bad request with its status and reason, and delivers none', async () => {
    const { one, url, body } = await listener();
    const other = encodeMessages([app(2, 1, 2)]);
    const c = () => claims(2, 1);
    const cases: Array<{ reason: string; status: number; headers: Record<string, string>; body?: Uint8Array | Uint8Array[]; method?: string; url?: string }> = [];
    const add = (reason: string, status: number, headers: Record<string, string>, b: Uint8Array | Uint8Array[] = body, extra = {}) =>
      cases.push({ reason, status, headers, body: b, ...extra });
    add('authorization-header', 400, { ...signedPostHeaders(c(), body), authorization: 'Bearer client-token' });
    const noMac = signedPostHeaders(c(), body);
    delete noMac[PeerHeader.mac];
    add('missing-auth', 401, noMac);
    add('missing-auth', 401, { 'content-type': 'application/octet-stream' });
    add('missing-auth', 401, { ...signedPostHeaders(c(), body), [PeerHeader.from]: '02' });
    add('bad-mac', 401, signedPostHeaders(c(), body, new Uint8Array(randomBytes(32))));
    add('bad-mac', 401, signedPostHeaders(c(), body), other); // body altered after signing
    const forged = signedPostHeaders(c(), body);
    add('bad-mac', 401, { ...forged, [PeerHeader.seq]: String(Number(forged[PeerHeader.seq]) + 1000) }); // claims altered
    add('wrong-cluster', 403, signedPostHeaders(claims(2, 1, { clusterId: 'pk-other' }), body));
    add('wrong-recipient', 403, signedPostHeaders(claims(2, 3), body));
    add('not-member', 403, signedPostHeaders(claims(7, 1), encodeMessages([app(7, 1, 1)])), encodeMessages([app(7, 1, 1)]));
    const big = new Uint8Array(5 << 20);
    add('too-large', 413, signedPostHeaders(c(), big), big);
    add('too-large', 413, signedPostHeaders(c(), big), [big.subarray(0, 3 << 20), big.subarray(3 << 20)]); // chunked, no length
    add('clock-skew', 401, signedPostHeaders(claims(2, 1, { time: Date.now() - 3_600_000 }), body));
    const garbage = Uint8Array.of(1, 1, 3, 0xff, 0xff, 0xff);
    add('malformed', 400, signedPostHeaders(c(), garbage), garbage);
    const forgedFrom = encodeMessages([app(3, 1, 1)]);
    add('sender-mismatch', 400, signedPostHeaders(c(), forgedFrom), forgedFrom);
    const otherTo = encodeMessages([app(2, 4, 1)]);
    add('sender-mismatch', 400, signedPostHeaders(c(), otherTo), otherTo);
    add('method', 405, signedPostHeaders(c(), body), body, { method: 'PUT' });
    add('not-found', 404, signedPostHeaders(c(), body), body, { url: one.t.url + '/v1/kv/x' });
    for (const k of cases) {
      const headers = { ...k.headers };
      if (!Array.isArray(k.body) && k.body !== undefined) headers['content-length'] = String(k.body.length);
      const r = await rawRequest(k.url ?? url, k.method ?? 'POST', headers, k.body);
      expect({ reason: k.reason, status: r.status, header: r.headers[PeerHeader.refusal] }).toEqual({ reason: k.reason, status: k.status, header: k.reason });
    }
    expect(one.received).toEqual([]);
    const refused = one.t.stats().refused;
    for (const k of cases) expect(refused[k.reason as keyof typeof refused]).toBe(cases.filter((x) => x.reason === k.reason).length);
    expect(one.t.stats().peers[0].receivedMessages).toBe(0);
  });

  it('a sender with 4 bodies being read is refused a fifth (429 busy): inbound buffers stay bounded', async () => {
    const { one, url, body } = await listener();
    const http = await import('node:http');
    const open: Array<import('node:http').ClientRequest> = [];
    try {
      for (let i = 0; i < 4; i++) {
        const req = http.request(url, { method: 'POST', agent: false, headers: { ...signedPostHeaders(claims(2, 1), body), 'content-length': String(body.length + 10) } });
        req.on('error', () => undefined);
        req.write(body); // 10 bytes short: the listener keeps waiting for the rest
        req.flushHeaders();
        open.push(req);
      }
      // (reads the private per-sender counter only to know when the four requests are in)
      await waitFor(() => (one.t as unknown as { inbound: Map<string, number> }).inbound.get(`${PeerRoute.Messages}/2`) === 4, 'four bodies being read');
      const r = await rawRequest(url, 'POST', { ...signedPostHeaders(claims(2, 1), body), 'content-length': String(body.length) }, body);
      expect([r.status, r.headers[PeerHeader.refusal]]).toEqual([429, 'busy']);
      // another sender is not affected
      one.t.setPeers([{ id: 2, peerUrl: 'http://127.0.0.1:9' }, { id: 3, peerUrl: 'http://127.0.0.1:9' }]);
      const b3 = encodeMessages([app(3, 1, 1)]);
      expect((await rawRequest(url, 'POST', signedPostHeaders(claims(3, 1), b3), b3)).status).toBe(204);
    } finally {
      for (const req of open) req.destroy();
    }
    expect(one.received).toEqual([app(3, 1, 1)]);
  });

  it('refuses a replayed request (same epoch and seq) and an older seq; delivers the original once', async () => {
    const { one, url, body } = await listener();
    const c1 = claims(2, 1, { epoch: 50, seq: 10 });
    const h1 = signedPostHeaders(c1, body);
    expect((await rawRequest(url, 'POST', h1, body)).status).toBe(204);
    const again = await rawRequest(url, 'POST', h1, body);
    expect([again.status, again.headers[PeerHeader.refusal], again.headers[PeerHeader.minEpoch]]).toEqual([409, 'replay', '50']);
    const older = await rawRequest(url, 'POST', signedPostHeaders(claims(2, 1, { epoch: 50, seq: 9 }), body), body);
    expect([older.status, older.headers[PeerHeader.refusal]]).toEqual([409, 'replay']);
    // an older epoch is told the epoch to beat, in an answer signed for the refused request
    const oldEpoch = claims(2, 1, { epoch: 49, seq: 100 });
    const h2 = signedPostHeaders(oldEpoch, body);
    const stale = await rawRequest(url, 'POST', h2, body);
    expect([stale.status, stale.headers[PeerHeader.refusal], stale.headers[PeerHeader.minEpoch]]).toEqual([409, 'stale-epoch', '50']);
    const reqMac = Buffer.from(h2[PeerHeader.mac], 'hex');
    expect(stale.headers[PeerHeader.mac]).toBe(Buffer.from(epochMac(SECRET, CLUSTER, 1, 2, 50, reqMac)).toString('hex'));
    // a newer seq, or a newer epoch from seq 1, is accepted
    expect((await rawRequest(url, 'POST', signedPostHeaders(claims(2, 1, { epoch: 50, seq: 11 }), body), body)).status).toBe(204);
    expect((await rawRequest(url, 'POST', signedPostHeaders(claims(2, 1, { epoch: 51, seq: 1 }), body), body)).status).toBe(204);
    expect(one.received.length).toBe(3);
  });

  it('a sender whose epoch a peer holds as stale (its clock stepped back) moves past it and is delivered', async () => {
    const [a, b] = await startCluster(2);
    const ahead = Date.now() + 1_000_000_000;
    const body = encodeMessages([app(1, 2, 0)]);
    expect((await rawRequest(b.t.url + MESSAGES_PATH, 'POST', signedPostHeaders(claims(1, 2, { epoch: ahead, seq: 5 }), body), body)).status).toBe(204);
    a.t.send([app(1, 2, 1)]);
    a.t.send([app(1, 2, 2)]);
    await waitFor(() => b.received.length >= 2 && b.received.at(-1)?.index === 2, 'delivery after the epoch moved');
    expect(b.t.stats().refused['stale-epoch']).toBeGreaterThanOrEqual(1);
    expect(a.unreachable).toEqual([]);
  });

  it('a forged stale-epoch answer does not move the sender (its MAC is checked)', async () => {
    // a member whose peer URL is a listener that answers 409 stale-epoch with a made-up MAC
    const http = await import('node:http');
    let posts = 0;
    const fake = http.createServer((req, res) => {
      posts++;
      req.resume();
      req.on('end', () => {
        res.writeHead(409, { [PeerHeader.refusal]: 'stale-epoch', [PeerHeader.minEpoch]: '9007199254740000', [PeerHeader.mac]: '00'.repeat(32) });
        res.end();
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const a = await startNode(1, { backoffMs: { base: 1, max: 2 } });
      a.t.setPeers([{ id: 2, peerUrl: `http://127.0.0.1:${(fake.address() as { port: number }).port}` }]);
      a.t.send([app(1, 2, 1)]);
      await waitFor(() => a.unreachable.length > 0, 'unreachable report');
      expect(posts).toBe(1);
      expect(a.t.stats().peers[0].failedStreams).toBe(1);
    } finally {
      fake.closeAllConnections();
      await new Promise((r) => fake.close(r));
    }
  });

  it('a removed member is refused and not delivered; the removed side reports its peer unreachable', async () => {
    const [a, b] = await startCluster(2);
    a.t.send([app(1, 2, 1)]);
    await waitFor(() => b.received.length === 1, 'first delivery');
    b.t.setPeers([]); // closes a's stream to b
    await waitFor(() => a.unreachable.includes(2), 'unreachable report');
    a.t.send([app(1, 2, 2)]); // a dials again, and is refused
    await waitFor(() => (b.t.stats().refused['not-member'] ?? 0) >= 1, 'the new stream refused');
    await waitFor(() => a.t.stats().peers[0].failedStreams >= 2, 'the refused dial failed');
    expect(b.received.length).toBe(1);
    // a crafted, otherwise valid request from the removed member is refused too
    const body = encodeMessages([app(1, 2, 3)]);
    const r = await rawRequest(b.t.url + MESSAGES_PATH, 'POST', signedPostHeaders(claims(1, 2, { epoch: Date.now() + 1e9 }), body), body);
    expect([r.status, r.headers[PeerHeader.refusal]]).toEqual([403, 'not-member']);
    expect(b.received.length).toBe(1);
  });

  it('a peer removed and added again, or given a new URL, is still delivered (the request numbers keep rising)', async () => {
    const [a, b] = await startCluster(2);
    a.t.send([app(1, 2, 1)]);
    await waitFor(() => b.received.length === 1, 'first delivery');
    a.t.setPeers([]);
    a.t.send([app(1, 2, 2)]);
    expect(a.t.stats().droppedUnknownPeer).toBe(1);
    a.t.setPeers([{ id: 2, peerUrl: b.t.url }]);
    a.t.send([app(1, 2, 3)]);
    await waitFor(() => b.received.length === 2, 'delivery after re-adding');
    const gate = await startGate(b.t.url);
    gate.release(true);
    a.t.setPeers([{ id: 2, peerUrl: gate.url }]);
    a.t.send([app(1, 2, 4)]);
    await waitFor(() => b.received.length === 3, 'delivery at the new URL');
    expect(b.received.map((m) => m.index)).toEqual([1, 3, 4]);
    expect(gate.requests).toBe(1);
    expect(b.t.stats().refused).toEqual({});
  });

  it('refuses bad peer sets and options with TRANSPORT_INVALID_ARGUMENT, changing nothing', async () => {
    const [a] = await startCluster(1);
    a.t.setPeers([{ id: 2, peerUrl: 'http://127.0.0.1:9' }]);
    for (const peers of [[{ id: 0, peerUrl: 'http://127.0.0.1:1' }], [{ id: 3, peerUrl: 'not a url' }], [{ id: 3, peerUrl: 'https://127.0.0.1:1' }]]) {
      expect(() => a.t.setPeers(peers)).toThrow(expect.objectContaining({ code: TransportErrorCode.InvalidArgument }));
    }
    expect(a.t.stats().peers.map((p) => p.id)).toEqual([2]);
    const base = { selfId: 1, clusterId: CLUSTER, secret: SECRET, listen: { host: '127.0.0.1', port: 0 }, peers: [] };
    const taken = a.t.address();
    for (const bad of [
      { secret: new Uint8Array(16) }, { clusterId: 'has space' }, { selfId: 0 }, { maxBatchBytes: 1000 },
      { maxQueueBytes: 1 << 16, maxBatchBytes: 1 << 17 }, { listen: { host: '127.0.0.1', port: 70000 } },
      { listen: taken }, { peers: [{ id: 2, peerUrl: 'ftp://127.0.0.1:1' }] },
    ]) {
      await expectRejects(HttpTransport.start({ ...base, ...bad }), TransportErrorCode.InvalidArgument);
    }
  });
});

describe('HttpTransport: batching and bounds', () => {
  it('1000 sends while the stream is being opened go out in one frame, all delivered in order', async () => {
    const [a, b, c] = await startCluster(3);
    const gate = await startGate(b.t.url);
    a.t.setPeers([{ id: 2, peerUrl: gate.url }, { id: 3, peerUrl: c.t.url }]);
    a.t.send([app(1, 2, 0)]);
    await waitFor(() => gate.held === 1, 'the dial held');
    for (let i = 1; i < 1000; i++) a.t.send([app(1, 2, i), app(1, 3, i)]);
    expect(gate.requests).toBe(1);
    expect(a.t.stats().peers[0].queuedMessages).toBe(1000);
    gate.release(true);
    await waitFor(() => b.received.length === 1000 && c.received.length === 999 && a.t.stats().peers[0].sentMessages === 1000, 'all delivered and answered');
    expect(gate.requests).toBe(1);
    expect(a.t.stats().peers[0].sentBatches).toBe(1);
    expect(a.t.stats().peers[0].streamsOpened).toBe(1);
    expect(b.received.map((m) => m.index)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(c.received.map((m) => m.index)).toEqual(Array.from({ length: 999 }, (_, i) => i + 1));
    expect(a.t.stats().peers[1].sentBatches).toBeLessThan(999);
  });

  it('the messages of every send of one turn to an open stream go out as one frame in one write', async () => {
    const [a, b, c] = await startCluster(3);
    a.t.send([app(1, 2, 0), app(1, 3, 0)]);
    await waitFor(() => b.received.length === 1 && c.received.length === 1, 'the streams open');
    const before = a.t.stats().peers.map((p) => ({ ...p }));
    for (let i = 1; i <= 5; i++) a.t.send([app(1, 2, i)]);
    a.t.send([app(1, 3, 1), app(1, 2, 6), app(1, 3, 2)]);
    expect(a.t.stats().peers[0].queuedMessages).toBe(6); // nothing is written before the turn ends
    await waitFor(() => b.received.length === 7 && c.received.length === 3, 'all delivered');
    expect(b.received.map((m) => m.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(c.received.map((m) => m.index)).toEqual([0, 1, 2]);
    const after = a.t.stats().peers;
    for (const [i, n] of [[0, 6], [1, 2]]) {
      expect(after[i].sentMessages - before[i].sentMessages).toBe(n);
      expect(after[i].sentBatches - before[i].sentBatches).toBe(1);
      expect(after[i].sentWrites - before[i].sentWrites).toBe(1);
    }
    expect(b.t.stats().peers[0].receivedBatches).toBe(2);
    expect(c.t.stats().peers[0].receivedBatches).toBe(2);
  });

  it('flush() writes what is queued at once, in one frame per peer, and the end of the turn then writes nothing more', async () => {
    const [a, b] = await startCluster(2);
    a.t.send([app(1, 2, 0)]);
    await waitFor(() => b.received.length === 1, 'the stream open');
    const before = a.t.stats().peers[0];
    a.t.send([app(1, 2, 1)]);
    a.t.send([app(1, 2, 2)]);
    a.t.flush();
    const now = a.t.stats().peers[0];
    expect([now.sentBatches - before.sentBatches, now.sentWrites - before.sentWrites, now.queuedMessages]).toEqual([1, 1, 0]);
    await waitFor(() => b.received.length === 3, 'delivered');
    await new Promise((r) => setImmediate(r));
    expect(a.t.stats().peers[0].sentWrites).toBe(now.sentWrites);
  });

  it('a frame never exceeds maxBatchBytes: a long queue is split over several frames', async () => {
    const [a, b] = await startCluster(2, { maxBatchBytes: 64 << 10 });
    const gate = await startGate(b.t.url);
    a.t.setPeers([{ id: 2, peerUrl: gate.url }]);
    const big = new Uint8Array(10_000).fill(1);
    a.t.send([app(1, 2, 0, big)]);
    await waitFor(() => gate.held === 1, 'the dial held');
    for (let i = 1; i < 40; i++) a.t.send([app(1, 2, i, big)]);
    gate.release(true);
    await waitFor(() => b.received.length === 40 && a.t.stats().peers[0].sentMessages === 40, 'all delivered and answered');
    expect(b.received.map((m) => m.index)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const s = a.t.stats().peers[0];
    expect(s.sentBatches).toBeGreaterThanOrEqual(1 + Math.ceil((39 * 10_010) / (64 << 10)));
    expect(s.sentBytes).toBeLessThanOrEqual(s.sentBatches * (64 << 10));
    // a single message larger than a batch is dropped, not sent
    a.t.send([app(1, 2, 99, new Uint8Array(70 << 10))]);
    expect(a.t.stats().peers[0].droppedMessages).toBe(1);
  });

  it('a dead peer: queue bytes never above the bound, messages dropped, peer reported unreachable', async () => {
    const maxQueueBytes = 64 << 10;
    const a = await startNode(1, { maxQueueBytes, maxBatchBytes: 64 << 10, backoffMs: { base: 5, max: 20 } });
    a.t.setPeers([{ id: 2, peerUrl: await deadUrl() }]);
    const payload = new Uint8Array(200);
    for (let i = 0; i < 5000; i++) {
      a.t.send([app(1, 2, i, payload)]);
      expect(a.t.stats().peers[0].queuedBytes).toBeLessThanOrEqual(maxQueueBytes);
      if (i % 500 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await waitFor(() => a.t.stats().peers[0].failedStreams >= 2, 'failed dials');
    const s = a.t.stats().peers[0];
    expect(s.droppedMessages).toBeGreaterThan(4000);
    expect(s.sentMessages).toBe(0);
    expect(a.unreachable.length).toBeGreaterThan(0);
    expect(new Set(a.unreachable)).toEqual(new Set([2]));
  });

  it('a silent peer (accepts the connection, never answers the handshake): one dial, the queue stays bounded, overflow reported', async () => {
    const [, b] = await startCluster(2);
    const a = await startNode(1, { maxQueueBytes: 64 << 10, maxBatchBytes: 64 << 10 });
    const gate = await startGate(b.t.url);
    a.t.setPeers([{ id: 2, peerUrl: gate.url }]);
    a.t.send([app(1, 2, 0)]);
    await waitFor(() => gate.held === 1, 'the dial held');
    for (let i = 1; i < 3000; i++) {
      a.t.send([app(1, 2, i, new Uint8Array(100))]);
      expect(a.t.stats().peers[0].queuedBytes).toBeLessThanOrEqual(64 << 10);
    }
    expect(gate.requests).toBe(1);
    expect(a.unreachable.length).toBeGreaterThan(0);
    expect(a.t.stats().peers[0].droppedMessages).toBeGreaterThan(0);
  });
});

describe('HttpTransport: snapshot chunks', () => {
  const file = new Uint8Array(randomBytes(1_500_000));

  async function pair() {
    const [a, b] = await startCluster(2);
    const reads: Array<[number, string, number, number]> = [];
    b.t.onSnapshotRead(async (index, name, offset, length) => {
      reads.push([index, name, offset, length]);
      if (name === 'broken') throw new Error('disk failure');
      if (name === 'greedy') return new Uint8Array(length + 1);
      if (index !== 7 || name !== '000012.sst') throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      return file.subarray(offset, offset + length);
    });
    return { a, b, reads };
  }

  it('reads ranges, the end of the file and past it', async () => {
    const { a, reads } = await pair();
    expect(Buffer.from(await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 0, 1000)).equals(file.subarray(0, 1000))).toBe(true);
    expect(Buffer.from(await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 1000, 1 << 20)).equals(file.subarray(1000, 1000 + (1 << 20)))).toBe(true);
    const tail = await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 1_400_000, 1 << 20);
    expect(tail.length).toBe(100_000);
    expect(Buffer.from(tail).equals(file.subarray(1_400_000))).toBe(true);
    expect((await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 2_000_000, 10)).length).toBe(0);
    const parts = await Promise.all([0, 1, 2].map((k) => a.t.fetchSnapshotChunk(2, 7, '000012.sst', k * 500_000, 500_000)));
    expect(Buffer.concat(parts).equals(file)).toBe(true);
    expect(reads[0]).toEqual([7, '000012.sst', 0, 1000]);
  });

  it('typed errors: missing file or snapshot, failing reader, bad arguments, non-member, dead member, closed', async () => {
    const { a } = await pair();
    await expectRejects(a.t.fetchSnapshotChunk(2, 7, 'MANIFEST-000001', 0, 10), TransportErrorCode.NotFound);
    await expectRejects(a.t.fetchSnapshotChunk(2, 8, '000012.sst', 0, 10), TransportErrorCode.NotFound);
    await expectRejects(a.t.fetchSnapshotChunk(2, 7, 'broken', 0, 10), TransportErrorCode.Refused);
    await expectRejects(a.t.fetchSnapshotChunk(2, 7, 'greedy', 0, 10), TransportErrorCode.Refused);
    await expectRejects(a.t.fetchSnapshotChunk(2, 7, '000012.sst', 0, (1 << 20) + 1), TransportErrorCode.InvalidArgument);
    await expectRejects(a.t.fetchSnapshotChunk(2, 7, '000012.sst', 0, 0), TransportErrorCode.InvalidArgument);
    await expectRejects(a.t.fetchSnapshotChunk(2, 7, '../etc/passwd', 0, 10), TransportErrorCode.InvalidArgument);
    await expectRejects(a.t.fetchSnapshotChunk(2, -1, '000012.sst', 0, 10), TransportErrorCode.InvalidArgument);
    await expectRejects(a.t.fetchSnapshotChunk(5, 7, '000012.sst', 0, 10), TransportErrorCode.Unreachable);
    a.t.setPeers([{ id: 2, peerUrl: await deadUrl() }]);
    await expectRejects(a.t.fetchSnapshotChunk(2, 7, '000012.sst', 0, 10), TransportErrorCode.Unreachable);
    await a.t.close();
    await expectRejects(a.t.fetchSnapshotChunk(2, 7, '000012.sst', 0, 10), TransportErrorCode.Closed);
  });

  it('refuses crafted chunk reads: bad MAC, MAC of another range, non-member, Authorization, bad query', async () => {
    const { b, reads } = await pair();
    const get = (c: ReturnType<typeof claims>, target: string, query: string, secret = SECRET, extra: Record<string, string> = {}) =>
      rawRequest(`${b.t.url}${SNAPSHOT_PATH}?${query}`, 'GET', { ...authHeaders(c, requestMac(secret, PeerRoute.Snapshot, c, target, bodyDigest(new Uint8Array(0)))), ...extra });
    const ok = await get(claims(1, 2), '7/000012.sst/0/16', 'index=7&name=000012.sst&offset=0&length=16');
    expect(ok.status).toBe(200);
    expect(ok.body.equals(file.subarray(0, 16))).toBe(true);
    const cases: Array<[Promise<{ status: number; headers: Record<string, unknown> }>, number, string]> = [
      [get(claims(1, 2), '7/000012.sst/0/16', 'index=7&name=000012.sst&offset=0&length=16', new Uint8Array(32)), 401, 'bad-mac'],
      [get(claims(1, 2), '7/000012.sst/0/16', 'index=7&name=000012.sst&offset=16&length=16'), 401, 'bad-mac'],
      [get(claims(1, 2), '7/000012.sst/0/16', 'index=7&name=000012.sst&offset=0&length=16', SECRET, { authorization: 'Bearer t' }), 400, 'authorization-header'],
      [get(claims(3, 2), '7/000012.sst/0/16', 'index=7&name=000012.sst&offset=0&length=16'), 403, 'not-member'],
      [get(claims(1, 2, { time: 1 }), '7/000012.sst/0/16', 'index=7&name=000012.sst&offset=0&length=16'), 401, 'clock-skew'],
      [get(claims(1, 2), '7/../x/0/16', 'index=7&name=..%2Fx&offset=0&length=16'), 400, 'bad-request'],
      [get(claims(1, 2), '7/000012.sst/0/16', 'index=7&name=000012.sst&offset=0&length=16&length=16'), 400, 'bad-request'],
      [get(claims(1, 2), '7/000012.sst/0/2000000', 'index=7&name=000012.sst&offset=0&length=2000000'), 400, 'bad-request'],
    ];
    for (const [p, status, reason] of cases) {
      const r = await p;
      expect([r.status, r.headers[PeerHeader.refusal]]).toEqual([status, reason]);
    }
    expect(reads.length).toBe(1);
  });
});

describe('HttpTransport: close', () => {
  it('closes the listener and connections, drops queues; sends after close are dropped without throwing', async () => {
    const [a, b] = await startCluster(2, { backoffMs: { base: 1, max: 5 } });
    a.t.send([app(1, 2, 1)]);
    await waitFor(() => b.received.length === 1, 'delivery');
    const url = b.t.url;
    await b.t.close();
    await b.t.close();
    b.t.send([app(2, 1, 1)]);
    expect(b.t.stats().peers).toEqual([]);
    const r = await rawRequest(url + MESSAGES_PATH, 'POST', {}, new Uint8Array(0));
    expect(r.status).toBe(0);
    a.t.send([app(1, 2, 2)]);
    await waitFor(() => a.unreachable.includes(2), 'unreachable report');
    expect(b.received.length).toBe(1);
  });
});

describe('encodeBatch framing', () => {
  it('the listener accepts a batch framed from individually encoded messages', async () => {
    const [, b] = await startCluster(2);
    const body = encodeBatch([encodeMessage(app(1, 2, 5)), encodeMessage(app(1, 2, 6))]);
    const r = await rawRequest(b.t.url + MESSAGES_PATH, 'POST', signedPostHeaders(claims(1, 2, { epoch: Date.now() + 1e9 }), body), body);
    expect(r.status).toBe(204);
    expect(b.received.map((m) => m.index)).toEqual([5, 6]);
  });
});
