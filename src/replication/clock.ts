/**
 * {@link Clock}: the group's only source of time. The server uses {@link realClock} (Node's
 * timers, unref'd so that they never keep a process alive); the simulator (`sim/`) passes a
 * virtual clock whose time moves only when the simulation says so, which is what makes a run a
 * pure function of its seed.
 * @module
 */

/** An opaque timer handle of a {@link Clock}. */
export type TimerHandle = unknown;

/** Timers and the current time, injectable for the simulator. */
export interface Clock {
  /** Milliseconds on this clock's time line (only differences are meaningful). */
  now(): number;
  /** Calls `fn` every `ms` milliseconds until {@link clearInterval}. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Stops an interval made by {@link setInterval}. */
  clearInterval(handle: TimerHandle): void;
}

/** Node's timers and `performance.now()`. Intervals are unref'd. */
export const realClock: Clock = {
  now: () => performance.now(),
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return t;
  },
  clearInterval(handle) {
    clearInterval(handle as NodeJS.Timeout);
  },
};
