/**
 * Commit times in the client: parsing `since` / `until` given as ms, `Date` or ISO 8601 text
 * (docs/client.md § Commit times). Isomorphic; the server and the CLI use the same parser.
 * @module
 */
import type { TimeWindow } from '../proofs/lsm_time.js';

/**
 * Parses a time given as ms since the epoch (1–16 decimal digits) or an ISO 8601 date or
 * date-time (a date-time without a zone is read as UTC); undefined when it is neither, or before
 * the epoch. Shared by the SDK, the routes and the CLI.
 */
export function parseTimeText(v: string): number | undefined {
  if (/^[0-9]{1,16}$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.exec(v);
  if (!m) return undefined;
  const zone = m[8] === undefined ? 'Z' : m[8].length === 5 ? `${m[8].slice(0, 3)}:${m[8].slice(3)}` : m[8];
  const iso = `${m[1]}-${m[2]}-${m[3]}T${m[4] ?? '00'}:${m[5] ?? '00'}:${m[6] ?? '00'}${m[7] ? m[7].slice(0, 4) : ''}${zone}`;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/** A time as the SDK takes it: ms since the epoch, a `Date`, or ISO 8601 text (see {@link parseTimeText}). */
export type TimeLike = number | Date | string;

/** The `since` / `until` options of time-filtered reads; both ends inclusive. */
export interface TimeRange {
  /** Only versions committed at or after this time. */
  since?: TimeLike;
  /** Only versions committed at or before this time. */
  until?: TimeLike;
}

/** A time as ms since the epoch; `RangeError` when it is not a valid time at or after the epoch. */
export function toTimeMs(t: TimeLike, what = 'time'): number {
  const ms = typeof t === 'number' ? t : t instanceof Date ? t.getTime() : typeof t === 'string' ? parseTimeText(t) : undefined;
  if (ms === undefined || !Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`${what} must be ms since the epoch, a Date or ISO 8601 text, got ${String(t)}`);
  return ms;
}

/** The window of a {@link TimeRange} in ms; `RangeError` when an end is invalid or since > until. */
export function timeWindowOf(r: TimeRange): TimeWindow {
  const w: TimeWindow = {};
  if (r.since !== undefined) w.since = toTimeMs(r.since, 'since');
  if (r.until !== undefined) w.until = toTimeMs(r.until, 'until');
  if (w.since !== undefined && w.until !== undefined && w.since > w.until) throw new RangeError(`since ${w.since} is after until ${w.until}`);
  return w;
}
