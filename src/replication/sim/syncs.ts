/**
 * {@link SimSyncs}: log syncs that take virtual time. A member's group is given
 * {@link SimSync.afterSync} as its `afterSync` hook; each synced write of its log then completes
 * only at an event of the {@link VirtualClock}, after a delay drawn from the seed — sometimes zero,
 * sometimes several network delays. Meanwhile the simulation runs other events: messages reach
 * the syncing member, which steps them and learns commits during the sync (the group's
 * `duringSync` path). The simulation does not wait for a member whose loop waits only for such a
 * completion ({@link SimSyncs.parked}). See docs/replication.md § The simulator.
 * @module
 */
import type { SeededRand } from '../../raft/index.js';
import type { VirtualClock } from './clock.js';

/** How long a simulated sync takes. */
export interface SyncOptions {
  /** Probability that a sync completes after a delay of zero (an event at the same virtual time). */
  zero: number;
  /** Longest delay of a sync, ms; 0 turns simulated syncs off (a sync completes at once, as on a RAM disk). */
  maxDelay: number;
}

/** Counts over a run. */
export interface SyncCounts {
  /** Syncs whose completion was an event of the clock. */
  delayed: number;
  /** Messages delivered to a member while it waited for a sync. */
  deliveredDuringSync: number;
  /** Entries a member applied while it waited for a sync (committed entries learnt during it). */
  appliedDuringSync: number;
}

/** The simulated syncs of every member of a simulation. */
export class SimSyncs {
  options: SyncOptions = { zero: 0, maxDelay: 0 };
  readonly counts: SyncCounts = { delayed: 0, deliveredDuringSync: 0, appliedDuringSync: 0 };
  private readonly current = new Map<number, SimSync>();

  constructor(private readonly clock: VirtualClock, private readonly rand: SeededRand) {}

  /**
   * The syncs of a new incarnation of member `id` (an open or a reopen): its `afterSync` hook.
   * Until {@link SimSync.arm} (once the open resolved: an open runs inside one event, which cannot
   * wait for a later one) and after {@link SimSync.release} (a crash), syncs complete at once.
   */
  open(id: number): SimSync {
    this.current.get(id)?.release();
    const s = new SimSync(this);
    this.current.set(id, s);
    return s;
  }

  /** True while member `id`'s loop waits for a sync to complete (an event of the clock). */
  parked(id: number): boolean {
    return this.current.get(id)?.waiting() ?? false;
  }

  /** Resolves when member `id` starts waiting for a sync (never, for a member without syncs). */
  whenParked(id: number): Promise<void> {
    return this.current.get(id)?.whenWaiting() ?? new Promise<void>(() => undefined);
  }

  /** Completes member `id`'s sync at once, and every later one of this incarnation (a crash). */
  release(id: number): void {
    this.current.get(id)?.release();
  }

  /** @internal a delay for a new sync, drawn from the seed */
  delay(): number | undefined {
    const o = this.options;
    if (o.maxDelay <= 0) return undefined;
    return this.rand.chance(o.zero) ? 0 : 1 + this.rand.int(o.maxDelay);
  }

  /** @internal */
  schedule(delay: number, fn: () => void): void {
    this.counts.delayed++;
    this.clock.schedule(delay, fn);
  }
}

/** One incarnation's syncs (see {@link SimSyncs.open}). */
export class SimSync {
  private armed = false;
  private released = false;
  private done: (() => void) | null = null;
  /** Resolved when the next sync starts (one promise shared by every waiter). */
  private next: { promise: Promise<void>; resolve: () => void } | null = null;

  /** @internal made by {@link SimSyncs.open} */
  constructor(private readonly syncs: SimSyncs) {}

  /** The group's `afterSync` hook: resolves at a seeded event of the clock. */
  readonly afterSync = (): Promise<void> => {
    const delay = this.armed && !this.released ? this.syncs.delay() : undefined;
    if (delay === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const complete = (): void => {
        if (this.done !== complete) return;
        this.done = null;
        resolve();
      };
      this.done = complete;
      this.syncs.schedule(delay, complete);
      this.next?.resolve();
      this.next = null;
    });
  };

  /** From now on, syncs take virtual time. */
  arm(): void {
    this.armed = true;
  }

  /** Completes the sync being waited for at once and every later one (the member crashes). */
  release(): void {
    this.released = true;
    this.done?.();
  }

  /** @internal */
  waiting(): boolean {
    return this.done !== null;
  }

  /** @internal */
  whenWaiting(): Promise<void> {
    if (this.done) return Promise.resolve();
    if (!this.next) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => { resolve = r; });
      this.next = { promise, resolve };
    }
    return this.next.promise;
  }
}
