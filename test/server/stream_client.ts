/**
 * A tiny client of the stream protocol for tests, written from docs/stream-protocol.md alone (it
 * shares no code with `server/stream/`): the handshake over a raw `net`/`tls` socket, a request
 * frame encoder and an answer frame decoder.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';

/** Op codes of the spec. */
export const OP = { GET: 1, PUT: 2, DELETE: 3, PROOF: 4, PING: 5 } as const;
/** Accept codes of the spec. */
export const ACCEPT = { CBOR: 0, JSON: 1, RAW: 2 } as const;

/** A request as the spec frames it. */
export interface StreamRequest {
  id: number;
  op: number;
  accept?: number;
  key?: Uint8Array | string;
  query?: string;
  /** Header lines, `name: value` each. */
  headers?: Record<string, string>;
  value?: Uint8Array | string;
}

/** An answer frame. */
export interface StreamAnswer {
  id: number;
  status: number;
  /** Header lines in order. */
  headers: [string, string][];
  body: Buffer;
}

const bytes = (v: Uint8Array | string | undefined): Buffer => (v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v));

/** Encodes a request frame: u32 length, u32 id, u8 op, u8 accept, u16+key, u16+query, u16+headers, value. */
export function encodeRequest(r: StreamRequest): Buffer {
  const key = bytes(r.key);
  const query = bytes(r.query);
  const headers = bytes(Object.entries(r.headers ?? {}).map(([k, v]) => `${k}: ${v}\n`).join(''));
  const value = bytes(r.value);
  const len = 4 + 1 + 1 + 2 + key.length + 2 + query.length + 2 + headers.length + value.length;
  const out = Buffer.alloc(4 + len);
  let p = 0;
  p = out.writeUInt32BE(len, p);
  p = out.writeUInt32BE(r.id, p);
  p = out.writeUInt8(r.op, p);
  p = out.writeUInt8(r.accept ?? ACCEPT.JSON, p);
  for (const part of [key, query, headers]) {
    p = out.writeUInt16BE(part.length, p);
    part.copy(out, p);
    p += part.length;
  }
  value.copy(out, p);
  return out;
}

/** Cuts answer frames out of a byte stream. */
export class AnswerDecoder {
  private buf = Buffer.alloc(0);

  push(chunk: Buffer): StreamAnswer[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: StreamAnswer[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + len) break;
      const id = this.buf.readUInt32BE(4);
      const status = this.buf.readUInt16BE(8);
      const hl = this.buf.readUInt16BE(10);
      const text = this.buf.subarray(12, 12 + hl).toString('utf8');
      const headers = text.split('\n').filter((l) => l !== '').map((l): [string, string] => {
        const c = l.indexOf(':');
        return [l.slice(0, c), l.slice(c + 1).trim()];
      });
      out.push({ id, status, headers, body: Buffer.from(this.buf.subarray(12 + hl, 4 + len)) });
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }

  /** Bytes received that are not a whole frame yet. */
  get pending(): number {
    return this.buf.length;
  }
}

/** The HTTP answer of a refused handshake. */
export interface HandshakeRefusal {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Options of {@link openStream}. */
export interface OpenOptions {
  token?: string;
  /** `Upgrade` value (default the spec's); null: none. */
  upgrade?: string | null;
  method?: string;
  path?: string;
  /** TLS: the CA to trust (the URL must be https). */
  ca?: string | Buffer;
}

/** A stream connection of the test client. */
export class StreamClient {
  readonly decoder = new AnswerDecoder();
  /** Answers received, in arrival order. */
  readonly received: StreamAnswer[] = [];
  private waiters: { pred: (a: StreamAnswer) => boolean; resolve: (a: StreamAnswer) => void }[] = [];
  closed = false;
  private closeWaiters: (() => void)[] = [];

  constructor(
    readonly socket: net.Socket,
    /** Headers of the 101 answer (lower-case names). */
    readonly handshake: Record<string, string>,
    rest: Buffer,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
    if (rest.length > 0) this.onData(rest);
  }

  private onData(d: Buffer): void {
    for (const a of this.decoder.push(d)) {
      this.received.push(a);
      const i = this.waiters.findIndex((w) => w.pred(a));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(a);
    }
  }

  /** Sends raw bytes. */
  write(b: Buffer): void {
    this.socket.write(b);
  }

  /** Sends `r` and resolves with the answer of its id (the first one received after sending). */
  request(r: StreamRequest): Promise<StreamAnswer> {
    const p = this.next((a) => a.id === r.id);
    this.write(encodeRequest(r));
    return p;
  }

  /** The next answer matching `pred` (an already received one is not considered), bounded by 20 s. */
  next(pred: (a: StreamAnswer) => boolean): Promise<StreamAnswer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer in 20 s')), 20_000);
      this.waiters.push({ pred, resolve: (a) => (clearTimeout(timer), resolve(a)) });
    });
  }

  /** Resolves when the server closed the connection, bounded by 20 s. */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('not closed in 20 s')), 20_000);
      this.closeWaiters.push(() => (clearTimeout(timer), resolve()));
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Opens a stream connection to the node at `url` (http or https): the HTTP/1.1 handshake written
 * by hand, then frames. Resolves with the client on `101`, or with the refusal's status, headers
 * and body.
 */
export function openStream(url: string, o: OpenOptions = {}): Promise<StreamClient | HandshakeRefusal> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const port = Number(u.port);
    const socket: net.Socket = u.protocol === 'https:' ? tls.connect({ host: u.hostname, port, ca: o.ca, servername: 'localhost' }) : net.connect({ host: u.hostname, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no handshake answer in 20 s'));
    }, 20_000);
    let head = `${o.method ?? 'GET'} ${o.path ?? '/v1/stream'} HTTP/1.1\r\nHost: ${u.host}\r\n`;
    if (o.upgrade !== null) head += `Connection: Upgrade\r\nUpgrade: ${o.upgrade ?? 'proofkv-stream/1'}\r\n`;
    if (o.token) head += `Authorization: Bearer ${o.token}\r\n`;
    socket.write(`${head}\r\n`);
    let buf = Buffer.alloc(0);
    let parsed: { status: number; headers: Record<string, string>; bodyStart: number } | undefined;
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!parsed) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(lines[0].split(' ')[1]);
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
        }
        parsed = { status, headers, bodyStart: end + 4 };
        if (status === 101) {
          clearTimeout(timer);
          socket.off('data', onData);
          socket.off('end', onEnd);
          resolve(new StreamClient(socket, headers, buf.subarray(end + 4)));
          return;
        }
      }
      const want = Number(parsed.headers['content-length'] ?? 0);
      if (buf.length - parsed.bodyStart >= want) finish();
    };
    const finish = () => {
      if (!parsed) return;
      clearTimeout(timer);
      socket.off('data', onData);
      const body = buf.subarray(parsed.bodyStart).toString('utf8');
      socket.destroy();
      resolve({ status: parsed.status, headers: parsed.headers, body });
    };
    const onEnd = () => (parsed ? finish() : reject(new Error('closed before a handshake answer')));
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', (e) => reject(e));
  });
}

/** Whether `r` is an open client (not a refusal). */
export function isClient(r: StreamClient | HandshakeRefusal): r is StreamClient {
  return r instanceof StreamClient;
}

/**
 * Opens `connections` stream connections that each send `reads` raw GETs of `key` at once and
 * never read their answers (the socket paused): the attacker of the node's answer budgets.
 */
export async function nonReaders(url: string, connections: number, reads: number, key: string): Promise<StreamClient[]> {
  const out: StreamClient[] = [];
  for (let i = 0; i < connections; i++) {
    const c = await openStream(url);
    if (!isClient(c)) throw new Error('handshake refused');
    c.socket.pause();
    c.write(Buffer.concat(Array.from({ length: reads }, (_, j) => encodeRequest({ id: 1 + j, op: OP.GET, key, accept: ACCEPT.RAW }))));
    out.push(c);
  }
  return out;
}
