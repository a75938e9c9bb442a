/**
 * The stream front (`proofkv-stream/1`, docs/stream-protocol.md): the hot key routes multiplexed
 * on one connection, answered out of order, the answers of one event-loop turn in one socket
 * write. A connection starts as an HTTP/1.1 `GET /v1/stream` with `Upgrade: proofkv-stream/1`
 * on the node's own port (and TLS); the node's HTTP server hands it over through its `'upgrade'`
 * event ({@link StreamServer.handleUpgrade}). The handshake is authenticated by the HTTP routes'
 * token code; each request is then checked against the token's role.
 * @module
 */
import { STATUS_CODES, ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { StreamRoutes } from './routes.js';
import type { Authenticator } from '../auth.js';
import { HttpError } from '../errors.js';
import { errors } from '../openapi.js';
import type { RouteDef } from '../route_table.js';
import { DEFAULT_STREAM_IDLE_TIMEOUT_MS, DEFAULT_STREAM_STALL_MS, STREAM_KEEPALIVE_MS, StreamConnection, readAnswerReserve, type ConnectionLimits, type StreamBudgets } from './connection.js';
import { ByteBudget } from './budget.js';
import { STREAM_PATH, STREAM_PROTOCOL } from './codec.js';

export { DEFAULT_STREAM_IDLE_TIMEOUT_MS, DEFAULT_STREAM_STALL_MS, StreamConnection, STREAM_ANSWER_HEADERS, type ConnectionLimits, type ConnectionStats, type StreamBudgets } from './connection.js';
export { ByteBudget, BudgetCancelled, type BudgetHolder, type BudgetStats } from './budget.js';
export { STREAM_PATH, STREAM_PROTOCOL, StreamOp, StreamProtocolError, maxFrameBytes } from './codec.js';

/** Default `maxStreamInFlight`: requests in flight per connection before reading stops. */
export const DEFAULT_MAX_STREAM_IN_FLIGHT = 1024;
/** Default `maxStreamBufferedBytes`: unsent answer bytes per connection before reading stops (8 MiB). */
export const DEFAULT_MAX_STREAM_BUFFERED_BYTES = 8 * 1024 * 1024;
/** Default `maxStreamAnswerBytes`: answer bytes of all stream connections of a node (512 MiB). */
export const DEFAULT_MAX_STREAM_ANSWER_BYTES = 512 * 1024 * 1024;
/** Default `maxStreamRequestBytes`: request bytes in flight on all stream connections of a node (256 MiB). */
export const DEFAULT_MAX_STREAM_REQUEST_BYTES = 256 * 1024 * 1024;

/** What {@link StreamServer} needs. */
export interface StreamServerOptions {
  routes: StreamRoutes;
  auth: Authenticator;
  /** Sent in `ProofKV-Node-Id` of the handshake's answer, as on every HTTP answer. */
  nodeId: string;
  limits: ConnectionLimits;
  /**
   * The node-wide bounds, shared by all connections (docs/stream-protocol.md § Bounds): answer
   * bytes (default {@link DEFAULT_MAX_STREAM_ANSWER_BYTES}) and request bytes in flight (default
   * {@link DEFAULT_MAX_STREAM_REQUEST_BYTES}).
   */
  node?: { maxAnswerBytes?: number; maxRequestBytes?: number };
  /**
   * The node's HTTP request listener: a request with an `Upgrade` header on another path (node
   * hands every such request to the `'upgrade'` event) is served by it, then the connection closes.
   */
  listener: (req: IncomingMessage, res: ServerResponse) => void;
}

/** The stream connections of a node. */
export class StreamServer {
  /** Open connections. */
  readonly connections = new Set<StreamConnection>();
  /** The node's budgets, shared by every connection. */
  readonly budgets: StreamBudgets;
  private draining = false;

  constructor(private readonly o: StreamServerOptions) {
    const stallMs = o.limits.stallMs ?? DEFAULT_STREAM_STALL_MS;
    // At least two of the largest reservation each: a request larger than a budget runs only when
    // nothing is held, and small answers that keep coming could hold it back (and the queue behind it).
    const floor = (n: number) => 2 * n;
    this.budgets = {
      answers: new ByteBudget(Math.max(o.node?.maxAnswerBytes ?? DEFAULT_MAX_STREAM_ANSWER_BYTES, floor(readAnswerReserve(o.limits.maxFrameBytes, 1))), stallMs),
      requests: new ByteBudget(Math.max(o.node?.maxRequestBytes ?? DEFAULT_MAX_STREAM_REQUEST_BYTES, floor(o.limits.maxFrameBytes)), stallMs),
    };
  }

  /** The `'upgrade'` listener of the node's HTTP server. */
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '';
    const path = url.split('?')[0];
    if (path !== STREAM_PATH && path !== `${STREAM_PATH}/`) return this.notStream(req, socket, head);
    let role;
    try {
      if (this.draining || this.o.routes.isClosing()) throw new HttpError('UNAVAILABLE', 'the node is shutting down');
      if (req.method !== 'GET') throw new HttpError('METHOD_NOT_ALLOWED', `${req.method} is not allowed here; allowed: GET`, { Allow: 'GET' });
      // Its body would be read as frames, where a proxy in front would read it as a body.
      if (declaresBody(req)) throw new HttpError('BAD_REQUEST', 'the stream handshake carries no body (no Content-Length or Transfer-Encoding)');
      if (url.length > path.length) throw new HttpError('INVALID_ARGUMENT', 'the stream handshake takes no query');
      if (String(req.headers.upgrade ?? '').trim().toLowerCase() !== STREAM_PROTOCOL) throw upgradeRequired();
      role = this.o.auth.roleOf(req as Parameters<Authenticator['roleOf']>[0]);
    } catch (err) {
      return this.refuse(socket, err);
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${STREAM_PROTOCOL}\r\nProofKV-Node-Id: ${this.o.nodeId}\r\n\r\n`);
    const c = new StreamConnection(socket, role, this.o.routes, this.o.limits, this.budgets);
    this.connections.add(c);
    socket.once('close', () => this.connections.delete(c));
    // A connection counts toward maxConnections until it closes: a peer gone without a FIN or RST
    // (a crashed machine, a NAT that forgot the flow) is found by keep-alive probes, and one that
    // sends nothing and awaits nothing is ended after the idle timeout.
    socket.setKeepAlive(true, STREAM_KEEPALIVE_MS);
    socket.setTimeout(this.o.limits.idleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS);
    socket.on('timeout', () => c.idle());
    c.feed(head);
  }

  /** Cuts every connection (the end of shutdown's drain time). */
  destroyAll(): void {
    for (const c of this.connections) c.destroy();
  }

  /** Shutdown: every connection answers what is in flight, refuses new requests with 503, and closes. */
  drain(): void {
    this.draining = true;
    for (const c of this.connections) c.drain();
  }

  /** The answer to a refused handshake: a problem document, then the connection closes. */
  private refuse(socket: Socket, err: unknown): void {
    const a = this.o.routes.fail(err, 'stream', socket.remoteAddress);
    const body = Buffer.from(a.body ?? '');
    const headers = { ...a.headers, 'Content-Length': String(body.length), 'ProofKV-Node-Id': this.o.nodeId, Connection: 'close' };
    let head = `HTTP/1.1 ${a.status} ${STATUS_CODES[a.status] ?? ''}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    socket.end(Buffer.concat([Buffer.from(`${head}\r\n`), body]));
    // A client that does not read its answer must not hold the descriptor.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  /**
   * A request with an `Upgrade` header on another path: node's parser has handed the connection
   * over, so it is served by the ordinary listener on this socket and then closed. Its body is no
   * longer parsed by node: a request that declares one is refused `400 BAD_REQUEST`.
   */
  private notStream(req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (declaresBody(req) || head.length > 0) {
      return this.refuse(socket, new HttpError('BAD_REQUEST', `Upgrade is only honoured at ${STREAM_PATH}; send this request without it`));
    }
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.on('finish', () => {
      res.detachSocket(socket);
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
    this.o.listener(req, res);
  }
}

/** Whether a request declares a body: a `Transfer-Encoding`, or a `Content-Length` other than 0. */
function declaresBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) !== 0;
}

/**
 * `GET /v1/stream` as a plain HTTP route: what a request without `Upgrade: proofkv-stream/1` gets
 * (`426 UPGRADE_REQUIRED`); with it, the node's `'upgrade'` event takes the connection first.
 */
export function streamHandshakeRoute(): RouteDef {
  return {
    method: 'get',
    path: STREAM_PATH,
    role: 'none',
    body: 'none',
    name: 'stream',
    doc: {
      summary: 'Open a stream connection',
      description:
        `The handshake of the stream protocol (docs/stream-protocol.md): with \`Connection: Upgrade\` and \`Upgrade: ${STREAM_PROTOCOL}\` (and the ` +
        'token, when the node has tokens) the answer is `101 Switching Protocols` and the connection carries the hot key routes as frames. ' +
        'Without that upgrade: `426 UPGRADE_REQUIRED`.',
      responses: { '101': { description: 'Switched to the stream protocol' }, ...errors(401, 426) },
    },
    handler() {
      throw upgradeRequired();
    },
  };
}

/** `426 UPGRADE_REQUIRED`, naming the protocol to upgrade to. */
export function upgradeRequired(): HttpError {
  return new HttpError('UPGRADE_REQUIRED', `this path speaks ${STREAM_PROTOCOL}: send Connection: Upgrade and Upgrade: ${STREAM_PROTOCOL}`, { Upgrade: STREAM_PROTOCOL });
}
