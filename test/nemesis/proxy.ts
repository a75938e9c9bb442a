/**
 * A fault-injecting TCP proxy for one directed peer link i→j: member i dials member j through it
 * (`proofkv serve --peer-via j=<proxy url>`), so the harness decides what happens to the bytes.
 * Modes, switchable at runtime ({@link FaultProxy.setMode}):
 *
 * - `pass`: forward both ways.
 * - `cut`: new connections are reset at accept; open ones are destroyed when the mode is set.
 * - `blackhole`: connections are accepted and held; nothing is forwarded or answered (bytes read
 *   are discarded, so nothing piles up). Open connections stop forwarding too.
 * - `delay`: every chunk waits `ms` plus a uniform jitter in `[0, jitterMs)`, in order (a chunk
 *   never overtakes the one before it on the same connection and direction).
 * - `drop`: each chunk closes its connection with probability `p` (both sides reset).
 *
 * Bounded: a direction that holds more than `maxBufferedBytes` not yet written pauses its source
 * socket until the backlog halves; at most `maxConnections` connections are open (more are reset).
 * Randomness (jitter, drops) comes from a seeded PRNG so a schedule replays the same choices
 * as far as the kernel's chunking allows.
 * @module
 */
import * as net from 'node:net';
import { mulberry32 } from '../support/prng.js';

/** What the proxy does with a link's traffic. */
export type LinkMode =
  | { kind: 'pass' }
  | { kind: 'cut' }
  | { kind: 'blackhole' }
  | { kind: 'delay'; ms: number; jitterMs: number }
  | { kind: 'drop'; p: number };

/** Options of {@link FaultProxy.start}. */
export interface ProxyOptions {
  /** Where the link leads (the member's real peer listener). */
  target: { host: string; port: number };
  /** Listen port on 127.0.0.1 (0: any free port). */
  port?: number;
  /** PRNG seed for jitter and drops. */
  seed?: number;
  /** Bytes held per connection direction before its source is paused (default 1 MiB). */
  maxBufferedBytes?: number;
  /** Open connections at most (default 64). */
  maxConnections?: number;
}

/** Counters of one proxy. */
export interface ProxyStats {
  accepted: number;
  /** Connections reset at accept (cut mode, or over the connection bound). */
  refused: number;
  /** Connections closed by the drop mode. */
  dropped: number;
  /** Connections destroyed when `cut` was set. */
  severed: number;
  /** Bytes forwarded (both directions). */
  forwarded: number;
  /** Bytes discarded by the blackhole. */
  swallowed: number;
  /** Most bytes one direction of one connection held at once (delay mode). */
  peakHeld: number;
}

interface Conn {
  client: net.Socket;
  upstream: net.Socket;
  closed: boolean;
  timers: Set<NodeJS.Timeout>;
}

const PASS: LinkMode = { kind: 'pass' };

/** One directed link's proxy on 127.0.0.1. */
export class FaultProxy {
  private mode: LinkMode = PASS;
  private readonly conns = new Set<Conn>();
  private readonly rand: () => number;
  readonly stats: ProxyStats = { accepted: 0, refused: 0, dropped: 0, severed: 0, forwarded: 0, swallowed: 0, peakHeld: 0 };

  private constructor(
    private readonly server: net.Server,
    private readonly o: Required<Omit<ProxyOptions, 'port' | 'seed'>> & { seed: number },
  ) {
    this.rand = mulberry32(o.seed);
  }

  /** Starts a proxy listening on 127.0.0.1 that forwards to `o.target`. */
  static async start(o: ProxyOptions): Promise<FaultProxy> {
    const server = net.createServer();
    const p = new FaultProxy(server, { target: o.target, seed: o.seed ?? 1, maxBufferedBytes: o.maxBufferedBytes ?? 1 << 20, maxConnections: o.maxConnections ?? 64 });
    server.on('connection', (s) => p.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: o.port ?? 0 }, () => resolve());
    });
    return p;
  }

  /** The proxy's URL (`http://127.0.0.1:<port>`), what `--peer-via` names. */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** The current mode. */
  get current(): LinkMode {
    return this.mode;
  }

  /** Open connections. */
  get open(): number {
    return this.conns.size;
  }

  /** Switches the mode; `cut` destroys every open connection at once. */
  setMode(mode: LinkMode): void {
    if (mode.kind === 'delay' && !(mode.ms >= 0 && mode.jitterMs >= 0)) throw new RangeError('delay needs ms >= 0 and jitterMs >= 0');
    if (mode.kind === 'drop' && !(mode.p >= 0 && mode.p <= 1)) throw new RangeError('drop needs 0 <= p <= 1');
    this.mode = mode;
    if (mode.kind === 'cut') {
      for (const c of [...this.conns]) {
        this.stats.severed++;
        this.kill(c);
      }
    }
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const c of [...this.conns]) this.kill(c);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.mode.kind === 'cut' || this.conns.size >= this.o.maxConnections) {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    const upstream = net.connect({ host: this.o.target.host, port: this.o.target.port });
    upstream.on('error', () => undefined);
    const c: Conn = { client, upstream, closed: false, timers: new Set() };
    this.conns.add(c);
    this.forward(c, client, upstream);
    this.forward(c, upstream, client);
    client.on('close', () => this.kill(c));
    upstream.on('close', () => this.kill(c));
  }

  /** One direction of `c`: each chunk from `from` is forwarded, delayed, swallowed or ends `c`, per the mode at its arrival. */
  private forward(c: Conn, from: net.Socket, to: net.Socket): void {
    const queue: Array<{ at: number; buf: Buffer }> = [];
    let held = 0;
    let timer: NodeJS.Timeout | undefined;
    let lastAt = 0;
    let waitingDrain = false;
    // The source reads again once the destination drained and the delay queue is down to half its bound.
    const maybeResume = () => {
      if (!waitingDrain && held <= this.o.maxBufferedBytes / 2 && from.isPaused() && !c.closed) from.resume();
    };
    const write = (buf: Buffer) => {
      if (c.closed) return;
      this.stats.forwarded += buf.length;
      if (!to.write(buf) && !waitingDrain) {
        waitingDrain = true;
        from.pause();
        to.once('drain', () => {
          waitingDrain = false;
          maybeResume();
        });
      }
    };
    const pump = () => {
      if (timer) c.timers.delete(timer);
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && queue[0].at <= now) {
        const { buf } = queue.shift()!;
        held -= buf.length;
        write(buf);
      }
      maybeResume();
      if (queue.length === 0 && ended && !c.closed) to.end();
      if (queue.length > 0 && !c.closed) {
        timer = setTimeout(pump, Math.max(0, queue[0].at - now));
        c.timers.add(timer);
      }
    };
    from.on('data', (buf: Buffer) => {
      if (c.closed) return;
      const m = this.mode;
      switch (m.kind) {
        case 'cut':
          this.kill(c);
          return;
        case 'blackhole':
          this.stats.swallowed += buf.length;
          return;
        case 'drop':
          if (this.rand() < m.p) {
            this.stats.dropped++;
            this.kill(c);
            return;
          }
          break;
        case 'delay': {
          const at = Math.max(performance.now() + m.ms + this.rand() * m.jitterMs, lastAt);
          lastAt = at;
          queue.push({ at, buf });
          held += buf.length;
          if (held > this.stats.peakHeld) this.stats.peakHeld = held;
          if (held > this.o.maxBufferedBytes) from.pause();
          if (timer === undefined) {
            timer = setTimeout(pump, Math.max(0, at - performance.now()));
            c.timers.add(timer);
          }
          return;
        }
        case 'pass':
          break;
      }
      // Behind delayed chunks still queued, a passing chunk keeps its place in line.
      if (queue.length > 0) {
        queue.push({ at: lastAt, buf });
        held += buf.length;
        if (held > this.stats.peakHeld) this.stats.peakHeld = held;
        if (held > this.o.maxBufferedBytes) from.pause();
        return;
      }
      write(buf);
    });
    let ended = false;
    from.on('end', () => {
      ended = true;
      if (!c.closed && queue.length === 0) to.end();
    });
  }

  private kill(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c);
    for (const t of c.timers) clearTimeout(t);
    c.timers.clear();
    if (!c.client.destroyed) c.client.resetAndDestroy();
    if (!c.upstream.destroyed) c.upstream.resetAndDestroy();
  }
}
