/**
 * One `proofkv-stream/1` connection after its handshake (docs/stream-protocol.md): the read loop
 * that cuts request frames out of the socket's bytes, the in-flight table, back-pressure (reading
 * stops at `maxInFlight` requests in flight or answers queued, `maxInFlightBytes` of request frames
 * in flight, `maxBufferedBytes` of unsent answers, or when the node's budgets (`budget.ts`) have no
 * room for the next frame, and resumes as answers go out), the answer bytes of its reads (reserved
 * by a read's route right before it reads, then the answer's real size until the kernel has it),
 * and the answers of one event-loop turn written in one socket write (at once when the connection
 * owes no other answer: a lone request's answer does not wait for the turn's end).
 *
 * Each request runs what its HTTP route runs (`StreamRoutes` of `server/app.ts`): the shutdown
 * check, the query's and key's checks, the role check, the `ProofKV-Min-Head` gate, the body
 * limit, then the route's core; an error becomes the same problem answer.
 *
 * With `PROOFKV_TRACE` set (src/replication/trace.ts) it records, per request, `stream-in` (the
 * frame decoded), `stream-core` (handed to the route's core), `stream-queued` (its answer queued)
 * and, per socket write as it starts, `stream-write` (answers, bytes): docs/stream-protocol.md §
 * Trace events. Off, each is one boolean test.
 * @module
 */
import type { Socket } from 'node:net';
import type { StreamRoutes, StreamRoute } from './routes.js';
import { checkRole, type Role } from '../auth.js';
import type { Answer } from '../answer.js';
import { HttpError } from '../errors.js';
import { checkKeySize, Query } from '../keys.js';
import { ByteBudget, type BudgetHolder } from './budget.js';
import { trace, tracing } from '../../src/replication/trace.js';
import { STREAM_ACCEPT, StreamOp, StreamProtocolError, answerFrame, decodeRequest, frameSize, parseHeaderLines, utf8Text, writeAnswerFrame, type AnswerFrame, type RequestFrame } from './codec.js';

/** The answer headers a stream answer carries (the others are HTTP's per-connection ones). */
export const STREAM_ANSWER_HEADERS = ['ProofKV-Replayed', 'ProofKV-Leader', 'Retry-After', 'ProofKV-Version', 'ProofKV-Seq', 'ProofKV-Kind', 'Content-Type'] as const;

/** How long a closing connection waits for its last answers to be read and the client's end, ms. */
export const CLOSE_GRACE_MS = 10_000;

/** Bounds of one connection. */
export interface ConnectionLimits {
  /** Largest request frame (`length`). */
  maxFrameBytes: number;
  /** Most requests in flight; reading stops at it. */
  maxInFlight: number;
  /**
   * Most request bytes in flight (the frames of the requests not answered yet: their keys and
   * values are held until then); reading stops at it. A frame larger than the bound is still
   * taken when nothing else is in flight, so a large value always gets through.
   */
  maxInFlightBytes: number;
  /** Most unsent answer bytes before reading stops. */
  maxBufferedBytes: number;
  /**
   * How long a connection may be idle — nothing in flight, no byte read or written — before the
   * server ends it, ms (default {@link DEFAULT_STREAM_IDLE_TIMEOUT_MS}; set by the handshake,
   * {@link StreamServer.handleUpgrade}).
   */
  idleTimeoutMs?: number;
  /**
   * Most answer bytes one connection holds (default {@link DEFAULT_STREAM_ANSWER_RESERVE_BYTES}):
   * a GET or PROOF, once its route is about to read (after the ReadIndex wait), reserves the
   * largest answer it can have ({@link readAnswerReserve}); when its answer is built the
   * reservation becomes the answer's real size, held until the socket has handed it to the kernel.
   * A read that would cross the bound waits there, unless the connection holds nothing. Without
   * it, 1,024 raw reads of a 1 MiB value sent at once by a client that does not read made the node
   * build 1 GiB of answers, and 1,024 JSON reads (7.7 MB each) ran it out of memory. The node-wide
   * bound is {@link StreamBudgets.answers}.
   */
  maxAnswerReserveBytes?: number;
  /**
   * How long a connection's unsent answers may stay unmoved while other connections wait for the
   * node's budgets before the connection is cut, ms (default {@link DEFAULT_STREAM_STALL_MS}).
   */
  stallMs?: number;
}

/**
 * The node-wide bounds shared by every stream connection of a node (docs/stream-protocol.md §
 * Bounds): answers of reads ({@link ConnectionLimits.maxAnswerReserveBytes} node-wide) and request
 * frames in flight ({@link ConnectionLimits.maxInFlightBytes} node-wide).
 */
export interface StreamBudgets {
  /** Answer bytes: reads' reservations, then answers built and not yet handed to the kernel. */
  answers: ByteBudget;
  /** Request bytes: the frames of the requests in flight. */
  requests: ByteBudget;
}

/**
 * Default {@link ConnectionLimits.stallMs}: 5 s. A stalled holder is cut within 1.25 of these
 * (the check runs every quarter of it), inside the SDK's 10 s per-attempt timeout.
 */
export const DEFAULT_STREAM_STALL_MS = 5_000;

/** A read in flight: the answer bytes its hook reserved (0 until then). */
interface ReadTicket {
  reserved: number;
  accept: number;
}

/** Default {@link ConnectionLimits.maxAnswerReserveBytes}: 256 MiB. */
export const DEFAULT_STREAM_ANSWER_RESERVE_BYTES = 256 * 1024 * 1024;

/**
 * The answer bytes a GET or PROOF with accept byte `accept` reserves: the largest answer of a
 * frame of `maxFrameBytes` (key + value + 64 KiB) — as raw bytes (accept 2); in CBOR (0), whose
 * answer may carry the value twice (`value` and `valueUtf8`); in JSON (1), whose answer carries it
 * in base64 (4/3) and, when it is UTF-8, as `valueUtf8`, where a control character is escaped in
 * 6 bytes (`\u0007`): 22/3 in all (a 1 MiB value of such bytes answers 7.7 MB).
 */
export function readAnswerReserve(maxFrameBytes: number, accept: number): number {
  const times = accept === 2 ? 1 : accept === 0 ? 2 : 22 / 3;
  return Math.ceil(maxFrameBytes * times);
}

/** The error of a read whose connection closed while it waited for answer bytes. */
function gone(): HttpError {
  return new HttpError('UNAVAILABLE', 'the stream connection closed');
}

/** Default {@link ConnectionLimits.idleTimeoutMs}: 5 minutes. */
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 300_000;
/** The idle time after which the kernel probes a stream connection's peer (TCP keep-alive), ms. */
export const STREAM_KEEPALIVE_MS = 60_000;

/** Counters of one connection (tests and the bench read them). */
export interface ConnectionStats {
  /** Requests answered. */
  answered: number;
  /** Times reading stopped at a bound. */
  pauses: number;
  /** The most unsent answer bytes seen right after a write (the socket's `writableLength`). */
  peakBuffered: number;
  /** The most requests in flight at once. */
  peakInFlight: number;
  /** The most request bytes in flight at once (frame sizes). */
  peakInFlightBytes: number;
  /** The most answer bytes held at once (reads' reservations and answers not yet handed to the kernel). */
  peakAnswerBytes: number;
  /** The most reads building their answers at once (past their route's reservation). */
  peakReading: number;
}

const NO_BYTES = new Uint8Array(0);

const OPS: Record<number, 'get' | 'put' | 'delete' | 'proof'> = { [StreamOp.get]: 'get', [StreamOp.put]: 'put', [StreamOp.delete]: 'delete', [StreamOp.proof]: 'proof' };

/** One stream connection. */
export class StreamConnection implements BudgetHolder {
  readonly stats: ConnectionStats = { answered: 0, pauses: 0, peakBuffered: 0, peakInFlight: 0, peakInFlightBytes: 0, peakAnswerBytes: 0, peakReading: 0 };
  private buf: Buffer = Buffer.alloc(0);
  private off = 0;
  /**
   * Chunks received after `buf[off..]`, not yet joined to it: a frame that arrives in many chunks
   * is joined once, when all of it is here, not once per chunk (which copies a large frame sent in
   * small pieces over and over: quadratic work for the sender's linear bytes).
   */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Bytes from `off` that the next frame needs (4 while its length field is incomplete). */
  private need = 0;
  private readonly inFlight = new Set<number>();
  /** Frame bytes of the requests in {@link inFlight}. */
  private inFlightBytes = 0;
  /** Answer bytes this connection holds: reads' reservations, plus {@link queued} ({@link ConnectionLimits.maxAnswerReserveBytes}). */
  private answerHeld = 0;
  /** Bytes of answers queued or written and not yet handed to the kernel (charged to the answer budget). */
  private queued = 0;
  /** Reads past their reservation whose answers are not queued yet. */
  private reading = 0;
  /** When {@link queued} last moved (or became non-zero), for {@link stalledSince}. */
  private lastProgress = 0;
  /** The socket's `writableLength` when {@link stalledSince} last looked. */
  private seenWritable = 0;
  /** Reads waiting for this connection's answer bytes to fall. */
  private roomWaiters: (() => void)[] = [];
  /** A read of this connection is waiting for its answer bytes (on the connection's or the node's bound). */
  private turnTaken = false;
  /** The connection's other reads, waiting for that one's turn to end. */
  private readonly turnWaiters: (() => void)[] = [];
  /** Request-budget bytes granted for the next frame (taken while its reading waited). */
  private frameCredit = 0;
  /** Waiting for the node's request bytes of the next frame. */
  private frameWaiting = false;
  /** The socket closed: the bytes it held went back to the budgets. */
  private closed = false;
  private readonly budgets: StreamBudgets;
  /** The answers of this event-loop turn, measured, written together by {@link flush}. */
  private out: AnswerFrame[] = [];
  private outBytes = 0;
  private flushScheduled: NodeJS.Immediate | undefined;
  /** {@link pump} is running: answers queued meanwhile wait for the turn's write, with the chunk's others. */
  private pumping = false;
  /** No more requests are read (a connection error, or the client's end): close once in-flight answers are out. */
  private ending = false;
  /** Shutdown: requests still read get 503; close once in-flight answers are out. */
  private draining = false;
  private paused = false;
  private waitingDrain = false;
  private readonly remote: string | undefined;

  constructor(
    private readonly socket: Socket,
    /** The role of the handshake's token. */
    private readonly role: Role,
    private readonly routes: StreamRoutes,
    private readonly limits: ConnectionLimits,
    /** The node's budgets (default: this connection's own, of its per-connection bounds). */
    budgets?: StreamBudgets,
  ) {
    this.remote = socket.remoteAddress;
    const stallMs = limits.stallMs ?? DEFAULT_STREAM_STALL_MS;
    this.budgets = budgets ?? { answers: new ByteBudget(limits.maxAnswerReserveBytes ?? DEFAULT_STREAM_ANSWER_RESERVE_BYTES, stallMs), requests: new ByteBudget(limits.maxInFlightBytes, stallMs) };
    this.budgets.answers.register(this);
    this.budgets.requests.register(this);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.onClose());
  }

  /** {@inheritDoc BudgetHolder.stalledSince} */
  stalledSince(): number | undefined {
    if (this.queued === 0) return undefined;
    // A large write to a slow reader reaches its callback only when all of it is taken: the
    // socket's buffer shrinking since the last look is progress too.
    const w = this.socket.writableLength;
    if (w < this.seenWritable) this.lastProgress = performance.now();
    this.seenWritable = w;
    return this.lastProgress;
  }

  /** {@inheritDoc BudgetHolder.evict} */
  evict(): void {
    this.socket.destroy();
  }

  /** Answer bytes this connection holds now (reservations and answers not yet handed to the kernel). */
  get answerBytes(): number {
    return this.answerHeld;
  }

  /** The socket closed: what it held goes back to the node's budgets, and its waiters give up. */
  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.budgets.answers.unregister(this);
    this.budgets.requests.unregister(this);
    // Answers queued or in the socket's buffer are gone with it; reads in flight give theirs back as they end.
    this.answerHeld -= this.queued;
    this.budgets.answers.release(this.queued);
    this.queued = 0;
    this.out = [];
    this.outBytes = 0;
    this.budgets.requests.release(this.frameCredit);
    this.frameCredit = 0;
    // Reads waiting for room or for their turn give up (each throws 503 to a socket that is gone).
    this.wakeRoom();
    for (const w of this.turnWaiters.splice(0)) w();
  }

  /** Requests in flight now. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Feeds bytes that arrived with the handshake (after its head). */
  feed(head: Buffer): void {
    if (head.length > 0) this.onData(head);
  }

  /** Shutdown: answer what is in flight, refuse new requests with 503, then close. */
  drain(): void {
    this.draining = true;
    this.maybeClose();
  }

  /**
   * The socket was idle for `idleTimeoutMs`: with nothing in flight and no answer waiting, the
   * connection is ended as when the client ends it (the client sees a clean end between frames).
   * With requests in flight it goes on: their answers will come.
   */
  idle(): void {
    if (this.ending || this.inFlight.size > 0 || this.out.length > 0 || this.socket.destroyed) return;
    this.ending = true;
    this.socket.pause();
    this.maybeClose();
  }

  /** Cuts the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.ending || this.socket.writableEnded) return;
    if (this.off < this.buf.length) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      // Part of a frame: wait, without copying, until all of it is here (pump joins the chunks).
      if (this.buf.length - this.off + this.heldBytes < this.need) return;
    } else {
      this.buf = chunk;
      this.off = 0;
    }
    this.pump();
  }

  /** Cuts and starts the requests buffered, as long as the bounds allow; pauses or resumes the socket. */
  private pump(): void {
    this.pumping = true;
    try {
      this.pumpFrames();
    } finally {
      this.pumping = false;
    }
  }

  private pumpFrames(): void {
    if (this.held.length > 0) {
      this.held.unshift(this.buf.subarray(this.off));
      this.buf = Buffer.concat(this.held);
      this.off = 0;
      this.held = [];
      this.heldBytes = 0;
    }
    while (!this.ending) {
      if (this.blocked()) {
        this.pauseReading();
        return;
      }
      let size: number | undefined;
      try {
        size = frameSize(this.buf, this.off, this.limits.maxFrameBytes);
      } catch (err) {
        this.fatal((err as Error).message);
        return;
      }
      if (size === undefined || this.buf.length - this.off < size) {
        this.need = size ?? 4;
        break;
      }
      // The request bytes bound: a frame that would cross it waits for answers, unless nothing is in flight.
      if (this.inFlight.size > 0 && this.inFlightBytes + size > this.limits.maxInFlightBytes) {
        this.pauseReading();
        return;
      }
      // The node's request bytes: a frame that does not fit waits, unread, for its turn.
      if (!this.takeFrame(size)) {
        this.pauseReading();
        return;
      }
      const at = this.off;
      this.off += size;
      let frame: RequestFrame;
      try {
        frame = decodeRequest(this.buf, at, size);
      } catch (err) {
        const e = err as StreamProtocolError;
        // Not in flight: its bytes go back (a fatal one too, or every id-0 frame would keep its bytes for ever).
        this.budgets.requests.release(size);
        if (e.fatal) {
          this.fatal(e.message);
          return;
        }
        this.refuse(e.id, new HttpError('STREAM_PROTOCOL', e.message), 'stream');
        continue;
      }
      if (!this.request(frame, size)) this.budgets.requests.release(size);
    }
    if (this.off >= this.buf.length) {
      this.buf = Buffer.alloc(0);
      this.off = 0;
    }
    if (this.paused && !this.ending) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /**
   * Takes the node's request bytes for the next frame (`size` bytes): true when taken (or granted
   * while reading waited). Otherwise false, and reading resumes when they are granted.
   */
  private takeFrame(size: number): boolean {
    if (this.frameCredit > 0) {
      if (this.frameCredit === size) {
        this.frameCredit = 0;
        return true;
      }
      // Not this frame's (cannot happen: the next frame does not change while reading waits).
      this.budgets.requests.release(this.frameCredit);
      this.frameCredit = 0;
    }
    // Already waiting for this frame's bytes (pump runs again as other answers go out).
    if (this.frameWaiting) return false;
    const wait = this.budgets.requests.take(size, this);
    if (wait === undefined) return true;
    this.frameWaiting = true;
    wait.then(
      () => {
        this.frameWaiting = false;
        if (this.closed || this.ending) this.budgets.requests.release(size);
        else {
          this.frameCredit = size;
          this.pump();
        }
      },
      () => undefined,
    );
    return false;
  }

  /** Stops reading the socket until answers go out ({@link pump} resumes it). */
  private pauseReading(): void {
    if (this.paused) return;
    this.paused = true;
    this.stats.pauses++;
    this.socket.pause();
  }

  /**
   * Whether a bound stops reading: requests in flight, answers queued in this turn, or unsent
   * answer bytes. Answers queued are bounded in number too (`maxInFlight`): PINGs and refused
   * requests are answered without being in flight, and a chunk of thousands of them made
   * thousands of answer objects (about 100 bytes of heap each, counted as their 12-byte frames)
   * and held the event loop for all of them in one turn; now reading stops until they are written.
   */
  private blocked(): boolean {
    if (this.inFlight.size >= this.limits.maxInFlight || this.out.length >= this.limits.maxInFlight) return true;
    if (this.outBytes + this.socket.writableLength >= this.limits.maxBufferedBytes) {
      if (!this.waitingDrain && this.socket.writableLength > 0) {
        this.waitingDrain = true;
        this.socket.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
      }
      return true;
    }
    return false;
  }

  private onEnd(): void {
    if (this.ending) return;
    // The client will send nothing more: a frame it started is cut.
    if (this.off < this.buf.length) this.fatal(`the connection ended inside a frame (${this.buf.length - this.off + this.heldBytes} bytes of it received)`);
    else {
      this.ending = true;
      this.maybeClose();
    }
  }

  /** A connection error: an answer with id 0, no more reading, close once in-flight answers are out. */
  private fatal(message: string): void {
    this.ending = true;
    this.budgets.requests.release(this.frameCredit);
    this.frameCredit = 0;
    this.buf = Buffer.alloc(0);
    this.off = 0;
    this.held = [];
    this.heldBytes = 0;
    this.socket.pause();
    this.refuse(0, new HttpError('STREAM_PROTOCOL', message), 'stream');
  }

  /** Answers request `id` with the problem of `err` (not in the in-flight table). */
  private refuse(id: number, err: unknown, route: string): void {
    this.enqueue(id, this.routes.fail(err, route, this.remote));
  }

  /** Starts request `f` (a frame of `size` bytes): true when it is in flight, false when answered at once. */
  private request(f: RequestFrame, size: number): boolean {
    const { id } = f;
    if (f.op === StreamOp.ping) {
      if (f.value.length > 0) this.refuse(id, new HttpError('STREAM_PROTOCOL', 'a PING carries no value'), 'stream');
      else this.enqueue(id, { status: 204, headers: {} });
      return false;
    }
    const name = OPS[f.op];
    let problem: string | undefined;
    const route = name === undefined ? undefined : this.routes[name];
    const accept = STREAM_ACCEPT[f.accept];
    const headers = parseHeaderLines(f.headers);
    if (route === undefined) problem = `unknown op ${f.op}`;
    else if (this.inFlight.has(id)) problem = `request id ${id} is already in flight on this connection`;
    else if (accept === undefined || (accept === 'octet' && name !== 'get')) problem = `accept ${f.accept} is not an answer encoding of this op (0 CBOR, 1 JSON${name === 'get' ? ', 2 raw value' : ''})`;
    else if (name !== 'put' && f.value.length > 0) problem = `a ${name!.toUpperCase()} carries no value (${f.value.length} bytes sent)`;
    else if (headers === undefined) problem = 'the headers must be UTF-8 lines "name: value"';
    if (problem !== undefined || route === undefined || accept === undefined || headers === undefined) {
      this.refuse(id, new HttpError('STREAM_PROTOCOL', problem ?? 'malformed request'), route?.name ?? 'stream');
      return false;
    }
    if (tracing) trace('stream-in', id, name!);
    this.inFlight.add(id);
    this.inFlightBytes += size;
    if (this.inFlight.size > this.stats.peakInFlight) this.stats.peakInFlight = this.inFlight.size;
    if (this.inFlightBytes > this.stats.peakInFlightBytes) this.stats.peakInFlightBytes = this.inFlightBytes;
    const ticket: ReadTicket | undefined = f.op === StreamOp.get || f.op === StreamOp.proof ? { reserved: 0, accept: f.accept } : undefined;
    void this.serve(route, f, accept, headers, size, ticket);
    return true;
  }

  /**
   * The hook a read's route calls right before it reads (`KeyRequest.beforeRead`, after the
   * ReadIndex wait): reserves the largest answer the read can have, on this connection and on the
   * node, waiting for its turn when either is full. Throws `503 UNAVAILABLE` when the connection
   * closed meanwhile.
   */
  private async reserveRead(ticket: ReadTicket): Promise<void> {
    if (ticket.reserved > 0) return;
    const worst = readAnswerReserve(this.limits.maxFrameBytes, ticket.accept);
    const cap = this.limits.maxAnswerReserveBytes ?? DEFAULT_STREAM_ANSWER_RESERVE_BYTES;
    // One read of a connection waits for the node at a time: the node's queue then serves
    // connections in turn, not one connection's hundreds of reads before another's one.
    while (!this.closed && this.turnTaken) await new Promise<void>((resolve) => this.turnWaiters.push(resolve));
    if (this.closed) throw gone();
    this.turnTaken = true;
    try {
      while (!this.closed && this.answerHeld > 0 && this.answerHeld + worst > cap) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
      if (this.closed) throw gone();
      this.answerHeld += worst;
      ticket.reserved = worst;
      const wait = this.budgets.answers.take(worst, this);
      if (wait !== undefined) {
        try {
          await wait;
        } catch {
          this.answerHeld -= worst;
          ticket.reserved = 0;
          throw gone();
        }
      }
    } finally {
      this.turnTaken = false;
      this.turnWaiters.shift()?.();
    }
    if (this.answerHeld > this.stats.peakAnswerBytes) this.stats.peakAnswerBytes = this.answerHeld;
    if (++this.reading > this.stats.peakReading) this.stats.peakReading = this.reading;
  }

  /** Gives `bytes` of answers back (this connection's and the node's), and wakes the reads waiting for room. */
  private giveBack(bytes: number): void {
    if (bytes <= 0) return;
    this.answerHeld -= bytes;
    this.budgets.answers.release(bytes);
    this.wakeRoom();
  }

  private wakeRoom(): void {
    if (this.roomWaiters.length === 0) return;
    const ws = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of ws) w();
  }

  /**
   * Runs what the HTTP chain runs for the request, in its order, and queues its answer (one async
   * call per request: no closure or second promise per request); never rejects.
   */
  private async serve(route: StreamRoute, f: RequestFrame, accept: 'json' | 'cbor' | 'octet', headers: Map<string, string>, size: number, ticket: ReadTicket | undefined): Promise<void> {
    const start = performance.now();
    let a: Answer;
    try {
      if (this.routes.isClosing()) throw new HttpError('UNAVAILABLE', 'the node is shutting down');
      const text = utf8Text(f.query);
      if (text === undefined) throw new HttpError('BAD_REQUEST', 'the query is not valid UTF-8');
      const query = text === '' ? new Query('') : new Query(`?${text}`);
      if (query.has('keyEncoding')) throw new HttpError('INVALID_ARGUMENT', 'keyEncoding does not apply to the stream: its keys are raw bytes');
      checkKeySize(f.key, 'key');
      checkRole(this.role, route.role);
      const wait = this.routes.admit(headers.get('proofkv-min-head'));
      if (wait !== undefined) await wait;
      if (f.value.length > this.routes.maxValueBodyBytes) throw new HttpError('PAYLOAD_TOO_LARGE', 'request body exceeds the limit');
      // The stream's value is the HTTP body with Content-Type application/octet-stream.
      if (route === this.routes.put) headers.set('content-type', 'application/octet-stream');
      // Copies: the frame's fields are views into a socket chunk that a stored key or value must not hold on to.
      const body = f.value.length === 0 ? NO_BYTES : new Uint8Array(f.value);
      // `bind`, not an arrow: no closure that a loader keeping function names would name per call.
      if (tracing) trace('stream-core', f.id);
      a = await route.core({ key: new Uint8Array(f.key), query, header: headers.get.bind(headers), body, accept, beforeRead: ticket === undefined ? undefined : this.reserveRead.bind(this, ticket) });
    } catch (err) {
      a = this.routes.fail(err, route.name, this.remote);
    }
    this.routes.served(route, a.status, (performance.now() - start) / 1e3);
    this.inFlight.delete(f.id);
    this.inFlightBytes -= size;
    this.budgets.requests.release(size);
    const reserved = ticket?.reserved ?? 0;
    if (reserved > 0) this.reading--;
    try {
      this.enqueue(f.id, a, reserved);
    } catch (err) {
      // An answer the frame cannot hold (header lines over 64 KiB): the client still gets one.
      this.enqueue(f.id, this.routes.fail(err, route.name, this.remote), reserved);
    }
    // The last answer this connection owes: nothing else can join its write, so it goes now
    // instead of after the rest of the turn (the Raft loop's next steps, other connections'
    // callbacks) and the turn's `setImmediate`. With other requests in flight the turn's answers
    // still leave together; answered during pump (a refusal before any wait), the chunk's others
    // join it at the turn's end.
    if (this.inFlight.size === 0 && !this.pumping && this.out.length > 0) this.flush();
    else if (this.paused) this.pump();
  }

  /**
   * Queues answer `a` to request `id`. Its real size is charged to the answer budgets from now until
   * the socket hands it to the kernel: a read's reservation (`reserved`) becomes that size (the
   * difference goes back); any other answer (a write's, a refusal: a few hundred bytes) is counted
   * without waiting, since it exists already.
   */
  private enqueue(id: number, a: Answer, reserved = 0): void {
    let head = '';
    for (const k of STREAM_ANSWER_HEADERS) {
      const v = a.headers[k];
      if (v !== undefined) head += `${k}: ${v}\n`;
    }
    // A follower names the leader on every answer, as over HTTP (docs/cluster.md).
    if (a.headers['ProofKV-Leader'] === undefined) {
      const leader = this.routes.leaderHint();
      if (leader !== undefined) head += `ProofKV-Leader: ${leader}\n`;
    }
    // May throw (header lines over 64 KiB): the caller then queues a problem answer with the same `reserved`.
    const frame = answerFrame(id, a.status, head, a.body);
    this.stats.answered++;
    if (this.closed || this.socket.destroyed) {
      this.giveBack(reserved);
      return;
    }
    if (frame.size < reserved) this.giveBack(reserved - frame.size);
    else if (frame.size > reserved) {
      this.answerHeld += frame.size - reserved;
      this.budgets.answers.force(frame.size - reserved);
    }
    if (this.queued === 0) this.lastProgress = performance.now();
    this.queued += frame.size;
    if (this.answerHeld > this.stats.peakAnswerBytes) this.stats.peakAnswerBytes = this.answerHeld;
    if (tracing) trace('stream-queued', id, this.out.length);
    this.out.push(frame);
    this.outBytes += frame.size;
    this.flushScheduled ??= setImmediate(this.flushNow);
  }

  /** {@link flush}, bound once per connection (no closure per turn). */
  private readonly flushNow = (): void => this.flush();

  /** Writes the answers of this event-loop turn in one socket write, each answer's bytes copied once. */
  private flush(): void {
    if (this.flushScheduled !== undefined) {
      clearImmediate(this.flushScheduled);
      this.flushScheduled = undefined;
    }
    if (this.out.length === 0 || this.socket.destroyed || this.socket.writableEnded) {
      this.sent(this.outBytes);
      this.out = [];
      this.outBytes = 0;
      return;
    }
    const data = Buffer.allocUnsafe(this.outBytes);
    let at = 0;
    for (const a of this.out) at = writeAnswerFrame(a, data, at);
    const answers = this.out.length;
    this.out = [];
    this.outBytes = 0;
    // The bytes stay charged until the socket has handed them to the kernel.
    // Traced as the write starts: on loopback the write itself (the kernel's delivery to the
    // client) takes tens of µs, which is the next hop's, not this front's wait.
    if (tracing) trace('stream-write', answers, data.length);
    this.socket.write(data, this.sent.bind(this, data.length));
    if (this.socket.writableLength > this.stats.peakBuffered) this.stats.peakBuffered = this.socket.writableLength;
    if (this.paused) this.pump();
    this.maybeClose();
  }

  /** `bytes` of queued answers left (handed to the kernel, or dropped): their budget goes back. */
  private sent(bytes: number): void {
    if (this.closed || bytes <= 0) return;
    this.queued -= bytes;
    this.lastProgress = performance.now();
    this.giveBack(bytes);
  }

  private maybeClose(): void {
    if ((this.ending || this.draining) && this.inFlight.size === 0 && this.out.length === 0 && this.flushScheduled === undefined && !this.socket.destroyed) {
      this.socket.end();
      // A client that does not read its last answers (or never closes its side) must not hold the descriptor.
      setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    }
  }
}
