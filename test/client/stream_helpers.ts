/**
 * Helpers of the stream client's tests: a scripted stream server (the upgrade handshake, then
 * whatever answer frames a test writes, hostile ones included), and a tampering TCP proxy between
 * the SDK and a real node that reads the frames of both directions and lets a test rewrite,
 * swap, hold or replay answer frames.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { decodeAnswer, decodeRequest, encodeAnswer, FrameReader, STREAM_PROTOCOL, type StreamAnswer, type StreamRequest } from '../../client-sdk/stream_codec.js';

/** One upgraded connection of a {@link ScriptedStreamServer}. */
export interface ScriptedConnection {
  socket: net.Socket;
  /** The handshake's request headers. */
  handshake: IncomingMessage['headers'];
  /** Requests received, in order. */
  requests: StreamRequest[];
  /** Writes raw bytes to the client. */
  write(bytes: Uint8Array): void;
  /** Writes an answer frame. */
  answer(a: { id: number; status: number; headers?: [string, string][]; body?: Uint8Array | string }): void;
}

/**
 * A node:http server on 127.0.0.1 that upgrades `GET /v1/stream` (or refuses it with `refuse`)
 * and hands every request frame to `onRequest`; plain HTTP requests get `onHttp`'s answer.
 */
export class ScriptedStreamServer {
  server!: Server;
  url = '';
  readonly connections: ScriptedConnection[] = [];
  /** Plain HTTP requests seen (method and url). */
  readonly httpSeen: string[] = [];
  /** Called with each request frame; answer through `conn` (or not at all). */
  onRequest: (req: StreamRequest, conn: ScriptedConnection) => void = () => undefined;
  /** A status to refuse the upgrade with (401, 426, …), or undefined to accept it. */
  refuse: number | undefined;
  /** The answer to plain HTTP requests. */
  onHttp: (method: string, url: string) => { status: number; body: string } = () => ({ status: 200, body: '{"http":true}' });

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.httpSeen.push(`${req.method} ${req.url}`);
      const a = this.onHttp(req.method ?? 'GET', req.url ?? '/');
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: net.Socket, head: Buffer) => {
      if (this.refuse !== undefined || req.url !== '/v1/stream' || req.headers.upgrade !== STREAM_PROTOCOL) {
        const body = JSON.stringify({ code: 'REFUSED', status: this.refuse ?? 426 });
        socket.end(`HTTP/1.1 ${this.refuse ?? 426} Refused\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
        return;
      }
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${STREAM_PROTOCOL}\r\nProofKV-Node-Id: scripted\r\n\r\n`);
      const conn: ScriptedConnection = {
        socket,
        handshake: req.headers,
        requests: [],
        write: (b) => void (socket.writable && socket.write(b)),
        answer: (a) => conn.write(encodeAnswer({ ...a, body: typeof a.body === 'string' ? new TextEncoder().encode(a.body) : a.body })),
      };
      this.connections.push(conn);
      const reader = new FrameReader(64 * 1024 * 1024, 10);
      const onData = (chunk: Uint8Array) => {
        reader.push(chunk);
        for (let p = reader.next(); p !== undefined; p = reader.next()) {
          const r = decodeRequest(p);
          const copy = { ...r, key: r.key.slice(), value: r.value?.slice() };
          conn.requests.push(copy);
          this.onRequest(copy, conn);
        }
      };
      socket.on('data', onData);
      socket.on('error', () => undefined);
      if (head.length > 0) onData(head);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** What a {@link StreamTamperProxy} hook sees of one answer: the request it answers and the frame. */
export interface Exchange {
  request: StreamRequest;
  answer: StreamAnswer;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `upstream` (host:port of a node). It passes the HTTP
 * handshake through unchanged; once the node answered 101, it cuts both directions into frames,
 * remembers each request by id, and passes each answer to `onAnswer`, which forwards the answers
 * to send in its place (none: held back; the same: untouched; others: rewritten, swapped,
 * replayed). Every answer seen is kept in `seen` (for replays).
 */
export class StreamTamperProxy {
  private server!: net.Server;
  url = '';
  readonly seen: Exchange[] = [];
  private readonly sockets = new Set<net.Socket>();
  /** Sees each answer; calls `forward` with the answers to send in its place (any number, any id). */
  onAnswer: (x: Exchange, forward: (a: StreamAnswer) => void) => void = (x, forward) => forward(x.answer);

  constructor(private readonly upstream: string) {}

  async start(): Promise<this> {
    const up = new URL(this.upstream);
    this.server = net.createServer((client) => {
      const node = net.connect(Number(up.port), up.hostname);
      this.sockets.add(client).add(node);
      const requests = new Map<number, StreamRequest>();
      let upgradedUp = false;
      let upgradedDown = false;
      let headUp = Buffer.alloc(0);
      let headDown = Buffer.alloc(0);
      const reqReader = new FrameReader(64 * 1024 * 1024, 10);
      const ansReader = new FrameReader(64 * 1024 * 1024);
      const kill = () => {
        client.destroy();
        node.destroy();
      };
      client.on('error', kill).on('close', kill);
      node.on('error', kill).on('close', kill);
      const forward = (a: StreamAnswer) => client.writable && client.write(encodeAnswer(a));
      const fromClient = (chunk: Buffer) => {
        reqReader.push(chunk);
        for (let p = reqReader.next(); p !== undefined; p = reqReader.next()) {
          const r = decodeRequest(p);
          requests.set(r.id, { ...r, key: r.key.slice(), value: r.value?.slice() });
        }
        node.write(chunk);
      };
      const fromNode = (chunk: Buffer) => {
        ansReader.push(chunk);
        for (let p = ansReader.next(); p !== undefined; p = ansReader.next()) {
          const answer = decodeAnswer(p);
          const request = requests.get(answer.id);
          requests.delete(answer.id);
          const x: Exchange = { request: request!, answer };
          this.seen.push(x);
          this.onAnswer(x, forward);
        }
      };
      // Plain HTTP (the SDK's other requests) passes through as bytes; a stream is cut into frames.
      let plain = false;
      const guarded = (f: (c: Buffer) => void) => (chunk: Buffer) => {
        try {
          f(chunk);
        } catch {
          kill();
        }
      };
      client.on('data', guarded((chunk: Buffer) => {
        if (plain) return void node.write(chunk);
        if (upgradedUp) return fromClient(chunk);
        headUp = Buffer.concat([headUp, chunk]);
        const end = headUp.indexOf('\r\n\r\n');
        if (end < 0) return;
        upgradedUp = true;
        plain = !/^upgrade:[ \t]*proofkv-stream\/1[ \t]*$/im.test(headUp.subarray(0, end).toString('latin1'));
        if (plain) return void node.write(headUp);
        node.write(headUp.subarray(0, end + 4));
        if (headUp.length > end + 4) fromClient(headUp.subarray(end + 4));
      }));
      node.on('data', guarded((chunk: Buffer) => {
        if (plain) return void client.write(chunk);
        if (upgradedDown) return fromNode(chunk);
        headDown = Buffer.concat([headDown, chunk]);
        const end = headDown.indexOf('\r\n\r\n');
        if (end < 0) return;
        upgradedDown = true;
        client.write(headDown.subarray(0, end + 4));
        if (headDown.length > end + 4) fromNode(headDown.subarray(end + 4));
      }));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
