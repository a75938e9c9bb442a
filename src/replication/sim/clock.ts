/**
 * {@link VirtualClock}: the simulator's time. Nothing happens between two events: the simulation
 * pops the earliest event (ties broken by the order they were scheduled), runs it, and waits until
 * every member's loop is idle again ({@link VirtualClock.run}'s `settle`) before the next one, so
 * the order of events never depends on how long the disk or the event loop took.
 * @module
 */
import type { Clock, TimerHandle } from '../clock.js';

/** A scheduled event: `fn` at `time`; `seq` orders events of the same time. */
export interface SimEvent<F> {
  time: number;
  seq: number;
  fn: F;
}

/** Binary min-heap of events ordered by (time, seq). */
export class EventHeap<F> {
  private readonly h: Array<SimEvent<F>> = [];
  get size(): number { return this.h.length; }
  push(e: SimEvent<F>): void {
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (before(h[p], h[i])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  pop(): SimEvent<F> | undefined {
    const h = this.h;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
  peekTime(): number | undefined { return this.h[0]?.time; }
}

function before<F>(a: SimEvent<F>, b: SimEvent<F>): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

interface Interval { cancelled: boolean }

/** A clock whose time moves only through {@link run}. */
export class VirtualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly heap = new EventHeap<() => void | Promise<void>>();
  /** Events run so far. */
  events = 0;

  /** @param maxEvents a bound on the events of one run (a message storm or livelock is a failure, not a hang) */
  constructor(readonly maxEvents = 2_000_000) {}

  /** Virtual milliseconds since the start. */
  now(): number {
    return this.t;
  }

  /** Runs `fn` at now + `delay` (after every event already scheduled for that time). */
  schedule(delay: number, fn: () => void | Promise<void>): void {
    this.heap.push({ time: this.t + Math.max(0, delay), seq: this.seq++, fn });
  }

  /** {@inheritDoc Clock.setInterval} */
  setInterval(fn: () => void, ms: number): TimerHandle {
    const h: Interval = { cancelled: false };
    const tick = (): void => {
      if (h.cancelled) return;
      fn();
      this.schedule(ms, tick);
    };
    this.schedule(ms, tick);
    return h;
  }

  /** {@inheritDoc Clock.clearInterval} */
  clearInterval(handle: TimerHandle): void {
    (handle as Interval).cancelled = true;
  }

  /**
   * Runs every event due up to virtual time `until`, one at a time: each event's function (awaited
   * when it returns a promise), then `settle` (which waits until nothing is running).
   */
  async run(until: number, settle: () => Promise<void>): Promise<void> {
    for (;;) {
      const next = this.heap.peekTime();
      if (next === undefined || next > until) break;
      const e = this.heap.pop()!;
      this.t = e.time;
      if (++this.events > this.maxEvents) throw new Error(`event storm: more than ${this.maxEvents} events by t=${this.t}ms`);
      await e.fn();
      await settle();
    }
    this.t = Math.max(this.t, until);
  }
}
