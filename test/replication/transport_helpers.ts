/**
 * Helpers of the transport tests: starting transports on 127.0.0.1, raw signed requests, a gate
 * proxy that holds connections until released (a slow or silent peer without timing), bounded waits.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Message } from '../../src/raft/index.js';
import {
  HttpTransport, PeerRoute, authHeaders, bodyDigest, requestMac, type HttpTransportOptions, type PeerClaims,
} from '../../src/replication/transport/index.js';

export const CLUSTER = 'pk-test-cluster';
export const SECRET = new Uint8Array(randomBytes(32));

/** A started transport and everything it received. */
export interface Node {
  id: number;
  t: HttpTransport;
  received: Message[];
  unreachable: number[];
}

const started: HttpTransport[] = [];
const gates: Array<{ server: net.Server; sockets: Set<net.Socket> }> = [];

/** Closes everything the helpers started (call in afterEach). */
export async function closeAll(): Promise<void> {
  for (const t of started.splice(0)) await t.close();
  for (const g of gates.splice(0)) {
    for (const c of g.sockets) c.destroy();
    await new Promise((r) => g.server.close(r));
  }
}

/** Starts a transport with no peers yet, on 127.0.0.1 and a free port. */
export async function startNode(id: number, options: Partial<HttpTransportOptions> = {}): Promise<Node> {
  const t = await HttpTransport.start({
    selfId: id, clusterId: CLUSTER, secret: SECRET, listen: { host: '127.0.0.1', port: 0 }, peers: [], ...options,
  });
  started.push(t);
  const node: Node = { id, t, received: [], unreachable: [] };
  t.onMessages((ms) => node.received.push(...ms));
  t.onUnreachable((peer) => node.unreachable.push(peer));
  return node;
}

/** Starts `n` transports (ids 1..n) that all know each other. */
export async function startCluster(n: number, options: Partial<HttpTransportOptions> = {}): Promise<Node[]> {
  const nodes: Node[] = [];
  for (let i = 1; i <= n; i++) nodes.push(await startNode(i, options));
  const peers = nodes.map((x) => ({ id: x.id, peerUrl: x.t.url }));
  for (const x of nodes) x.t.setPeers(peers);
  return nodes;
}

/** Polls `cond` every 5 ms, at most `rounds` times (a bound on the test, not a timing assertion). */
export async function waitFor(cond: () => boolean, what: string, rounds = 4000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Answer of {@link rawRequest}. */
export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request on a fresh connection; a connection error resolves as status 0. */
export function rawRequest(url: string, method: string, headers: Record<string, string>, body?: Uint8Array | Uint8Array[]): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers, agent: false });
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: Buffer.from(String(e)) }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    if (Array.isArray(body)) {
      for (const b of body) req.write(b);
      req.end();
    } else {
      req.end(body);
    }
  });
}

let craftedSeq = 1;

/** Claims of a crafted request from `from` to `to`, fresh and with a new seq, overridable. */
export function claims(from: number, to: number, over: Partial<PeerClaims> = {}): PeerClaims {
  return { clusterId: CLUSTER, from, to, epoch: 1, seq: craftedSeq++, time: Date.now(), ...over };
}

/** Headers of a crafted `POST` of `body` signed with `secret` (default: the cluster's). */
export function signedPostHeaders(c: PeerClaims, body: Uint8Array, secret = SECRET): Record<string, string> {
  return {
    ...authHeaders(c, requestMac(secret, PeerRoute.Messages, c, '', bodyDigest(body))),
    'content-type': 'application/octet-stream',
  };
}

/**
 * A TCP proxy in front of `target` that holds every connection (reads nothing, forwards nothing)
 * until {@link Gate.release} (or forever): a slow or silent peer, without timing.
 */
export interface Gate {
  url: string;
  /** Connections accepted so far. */
  requests: number;
  /** Connections held now. */
  held: number;
  /** Forwards every held connection, and from now on forwards at once when `open`. */
  release(open?: boolean): void;
}

export async function startGate(target: string): Promise<Gate> {
  const to = new URL(target);
  let queue: Array<() => void> = [];
  let open = false;
  const sockets = new Set<net.Socket>();
  const gate: Gate = {
    url: '', requests: 0, held: 0,
    release(o = false) {
      open = o;
      const q = queue;
      queue = [];
      gate.held = 0;
      for (const f of q) f();
    },
  };
  const server = net.createServer((client) => {
    gate.requests++;
    sockets.add(client);
    client.pause();
    client.on('error', () => undefined);
    client.on('close', () => sockets.delete(client));
    const forward = (): void => {
      const up = net.connect(Number(to.port), to.hostname);
      sockets.add(up);
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
      up.on('close', () => {
        sockets.delete(up);
        client.destroy();
      });
      client.pipe(up);
      up.pipe(client);
      client.resume();
    };
    if (open) forward();
    else {
      gate.held++;
      queue.push(forward);
    }
  });
  gates.push({ server, sockets });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  gate.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return gate;
}

/** A URL on 127.0.0.1 where nothing listens (a port bound and released). */
export async function deadUrl(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}
