/**
 * A debug-only trace of the replication path, for finding where a write's time goes across the
 * members of a cluster (`bench/cluster.ts --trace`, summarized by `bench/cluster_trace.ts`).
 *
 * Off unless the environment variable {@link TRACE_ENV} names a file prefix when the process
 * starts; then every call of {@link trace} records `[µs, kind, ...fields]`, and at exit the
 * events are written to `<prefix>.<pid>.jsonl`, one JSON array a line. Off, a call costs one
 * boolean test. The time is `process.hrtime` (the system's monotonic clock), so the events of
 * several processes on one machine share one time line. At most {@link MAX_TRACE_BYTES} of events
 * are kept (later ones are counted, not kept).
 * @module
 */
import * as fs from 'node:fs';
import type { Message } from '../raft/index.js';

/** The environment variable that turns tracing on: the prefix of the trace files. */
export const TRACE_ENV = 'PROOFKV_TRACE';
/** Bytes of trace events kept per process, at most (the JSON text). */
export const MAX_TRACE_BYTES = 64 << 20;

const prefix = typeof process !== 'undefined' ? process.env?.[TRACE_ENV] : undefined;

/** True when this process records a trace. Test it before building costly fields. */
export const tracing: boolean = prefix !== undefined && prefix !== '';

const lines: string[] = [];
let bytes = 0;
let dropped = 0;

/** Microseconds on the system's monotonic clock (comparable between processes on one machine). */
export function traceNow(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Records one event (when {@link tracing}). */
export function trace(kind: string, ...fields: Array<number | string | boolean>): void {
  if (!tracing) return;
  const line = JSON.stringify([traceNow(), kind, ...fields]);
  if (bytes + line.length + 1 > MAX_TRACE_BYTES) {
    dropped++;
    return;
  }
  bytes += line.length + 1;
  lines.push(line);
}

/**
 * Writes the events recorded so far to `<prefix>.<pid>.jsonl` (appending; a `dropped` event
 * counts those over the bound) and forgets them. Called at exit; returns the file written, or
 * undefined when not tracing or nothing was recorded.
 */
export function flushTrace(): string | undefined {
  if (!tracing || (lines.length === 0 && dropped === 0)) return undefined;
  if (dropped > 0) lines.push(JSON.stringify([traceNow(), 'dropped', dropped]));
  const file = `${prefix}.${process.pid}.jsonl`;
  try {
    fs.appendFileSync(file, lines.join('\n') + '\n');
  } catch {
    // a debug aid: losing the trace must not change how the process exits
    return undefined;
  } finally {
    lines.length = 0;
    bytes = 0;
    dropped = 0;
  }
  return file;
}

if (tracing) {
  process.on('exit', () => void flushTrace());
  // Garbage-collector pauses, to tell them apart from the replication path's own stalls.
  void import('node:perf_hooks').then(({ PerformanceObserver }) =>
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) trace('gc', Math.round(e.duration * 1000));
    }).observe({ entryTypes: ['gc'] }),
  );
}

/** Records one event per message: `[µs, kind, type, from, to, index, last entry index (0: none), commit]`. */
export function traceMessages(kind: string, messages: readonly Message[]): void {
  if (!tracing) return;
  for (const m of messages) {
    const last = m.entries.length > 0 ? m.entries[m.entries.length - 1].index : 0;
    trace(kind, m.type, m.from, m.to, m.index, last, m.commit);
  }
}
