/**
 * {@link LogBudget}: a bound on how many lines of one kind a node writes to its log per second.
 *
 * Every refused request is logged (docs/operations.md § Refusals), and on the stream protocol a
 * refused request is a 12-byte frame: without a bound, a client could make the node write a
 * ~200-byte log line for every 12 bytes it sends, at the speed of the network — the disk and the
 * log pipeline, not the request path, would be the bottleneck. The metric
 * (`proofkv_refused_total{reason}`) still counts every refusal; only the lines are bounded.
 * @module
 */

/** Default lines per second of one kind ({@link LogBudget}). */
export const DEFAULT_LOG_LINES_PER_SECOND = 100;

/**
 * A token bucket of log lines: at most `perSecond` lines a second, with a burst of `perSecond`.
 * {@link take} says whether a line may be written; the lines it refused since the last line
 * written are counted, for the next line to report (`suppressed`).
 */
export class LogBudget {
  private tokens: number;
  private last: number;
  private dropped = 0;

  constructor(
    /** Lines per second (and the burst). */
    readonly perSecond: number = DEFAULT_LOG_LINES_PER_SECOND,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(perSecond >= 1)) throw new RangeError('a log budget needs at least one line per second');
    this.tokens = perSecond;
    this.last = now();
  }

  /**
   * Takes a line: undefined when it must not be written (counted), otherwise the number of lines
   * suppressed since the last one written (0 when none), which that line should carry.
   */
  take(): number | undefined {
    const t = this.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((t - this.last) * this.perSecond) / 1000);
    this.last = t;
    if (this.tokens < 1) {
      this.dropped++;
      return undefined;
    }
    this.tokens -= 1;
    const suppressed = this.dropped;
    this.dropped = 0;
    return suppressed;
  }
}
