/**
 * Commit-time windows over proven histories and scans (docs/proofs.md §8.12, "Time windows").
 *
 * Every entry leaf commits to its version's commit time (§1.1), and the engine gives one key's
 * versions non-decreasing times (docs/engine.md § Commit times). So the versions of a key
 * committed in `[since, until]` are one contiguous run of its versions, and a history query by
 * time is a history query by version whose ends are proven from outside the window:
 *
 * - the page may start above the asked minimum version only at an entry it shows with a time
 *   before `since` (every lower version is older still); otherwise it starts at the asked minimum;
 * - the history is complete for the window once a proven entry has a time after `until` (every
 *   higher version is later still), or when the version range itself is exhausted.
 *
 * Inside a page, times must not decrease with the version (`TIME_ORDER`). Scans need no
 * boundary: a scan page proves every key of its range with its newest version, time included, so
 * filtering it by time is complete by construction.
 * @module
 */
import { fail, Reason, type Verified } from './errors.js';
import type { HistoryFacts, ProvenEntry } from './lsm_proof.js';

/** A commit-time window, ms since the epoch, both ends inclusive; an absent end is open. */
export interface TimeWindow {
  since?: number;
  until?: number;
}

const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** `MALFORMED_INPUT` unless both ends are absent or ms integers, with `since <= until`. */
export function checkTimeWindow(w: TimeWindow): Verified {
  if (!w || typeof w !== 'object') return fail(Reason.MALFORMED_INPUT, 'time window must be an object');
  if (w.since !== undefined && !isTime(w.since)) return fail(Reason.MALFORMED_INPUT, `since ${String(w.since)} is not a time in ms`);
  if (w.until !== undefined && !isTime(w.until)) return fail(Reason.MALFORMED_INPUT, `until ${String(w.until)} is not a time in ms`);
  if (w.since !== undefined && w.until !== undefined && w.since > w.until) return fail(Reason.MALFORMED_INPUT, `since ${w.since} is after until ${w.until}`);
  return { ok: true };
}

/** True when `time` lies in the window. */
export function inTimeWindow(time: number, w: TimeWindow): boolean {
  return (w.since === undefined || time >= w.since) && (w.until === undefined || time <= w.until);
}

/** `TIME_ORDER` unless the entries of one key, in version order, have non-decreasing times. */
export function checkTimeOrder(entries: readonly ProvenEntry[]): Verified {
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].time < entries[i - 1].time) {
      return fail(Reason.TIME_ORDER, `version ${entries[i].version} has time ${entries[i].time}, before version ${entries[i - 1].version}'s ${entries[i - 1].time}`);
    }
  }
  return { ok: true };
}

/** What a verified history page shows about a time window. */
export interface HistoryWindowFacts {
  /** The page's entries committed in the window, oldest first. */
  entries: ProvenEntry[];
  /** True when no later page can hold a version of the window. */
  complete: boolean;
}

/**
 * Checks a verified history page (`facts`, verified for versions from `servedMin`) against a
 * query for versions from `askedMin` in the window `w`, and keeps the entries in the window.
 * `TIME_BOUNDARY` when the page starts above `askedMin` without showing, as its first entry, a
 * version committed before `since`: the versions it skipped could be in the window.
 */
export function windowHistory(facts: HistoryFacts, askedMin: number, servedMin: number, w: TimeWindow): Verified<HistoryWindowFacts> {
  const bad = checkTimeWindow(w);
  if (!bad.ok) return bad;
  const es = facts.entries;
  const order = checkTimeOrder(es);
  if (!order.ok) return order;
  if (servedMin < askedMin) return fail(Reason.TIME_BOUNDARY, `page starts at version ${servedMin}, below the asked ${askedMin}`);
  if (servedMin > askedMin) {
    if (w.since === undefined || es.length === 0 || es[0].time >= w.since) {
      return fail(Reason.TIME_BOUNDARY, `page skips versions ${askedMin}..${servedMin - 1} without a proven entry committed before since`);
    }
  }
  const after = w.until !== undefined && es.length > 0 && es[es.length - 1].time > w.until;
  return { ok: true, entries: es.filter((e) => inTimeWindow(e.time, w)), complete: after || facts.nextMinVersion === undefined };
}
