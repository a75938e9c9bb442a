/**
 * {@link HttpTransport}: the {@link Transport} between member processes, over HTTP/1.1 (or HTTPS
 * with mutual TLS) on a listener of its own — the **peer listener**, which serves only the routes
 * below and never reads client tokens (a request carrying `Authorization` is refused).
 *
 * ```
 * GET  /raft/v1/stream   Upgrade: proofkv-peer-stream/1                   → 101, then frames (stream.ts) one way
 * POST /raft/v1/messages                                   body: a batch (codec.ts)   → 204
 * GET  /raft/v1/snapshot?index=I&name=N&offset=O&length=L  (L ≤ 1 MiB)                → 200 bytes + MAC | 404
 * ```
 * Every request is authenticated (auth.ts: HMAC-SHA256 with the cluster secret over the cluster
 * id, sender, recipient, `(epoch, seq)`, time and body digest). A request is refused — answered
 * with its status and a `proofkv-peer-refusal` reason, and nothing in it delivered — when it
 * carries `Authorization` (400), lacks or garbles its claims (401 `missing-auth`), names another
 * cluster (403 `wrong-cluster`), another recipient (403 `wrong-recipient`) or a sender outside the
 * current peer set (403 `not-member`; a stream handshake that names the sender's peer URL under
 * its own MAC is first offered to {@link HttpTransport.onUnknownSender}, which may admit it), has a body over `maxBatchBytes` (413), a bad MAC (401
 * `bad-mac`), a time off by more than `maxClockSkewMs` (401 `clock-skew`), an `(epoch, seq)` not
 * above the last one accepted from its sender (409 `replay` / `stale-epoch`), a malformed batch or
 * a message whose `from`/`to` differ from the authenticated ones (400 `malformed` /
 * `sender-mismatch`), or when the sender already has {@link MAX_INBOUND_PER_SENDER} requests of
 * that route being read (429 `busy`).
 *
 * **Streams.** A sender carries its messages to each peer on one long-lived **stream**: a `GET`
 * of the stream route with `Upgrade`, authenticated like any request (route 3, no body). The
 * recipient answers `101` with a fresh nonce and a MAC that proves its own member id; from then on
 * the connection carries frames one way (stream.ts), each a batch with its own MAC under a key
 * that only this stream has, numbered so that a replayed, reordered or altered frame is refused and
 * the stream closed. The recipient never writes on a stream: flow control is TCP's. It holds one
 * inbound stream per peer (a second replaces the first) and closes one that carried nothing for
 * `idleTimeoutMs` (the sender writes an empty frame after a third of that without writing).
 *
 * **Sending.** Each peer has a FIFO of encoded messages bounded by `maxQueueBytes`. `send`
 * only queues: at the end of the event-loop turn (a `setImmediate`), what every `send` of the turn
 * queued for a peer goes out as one frame in one write ({@link HttpTransport.flush} writes at
 * once, for the messages a write waits on). When the peer's stream is writable,
 * everything queued goes out at once, in frames of at most `maxBatchBytes`; while the socket's buffer is full (the peer reads slowly), messages wait in the
 * queue. A message that does not fit in the queue is dropped and the peer reported unreachable.
 * When a dial fails or a stream breaks (connection error, refusal, a write stalled for
 * `requestTimeoutMs`), the messages queued are dropped (Raft retransmits), the peer is reported
 * unreachable and the sender dials again after a backoff that doubles from `backoffMs.base` up to
 * `backoffMs.max` (reset when a stream opens). Snapshot chunk reads stay separate `GET`s.
 *
 * **Chunk answers.** A chunk's `200` answer carries a MAC (`proofkv-peer-mac`, auth.ts
 * `chunkAnswerMac`) over its bytes, bound to the request's MAC, so a hostile network can neither
 * alter a chunk nor answer with another request's chunk. The reader refuses (`TRANSPORT_MALFORMED`)
 * an answer without a MAC or without a `content-length` within the length asked before reading its
 * body, and one whose MAC fails once its (at most 1 MiB) body is read. The content is checked
 * again against the certified MasterRoot before any install: the MAC only stops garbage early.
 * A chunk read's refusals carry a MAC as well (`chunkRefusalMac`, over status and reason, bound to
 * the request's MAC): the listener checks a chunk read's MAC before anything else, and the reader
 * takes a refusal without a valid one as `TRANSPORT_MALFORMED`, not as the member's answer.
 *
 * **The shape read.** A chunk read of the name `SHAPE` (this member's recorded shape, any index:
 * `src/replication/shape.ts`) is answered to any sender that proves the cluster secret, a current
 * member or not: a member that joins asks it before it is added, and it tells nothing a holder of
 * the secret could not learn by claiming a member's id. Every other check applies.
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { equalBytes } from '../../../proofs/bytes.js';
import type { Message } from '../../raft/index.js';
import type { PeerAddress, Transport } from '../transport.js';
import {
  PeerHeader, PeerRoute, ReplayGuard, SECRET_BYTES, authHeaders, bodyDigest, chunkAnswerMac, chunkRefusalMac, epochMac, isFresh,
  isValidClusterId, macEquals, parseAuthHeaders, parseDecimal, requestMac, senderUrlMac, streamAcceptMac, streamKey,
  type PeerClaims,
} from './auth.js';
import { MAX_NODE_ID, decodeBatch, encodeBatch, encodeMessage } from './codec.js';
import { TransportError, TransportErrorCode } from './errors.js';
import { BATCH_FRAME_BYTES, PeerQueue, framedSize } from './queue.js';
import { FRAME_HEADER_BYTES, FrameReader, STREAM_NONCE_BYTES, STREAM_PATH, STREAM_PROTOCOL, encodeBatchFrame, encodeFrame } from './stream.js';
import { trace, tracing } from '../trace.js';
import { SHAPE_FILE } from '../shape.js';

/** Path of the message route. */
export const MESSAGES_PATH = '/raft/v1/messages';
/** Path of the snapshot chunk route. */
export const SNAPSHOT_PATH = '/raft/v1/snapshot';
/** Largest snapshot chunk one request may ask for. */
export const MAX_CHUNK_BYTES = 1 << 20;
/** Requests of one route from one (claimed) sender read at the same time, at most. */
export const MAX_INBOUND_PER_SENDER = 4;
/** Secrets a member accepts at once, at most: the one it sends with and, during a rotation, one more. */
export const MAX_ACCEPTED_SECRETS = 2;

const EMPTY_DIGEST = bodyDigest(new Uint8Array(0));
const EMPTY_BATCH = encodeBatch([]);
const HEX_MAC = /^[0-9a-f]{64}$/;
const HEX_NONCE = new RegExp(`^[0-9a-f]{${2 * STREAM_NONCE_BYTES}}$`);
const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,254}){0,3}$/;

/** Why the peer listener refused a request (the `proofkv-peer-refusal` header). */
export type RefusalReason =
  | 'authorization-header' | 'missing-auth' | 'wrong-cluster' | 'wrong-recipient' | 'not-member'
  | 'too-large' | 'bad-mac' | 'clock-skew' | 'replay' | 'stale-epoch' | 'malformed'
  | 'sender-mismatch' | 'busy' | 'bad-request' | 'not-found' | 'method' | 'closed' | 'read-failed';

const refusalStatus: Record<RefusalReason, number> = {
  'authorization-header': 400, 'missing-auth': 401, 'wrong-cluster': 403, 'wrong-recipient': 403,
  'not-member': 403, 'too-large': 413, 'bad-mac': 401, 'clock-skew': 401, replay: 409,
  'stale-epoch': 409, malformed: 400, 'sender-mismatch': 400, busy: 429, 'bad-request': 400,
  'not-found': 404, method: 405, closed: 503, 'read-failed': 500,
};

/** Mutual TLS material (PEM). Both sides present `cert`, and accept only peers signed by `ca`. */
export interface TransportTls {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

/** Options of {@link HttpTransport.start}. */
export interface HttpTransportOptions {
  /** This member's id. */
  selfId: number;
  /** The cluster's id (from `cluster.json`): requests naming another are refused. */
  clusterId: string;
  /** The 32-byte cluster secret: every request and answer this member makes is MACed with it. */
  secret: Uint8Array;
  /**
   * Secrets accepted besides `secret` while the cluster rotates it (at most
   * {@link MAX_ACCEPTED_SECRETS} − 1): a request MACed with any accepted secret is authenticated,
   * and its answers (the `101`, a stale-epoch `409`, a chunk and its refusals) and a stream's frame
   * key use the secret that verified it. See {@link HttpTransport.setSecrets}.
   */
  acceptSecrets?: readonly Uint8Array[];
  /** Where the peer listener binds (`port: 0` picks a free port; see {@link HttpTransport.address}). */
  listen: { host: string; port: number };
  /** The other members (self is ignored if listed). */
  peers: readonly PeerAddress[];
  /** Bytes of encoded messages queued per peer, at most. Default 16 MiB. */
  maxQueueBytes?: number;
  /** Bytes of one batch, at most: a frame's body sent or accepted, and a `POST` body accepted. Default 4 MiB; at least 64 KiB. */
  maxBatchBytes?: number;
  /** HTTPS with mutual TLS instead of HTTP (the HMAC is still required). */
  tls?: TransportTls;
  /** Largest difference between a request's time and this node's clock. Default 5 minutes. */
  maxClockSkewMs?: number;
  /** A request (a stream dial, a chunk read) that takes longer fails, and a stream whose write waits longer for `drain` is closed. Default 10 s. */
  requestTimeoutMs?: number;
  /** Backoff after a failed dial or a broken stream, doubling from `base` to `max` ms. Default 50 and 2000. */
  backoffMs?: { base: number; max: number };
  /**
   * A recipient closes an inbound stream that carried no frame for this long; a sender writes an
   * empty frame (a keep-alive) after a third of it without writing. Default 30 s.
   */
  idleTimeoutMs?: number;
  /**
   * This member's peer URL as the others reach it, sent (with its own MAC) on every stream
   * handshake, so that a member that does not know this one yet can answer it
   * ({@link HttpTransport.onUnknownSender}). Default: none sent.
   */
  advertiseUrl?: string;
}

/** Longest peer URL a handshake may name ({@link HttpTransportOptions.advertiseUrl}). */
export const MAX_PEER_URL_BYTES = 1024;

/** Counters of traffic with one peer. */
export interface PeerStats {
  id: number;
  /** Messages and bytes (batch bodies) written to the peer's stream, and the frames that carried them (keep-alives not counted). */
  sentMessages: number;
  sentBytes: number;
  sentBatches: number;
  /** Corked writes to the peer's stream that carried frames (each one `writev` of its frames; keep-alives not counted). */
  sentWrites: number;
  /** Messages dropped: queue full, too large, failed dial or broken stream, or removed/closed with messages queued. */
  droppedMessages: number;
  /** Streams to the peer that opened (the dial answered `101` with a valid MAC). */
  streamsOpened: number;
  /** Dials that failed (connection error, timeout, refusal, bad answer) and open streams that broke. */
  failedStreams: number;
  /** Times the peer was reported unreachable. */
  unreachable: number;
  /** Streams accepted from the peer. */
  streamsAccepted: number;
  /** Messages and bytes accepted from the peer and the frames (or `POST`s) that carried them. */
  receivedMessages: number;
  receivedBytes: number;
  receivedBatches: number;
  /** Encoded messages waiting now. */
  queuedMessages: number;
  queuedBytes: number;
}

/** What {@link HttpTransport.stats} returns. */
export interface TransportStats {
  peers: PeerStats[];
  /** Requests refused by the peer listener, by reason. */
  refused: Partial<Record<RefusalReason, number>>;
  /**
   * Requests and stream handshakes authenticated by an accepted secret other than the one this
   * member sends with (during a secret rotation: peers still sending with the other secret).
   */
  acceptedByOtherSecret: number;
  /** Messages sent to an id that is not a current peer (dropped). */
  droppedUnknownPeer: number;
  /** Stream handshakes from senders outside the peer set that {@link HttpTransport.onUnknownSender}'s handler admitted. */
  admittedUnknown: number;
}

type Counters = Omit<PeerStats, 'id' | 'queuedMessages' | 'queuedBytes'>;
const zeroCounters = (): Counters => ({
  sentMessages: 0, sentBytes: 0, sentBatches: 0, sentWrites: 0, droppedMessages: 0, streamsOpened: 0, failedStreams: 0,
  unreachable: 0, streamsAccepted: 0, receivedMessages: 0, receivedBytes: 0, receivedBatches: 0,
});

/** An open outbound stream: its socket, its frame key and the number of the last frame written. */
interface OutStream {
  readonly socket: Socket;
  readonly key: Uint8Array;
  /** The secret the handshake was MACed with (the frame key derives from it). */
  readonly secret: Uint8Array;
  seq: number;
  /** Set while a write waits for `drain`: the stream breaks when it fires. */
  stall?: NodeJS.Timeout;
  /** Writes an empty frame every third of `idleTimeoutMs` in which nothing was written. */
  keepAlive?: NodeJS.Timeout;
  wrote: boolean;
}

/** An accepted inbound stream of one peer. */
interface InStream {
  readonly socket: Socket;
  readonly reader: FrameReader;
  /** The accepted secret that authenticated the handshake (the frame key derives from it). */
  readonly secret: Uint8Array;
}

/** One peer: its queue, its stream and the dial of the next one. */
interface Link {
  readonly id: number;
  readonly url: URL;
  /** Snapshot chunk reads get their own connections, so they never wait behind messages. */
  readonly snapAgent: http.Agent;
  readonly queue: PeerQueue;
  readonly counters: Counters;
  stream?: OutStream;
  dialing?: http.ClientRequest;
  /** The backoff before the next dial. */
  timer?: NodeJS.Timeout;
  backoff: number;
  removed: boolean;
}

/** `url` parsed, when a member may be reached at it: `http:` (`https:` with TLS); else why not. */
function parsePeerUrl(url: unknown, tls: boolean): URL | string {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    return `bad peerUrl ${String(url)}`;
  }
  const scheme = tls ? 'https:' : 'http:';
  return u.protocol === scheme ? u : `peerUrl must use ${scheme}`;
}

/** True for a peer URL a handshake may name ({@link parsePeerUrl}), at most {@link MAX_PEER_URL_BYTES} bytes. */
function validPeerUrl(url: string, tls: boolean): boolean {
  return typeof url === 'string' && Buffer.byteLength(url) <= MAX_PEER_URL_BYTES && typeof parsePeerUrl(url, tls) !== 'string';
}

function positive(v: number | undefined, dflt: number, what: string, min = 1): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < min) throw new TransportError(TransportErrorCode.InvalidArgument, `${what} must be an integer ≥ ${min}, got ${v}`);
  return v;
}

/** The Raft {@link Transport} between processes: see the module comment. */
export class HttpTransport implements Transport {
  private readonly links = new Map<number, Link>();
  private readonly inStreams = new Map<number, InStream>();
  /** Refused handshakes whose connection is closing (the listener's close waits for none of them). */
  private readonly refusedSockets = new Set<Socket>();
  private readonly replay = new ReplayGuard();
  private readonly inbound = new Map<string, number>();
  private readonly refused: Partial<Record<RefusalReason, number>> = {};
  private droppedUnknownPeer = 0;
  private admittedUnknown = 0;
  private unknownSenderHandler?: (peer: PeerAddress) => boolean;
  /** Requests and streams authenticated by an accepted secret other than the one this member sends with. */
  private acceptedByOtherSecret = 0;
  /** The secret this member MACs with, and every secret it accepts (that one first). */
  private secrets: { send: Uint8Array; accept: Uint8Array[] };
  private messageHandler?: (messages: Message[]) => void;
  private unreachableHandler?: (id: number) => void;
  private snapshotHandler?: (index: number, name: string, offset: number, length: number) => Promise<Uint8Array>;
  private closed = false;
  /**
   * The `(epoch, seq)` of the requests this node sends, shared by every peer (so a peer that is
   * removed and added again, or whose URL changes, still sees them increase): the epoch starts at
   * the start time and only moves up (past what a peer says it has seen); seq counts every request.
   */
  private epoch = Date.now();
  private seq = 0;
  /** Set from the first {@link send} of an event-loop turn until the `setImmediate` that writes what the turn queued. */
  private flushing?: NodeJS.Immediate;

  private constructor(
    private readonly o: Required<Omit<HttpTransportOptions, 'tls' | 'peers' | 'listen' | 'secret' | 'acceptSecrets' | 'advertiseUrl'>> & Pick<HttpTransportOptions, 'tls' | 'advertiseUrl'>,
    private readonly server: http.Server,
    secrets: { send: Uint8Array; accept: Uint8Array[] },
  ) {
    this.secrets = secrets;
  }

  /** Validates the options, binds the peer listener and returns the transport. */
  static async start(options: HttpTransportOptions): Promise<HttpTransport> {
    const bad = (why: string): never => { throw new TransportError(TransportErrorCode.InvalidArgument, why); };
    if (!Number.isSafeInteger(options.selfId) || options.selfId < 1 || options.selfId > MAX_NODE_ID) bad(`selfId must be a node id, got ${options.selfId}`);
    if (!isValidClusterId(options.clusterId)) bad('clusterId must be 1–128 printable ASCII characters');
    const secrets = secretSet(options.secret, options.acceptSecrets ?? []);
    const maxBatchBytes = positive(options.maxBatchBytes, 4 << 20, 'maxBatchBytes', 64 << 10);
    const maxQueueBytes = positive(options.maxQueueBytes, Math.max(16 << 20, maxBatchBytes), 'maxQueueBytes', maxBatchBytes);
    const { host, port } = options.listen ?? {};
    if (typeof host !== 'string' || host === '' || !Number.isSafeInteger(port) || port < 0 || port > 65535) bad('listen must be { host, port } with a port in [0, 65535]');
    const backoff = options.backoffMs ?? { base: 50, max: 2000 };
    if (options.advertiseUrl !== undefined && !validPeerUrl(options.advertiseUrl, options.tls !== undefined)) {
      bad(`advertiseUrl must be an ${options.tls ? 'https' : 'http'} URL of at most ${MAX_PEER_URL_BYTES} bytes, got ${String(options.advertiseUrl)}`);
    }
    const o = {
      selfId: options.selfId, clusterId: options.clusterId,
      maxBatchBytes, maxQueueBytes,
      maxClockSkewMs: positive(options.maxClockSkewMs, 300_000, 'maxClockSkewMs'),
      requestTimeoutMs: positive(options.requestTimeoutMs, 10_000, 'requestTimeoutMs'),
      backoffMs: { base: positive(backoff.base, 50, 'backoffMs.base'), max: positive(backoff.max, 2000, 'backoffMs.max') },
      idleTimeoutMs: positive(options.idleTimeoutMs, 30_000, 'idleTimeoutMs', 3),
      tls: options.tls,
      advertiseUrl: options.advertiseUrl,
    };
    const server = options.tls
      ? https.createServer({ cert: options.tls.cert, key: options.tls.key, ca: options.tls.ca, requestCert: true, rejectUnauthorized: true })
      : http.createServer();
    const t = new HttpTransport(o, server, secrets);
    t.setPeers(options.peers);
    server.keepAliveTimeout = 120_000;
    server.headersTimeout = 30_000;
    server.requestTimeout = 60_000;
    server.maxHeadersCount = 64;
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      t.handle(req, res).catch(() => {
        if (!res.headersSent) t.refuse(res, 'malformed');
        else res.destroy();
      });
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => t.handleUpgrade(req, socket, head));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      t.closed = true;
      for (const link of [...t.links.values()]) t.dropLink(link);
      throw new TransportError(TransportErrorCode.InvalidArgument, `cannot listen on ${host}:${port}: ${(e as Error).message}`, { cause: e });
    }
    return t;
  }

  /**
   * Rotates the cluster secret without a restart: from now on this member MACs with `secret` and
   * accepts `secret` and `acceptSecrets` (at most {@link MAX_ACCEPTED_SECRETS} in all). Streams
   * that no longer fit are closed at once: each outbound stream opened with another secret than
   * `secret` (it is dialed again with `secret`, its queue kept), each inbound stream whose
   * handshake a secret no longer accepted authenticated (its sender dials again). A bad argument
   * is `TRANSPORT_INVALID_ARGUMENT` and changes nothing. The operator's procedure is in
   * docs/cluster.md § Rotating the cluster secret.
   */
  setSecrets(secret: Uint8Array, acceptSecrets: readonly Uint8Array[] = []): void {
    const next = secretSet(secret, acceptSecrets);
    this.secrets = next;
    for (const link of this.links.values()) {
      const s = link.stream;
      if (s === undefined || equalBytes(s.secret, next.send)) continue;
      link.stream = undefined; // not a break: nothing is dropped or reported
      this.closeOutStream(s);
      this.kick(link);
    }
    for (const [from, s] of [...this.inStreams]) if (!next.accept.some((k) => equalBytes(k, s.secret))) this.dropInStream(from);
  }

  /** The accepted secret under which `mac` is `macOf(secret)`, or undefined (constant-time compares). */
  private verifiedBy(macOf: (secret: Uint8Array) => Uint8Array, mac: Uint8Array): Uint8Array | undefined {
    const secret = this.secrets.accept.find((k) => macEquals(macOf(k), mac));
    if (secret !== undefined && secret !== this.secrets.send) this.acceptedByOtherSecret++;
    return secret;
  }

  /** The bound address of the peer listener. */
  address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Base URL of the peer listener (what the other members list as this member's `peerUrl`). */
  get url(): string {
    const { host, port } = this.address();
    return `${this.o.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  send(messages: readonly Message[]): void {
    try {
      const overflowed = new Set<Link>();
      for (const m of messages) {
        if (this.closed) return;
        const link = this.links.get(m?.to);
        if (link === undefined) {
          this.droppedUnknownPeer++;
          continue;
        }
        let encoded: Uint8Array;
        try {
          encoded = encodeMessage(m.from === this.o.selfId ? m : { ...m, from: this.o.selfId });
        } catch {
          link.counters.droppedMessages++;
          continue;
        }
        if (BATCH_FRAME_BYTES + framedSize(encoded) > this.o.maxBatchBytes) {
          link.counters.droppedMessages++; // can never travel: larger than a batch
          continue;
        }
        if (!link.queue.push(encoded)) {
          link.counters.droppedMessages++;
          overflowed.add(link);
        }
      }
      // What every send of this turn queued goes out together, once the turn's I/O callbacks
      // (and their promise jobs) have run: one frame and one write per peer, not one per call.
      this.flushing ??= setImmediate(() => this.flush());
      for (const link of overflowed) this.reportUnreachable(link);
    } catch {
      // send never throws (Transport contract); what was not queued is dropped.
    }
  }

  /**
   * Writes what was queued now, without waiting for the end of the turn (the `setImmediate` of
   * {@link send} calls it too): for messages a write waits on. Never throws.
   */
  flush(): void {
    if (this.flushing !== undefined) clearImmediate(this.flushing);
    this.flushing = undefined;
    try {
      for (const link of this.links.values()) this.kick(link);
    } catch {
      // like send: a failure here is a broken stream, handled by its close
    }
  }

  onMessages(handler: (messages: Message[]) => void): void {
    this.messageHandler = handler;
  }

  onUnreachable(handler: (id: number) => void): void {
    this.unreachableHandler = handler;
  }

  onSnapshotRead(handler: (index: number, name: string, offset: number, length: number) => Promise<Uint8Array>): void {
    this.snapshotHandler = handler;
  }

  /**
   * Sets who decides on a stream from a sender outside the peer set. Without a handler such a
   * handshake is refused (`403 not-member`). With one, a handshake whose MAC, time and
   * `(epoch, seq)` pass and that names the sender's peer URL under a valid
   * {@link senderUrlMac} is offered to it as `{ id, peerUrl }`; the stream is accepted when the
   * handler returned true and the sender is then in the peer set (the handler is expected to add
   * it, with {@link setPeers}, before it returns). A member that missed a new member's addition
   * uses this to hear that member and answer it (docs/replication.md § A lagging member).
   */
  onUnknownSender(handler: (peer: PeerAddress) => boolean): void {
    this.unknownSenderHandler = handler;
  }

  /**
   * Replaces the peer set. Throws {@link TransportError} `TRANSPORT_INVALID_ARGUMENT` (and changes
   * nothing) for a bad id or URL, or a URL whose scheme does not match the TLS setting. A removed
   * peer's queue is dropped and its requests are refused from now on; a peer whose URL changed
   * gets a new connection.
   */
  setPeers(peers: readonly PeerAddress[]): void {
    const want = new Map<number, URL>();
    for (const p of peers) {
      if (!Number.isSafeInteger(p?.id) || p.id < 1 || p.id > MAX_NODE_ID) throw new TransportError(TransportErrorCode.InvalidArgument, `bad peer id ${p?.id}`);
      const url = parsePeerUrl(p.peerUrl, this.o.tls !== undefined);
      if (typeof url === 'string') throw new TransportError(TransportErrorCode.InvalidArgument, `peer ${p.id}: ${url}`);
      if (p.id !== this.o.selfId) want.set(p.id, url);
    }
    for (const [id, link] of this.links) {
      const url = want.get(id);
      if (url === undefined || url.href !== link.url.href) this.dropLink(link);
    }
    for (const id of [...this.inStreams.keys()]) {
      if (!want.has(id)) this.dropInStream(id);
    }
    for (const [id, url] of want) {
      if (this.links.has(id) || this.closed) continue;
      const Agent = this.o.tls ? https.Agent : http.Agent;
      this.links.set(id, {
        id, url, snapAgent: new Agent({ keepAlive: true, timeout: 60_000, ...this.tlsOptions(), maxSockets: 2 }),
        queue: new PeerQueue(this.o.maxQueueBytes), counters: zeroCounters(), backoff: 0, removed: false,
      });
    }
  }

  async fetchSnapshotChunk(id: number, index: number, name: string, offset: number, length: number): Promise<Uint8Array> {
    if (this.closed) throw new TransportError(TransportErrorCode.Closed, 'transport is closed');
    if (!Number.isSafeInteger(index) || index < 0 || !Number.isSafeInteger(offset) || offset < 0 ||
      !Number.isSafeInteger(length) || length < 1 || length > MAX_CHUNK_BYTES || typeof name !== 'string' || !SNAPSHOT_NAME.test(name)) {
      throw new TransportError(TransportErrorCode.InvalidArgument, `bad snapshot chunk request (${index}, ${String(name)}, ${offset}, ${length})`);
    }
    const link = this.links.get(id);
    if (link === undefined) throw new TransportError(TransportErrorCode.Unreachable, `member ${id} is not a current peer`);
    const claims = this.claims(link);
    const target = `${index}/${name}/${offset}/${length}`;
    const secret = this.secrets.send;
    const mac = requestMac(secret, PeerRoute.Snapshot, claims, target, EMPTY_DIGEST);
    const q = new URLSearchParams({ index: String(index), name, offset: String(offset), length: String(length) });
    const url = new URL(`${SNAPSHOT_PATH}?${q.toString()}`, link.url);
    return await new Promise<Uint8Array>((resolve, reject) => {
      const req = (this.o.tls ? https : http).request(url, { method: 'GET', agent: link.snapAgent, headers: authHeaders(claims, mac) });
      req.setTimeout(this.o.requestTimeoutMs, () => req.destroy(new Error('timed out')));
      req.on('error', (e) => reject(new TransportError(TransportErrorCode.Unreachable, `member ${id}: ${e.message}`, { cause: e })));
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          // A refusal counts only with its MAC (auth.ts, chunkRefusalMac): bound to this request,
          // its status and its reason. Without one it is refused, unread, like a bad answer.
          const status = res.statusCode ?? 0;
          const reason = res.headers[PeerHeader.refusal];
          const got = res.headers[PeerHeader.mac];
          if (typeof reason !== 'string' || typeof got !== 'string' || !HEX_MAC.test(got) ||
            !macEquals(chunkRefusalMac(secret, this.o.clusterId, id, this.o.selfId, mac, status, reason), Buffer.from(got, 'hex'))) {
            req.destroy();
            reject(new TransportError(TransportErrorCode.Malformed, `member ${id}: an unauthenticated refusal (${status}${typeof reason === 'string' ? ` ${reason.slice(0, 64)}` : ''}) of snapshot ${index} ${name}@${offset}`));
            return;
          }
          res.resume();
          const code = status === 404 ? TransportErrorCode.NotFound : TransportErrorCode.Refused;
          reject(new TransportError(code, `member ${id} answered ${status} (${reason}) for snapshot ${index} ${name}@${offset}`));
          return;
        }
        // The answer must carry its MAC (auth.ts, chunkAnswerMac) and a length within the one
        // asked: anything else is refused before its body is read.
        const got = res.headers[PeerHeader.mac];
        const declared = parseDecimal(res.headers['content-length']);
        const refuse = (why: string) => {
          req.destroy();
          reject(new TransportError(TransportErrorCode.Malformed, `member ${id}: ${why} (snapshot ${index} ${name}@${offset})`));
        };
        if (typeof got !== 'string' || !HEX_MAC.test(got)) return refuse('the chunk answer carries no MAC');
        if (declared === undefined || declared > length) return refuse(`the chunk answer declares ${String(res.headers['content-length'])} bytes, at most ${length} were asked`);
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > declared) return refuse(`sent more than the ${declared} bytes it declared`);
          chunks.push(c);
        });
        res.on('end', () => {
          const body = new Uint8Array(Buffer.concat(chunks, n));
          const want = chunkAnswerMac(secret, this.o.clusterId, id, this.o.selfId, mac, bodyDigest(body));
          if (!macEquals(want, Buffer.from(got, 'hex'))) return refuse('the chunk answer has a bad MAC (tampered, or the answer to another request)');
          resolve(body);
        });
        res.on('error', (e) => reject(new TransportError(TransportErrorCode.Unreachable, `member ${id}: ${e.message}`, { cause: e })));
      });
      req.end();
    });
  }

  /** Counters per peer and refusals by reason (a copy). */
  stats(): TransportStats {
    const peers: PeerStats[] = [];
    for (const link of this.links.values()) {
      peers.push({ id: link.id, ...link.counters, queuedMessages: link.queue.length, queuedBytes: link.queue.bytes });
    }
    peers.sort((a, b) => a.id - b.id);
    return {
      peers, refused: { ...this.refused }, droppedUnknownPeer: this.droppedUnknownPeer, acceptedByOtherSecret: this.acceptedByOtherSecret,
      admittedUnknown: this.admittedUnknown,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushing !== undefined) clearImmediate(this.flushing);
    this.flushing = undefined;
    for (const link of [...this.links.values()]) this.dropLink(link);
    for (const id of [...this.inStreams.keys()]) this.dropInStream(id);
    for (const socket of this.refusedSockets) socket.destroy();
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await done;
  }

  // ---- sending ----

  private claims(link: Link): PeerClaims {
    return { clusterId: this.o.clusterId, from: this.o.selfId, to: link.id, epoch: this.epoch, seq: ++this.seq, time: Date.now() };
  }

  /** TLS options of this member's outbound connections (none without TLS). */
  private tlsOptions(): { cert?: string | Buffer; key?: string | Buffer; ca?: string | Buffer } {
    return this.o.tls ? { cert: this.o.tls.cert, key: this.o.tls.key, ca: this.o.tls.ca } : {};
  }

  private dropLink(link: Link): void {
    link.removed = true;
    link.counters.droppedMessages += link.queue.clear();
    clearTimeout(link.timer);
    link.dialing?.destroy();
    if (link.stream) this.closeOutStream(link.stream);
    link.stream = undefined;
    link.snapAgent.destroy();
    this.links.delete(link.id);
  }

  private reportUnreachable(link: Link): void {
    link.counters.unreachable++;
    try {
      this.unreachableHandler?.(link.id);
    } catch {
      // a failing handler must not break the transport
    }
  }

  /**
   * Writes what `link` has queued to its stream while the socket takes it, or dials a stream
   * when there is none (and no dial or backoff is under way) and something is queued.
   */
  private kick(link: Link): void {
    if (this.closed || link.removed || link.queue.length === 0) return;
    const s = link.stream;
    if (s === undefined) {
      if (link.dialing === undefined && link.timer === undefined) this.dial(link);
      return;
    }
    if (s.socket.writableNeedDrain) return;
    s.socket.cork();
    link.counters.sentWrites++;
    if (tracing) trace('write', link.id);
    while (link.queue.length > 0 && !s.socket.writableNeedDrain) {
      const batch = link.queue.take(this.o.maxBatchBytes);
      const frame = encodeBatchFrame(s.key, ++s.seq, batch);
      const size = frame.length - FRAME_HEADER_BYTES;
      if (tracing) trace('frame', link.id, batch.length, size);
      this.writeFrame(s, frame);
      link.counters.sentMessages += batch.length;
      link.counters.sentBytes += size;
      link.counters.sentBatches++;
    }
    s.socket.uncork();
  }

  /** Writes one frame (of `s`'s next seq); a write the socket cannot take at once must drain within `requestTimeoutMs`. */
  private writeFrame(s: OutStream, frame: Buffer): void {
    s.wrote = true;
    if (!s.socket.write(frame) && s.stall === undefined) {
      s.stall = setTimeout(() => s.socket.destroy(), this.o.requestTimeoutMs);
      s.stall.unref?.();
    }
  }

  private closeOutStream(s: OutStream): void {
    clearTimeout(s.stall);
    clearInterval(s.keepAlive);
    s.socket.destroy();
  }

  /** After a failed dial or a broken stream: drop what is queued, report, and dial again after a backoff. */
  private failed(link: Link): void {
    link.counters.failedStreams++;
    link.counters.droppedMessages += link.queue.clear();
    link.backoff = link.backoff === 0 ? this.o.backoffMs.base : Math.min(this.o.backoffMs.max, link.backoff * 2);
    this.reportUnreachable(link);
    link.timer = setTimeout(() => {
      link.timer = undefined;
      this.kick(link);
    }, link.backoff);
    link.timer.unref?.();
  }

  /** Opens a stream to `link`'s peer: an authenticated `Upgrade`, whose `101` must prove the peer's id. */
  private dial(link: Link): void {
    const claims = this.claims(link);
    const secret = this.secrets.send;
    const mac = requestMac(secret, PeerRoute.Stream, claims, '', EMPTY_DIGEST);
    const self = this.o.advertiseUrl;
    const req = (this.o.tls ? https : http).request(new URL(STREAM_PATH, link.url), {
      method: 'GET',
      agent: false,
      ...this.tlsOptions(),
      headers: {
        ...authHeaders(claims, mac), connection: 'Upgrade', upgrade: STREAM_PROTOCOL,
        ...(self === undefined ? {} : { [PeerHeader.senderUrl]: self, [PeerHeader.senderUrlMac]: Buffer.from(senderUrlMac(secret, mac, self)).toString('hex') }),
      },
    });
    link.dialing = req;
    trace('dial', link.id);
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      link.dialing = undefined;
      return !(link.removed || this.closed);
    };
    const fail = (): void => {
      if (settle()) this.failed(link);
    };
    req.setTimeout(this.o.requestTimeoutMs, () => req.destroy(new Error('timed out')));
    req.on('error', fail);
    req.on('response', (res) => {
      res.resume();
      res.on('error', fail);
      res.on('end', () => {
        if (res.statusCode === 409 && this.acceptEpoch(link, res.headers, mac, secret)) {
          // the epoch moved past the one the peer holds: dial again at once
          if (settle()) this.kick(link);
          return;
        }
        fail();
      });
    });
    req.on('upgrade', (res: http.IncomingMessage, socket: Socket, head: Buffer) => {
      const nonce = this.acceptedNonce(link, res, mac, secret);
      if (nonce === undefined || head.length > 0) {
        socket.destroy();
        return fail();
      }
      if (!settle()) {
        socket.destroy();
        return;
      }
      if (!equalBytes(secret, this.secrets.send)) {
        // The secret was rotated while this dial was under way: dial again with the new one.
        socket.destroy();
        return this.kick(link);
      }
      const s: OutStream = { socket, key: streamKey(secret, mac, nonce), secret, seq: 0, wrote: false };
      link.stream = s;
      link.backoff = 0;
      socket.removeAllListeners('timeout'); // the dial's timeout ends with the handshake
      link.counters.streamsOpened++;
      trace('stream', link.id);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      socket.setTimeout(0);
      // A write-idle stream gets an empty frame, so the recipient's idle timeout spares it.
      s.keepAlive = setInterval(() => {
        if (!s.wrote && !socket.writableNeedDrain) this.writeFrame(s, encodeFrame(s.key, ++s.seq, EMPTY_BATCH));
        s.wrote = false;
      }, Math.floor(this.o.idleTimeoutMs / 3));
      s.keepAlive.unref?.();
      socket.on('drain', () => {
        clearTimeout(s.stall);
        s.stall = undefined;
        this.kick(link);
      });
      // The recipient never writes on a stream: anything it sends is a protocol error.
      socket.on('data', () => socket.destroy());
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(s.stall);
        clearInterval(s.keepAlive);
        if (link.stream !== s) return;
        link.stream = undefined;
        trace('broken', link.id);
        if (!link.removed && !this.closed) this.failed(link);
      });
      this.kick(link);
    });
    req.end();
  }

  /** The recipient's nonce from a `101` answer, when its MAC proves it comes from `link`'s member; else undefined. */
  private acceptedNonce(link: Link, res: http.IncomingMessage, reqMac: Uint8Array, secret: Uint8Array): Uint8Array | undefined {
    const h = res.headers;
    const nonce = h[PeerHeader.nonce];
    const got = h[PeerHeader.mac];
    if (res.statusCode !== 101 || h.upgrade !== STREAM_PROTOCOL || parseDecimal(h[PeerHeader.from]) !== link.id ||
      parseDecimal(h[PeerHeader.to]) !== this.o.selfId || typeof nonce !== 'string' || !HEX_NONCE.test(nonce) ||
      typeof got !== 'string' || !HEX_MAC.test(got)) return undefined;
    const n = Buffer.from(nonce, 'hex');
    const want = streamAcceptMac(secret, this.o.clusterId, link.id, this.o.selfId, n, reqMac);
    return macEquals(want, Buffer.from(got, 'hex')) ? n : undefined;
  }

  /** Moves the epoch past the one `link`'s peer says it has seen, if the answer (to a request MACed with `secret`) is authentic. */
  private acceptEpoch(link: Link, headers: http.IncomingHttpHeaders, reqMac: Uint8Array, secret: Uint8Array): boolean {
    const min = parseDecimal(headers[PeerHeader.minEpoch]);
    const got = headers[PeerHeader.mac];
    if (min === undefined || typeof got !== 'string' || !HEX_MAC.test(got) || min + 1 > Number.MAX_SAFE_INTEGER) return false;
    const want = epochMac(secret, this.o.clusterId, link.id, this.o.selfId, min, reqMac);
    if (!macEquals(want, Buffer.from(got, 'hex'))) return false;
    this.epoch = Math.max(this.epoch, min + 1);
    return true;
  }

  // ---- receiving ----

  private count(reason: RefusalReason): void {
    this.refused[reason] = (this.refused[reason] ?? 0) + 1;
  }

  /**
   * Answers a refusal. `answerTo`: the authenticated chunk read it refuses (its sender, MAC and
   * the secret that verified it); the refusal then carries its own MAC bound to that request
   * (auth.ts, chunkRefusalMac).
   */
  private refuse(res: http.ServerResponse, reason: RefusalReason, extra: Record<string, string> = {}, close = false, answerTo?: AnswerTo): void {
    this.count(reason);
    const status = refusalStatus[reason];
    const signed = answerTo === undefined ? {} : {
      [PeerHeader.mac]: Buffer.from(chunkRefusalMac(answerTo.secret, this.o.clusterId, this.o.selfId, answerTo.to, answerTo.mac, status, reason)).toString('hex'),
    };
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8', [PeerHeader.refusal]: reason, ...extra, ...signed,
      ...(close ? { connection: 'close' } : {}),
    });
    res.end(`${reason}\n`);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (this.closed) return this.refuse(res, 'closed', {}, true);
    const url = new URL(req.url ?? '/', 'http://peer');
    const route = url.pathname === MESSAGES_PATH ? PeerRoute.Messages : url.pathname === SNAPSHOT_PATH ? PeerRoute.Snapshot : undefined;
    if (route === undefined) return this.refuse(res, 'not-found');
    if (req.method !== (route === PeerRoute.Messages ? 'POST' : 'GET')) return this.refuse(res, 'method');
    // Client tokens never reach peer routes: a request that carries one is refused, unread.
    if (req.headers.authorization !== undefined) return this.refuse(res, 'authorization-header', {}, true);
    const auth = parseAuthHeaders(req.headers);
    if (auth === undefined) return this.refuse(res, 'missing-auth', {}, true);
    const { claims, mac } = auth;
    // A chunk read has no body: its MAC is checked first, so that every refusal an honest reader
    // can meet carries a MAC bound to its request (a reader refuses a refusal without one).
    const chunk = route === PeerRoute.Snapshot ? this.authenticChunk(url, claims, mac) : undefined;
    const answerTo = chunk === undefined ? undefined : { to: claims.from, mac, secret: chunk.secret };
    if (claims.clusterId !== this.o.clusterId) return this.refuse(res, 'wrong-cluster', {}, true, answerTo);
    if (claims.to !== this.o.selfId) return this.refuse(res, 'wrong-recipient', {}, true, answerTo);
    // The shape read is answered to a sender that is not a member yet (a joiner; module comment).
    const open = chunk !== undefined && chunk.q.name === SHAPE_FILE;
    if (!open && !this.links.has(claims.from)) return this.refuse(res, 'not-member', {}, true, answerTo);
    const slot = `${route}/${claims.from}`;
    const busy = this.inbound.get(slot) ?? 0;
    if (busy >= MAX_INBOUND_PER_SENDER) return this.refuse(res, 'busy', {}, true, answerTo);
    this.inbound.set(slot, busy + 1);
    try {
      if (route === PeerRoute.Messages) await this.handleMessages(req, res, claims, mac);
      else if (chunk === undefined) this.refuse(res, parseChunkQuery(url.searchParams) === undefined ? 'bad-request' : 'bad-mac', {}, true);
      else await this.handleSnapshot(chunk.q, res, claims, answerTo!);
    } finally {
      const n = (this.inbound.get(slot) ?? 1) - 1;
      if (n === 0) this.inbound.delete(slot);
      else this.inbound.set(slot, n);
    }
  }

  /** Refuses a stream handshake on its raw socket: the status and reason, then the connection is closed. */
  private refuseUpgrade(socket: Socket, reason: RefusalReason, extra: Record<string, string> = {}): void {
    this.count(reason);
    const status = refusalStatus[reason];
    const head = [`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`, `${PeerHeader.refusal}: ${reason}`];
    for (const [k, v] of Object.entries(extra)) head.push(`${k}: ${v}`);
    head.push('connection: close', 'content-length: 0', '', '');
    this.refusedSockets.add(socket);
    socket.on('close', () => this.refusedSockets.delete(socket));
    socket.setTimeout(this.o.requestTimeoutMs, () => socket.destroy());
    socket.end(head.join('\r\n'));
  }

  /**
   * A stream handshake: the same checks as a `POST` of messages (with no body), then `101` with a
   * fresh nonce and this member's proof of identity; the connection then carries frames from the
   * sender. A second stream of the same sender replaces the first.
   */
  private handleUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    if (this.closed) return this.refuseUpgrade(socket, 'closed');
    const url = new URL(req.url ?? '/', 'http://peer');
    if (url.pathname !== STREAM_PATH) return this.refuseUpgrade(socket, 'not-found');
    if (req.method !== 'GET') return this.refuseUpgrade(socket, 'method');
    // Client tokens never open a peer stream: a handshake that carries one is refused.
    if (req.headers.authorization !== undefined) return this.refuseUpgrade(socket, 'authorization-header');
    if (req.headers.upgrade !== STREAM_PROTOCOL || url.search !== '') return this.refuseUpgrade(socket, 'bad-request');
    const auth = parseAuthHeaders(req.headers);
    if (auth === undefined) return this.refuseUpgrade(socket, 'missing-auth');
    const { claims, mac } = auth;
    if (claims.clusterId !== this.o.clusterId) return this.refuseUpgrade(socket, 'wrong-cluster');
    if (claims.to !== this.o.selfId) return this.refuseUpgrade(socket, 'wrong-recipient');
    let link = this.links.get(claims.from);
    if (link === undefined && this.unknownSenderHandler === undefined) return this.refuseUpgrade(socket, 'not-member');
    const secret = this.verifiedBy((k) => requestMac(k, PeerRoute.Stream, claims, '', EMPTY_DIGEST), mac);
    if (secret === undefined) return this.refuseUpgrade(socket, 'bad-mac');
    if (!isFresh(claims.time, Date.now(), this.o.maxClockSkewMs)) return this.refuseUpgrade(socket, 'clock-skew');
    const admitted = this.replay.admit(claims.from, claims.epoch, claims.seq);
    if (!admitted.ok) {
      const answer = epochMac(secret, this.o.clusterId, this.o.selfId, claims.from, admitted.minEpoch, mac);
      return this.refuseUpgrade(socket, admitted.reason, { [PeerHeader.minEpoch]: String(admitted.minEpoch), [PeerHeader.mac]: Buffer.from(answer).toString('hex') });
    }
    if (link === undefined) {
      const learnt = this.admitUnknown(req.headers, claims.from, mac, secret);
      if (typeof learnt === 'string') return this.refuseUpgrade(socket, learnt);
      link = learnt;
    }
    const nonce = randomBytes(STREAM_NONCE_BYTES);
    const proof = streamAcceptMac(secret, this.o.clusterId, this.o.selfId, claims.from, nonce, mac);
    socket.write([
      'HTTP/1.1 101 Switching Protocols', 'connection: Upgrade', `upgrade: ${STREAM_PROTOCOL}`,
      `${PeerHeader.from}: ${this.o.selfId}`, `${PeerHeader.to}: ${claims.from}`,
      `${PeerHeader.nonce}: ${nonce.toString('hex')}`, `${PeerHeader.mac}: ${Buffer.from(proof).toString('hex')}`, '', '',
    ].join('\r\n'));
    this.dropInStream(claims.from);
    const stream: InStream = { socket, reader: new FrameReader(streamKey(secret, mac, nonce), this.o.maxBatchBytes), secret };
    this.inStreams.set(claims.from, stream);
    link.counters.streamsAccepted++;
    trace('accept', claims.from);
    socket.setNoDelay(true);
    socket.setTimeout(this.o.idleTimeoutMs, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => this.onStreamData(claims.from, stream, chunk));
    socket.on('close', () => {
      if (this.inStreams.get(claims.from) === stream) this.inStreams.delete(claims.from);
    });
    if (head.length > 0) this.onStreamData(claims.from, stream, head);
  }

  /**
   * A sender outside the peer set whose handshake authenticated: its named peer URL, checked
   * against its MAC, offered to the {@link onUnknownSender} handler. The link it then has, or
   * why the handshake is refused.
   */
  private admitUnknown(headers: http.IncomingHttpHeaders, from: number, reqMac: Uint8Array, secret: Uint8Array): Link | RefusalReason {
    const url = headers[PeerHeader.senderUrl];
    const mac = headers[PeerHeader.senderUrlMac];
    if (typeof url !== 'string' || typeof mac !== 'string') return 'not-member';
    if (!HEX_MAC.test(mac) || !macEquals(senderUrlMac(secret, reqMac, url), Buffer.from(mac, 'hex'))) return 'bad-mac';
    if (!validPeerUrl(url, this.o.tls !== undefined)) return 'bad-request';
    let admitted = false;
    try {
      admitted = this.unknownSenderHandler?.({ id: from, peerUrl: url }) === true;
    } catch {
      // the handler's failure refuses the sender
    }
    const link = admitted ? this.links.get(from) : undefined;
    if (link === undefined) return 'not-member';
    this.admittedUnknown++;
    return link;
  }

  private dropInStream(from: number): void {
    const s = this.inStreams.get(from);
    if (s === undefined) return;
    this.inStreams.delete(from);
    s.socket.destroy();
  }

  /**
   * Bytes of an inbound stream: the messages of every whole, authentic frame are delivered (in one
   * call); the first refused frame closes the stream, and nothing in it or after it is delivered.
   */
  private onStreamData(from: number, stream: InStream, chunk: Buffer): void {
    if (this.inStreams.get(from) !== stream) {
      stream.socket.destroy();
      return;
    }
    const link = this.links.get(from);
    if (link === undefined || this.closed) {
      this.count(this.closed ? 'closed' : 'not-member');
      return this.dropInStream(from);
    }
    if (tracing) trace('req', from);
    const { bodies, refused } = stream.reader.push(chunk);
    const messages: Message[] = [];
    let refusal: RefusalReason | undefined = refused;
    for (const body of bodies) {
      let batch: Message[];
      try {
        batch = decodeBatch(body);
      } catch {
        refusal = 'malformed';
        break;
      }
      if (batch.some((m) => m.from !== from || m.to !== this.o.selfId)) {
        refusal = 'sender-mismatch';
        break;
      }
      link.counters.receivedBytes += body.length;
      if (batch.length === 0) continue; // a keep-alive
      link.counters.receivedMessages += batch.length;
      link.counters.receivedBatches++;
      for (const m of batch) messages.push(m);
    }
    if (refusal !== undefined) {
      this.count(refusal);
      this.dropInStream(from);
    }
    if (messages.length > 0 && this.messageHandler !== undefined) {
      try {
        this.messageHandler(messages);
      } catch {
        // the handler's failure is its own; the frames were delivered
      }
    }
  }

  private async handleMessages(req: http.IncomingMessage, res: http.ServerResponse, claims: PeerClaims, mac: Uint8Array): Promise<void> {
    trace('req', claims.from);
    const declared = req.headers['content-length'];
    if (declared !== undefined && !(Number(declared) <= this.o.maxBatchBytes)) return this.refuse(res, 'too-large', {}, true);
    const body = await readBody(req, this.o.maxBatchBytes);
    if (body === 'aborted') return;
    if (body === 'too-large') return this.refuse(res, 'too-large', {}, true);
    const digest = bodyDigest(body);
    const secret = this.verifiedBy((k) => requestMac(k, PeerRoute.Messages, claims, '', digest), mac);
    if (secret === undefined) return this.refuse(res, 'bad-mac', {}, true);
    if (!isFresh(claims.time, Date.now(), this.o.maxClockSkewMs)) return this.refuse(res, 'clock-skew');
    if (this.closed) return this.refuse(res, 'closed', {}, true);
    const link = this.links.get(claims.from);
    if (link === undefined) return this.refuse(res, 'not-member', {}, true); // removed while the body was read
    const admitted = this.replay.admit(claims.from, claims.epoch, claims.seq);
    if (!admitted.ok) {
      const answer = epochMac(secret, this.o.clusterId, this.o.selfId, claims.from, admitted.minEpoch, mac);
      return this.refuse(res, admitted.reason, { [PeerHeader.minEpoch]: String(admitted.minEpoch), [PeerHeader.mac]: Buffer.from(answer).toString('hex') });
    }
    let messages: Message[];
    try {
      messages = decodeBatch(body);
    } catch {
      return this.refuse(res, 'malformed');
    }
    for (const m of messages) {
      if (m.from !== claims.from || m.to !== this.o.selfId) return this.refuse(res, 'sender-mismatch');
    }
    link.counters.receivedMessages += messages.length;
    link.counters.receivedBytes += body.length;
    link.counters.receivedBatches++;
    res.writeHead(204);
    res.end();
    if (messages.length > 0 && this.messageHandler !== undefined) {
      try {
        this.messageHandler(messages);
      } catch {
        // the handler's failure is its own; the batch was delivered
      }
    }
  }

  /** The query of a chunk read whose MAC verifies, and the secret it verifies under; undefined for a malformed query or a bad MAC. */
  private authenticChunk(url: URL, claims: PeerClaims, mac: Uint8Array): { q: ChunkQuery; secret: Uint8Array } | undefined {
    const q = parseChunkQuery(url.searchParams);
    if (q === undefined) return undefined;
    const target = `${q.index}/${q.name}/${q.offset}/${q.length}`;
    const secret = this.verifiedBy((k) => requestMac(k, PeerRoute.Snapshot, claims, target, EMPTY_DIGEST), mac);
    return secret === undefined ? undefined : { q, secret };
  }

  /** An authenticated chunk read ({@link authenticChunk}): the chunk and its MAC, or a refusal with its MAC. */
  private async handleSnapshot(q: ChunkQuery, res: http.ServerResponse, claims: PeerClaims, answerTo: AnswerTo): Promise<void> {
    if (!isFresh(claims.time, Date.now(), this.o.maxClockSkewMs)) return this.refuse(res, 'clock-skew', {}, false, answerTo);
    const handler = this.snapshotHandler;
    if (handler === undefined) return this.refuse(res, 'not-found', {}, false, answerTo);
    let data: Uint8Array;
    try {
      data = await handler(q.index, q.name, q.offset, q.length);
    } catch (e) {
      const code = (e as { code?: unknown })?.code;
      return this.refuse(res, code === 'ENOENT' || code === TransportErrorCode.NotFound ? 'not-found' : 'read-failed', {}, false, answerTo);
    }
    // A handler that returns more than asked is this member's fault: refused, not served.
    if (!(data instanceof Uint8Array) || data.length > q.length) return this.refuse(res, 'read-failed', {}, false, answerTo);
    if (this.closed || (q.name !== SHAPE_FILE && !this.links.has(claims.from))) return this.refuse(res, this.closed ? 'closed' : 'not-member', {}, true, answerTo);
    const answerMac = chunkAnswerMac(answerTo.secret, this.o.clusterId, this.o.selfId, claims.from, answerTo.mac, bodyDigest(data));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(data.length), [PeerHeader.mac]: Buffer.from(answerMac).toString('hex') });
    res.end(data);
  }
}

/** The authenticated request an answer is bound to: its sender, its MAC and the secret that verified it. */
interface AnswerTo { to: number; mac: Uint8Array; secret: Uint8Array }

/** The secrets of {@link HttpTransport.setSecrets} (copies; the send one first), or `TRANSPORT_INVALID_ARGUMENT`. */
function secretSet(secret: Uint8Array, acceptSecrets: readonly Uint8Array[]): { send: Uint8Array; accept: Uint8Array[] } {
  const all = [secret, ...acceptSecrets];
  if (!Array.isArray(acceptSecrets) || all.some((k) => !(k instanceof Uint8Array) || k.length !== SECRET_BYTES)) {
    throw new TransportError(TransportErrorCode.InvalidArgument, `secret and acceptSecrets must be ${SECRET_BYTES} bytes each`);
  }
  const accept = all.filter((k, i) => all.findIndex((x) => equalBytes(x, k)) === i).map((k) => new Uint8Array(k));
  if (accept.length > MAX_ACCEPTED_SECRETS) throw new TransportError(TransportErrorCode.InvalidArgument, `at most ${MAX_ACCEPTED_SECRETS} distinct secrets may be accepted at once`);
  return { send: accept[0], accept };
}

/** The four parameters of a chunk read. */
interface ChunkQuery { index: number; name: string; offset: number; length: number }

/** The four parameters of a chunk read, each exactly once and canonical; undefined otherwise. */
function parseChunkQuery(p: URLSearchParams): ChunkQuery | undefined {
  const keys = [...p.keys()];
  if (keys.length !== 4 || new Set(keys).size !== 4) return undefined;
  const index = parseDecimal(p.get('index'));
  const offset = parseDecimal(p.get('offset'));
  const length = parseDecimal(p.get('length'));
  const name = p.get('name');
  if (index === undefined || offset === undefined || length === undefined || name === null) return undefined;
  if (length < 1 || length > MAX_CHUNK_BYTES || !SNAPSHOT_NAME.test(name)) return undefined;
  return { index, name, offset, length };
}

/** Reads a request body of at most `cap` bytes. */
function readBody(req: http.IncomingMessage, cap: number): Promise<Uint8Array | 'too-large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let done = false;
    const settle = (v: Uint8Array | 'too-large' | 'aborted'): void => {
      if (done) return;
      done = true;
      resolve(v);
    };
    req.on('data', (c: Buffer) => {
      if (done) return;
      n += c.length;
      if (n > cap) {
        chunks.length = 0;
        req.pause();
        settle('too-large');
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => settle(new Uint8Array(Buffer.concat(chunks, n))));
    req.on('error', () => settle('aborted'));
    req.on('close', () => settle('aborted'));
  });
}
