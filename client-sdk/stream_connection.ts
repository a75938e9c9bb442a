/**
 * One `proofkv-stream/1` connection (docs/stream-protocol.md), node-only (`node:http`,
 * `node:https`): the HTTP/1.1 upgrade handshake, requests multiplexed by id, the frames queued
 * during one event-loop turn written together in one socket write, and answers dispatched to
 * their requests as they arrive, in any order.
 *
 * Bounds: at most `maxInFlight` requests written and unanswered (more wait their turn, in order),
 * at most `maxQueuedBytes` of frames waiting or unwritten (a request past it is refused at once
 * with {@link StreamErrorCode.CLIENT_BOUND}), and at most one answer of `maxAnswerBytes` held
 * while it arrives. Anything that breaks the framing — an answer length over the bound, an answer
 * for an id not in flight, a malformed answer, the connection's end inside a frame, a connection
 * error frame (id 0) from the server — fails every request in flight and waiting, and closes the
 * connection: a request it fails rejects with a `TypeError` whose `cause` is a
 * {@link StreamProtocolError}, as `fetch` rejects on a network failure.
 * @module
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import {
  decodeAnswer,
  encodeRequest,
  FrameReader,
  STREAM_PATH,
  STREAM_PROTOCOL,
  StreamProtocolError,
  type StreamAnswer,
  type StreamRequest,
} from './stream_codec.js';

/** Settings of one connection. */
export interface StreamConnectionOptions {
  /** The endpoint's origin, `http(s)://host:port`. */
  origin: string;
  /** The `Authorization` header of the handshake (the connection's credentials), if any. */
  authorization?: string;
  /** Requests written and not answered yet, at most (default {@link DEFAULT_MAX_IN_FLIGHT}). */
  maxInFlight?: number;
  /** Bytes of request frames waiting for a slot or for the socket, at most (default {@link DEFAULT_MAX_QUEUED_BYTES}). */
  maxQueuedBytes?: number;
  /** The largest answer frame accepted, bytes (default {@link DEFAULT_MAX_ANSWER_BYTES}). */
  maxAnswerBytes?: number;
  /** Time allowed for the TCP (and TLS) connection and the handshake's answer (default 10 s). */
  connectTimeoutMs?: number;
  /**
   * With requests in flight, the longest silence of the node (no byte received) before the
   * connection is failed with {@link StreamErrorCode.ANSWER_TIMEOUT} (default
   * `DEFAULT_ANSWER_TIMEOUT_MS`, 30 s): a node that never answers, or a peer gone without a word,
   * cannot hold requests (or the slots of abandoned ones) for ever.
   */
  answerTimeoutMs?: number;
  /** TLS options for an `https:` origin (`ca`, `servername`, …). */
  tls?: ConnectionOptions;
}

/** The server's default `maxStreamInFlight`: the client keeps to it by default. */
export const DEFAULT_MAX_IN_FLIGHT = 1024;
/** Default bound of request bytes queued on one connection (the server's `maxStreamBufferedBytes`). */
export const DEFAULT_MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/**
 * Default bound of one answer frame: an entry and its proof of the largest default value (the
 * SDK's `entry` response cap, 9 × 1 MiB + 1 MiB) plus 64 KiB of headers and fields.
 */
export const DEFAULT_MAX_ANSWER_BYTES = 10 * 1024 * 1024 + 64 * 1024;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/**
 * Default `answerTimeoutMs`: 30 s. Every route the stream carries answers within seconds (the
 * `ProofKV-Min-Head` gate waits at most 2 s), and the SDK's own per-attempt timeout is 10 s.
 */
export const DEFAULT_ANSWER_TIMEOUT_MS = 30_000;
/** The largest body of a refused handshake that is read (it is returned as the answer). */
const MAX_REFUSAL_BODY = 1024 * 1024;

/**
 * The handshake was answered with something other than `101 Switching Protocols`: the ordinary
 * HTTP answer (401/403 without valid credentials, 426 from a node that wants another upgrade, 404
 * from a node without the stream). Its status, headers and body (at most 1 MiB) are kept.
 */
export class StreamRefused extends StreamProtocolError {
  constructor(
    readonly answer: { status: number; headers: [string, string][]; body: Uint8Array },
  ) {
    super('HANDSHAKE_FAILED', `the node answered the upgrade with HTTP ${answer.status}`, { status: answer.status });
    this.name = 'StreamRefused';
  }
}

interface Pending {
  resolve(a: StreamAnswer): void;
  reject(err: unknown): void;
  /** True once the caller gave up (its signal aborted): the answer is read and dropped. */
  abandoned: boolean;
  detach?: () => void;
}

interface Waiting extends Pending {
  id: number;
  frame: Uint8Array;
}

/** Checks the bounds of {@link StreamConnectionOptions}: a `RangeError` names the first bad one. */
export function checkConnectionBounds(options: Pick<StreamConnectionOptions, 'maxInFlight' | 'maxQueuedBytes' | 'maxAnswerBytes' | 'connectTimeoutMs' | 'answerTimeoutMs'>): void {
  for (const [name, v, min] of [
    ['maxInFlight', options.maxInFlight, 1],
    ['maxQueuedBytes', options.maxQueuedBytes, 1],
    ['maxAnswerBytes', options.maxAnswerBytes, 16],
    ['connectTimeoutMs', options.connectTimeoutMs, 1],
    ['answerTimeoutMs', options.answerTimeoutMs, 1],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min || v > 0xffffffff)) throw new RangeError(`${name} must be an integer of ${min} .. 2^32-1`);
  }
}

/** Wraps a connection failure the way `fetch` reports one. */
export function networkFailure(cause: unknown): TypeError {
  return new TypeError('fetch failed', { cause });
}

/** One open stream connection; see the module comment. */
export class StreamConnection {
  /** `ProofKV-Node-Id` of the node, from the handshake's answer (empty when it sent none). */
  readonly nodeId: string;
  private readonly inFlight = new Map<number, Pending>();
  private readonly waiting: Waiting[] = [];
  /** Frames taken from `waiting` and not yet handed to the socket (written at the end of the turn). */
  private unwritten: Uint8Array[] = [];
  private unwrittenBytes = 0;
  private waitingBytes = 0;
  private flushScheduled = false;
  private nextId = 1;
  /** True once ids wrapped past 2^32-1: from then on a new id is checked against the waiting ones. */
  private wrapped = false;
  private readonly reader: FrameReader;
  private failure: StreamProtocolError | undefined;
  private readonly maxInFlight: number;
  private readonly maxQueuedBytes: number;
  private readonly answerTimeoutMs: number;
  /** When the node was last heard from, or the first request of a busy spell written (ms, `Date.now`). */
  private lastHeard = 0;
  private silenceTimer: ReturnType<typeof setTimeout> | undefined;
  /** Called once when the connection is done (failed or closed). */
  onClose: ((err: StreamProtocolError) => void) | undefined;

  private constructor(
    private readonly socket: Socket,
    head: Buffer,
    nodeId: string,
    options: StreamConnectionOptions,
  ) {
    this.nodeId = nodeId;
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.answerTimeoutMs = options.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
    this.reader = new FrameReader((options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES) - 4);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('end', () => {
      try {
        this.reader.end();
        this.fail(new StreamProtocolError('CONNECTION_CLOSED', 'the node closed the stream connection'));
      } catch (err) {
        this.fail(err as StreamProtocolError);
      }
    });
    socket.on('close', () => this.fail(new StreamProtocolError('CONNECTION_CLOSED', 'the stream connection closed')));
    socket.on('error', (err) => this.fail(new StreamProtocolError('CONNECTION_CLOSED', `socket error: ${err.message}`, { cause: err })));
    socket.on('drain', () => this.flush());
    // No requests yet: an idle connection does not keep the process alive.
    socket.unref();
    if (head.length > 0) this.received(head);
  }

  /**
   * Connects to `options.origin`, sends the upgrade request and waits for `101`. Rejects with a
   * {@link StreamRefused} when the node answers otherwise, and with a `TypeError` (as fetch) when
   * the connection fails or times out.
   */
  static open(options: StreamConnectionOptions): Promise<StreamConnection> {
    checkConnectionBounds(options);
    const url = new URL(options.origin);
    const secure = url.protocol === 'https:';
    const headers: Record<string, string> = { Connection: 'Upgrade', Upgrade: STREAM_PROTOCOL };
    if (options.authorization !== undefined) headers.Authorization = options.authorization;
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    return new Promise<StreamConnection>((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        f();
      };
      const reqOptions: https.RequestOptions = { method: 'GET', host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || (secure ? 443 : 80), path: STREAM_PATH, headers, agent: false, ...(secure ? options.tls : {}) };
      const req = secure ? https.request(reqOptions) : http.request(reqOptions);
      const timer = setTimeout(() => {
        settle(() => reject(networkFailure(new StreamProtocolError('HANDSHAKE_FAILED', `no answer to the upgrade from ${options.origin} in ${timeoutMs} ms`))));
        req.destroy();
      }, timeoutMs);
      req.on('error', (err) => settle(() => reject(networkFailure(err))));
      req.on('upgrade', (res, socket, head) => {
        const upgrade = String(res.headers.upgrade ?? '').trim().toLowerCase();
        if (res.statusCode !== 101 || upgrade !== STREAM_PROTOCOL) {
          socket.destroy();
          settle(() => reject(networkFailure(new StreamProtocolError('HANDSHAKE_FAILED', `upgrade answered ${res.statusCode} with Upgrade ${JSON.stringify(upgrade)}`))));
          return;
        }
        const nodeHeader = res.headers['proofkv-node-id'] ?? res.headers['proofkv-node'];
        const nodeId = typeof nodeHeader === 'string' ? nodeHeader : '';
        settle(() => resolve(new StreamConnection(socket, head, nodeId, options)));
      });
      req.on('response', (res) => {
        // Not upgraded: the ordinary HTTP answer, kept (bounded) so the caller can use it.
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REFUSAL_BODY) {
            res.destroy();
            settle(() => reject(networkFailure(new StreamProtocolError('HANDSHAKE_FAILED', `the refusal of the upgrade is over ${MAX_REFUSAL_BODY} bytes`))));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const hs: [string, string][] = [];
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) hs.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
          settle(() => reject(new StreamRefused({ status: res.statusCode ?? 0, headers: hs, body: new Uint8Array(Buffer.concat(chunks)) })));
        });
        res.on('error', (err) => settle(() => reject(networkFailure(err))));
      });
      req.end();
    });
  }

  /** Requests in flight (written, not answered; abandoned ones included) and waiting. */
  get load(): number {
    return this.inFlight.size + this.waiting.length;
  }

  /** True once the connection failed or was closed: it takes no more requests. */
  get closed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Sends one request (its `id` is the connection's) and resolves with its answer. Rejects with
   * `signal.reason` when `signal` aborts first (the answer, when it comes, is dropped), and with a
   * `TypeError` whose cause is a {@link StreamProtocolError} when the connection fails.
   */
  request(r: Omit<StreamRequest, 'id'>, signal?: AbortSignal | null): Promise<StreamAnswer> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.failure) return Promise.reject(networkFailure(this.failure));
    const id = this.allocateId();
    const frame = encodeRequest({ ...r, id });
    const queued = this.waitingBytes + this.unwrittenBytes + this.socket.writableLength;
    if (queued > 0 && queued + frame.length > this.maxQueuedBytes) {
      return Promise.reject(networkFailure(new StreamProtocolError('CLIENT_BOUND', `${queued} bytes already queued on this connection (bound ${this.maxQueuedBytes})`)));
    }
    return new Promise<StreamAnswer>((resolve, reject) => {
      const w: Waiting = { id, frame, resolve, reject, abandoned: false };
      if (signal) {
        const onAbort = () => this.abandon(w, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        w.detach = () => signal.removeEventListener('abort', onAbort);
      }
      this.waiting.push(w);
      this.waitingBytes += frame.length;
      this.admit();
    });
  }

  /** Closes the connection; requests in flight and waiting fail. */
  close(): void {
    this.fail(new StreamProtocolError('CONNECTION_CLOSED', 'the stream connection was closed by the client'));
  }

  /** An id not in flight: ids count up and wrap at 2^32-1, skipping 0 and ids still in flight. */
  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      if (id >= 0xffffffff) {
        this.nextId = 1;
        this.wrapped = true;
      } else this.nextId = id + 1;
      if (!this.inFlight.has(id) && !(this.wrapped && this.waiting.some((w) => w.id === id))) return id;
    }
  }

  /** Moves waiting requests into flight while there are slots; their frames go out at the end of the turn. */
  private admit(): void {
    // The silence clock starts when the node is first given something to answer.
    if (this.inFlight.size === 0 && this.waiting.length > 0) this.lastHeard = Date.now();
    while (this.waiting.length > 0 && this.inFlight.size < this.maxInFlight) {
      const w = this.waiting.shift()!;
      this.waitingBytes -= w.frame.length;
      this.inFlight.set(w.id, w);
      this.unwritten.push(w.frame);
      this.unwrittenBytes += w.frame.length;
    }
    if (this.inFlight.size > 0) {
      this.socket.ref();
      // Unreferenced: the socket keeps the process alive while requests are in flight, the timer does not.
      this.silenceTimer ??= setTimeout(this.checkSilence, this.answerTimeoutMs).unref();
    }
    if (this.unwritten.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Writes every unwritten frame in one socket write, unless the socket asks to wait for `drain`. */
  private flush(): void {
    if (this.failure || this.unwritten.length === 0 || this.socket.writableNeedDrain) return;
    const batch = this.unwritten.length === 1 ? this.unwritten[0] : Buffer.concat(this.unwritten, this.unwrittenBytes);
    this.unwritten = [];
    this.unwrittenBytes = 0;
    this.socket.write(batch);
  }

  private abandon(w: Waiting, reason: unknown): void {
    const i = this.waiting.indexOf(w);
    if (i >= 0) {
      // Not written yet: it leaves the queue.
      this.waiting.splice(i, 1);
      this.waitingBytes -= w.frame.length;
    } else {
      // Written (or about to be): the id stays taken until its answer comes, and is dropped then.
      w.abandoned = true;
    }
    w.reject(reason);
  }

  /**
   * Fails the connection when requests (abandoned ones included) are in flight and the node has
   * been silent for `answerTimeoutMs`; otherwise checks again when that much silence could have passed.
   */
  private readonly checkSilence = (): void => {
    this.silenceTimer = undefined;
    if (this.failure || this.inFlight.size === 0) return;
    const silent = Date.now() - this.lastHeard;
    if (silent >= this.answerTimeoutMs) {
      this.fail(new StreamProtocolError('ANSWER_TIMEOUT', `${this.inFlight.size} requests in flight and nothing received from the node for ${silent} ms`));
      return;
    }
    this.silenceTimer = setTimeout(this.checkSilence, this.answerTimeoutMs - silent).unref();
  };

  private received(chunk: Uint8Array): void {
    if (this.failure) return;
    this.lastHeard = Date.now();
    this.reader.push(chunk);
    try {
      for (let p = this.reader.next(); p !== undefined; p = this.reader.next()) this.dispatch(decodeAnswer(p));
    } catch (err) {
      this.fail(err instanceof StreamProtocolError ? err : new StreamProtocolError('MALFORMED_FRAME', String(err)));
      return;
    }
    this.admit();
  }

  private dispatch(a: StreamAnswer): void {
    if (a.id === 0) throw connectionErrorOf(a);
    const p = this.inFlight.get(a.id);
    if (!p) throw new StreamProtocolError('UNKNOWN_ID', `an answer for id ${a.id}, which has no request in flight`);
    this.inFlight.delete(a.id);
    p.detach?.();
    if (!p.abandoned) p.resolve(a);
    if (this.inFlight.size === 0 && this.waiting.length === 0) this.socket.unref();
  }

  private fail(err: StreamProtocolError): void {
    if (this.failure) return;
    this.failure = err;
    const failed = networkFailure(err);
    for (const p of this.inFlight.values()) {
      p.detach?.();
      if (!p.abandoned) p.reject(failed);
    }
    for (const w of this.waiting) {
      w.detach?.();
      w.reject(failed);
    }
    this.inFlight.clear();
    this.waiting.length = 0;
    this.unwritten = [];
    this.unwrittenBytes = 0;
    this.waitingBytes = 0;
    clearTimeout(this.silenceTimer);
    this.silenceTimer = undefined;
    this.socket.destroy();
    this.onClose?.(err);
  }
}

/** The {@link StreamProtocolError} of a connection error frame (id 0), with its problem's code. */
function connectionErrorOf(a: StreamAnswer): StreamProtocolError {
  let code: string | undefined;
  let detail = '';
  try {
    const p = JSON.parse(new TextDecoder().decode(a.body)) as { code?: unknown; detail?: unknown };
    if (typeof p.code === 'string') code = p.code;
    if (typeof p.detail === 'string') detail = `: ${p.detail.slice(0, 200)}`;
  } catch {
    // a body that is not a problem document: the status says enough
  }
  return new StreamProtocolError('CONNECTION_ERROR', `the node ended the stream with ${a.status} ${code ?? ''}${detail}`, { status: a.status, problemCode: code });
}
