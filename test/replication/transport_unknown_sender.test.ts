/**
 * A sender outside a member's peer set (a member added after the recipient's applied index) over
 * the real HttpTransport: it names its own peer URL on its stream handshake, under a MAC of its
 * own; the recipient's `onUnknownSender` handler decides, and once it admitted the sender the two
 * talk both ways. Refused: without a handler, when the handler says no, without the URL (a sender
 * of an earlier release), with a URL whose MAC does not verify (a network that redirects the
 * answers), with a URL of the wrong scheme, and with another cluster's secret.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { EntryType, MessageType, newMessage, type Message } from '../../src/raft/index.js';
import {
  PeerHeader, PeerRoute, STREAM_PATH, STREAM_PROTOCOL, authHeaders, bodyDigest, requestMac, senderUrlMac,
  type PeerClaims,
} from '../../src/replication/transport/index.js';
import type { PeerAddress } from '../../src/replication/transport.js';
import { freePortRange } from '../../scripts/local_cluster.js';
import { SECRET, claims, closeAll, startNode, waitFor, type Node } from './transport_helpers.js';

afterEach(closeAll);

const app = (from: number, to: number, i: number): Message =>
  newMessage({ type: MessageType.App, from, to, term: 3, index: i, logTerm: 3, commit: i, entries: [{ term: 3, index: i + 1, type: EntryType.Normal, data: Uint8Array.of(i) }] });

const EMPTY_DIGEST = bodyDigest(new Uint8Array(0));

/** Member 1 (knows only member 2, which is not running) and member 3 (knows 1, names its URL). */
async function pair(): Promise<{ a: Node; c: Node; cUrl: string }> {
  const a = await startNode(1);
  a.t.setPeers([{ id: 2, peerUrl: 'http://127.0.0.1:1' }]);
  const port = await freePortRange(1);
  const cUrl = `http://127.0.0.1:${port}`;
  const c = await startNode(3, { listen: { host: '127.0.0.1', port }, advertiseUrl: cUrl });
  c.t.setPeers([{ id: 1, peerUrl: a.t.url }]);
  return { a, c, cUrl };
}

/** The handler of a group: admits the sender by adding it to the peer set. */
function admitting(n: Node, known: PeerAddress[], asked: PeerAddress[]): (p: PeerAddress) => boolean {
  return (p) => {
    asked.push(p);
    n.t.setPeers([...known, p]);
    return true;
  };
}

/** A raw stream handshake from `c`'s claims, with `extra` headers: the status and refusal reason. */
function handshake(url: string, c: PeerClaims, extra: (mac: Uint8Array) => Record<string, string>, secret = SECRET): Promise<[number, string | undefined]> {
  const mac = requestMac(secret, PeerRoute.Stream, c, '', EMPTY_DIGEST);
  return new Promise((resolve) => {
    const req = http.request(new URL(STREAM_PATH, url), {
      method: 'GET', agent: false,
      headers: { ...authHeaders(c, mac), connection: 'Upgrade', upgrade: STREAM_PROTOCOL, ...extra(mac) },
    });
    req.on('error', () => resolve([0, undefined]));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve([res.statusCode ?? 0, res.headers[PeerHeader.refusal] as string | undefined]));
    });
    req.on('upgrade', (res, socket: Socket) => {
      socket.destroy();
      resolve([res.statusCode ?? 0, undefined]);
    });
    req.end();
  });
}

const named = (url: string, secret = SECRET) => (mac: Uint8Array): Record<string, string> => ({
  [PeerHeader.senderUrl]: url,
  [PeerHeader.senderUrlMac]: Buffer.from(senderUrlMac(secret, mac, url)).toString('hex'),
});

describe('a sender outside the peer set', () => {
  it('is heard once the handler admits it, with the address it named, and is answered', async () => {
    const { a, c, cUrl } = await pair();
    const asked: PeerAddress[] = [];
    a.t.onUnknownSender(admitting(a, [{ id: 2, peerUrl: 'http://127.0.0.1:1' }], asked));
    c.t.send([app(3, 1, 1)]);
    await waitFor(() => a.received.length === 1, 'member 1 hears member 3');
    expect(a.received[0]).toMatchObject({ from: 3, to: 1, index: 1 });
    expect(asked).toEqual([{ id: 3, peerUrl: cUrl }]);
    expect(a.t.stats().admittedUnknown).toBe(1);
    expect(a.t.stats().peers.map((p) => p.id)).toEqual([2, 3]);
    // and member 1 answers it at that address
    a.t.send([app(1, 3, 7)]);
    await waitFor(() => c.received.length === 1, 'member 3 hears the answer');
    expect(c.received[0]).toMatchObject({ from: 1, to: 3, index: 7 });
    // the stream stays: later messages need no new question
    c.t.send([app(3, 1, 2)]);
    await waitFor(() => a.received.length === 2, 'a second message');
    expect(asked).toHaveLength(1);
  });

  it('is refused without a handler, or when the handler says no; nothing is delivered', async () => {
    const { a, c, cUrl } = await pair();
    c.t.send([app(3, 1, 1)]);
    await waitFor(() => (a.t.stats().refused['not-member'] ?? 0) >= 1, 'refused without a handler');
    const asked: PeerAddress[] = [];
    a.t.onUnknownSender((p) => {
      asked.push(p);
      return false; // e.g. removed in this member's log
    });
    // Sent again every 200 ms until refused: a message sent while the sender's stream is still
    // failing from the first refusal may be dropped with it (one CI run under load gave up here).
    let polls = 0;
    await waitFor(() => {
      if (polls++ % 40 === 0) c.t.send([app(3, 1, 2)]);
      return asked.length >= 1 && (a.t.stats().refused['not-member'] ?? 0) >= 2;
    }, 'refused by the handler');
    expect(asked[0]).toEqual({ id: 3, peerUrl: cUrl });
    expect(a.received).toEqual([]);
    expect(a.t.stats().admittedUnknown).toBe(0);
    expect(a.t.stats().peers.map((p) => p.id)).toEqual([2]);
  });

  it('is refused without its URL, with a URL whose MAC fails, a wrong scheme, or another secret; the handler is never asked', async () => {
    const a = await startNode(1);
    a.t.setPeers([{ id: 2, peerUrl: 'http://127.0.0.1:1' }]);
    const asked: PeerAddress[] = [];
    a.t.onUnknownSender(admitting(a, [], asked));
    const epoch = Date.now();
    const other = new Uint8Array(32).fill(9);
    const cases: Array<[Promise<[number, string | undefined]>, number, string]> = [
      // a sender of an earlier release names no URL
      [handshake(a.t.url, claims(3, 1, { epoch }), () => ({})), 403, 'not-member'],
      // a network that rewrites the URL to redirect the answers: its MAC was over another URL
      [handshake(a.t.url, claims(3, 1, { epoch }), (mac) => ({ ...named('http://127.0.0.1:9')(mac), [PeerHeader.senderUrl]: 'http://10.9.9.9:9' })), 401, 'bad-mac'],
      // the URL MACed with another request's MAC (a header lifted from another handshake)
      [handshake(a.t.url, claims(3, 1, { epoch }), () => named('http://127.0.0.1:9')(new Uint8Array(32))), 401, 'bad-mac'],
      // the URL without its MAC
      [handshake(a.t.url, claims(3, 1, { epoch }), () => ({ [PeerHeader.senderUrl]: 'http://127.0.0.1:9' })), 403, 'not-member'],
      [handshake(a.t.url, claims(3, 1, { epoch }), named('https://127.0.0.1:9')), 400, 'bad-request'],
      [handshake(a.t.url, claims(3, 1, { epoch }), named(`http://127.0.0.1:9/${'x'.repeat(1100)}`)), 400, 'bad-request'],
      // someone without the cluster secret
      [handshake(a.t.url, claims(3, 1, { epoch }), named('http://127.0.0.1:9', other), other), 401, 'bad-mac'],
    ];
    for (const [p, status, reason] of cases) expect(await p).toEqual([status, reason]);
    expect(asked).toEqual([]);
    expect(a.t.stats().peers.map((p) => p.id)).toEqual([2]);
    // the same handshake, well formed, is admitted
    expect(await handshake(a.t.url, claims(3, 1, { epoch }), named('http://127.0.0.1:9'))).toEqual([101, undefined]);
    expect(asked).toEqual([{ id: 3, peerUrl: 'http://127.0.0.1:9' }]);
  });

  it('a member of the peer set that names its URL is accepted as before (the handler is not asked)', async () => {
    const { a, c } = await pair();
    a.t.setPeers([{ id: 3, peerUrl: 'http://127.0.0.1:1' }]); // known, at another address
    const asked: PeerAddress[] = [];
    a.t.onUnknownSender(admitting(a, [], asked));
    c.t.send([app(3, 1, 1)]);
    await waitFor(() => a.received.length === 1, 'delivered');
    expect(asked).toEqual([]);
    expect(a.t.stats().admittedUnknown).toBe(0);
  });

  it('refuses an advertiseUrl that is not a peer URL', async () => {
    await expect(startNode(4, { advertiseUrl: 'ftp://x' })).rejects.toThrow(/advertiseUrl/);
    await expect(startNode(4, { advertiseUrl: 'not a url' })).rejects.toThrow(/advertiseUrl/);
  });
});
