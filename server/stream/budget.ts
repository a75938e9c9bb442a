/**
 * {@link ByteBudget}: a node-wide byte bound shared by every stream connection
 * (docs/stream-protocol.md § Bounds). The stream holds two kinds of bytes per connection that a
 * per-connection bound alone leaves unbounded on the node (`maxConnections` × it): the answers of
 * its reads (reserved while a read builds its answer, then the answer's real size until the socket
 * has handed it to the kernel), and the request frames in flight. Each kind has one budget per
 * node; a connection that wants more than is free waits, first come first served, instead of being
 * refused (back-pressure), and gets its bytes as others give theirs back.
 *
 * Fair and deadlock-free: waiters are served in arrival order, and the head of the queue is never
 * passed by a later, smaller request (no starvation of large ones); a connection queues one read
 * at a time (its others wait behind it on the connection), so the queue serves connections in turn. Bytes are held only by work
 * that ends on its own (a read building its answer, a request in flight) or by answers waiting for
 * their client to read them: a holder whose unsent answers have not moved for `stallMs` while
 * others wait is evicted (its connection is cut and its bytes return), so a client that never
 * reads cannot hold the budget, and so starve the others, for ever.
 * @module
 */

/** A holder of budget bytes that the budget can evict when it stalls (a stream connection). */
export interface BudgetHolder {
  /**
   * Since when (`performance.now()`) its unsent answers have not moved (no byte handed to the
   * kernel), or undefined when it has none waiting.
   */
  stalledSince(): number | undefined;
  /** Cuts the holder: its bytes come back through {@link ByteBudget.release}. */
  evict(): void;
}

/** The error a waiter of a cancelled holder gets. */
export class BudgetCancelled extends Error {
  constructor() {
    super('the connection closed while waiting for stream budget');
    this.name = 'BudgetCancelled';
  }
}

interface Waiter {
  bytes: number;
  holder: BudgetHolder;
  since: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Counters of a budget (tests, metrics). */
export interface BudgetStats {
  /** The most bytes held at once. */
  peak: number;
  /** Requests for bytes that had to wait. */
  waits: number;
  /** Holders cut because their unsent answers stalled while others waited. */
  evictions: number;
}

/** A node-wide byte budget, shared by the stream connections; see the module comment. */
export class ByteBudget {
  /** Bytes held now. */
  used = 0;
  readonly stats: BudgetStats = { peak: 0, waits: 0, evictions: 0 };
  private readonly queue: Waiter[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly holders = new Set<BudgetHolder>();

  constructor(
    /** Bytes that may be held at once. One request larger than this is granted when nothing is held. */
    readonly capacity: number,
    /** How long a holder's unsent answers may stall while others wait before it is evicted, ms. */
    private readonly stallMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(capacity >= 1)) throw new RangeError('a byte budget needs a capacity of at least 1');
    if (!(stallMs >= 1)) throw new RangeError('stallMs must be at least 1');
  }

  /** Waiters now. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Registers a holder (checked for stalls while others wait). */
  register(h: BudgetHolder): void {
    this.holders.add(h);
  }

  /** Forgets a holder and fails its waiters with {@link BudgetCancelled} (it closed). */
  unregister(h: BudgetHolder): void {
    this.holders.delete(h);
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].holder !== h) continue;
      const [w] = this.queue.splice(i, 1);
      w.reject(new BudgetCancelled());
    }
    this.grant();
  }

  /**
   * Takes `bytes` at once when they fit (or nothing is held) and nobody waits: true. Otherwise
   * false, and nothing is taken.
   */
  tryTake(bytes: number): boolean {
    if (this.queue.length > 0 || !this.fits(bytes)) return false;
    this.add(bytes);
    return true;
  }

  /**
   * Takes `bytes` for `holder`: undefined when taken at once, else a promise that resolves once
   * they are taken (in arrival order), or rejects with {@link BudgetCancelled} when the holder is
   * unregistered first.
   */
  take(bytes: number, holder: BudgetHolder): Promise<void> | undefined {
    if (this.tryTake(bytes)) return undefined;
    this.stats.waits++;
    const p = new Promise<void>((resolve, reject) => this.queue.push({ bytes, holder, since: this.now(), resolve, reject }));
    this.watch();
    return p;
  }

  /** Takes `bytes` whether or not they fit (bytes that exist already: an answer built). */
  force(bytes: number): void {
    this.add(bytes);
  }

  /** Gives `bytes` back and serves the waiters that now fit, in order. */
  release(bytes: number): void {
    if (bytes <= 0) return;
    this.used -= bytes;
    if (this.used < 0) throw new Error(`stream budget released more than it held (${this.used})`);
    this.grant();
  }

  private fits(bytes: number): boolean {
    return this.used + bytes <= this.capacity || this.used === 0;
  }

  private add(bytes: number): void {
    this.used += bytes;
    if (this.used > this.stats.peak) this.stats.peak = this.used;
  }

  private grant(): void {
    while (this.queue.length > 0 && this.fits(this.queue[0].bytes)) {
      const w = this.queue.shift()!;
      this.add(w.bytes);
      w.resolve();
    }
    if (this.queue.length === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /**
   * While someone waits, checks every quarter of `stallMs` for holders whose unsent answers
   * stalled, so that one is cut between `stallMs` and 1.25 × `stallMs` after it stalled.
   */
  private watch(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.evictStalled(), Math.max(1, Math.floor(this.stallMs / 4)));
    this.timer.unref();
  }

  /** Evicts every holder whose unsent answers have not moved for `stallMs`, if the queue's head has waited that long. */
  evictStalled(): void {
    const head = this.queue[0];
    if (head === undefined) return;
    const now = this.now();
    if (now - head.since < this.stallMs) return;
    for (const h of [...this.holders]) {
      const since = h.stalledSince();
      if (since !== undefined && now - since >= this.stallMs) {
        this.stats.evictions++;
        h.evict();
      }
    }
  }
}
