/**
 * Entry point of the compaction worker thread: receives {@link CompactionJob}s and {@link FlushJob}s,
 * runs them with {@link runCompaction} / {@link runFlush} and posts back the outputs (or the error). Keeping compaction here keeps the
 * Merkle hashing and merging off the event loop that serves reads and writes.
 *
 * Once the worker has been idle for {@link GC_IDLE_MS} after a job, it collects its own garbage (a
 * full GC of its isolate): an idle isolate never collects by itself, so without it the blocks,
 * builders and output bytes of the last job stay allocated for as long as the worker is idle —
 * after a bulk load, for good. Not after every job: a forced full GC also drops the optimised code
 * of the job's functions (V8 deoptimises code that holds weak references), which the next job
 * compiled again — 200-odd recompilations per member in a cluster bench run, with the compiler
 * threads at 30 % of the members' CPU. Nor after a short idle: a member flushes at every
 * checkpoint (one a second by default) and every few seconds under load, and a 250 ms idle brought
 * the same recompilations back (docs/engine.md). While jobs keep coming, V8 collects as it allocates. The
 * reply carries the heap in use at the end of the job, the figure the worker's heap limit is sized
 * from.
 * @module
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { runCompaction, runFlush, type CompactionJob, type FlushJob } from './compact.js';
import { leafBuffers } from './leaf_cache.js';

/**
 * The nice value to give a thread whose nice is `current` so that it runs at background priority
 * `wanted` (clamped to Linux's 19), or null to leave it: never one below what it has, which would
 * raise its priority above the rest of its process (a service started at nice 15 keeps 15 on its
 * workers too). Non-positive or non-integer `wanted`: null.
 */
export function niceToSet(current: number, wanted: number): number | null {
  if (!Number.isSafeInteger(wanted) || wanted <= 0 || !Number.isSafeInteger(current)) return null;
  const target = Math.min(wanted, 19);
  return current < target ? target : null;
}

/**
 * Gives this thread the nice value `nice` (the runner's `WORKER_NICE`) unless it already has that
 * or more ({@link niceToSet}): background priority for the Merkle hashing and merging. Linux
 * only, where nice is per thread and `/proc/thread-self` names this thread's id;
 * `os.getPriority`/`os.setPriority` with that id read and change this thread alone (the process's
 * other threads keep theirs). Raising one's own nice needs no privilege; where it fails, or
 * elsewhere, the thread keeps its priority. Returns whether it was set.
 */
export function lowerThreadPriority(nice: number): boolean {
  if (niceToSet(0, nice) === null) return false;
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isSafeInteger(tid) || tid <= 0) return false;
    const target = niceToSet(os.getPriority(tid), nice);
    if (target === null) return false;
    os.setPriority(tid, target);
    return true;
  } catch {
    return false;
  }
}

if (parentPort) lowerThreadPriority((workerData as { nice?: number } | null)?.nice ?? 0);

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

/** Idle time after a job before the worker collects its garbage, ms: longer than the gap between two jobs of a steady load. */
export const GC_IDLE_MS = 5000;

let idleGc: ReturnType<typeof setTimeout> | undefined;

parentPort?.on('message', (req: Request) => {
  if (idleGc !== undefined) clearTimeout(idleGc);
  idleGc = undefined;
  let reply: object;
  let transfer: ArrayBuffer[] = [];
  try {
    const outputs = 'packed' in req.job ? [runFlush(req.job)] : runCompaction(req.job);
    reply = { id: req.id, outputs };
    // The outputs' leaves move back without a copy.
    transfer = leafBuffers(outputs.map((o) => o.leaves));
  } catch (err) {
    const e = err as Error & { code?: string; file?: string };
    reply = { id: req.id, error: { name: e.name, message: e.message, code: e.code, file: e.file } };
  }
  const heapUsed = v8.getHeapStatistics().used_heap_size;
  (req as { job: unknown }).job = null;
  parentPort?.postMessage({ ...reply, heapUsed }, transfer);
  idleGc = setTimeout(() => {
    idleGc = undefined;
    collect();
    parentPort?.postMessage({ id: -1, idleHeapUsed: v8.getHeapStatistics().used_heap_size });
  }, GC_IDLE_MS);
  idleGc.unref();
});
