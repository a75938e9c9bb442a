/**
 * The nemesis schedule: a pure function of (seed, nodes, events or minutes) → the steps a run
 * plays, so a seed replays the same schedule. The steps are a prefix of one endless seeded
 * stream: the schedule of `--events E` is the first E steps of the seed's stream whatever else
 * was asked, which is what makes `--seed S --nodes N --events E` replay a timed run that played
 * E steps.
 *
 * The stream draws kinds from shuffled bags: each bag holds every {@link NemesisKind} once and
 * the common faults (leader kill, partitions, pauses) a second time, so every kind appears within
 * every `BAG.length` steps. Targets are chosen when a step plays (who leads is known only then)
 * from the step's own `pick` numbers, so the choice replays too as far as the cluster's state does.
 *
 * Keeping a majority alive most of the time: a step's fault lasts 2.5–10 s (a majority kill
 * 1.5–4 s, a membership change's background 1–3 s after the change), and a quiet gap of 1–4 s
 * with every fault healed follows each step (`quick`: shorter, for CI). Every fault outlasts an
 * election timeout (1–2 s) except the membership backgrounds. Membership:
 * the planned group size stays between `nodes` and `nodes + 1` (an add when the group is large
 * becomes a remove and the other way round), and adds stop when `maxAdds` spare ids are used.
 * @module
 */
import { mulberry32 } from '../support/prng.js';

/** The kinds of nemesis. */
export type NemesisKind =
  | 'kill'
  | 'kill-leader'
  | 'kill-majority'
  | 'pause'
  | 'pause-leader'
  | 'partition-majority'
  | 'partition-leader'
  | 'partition-bridge'
  | 'partition-one-way'
  | 'slow'
  | 'flaky'
  | 'blackhole'
  | 'add-member'
  | 'remove-member'
  | 'replace-leader'
  | 'torn-tail';

/** Every kind, in a fixed order. */
export const NEMESIS_KINDS: readonly NemesisKind[] = [
  'kill', 'kill-leader', 'kill-majority', 'pause', 'pause-leader', 'partition-majority', 'partition-leader', 'partition-bridge',
  'partition-one-way', 'slow', 'flaky', 'blackhole', 'add-member', 'remove-member', 'replace-leader', 'torn-tail',
];

/** Membership kinds run while a link fault of this kind holds (membership changes during faults). */
export type Background = 'none' | 'slow' | 'flaky' | 'kill-follower';

/** One step: inject, hold `durationMs`, undo, then `gapMs` with nothing injected. */
export interface NemesisStep {
  /** 1-based position in the stream. */
  n: number;
  kind: NemesisKind;
  durationMs: number;
  gapMs: number;
  /** Numbers in [0, 1) that choose targets and sides when the step plays. */
  pick: [number, number, number];
  /** Link delay (slow, and the `slow` background), ms, and its jitter. */
  delayMs: number;
  jitterMs: number;
  /** Drop probability per chunk (flaky). */
  dropP: number;
  /** For membership kinds: the fault held while the change runs. */
  background: Background;
}

/** What a schedule is made of. */
export interface ScheduleOptions {
  seed: number;
  nodes: number;
  /** Number of steps (wins over `minutes`). */
  events?: number;
  /** Planned length: steps are taken while their planned time fits (fault + gap + `overheadMs` each). */
  minutes?: number;
  /** Most member adds (spare ids the cluster prepares). Default 8. */
  maxAdds?: number;
  /**
   * Time a step costs beyond its fault and gap (restarts, polling), for `minutes` planning.
   * Default 0: the plan then holds more steps than fit, and the runner stops playing when the
   * minutes have passed (with 4000 ms, a 30-minute plan played in 22 minutes).
   */
  overheadMs?: number;
  /**
   * Short steps (the CI run): faults of 2.2–4 s (a majority kill 1.5–2.5 s, still longer than an
   * election timeout), gaps of 0.5–1.5 s. The same kinds and picks as without it.
   */
  quick?: boolean;
}

const COMMON: NemesisKind[] = ['kill-leader', 'partition-majority', 'partition-leader', 'pause-leader', 'kill', 'slow'];
/** One bag of the stream: every kind once, the common faults twice. */
export const BAG: readonly NemesisKind[] = [...NEMESIS_KINDS, ...COMMON];

const MEMBERSHIP = new Set<NemesisKind>(['add-member', 'remove-member', 'replace-leader']);

/** Whether `kind` changes the membership. */
export function isMembership(kind: NemesisKind): boolean {
  return MEMBERSHIP.has(kind);
}

/** Adds the step makes (a replace adds one member, then removes the leader). */
export function addsOf(step: NemesisStep): number {
  return step.kind === 'add-member' || step.kind === 'replace-leader' ? 1 : 0;
}

/**
 * The schedule of `o`: the first `o.events` steps of the seed's stream, or with `o.minutes` the
 * steps whose planned time fits. Pure: the same options give the same steps.
 */
export function schedule(o: ScheduleOptions): NemesisStep[] {
  if (o.nodes !== 3 && o.nodes !== 5) throw new RangeError('nodes must be 3 or 5');
  if (o.events === undefined && o.minutes === undefined) throw new RangeError('give events or minutes');
  if (o.events !== undefined && (!Number.isInteger(o.events) || o.events < 1 || o.events > 100_000)) throw new RangeError('events must be 1 .. 100000');
  if (o.minutes !== undefined && !(o.minutes > 0 && o.minutes <= 24 * 60)) throw new RangeError('minutes must be in (0, 1440]');
  const overhead = o.overheadMs ?? 0;
  const out: NemesisStep[] = [];
  let planned = 0;
  for (const step of stream(o.seed, o.nodes, o.maxAdds ?? 8, o.quick === true)) {
    if (o.events !== undefined) {
      if (out.length >= o.events) break;
    } else {
      const cost = step.durationMs + step.gapMs + overhead;
      if (planned + cost > o.minutes! * 60_000) break;
      planned += cost;
    }
    out.push(step);
  }
  return out;
}

/** The endless step stream of a seed (bounded by its consumer). */
export function* stream(seed: number, nodes: number, maxAdds: number, quick = false): Generator<NemesisStep> {
  const r = mulberry32(seed);
  const between = (lo: number, hi: number) => Math.round(lo + r() * (hi - lo));
  let size = nodes;
  let adds = 0;
  let n = 0;
  for (;;) {
    const bag = [...BAG];
    for (let i = bag.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [bag[i], bag[j]] = [bag[j], bag[i]];
    }
    for (let kind of bag) {
      if (kind === 'add-member' && size > nodes) kind = 'remove-member';
      else if (kind === 'remove-member' && size <= nodes) kind = 'add-member';
      if ((kind === 'add-member' || kind === 'replace-leader') && adds >= maxAdds) kind = size > nodes ? 'remove-member' : 'kill';
      if (kind === 'add-member' || kind === 'replace-leader') adds++;
      if (kind === 'add-member') size++;
      if (kind === 'remove-member') size--;
      const durationMs = kind === 'kill-majority' ? between(1500, quick ? 2500 : 4000) : isMembership(kind) ? between(1000, quick ? 1500 : 3000) : between(quick ? 2200 : 2500, quick ? 4000 : 10_000);
      const backgrounds: Background[] = ['none', 'slow', 'flaky', 'kill-follower'];
      yield {
        n: ++n,
        kind,
        durationMs,
        gapMs: quick ? between(500, 1500) : between(1000, 4000),
        pick: [r(), r(), r()],
        delayMs: between(20, 250),
        jitterMs: between(0, 100),
        dropP: Math.round((0.02 + r() * 0.18) * 1000) / 1000,
        background: isMembership(kind) ? backgrounds[Math.floor(r() * backgrounds.length)] : 'none',
      };
    }
  }
}
