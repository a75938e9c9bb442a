/**
 * Rotating the cluster secret without a restart (issue 10, item 3; `HttpTransport.setSecrets`,
 * docs/cluster.md § Rotating the cluster secret): members accept the old and the new secret while
 * they move from sending with one to the other, messages flow in every step, and once the old one
 * is no longer accepted nothing MACed with it is: not a request, not a handshake, not the frames
 * of a stream it opened before (that stream is closed).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, MessageType, newMessage, type Message } from '../../src/raft/index.js';
import { MAX_ACCEPTED_SECRETS } from '../../src/replication/transport/http.js';
import {
  MESSAGES_PATH, PeerRoute, STREAM_PATH, STREAM_PROTOCOL, TransportErrorCode, authHeaders, bodyDigest, encodeBatch, encodeMessage, requestMac,
} from '../../src/replication/transport/index.js';
import { thrownCode } from '../support/thrown_code.js';
import { SECRET, claims, closeAll, rawRequest, signedPostHeaders, startCluster, waitFor, type Node } from './transport_helpers.js';

afterEach(closeAll);

const OLD = SECRET;
const NEW = new Uint8Array(randomBytes(32));
const app = (from: number, to: number, i: number): Message =>
  newMessage({ type: MessageType.App, from, to, term: 3, index: i, logTerm: 3, commit: i, entries: [{ term: 3, index: i + 1, type: EntryType.Normal, data: Uint8Array.of(i & 0xff) }] });

let counter = 0;
/** Every member sends one message to every other and each arrives. */
async function allTalk(nodes: Node[]): Promise<void> {
  const want = new Map<Node, number>();
  for (const to of nodes) want.set(to, to.received.length + nodes.length - 1);
  const i = ++counter;
  for (const from of nodes) from.t.send(nodes.filter((n) => n !== from).map((to) => app(from.id, to.id, i)));
  await waitFor(() => nodes.every((n) => n.received.length >= want.get(n)!), `every member hears every other (round ${i})`);
}

describe('HttpTransport: secret rotation', () => {
  it('rotates a 3-member cluster step by step with messages flowing; the old secret is refused afterwards', async () => {
    const nodes = await startCluster(3);
    await allTalk(nodes);
    // 1. Every member also accepts the new secret (it still sends with the old one).
    for (const n of nodes) n.t.setSecrets(OLD, [NEW]);
    await allTalk(nodes);
    // 2. One member at a time sends with the new secret (still accepting the old one).
    for (const n of nodes) {
      const opened = n.t.stats().peers.map((p) => p.streamsOpened);
      n.t.setSecrets(NEW, [OLD]);
      await allTalk(nodes);
      // Its streams were dialed again, with the new secret.
      expect(n.t.stats().peers.map((p) => p.streamsOpened).every((v, k) => v > opened[k])).toBe(true);
    }
    expect(nodes.some((n) => n.t.stats().acceptedByOtherSecret > 0)).toBe(true);
    // 3. The old secret is dropped everywhere.
    for (const n of nodes) n.t.setSecrets(NEW);
    await allTalk(nodes);
    const [a, b] = nodes;
    const body = encodeBatch([encodeMessage(app(1, 2, 99))]);
    const before = b.received.length;
    const post = await rawRequest(b.t.url + MESSAGES_PATH, 'POST', signedPostHeaders(claims(1, 2, { epoch: Date.now() * 2 }), body, OLD), body);
    expect([post.status, post.headers['proofkv-peer-refusal']]).toEqual([401, 'bad-mac']);
    const c = claims(1, 2, { epoch: Date.now() * 2 });
    const shake = await rawRequest(b.t.url + STREAM_PATH, 'GET', { ...authHeaders(c, requestMac(OLD, PeerRoute.Stream, c, '', bodyDigest(new Uint8Array(0)))), connection: 'Upgrade', upgrade: STREAM_PROTOCOL });
    expect([shake.status, shake.headers['proofkv-peer-refusal']]).toEqual([401, 'bad-mac']);
    expect(b.received.length).toBe(before);
    // The same request under the new secret is taken.
    const ok = await rawRequest(b.t.url + MESSAGES_PATH, 'POST', signedPostHeaders(claims(1, 2, { epoch: Date.now() * 2 }), body, NEW), body);
    expect(ok.status).toBe(204);
    expect(b.received.length).toBe(before + 1);
    // The new secret still carries everything.
    a.t.send([app(1, 2, 100)]);
    await waitFor(() => b.received.some((m) => m.index === 100), 'a message under the new secret');
  });

  it('closes an inbound stream opened with a secret no longer accepted; its sender is refused afterwards', async () => {
    const [a, b] = await startCluster(2);
    b.t.setSecrets(NEW, [OLD]);
    a.t.send([app(1, 2, 1)]);
    await waitFor(() => b.received.length === 1, 'a message under the old secret, accepted during the rotation');
    expect(b.t.stats().acceptedByOtherSecret).toBe(1);
    const failedBefore = a.t.stats().peers[0].failedStreams;
    b.t.setSecrets(NEW);
    // a's stream (keyed from the old secret) is closed by b; a dials again with the old secret and is refused.
    await waitFor(() => a.t.stats().peers[0].failedStreams > failedBefore, "a's stream closed");
    a.t.send([app(1, 2, 2)]);
    await waitFor(() => (b.t.stats().refused['bad-mac'] ?? 0) > 0, "a's redial refused");
    expect(b.received.map((m) => m.index)).toEqual([1]);
    // a moves to the new secret: its next dial is accepted.
    a.t.setSecrets(NEW);
    await waitFor(() => {
      a.t.send([app(1, 2, 3)]);
      return b.received.some((m) => m.index === 3);
    }, 'a message under the new secret', 400);
    expect(b.received.some((m) => m.index === 2)).toBe(false);
  });

  it('refuses bad secret sets and changes nothing', async () => {
    const [a, b] = await startCluster(2);
    const bad = thrownCode;
    expect(bad(() => a.t.setSecrets(new Uint8Array(31)))).toBe(TransportErrorCode.InvalidArgument);
    expect(bad(() => a.t.setSecrets(NEW, [new Uint8Array(33)]))).toBe(TransportErrorCode.InvalidArgument);
    const many = Array.from({ length: MAX_ACCEPTED_SECRETS }, () => new Uint8Array(randomBytes(32)));
    expect(bad(() => a.t.setSecrets(NEW, many))).toBe(TransportErrorCode.InvalidArgument);
    // Unchanged: a still sends with the old secret, which b accepts.
    a.t.send([app(1, 2, 7)]);
    await waitFor(() => b.received.length === 1, 'a message under the unchanged secret');
    expect(b.t.stats().acceptedByOtherSecret).toBe(0);
  });
});
