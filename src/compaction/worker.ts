/**
 * Entry point of the compaction worker thread: receives {@link CompactionJob}s and {@link FlushJob}s,
 * runs them with {@link runCompaction} / {@link runFlush} and posts back the outputs (or the error). Keeping compaction here keeps the
 * Merkle hashing and merging off the event loop that serves reads and writes.
 *
 * After each job the worker collects its own garbage (a full GC of its isolate) before it replies:
 * an idle isolate never collects by itself, so without it the blocks, builders and output bytes of
 * the last job stay allocated for as long as the worker is idle — after a bulk load, for good.
 * The reply carries the heap in use at the end of the job (before that GC), the figure the
 * worker's heap limit is sized from.
 * @module
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { parentPort } from 'node:worker_threads';
import { runCompaction, runFlush, type CompactionJob, type FlushJob } from './compact.js';

interface Request {
  id: number;
  job: CompactionJob | FlushJob;
}

/**
 * This isolate's `gc()`: V8 exposes it to contexts created while `--expose-gc` is set, and a
 * worker cannot be started with V8 flags, so the flag is set for the moment one context is made
 * and cleared again (no other context, in this isolate or another, gets a `gc` global). When the
 * process already runs with `--expose-gc` (V8 flags are process-wide), this context has `gc` and
 * the flag is left alone.
 */
const collect: () => void = (() => {
  const own = (globalThis as { gc?: () => void }).gc;
  if (typeof own === 'function') return own;
  v8.setFlagsFromString('--expose-gc');
  try {
    return vm.runInNewContext('gc') as () => void;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
})();

parentPort?.on('message', (req: Request) => {
  let reply: object;
  try {
    const outputs = 'packed' in req.job ? [runFlush(req.job)] : runCompaction(req.job);
    reply = { id: req.id, outputs };
  } catch (err) {
    const e = err as Error & { code?: string; file?: string };
    reply = { id: req.id, error: { name: e.name, message: e.message, code: e.code, file: e.file } };
  }
  const heapUsed = v8.getHeapStatistics().used_heap_size;
  (req as { job: unknown }).job = null;
  collect();
  parentPort?.postMessage({ ...reply, heapUsed });
});
