/**
 * The replication simulator: a {@link VirtualClock} and an in-memory {@link SimNetwork} on which
 * several real {@link ReplicationGroup}s (each with its own `LevelStorage` directory) run as a
 * pure function of a seed. {@link Simulation} ties them together: it runs the clock's events one
 * at a time and, after each, waits until every member's loop is idle. See docs/replication.md
 * § The simulator.
 * @module
 */
import { SeededRand } from '../../raft/index.js';
import type { ReplicationGroup } from '../group.js';
import { VirtualClock } from './clock.js';
import { SimNetwork, type NetworkOptions } from './network.js';
import { SimSyncs } from './syncs.js';

export { VirtualClock } from './clock.js';
export { SimNetwork, SimTransport, type NetworkOptions } from './network.js';
export { SimSyncs, SimSync, type SyncOptions, type SyncCounts } from './syncs.js';

/**
 * What the simulation waits for between events: a running member's driver loop — a
 * {@link ReplicationGroup}, or a write path built on one (the full-stack simulation's members).
 */
export interface SimMember {
  /** True while the member's loop runs or has work queued. */
  busy(): boolean;
  /** Resolves once the loop is idle. */
  settled(): Promise<void>;
  /**
   * While the member's loop waits for a simulated sync: true when work it started meanwhile is
   * still running (a state machine's applies that do real I/O). Absent: such work runs in promise
   * callbacks only (the group simulator's map), which each settling round lets finish.
   */
  busyWhileParked?(): boolean;
  /** Resolves once {@link busyWhileParked} is false. */
  settledWhileParked?(): Promise<void>;
}

/** A clock, a network and one seeded generator, with the members that run on them. */
export class Simulation {
  readonly rand: SeededRand;
  readonly clock: VirtualClock;
  readonly net: SimNetwork;
  /**
   * The members' log syncs: off until `syncs.options` gives them a delay; then a member given
   * `syncs.open(id).afterSync` completes each sync at a seeded event of the clock. Its generator
   * is its own (derived from the seed), so turning it on changes no other draw.
   */
  readonly syncs: SimSyncs;
  /** The running members; the simulation waits for them between events. */
  readonly members = new Map<number, SimMember>();
  /** Called after every event once everything settled (invariant checks). */
  afterEvent: (() => void) | undefined;
  /** Steps handed to {@link defer} during the current settle: `[member, step]`, in call order. */
  private deferred: Array<[number, () => void]> = [];

  constructor(readonly seed: number, net: Partial<NetworkOptions> = {}, maxEvents?: number) {
    this.rand = new SeededRand(seed);
    this.clock = new VirtualClock(maxEvents);
    this.net = new SimNetwork(this.clock, this.rand.fork(), net);
    this.syncs = new SimSyncs(this.clock, new SeededRand(seed ^ 0x5c0c5));
    this.net.onDeliver = (to) => { if (this.syncs.parked(to)) this.syncs.counts.deliveredDuringSync++; };
  }

  /** Current virtual time. */
  get now(): number {
    return this.clock.now();
  }

  /** Runs `fn` at now + `delay` ms of virtual time. */
  schedule(delay: number, fn: () => void | Promise<void>): void {
    this.clock.schedule(delay, fn);
  }

  /** Runs the simulation for `ms` of virtual time. */
  runFor(ms: number): Promise<void> {
    return this.clock.run(this.clock.now() + ms, () => this.settle());
  }

  /** Runs until `cond` holds (checked every `stepMs`) or `maxMs` pass; returns whether it held. */
  async runUntil(cond: () => boolean, maxMs: number, stepMs = 10): Promise<boolean> {
    const end = this.clock.now() + maxMs;
    while (this.clock.now() < end) {
      if (cond()) return true;
      await this.runFor(stepMs);
    }
    return cond();
  }

  /**
   * Waits until no member's loop runs or has work, letting promise callbacks (clients answered
   * by a member) run in between. Real time passes here (the disk), virtual time does not. A
   * member whose loop waits for a simulated sync ({@link SimSyncs}) counts as idle once what it
   * started meanwhile has finished ({@link SimMember.busyWhileParked}: the full-stack members'
   * applies, which write to the engine); the sync completes at a later event. What else it does
   * meanwhile (stepping a message, applying entries of a state machine without I/O) runs in
   * promise callbacks, which the `setImmediate` of each round lets finish.
   */
  async settle(): Promise<void> {
    for (;;) {
      await new Promise((resolve) => setImmediate(resolve));
      let busy = false;
      for (const [id, g] of this.members) {
        if (this.syncs.parked(id)) {
          if (!g.busyWhileParked?.()) continue;
          busy = true;
          await g.settledWhileParked!();
          continue;
        }
        if (!g.busy()) continue;
        busy = true;
        await Promise.race([g.settled(), this.syncs.whenParked(id)]);
      }
      if (busy) continue;
      if (this.deferred.length === 0) break;
      // Sorted by member (stable: each member's own steps keep their order).
      const steps = this.deferred.sort((a, b) => a[0] - b[0]);
      this.deferred = [];
      for (const [, step] of steps) step();
    }
    this.afterEvent?.();
  }

  /**
   * Runs `step` — an input that member `member` makes when real I/O outside its loop completes
   * (a cosign proposed after a checkpoint's record) — once every member is idle, after the steps
   * of lower member ids and after this member's earlier steps. Called directly, the step would
   * reach the member's loop at a point of its turns that depends on how long the disk took (a
   * proposal batched into this turn's messages or the next's), and the run would depend on it.
   */
  defer(member: number, step: () => void): void {
    this.deferred.push([member, step]);
  }
}
