/**
 * Runs compaction and flush jobs inline or on worker threads. The workers serve every open
 * database in the process (starting one costs tens of milliseconds, and far more when it must load
 * TypeScript sources); they are unref'd while idle, so they never keep the process alive.
 * @module
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { CorruptionError, ErrorCode, ProofKVError } from '../errors.js';
import { DEFAULT_COMPACTION_WORKER_HEAP_BYTES } from '../options.js';
import { runCompaction, runFlush, type CompactionJob, type CompactionOutput, type FlushJob } from './compact.js';
import { leafBuffers } from './leaf_cache.js';

interface WorkerReply {
  id: number;
  outputs?: CompactionOutput[];
  error?: { name: string; message: string; code?: string; file?: string };
  /** The worker's heap in use at the end of the job, before it collected its garbage. */
  heapUsed?: number;
  /** Sent without a job (`id` -1) after the worker collected its garbage while idle: its heap in use then. */
  idleHeapUsed?: number;
}

/** Young generation of a worker's isolate, MiB: its semi-spaces, which V8 otherwise sizes up to 16 MiB each. */
export const WORKER_YOUNG_GENERATION_MB = 8;

/**
 * The nice value a worker gives its own thread (Linux, where nice is a per-thread attribute;
 * elsewhere nothing changes): flushes and compactions are background work, so when the CPUs are
 * short the threads that serve reads and writes (the event loop, the Raft log's syncs) run first,
 * as RocksDB lowers its background threads' CPU priority. 10 still leaves a worker about a tenth
 * of a CPU it shares with a busy thread, and all of an idle one: a flush is slower only while the
 * foreground has the CPUs, and the write path's own back-pressure (level-0 slowdown and stop, one
 * checkpoint in flight) bounds how far behind it falls (docs/engine.md § Flush and compaction
 * worker).
 */
export const WORKER_NICE = 10;

/**
 * How long a worker may stay idle, ms, before it is ended (its isolate and everything it holds
 * freed); the next job starts a new one, with cold (unoptimised) code. Far longer than the gaps
 * between the jobs of a bulk load (the flush worker idles while a drain runs, the compaction
 * worker between drains: seconds): with 2 s a 1M-entry load restarted its workers 6 times and
 * wrote about a quarter slower.
 */
export const WORKER_IDLE_MS = 30_000;

let workerIdleMs = WORKER_IDLE_MS;

/** Test hook: sets the idle timeout of workers that become idle from now on (`null`: the default). */
export function setWorkerIdleMsForTests(ms: number | null): void {
  workerIdleMs = ms ?? WORKER_IDLE_MS;
}

/** What the process's compaction and flush workers have used (for benchmarks and tests). */
export interface WorkerMemoryStats {
  /** Largest heap in use at the end of a job, over every job since the process started. */
  peakJobHeapUsed: number;
  /** Jobs that ended with a reply. */
  jobs: number;
  /** Workers that ended abnormally (out of memory, crashed): each failed its waiting jobs. */
  workerFailures: number;
  /** Workers ended after {@link WORKER_IDLE_MS} without a job. */
  idleExits: number;
  /** Workers running now. */
  running: number;
  /** Garbage collections a worker ran once idle after a job (see src/compaction/worker.ts). */
  idleCollections: number;
  /** A worker's heap in use after its latest idle collection (0: none yet). */
  lastIdleHeapUsed: number;
}

const memoryStats: WorkerMemoryStats = { peakJobHeapUsed: 0, jobs: 0, workerFailures: 0, idleExits: 0, running: 0, idleCollections: 0, lastIdleHeapUsed: 0 };

/** A copy of the process-wide {@link WorkerMemoryStats}. */
export function workerMemoryStats(): WorkerMemoryStats {
  return { ...memoryStats };
}

interface Waiter {
  resolve: (o: CompactionOutput[]) => void;
  reject: (e: Error) => void;
}

/**
 * How to start the compaction worker from the URL of this module. From compiled JavaScript the
 * worker is `worker.js` next to it; from TypeScript sources (tests, tsx) it is an eval'd script
 * that loads `worker.ts` through tsx's API, resolved from this package rather than from the
 * process's working directory. A loader may add a query to this module's URL (tsx's `tsImport`
 * does), so the file type is read from the path alone.
 *
 * `execArgv` is explicit and empty: by default a worker inherits the parent's `process.execArgv`,
 * and flags meant for the main entry point break it — `node --input-type=module -e …` makes every
 * worker start fail ("--input-type can only be used with string input"). The worker needs none of
 * the parent's flags: the TypeScript path registers tsx itself through its API.
 */
export function workerSpawnSpec(selfUrl: string): { entry: string | URL; options: WorkerOptions } {
  const self = new URL(selfUrl);
  self.search = '';
  self.hash = '';
  const isTs = self.pathname.endsWith('.ts');
  const url = new URL(isTs ? './worker.ts' : './worker.js', self);
  if (!isTs) return { entry: url, options: { execArgv: [] } };
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsxApi)}).then((api) => api.tsImport(${JSON.stringify(url.href)}, ${JSON.stringify(self.href)}))`;
  return { entry: code, options: { eval: true, execArgv: [] } };
}

/** A process-wide worker thread with a bounded heap. */
class SharedWorker {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private idleTimer: NodeJS.Timeout | null = null;

  /** @param heapMb the old-generation limit of the worker's isolate, MiB. */
  constructor(private readonly heapMb: number) {}

  run(job: CompactionJob | FlushJob): Promise<CompactionOutput[]> {
    const w = this.ensure();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.ref();
      // A flush's packed entries and a compaction's input leaves move to the worker without a copy.
      w.postMessage({ id, job }, 'packed' in job ? [job.packed.buffer as ArrayBuffer] : leafBuffers(job.leaves));
    });
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const spec = workerSpawnSpec(import.meta.url);
    const w = new Worker(spec.entry, {
      ...spec.options,
      resourceLimits: { maxOldGenerationSizeMb: this.heapMb, maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
      workerData: { nice: WORKER_NICE },
    });
    w.unref();
    w.on('message', (reply: WorkerReply) => {
      if (reply.idleHeapUsed !== undefined) {
        memoryStats.idleCollections++;
        memoryStats.lastIdleHeapUsed = reply.idleHeapUsed;
        return;
      }
      const p = this.waiting.get(reply.id);
      if (!p) return;
      memoryStats.jobs++;
      if (reply.heapUsed !== undefined) memoryStats.peakJobHeapUsed = Math.max(memoryStats.peakJobHeapUsed, reply.heapUsed);
      this.waiting.delete(reply.id);
      if (this.waiting.size === 0) {
        w.unref();
        this.retireWhenIdle(w);
      }
      if (reply.outputs) {
        p.resolve(reply.outputs);
      } else {
        const e = reply.error ?? { name: 'Error', message: 'compaction worker failed' };
        p.reject(
          e.code === ErrorCode.CORRUPTION
            ? new CorruptionError(e.file ?? '(compaction input)', e.message)
            : new ProofKVError(ErrorCode.IO_ERROR, `compaction failed: ${e.message}`),
        );
      }
    });
    // Out of memory (`ERR_WORKER_OUT_OF_MEMORY`) or a crash: the isolate is gone; its jobs fail
    // like any compaction failure and the next job starts a new worker. A worker already replaced
    // (ended when idle, or after its 'error') has no jobs left: its 'exit' must not fail the jobs
    // of the worker that replaced it.
    const fail = (err: Error) => {
      if (this.worker !== w) return;
      this.worker = null;
      memoryStats.workerFailures++;
      memoryStats.running--;
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = null;
      for (const p of this.waiting.values()) p.reject(new ProofKVError(ErrorCode.IO_ERROR, `compaction worker: ${err.message}`));
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`compaction worker exited with code ${code}`)));
    this.worker = w;
    memoryStats.running++;
    return w;
  }

  /** Ends `w` if it is still the worker and still idle after the idle timeout ({@link WORKER_IDLE_MS}). */
  private retireWhenIdle(w: Worker): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.worker !== w || this.waiting.size > 0) return;
      this.worker = null;
      memoryStats.idleExits++;
      memoryStats.running--;
      w.terminate().catch(() => undefined);
    }, workerIdleMs);
    this.idleTimer.unref();
  }
}

/**
 * Two process-wide workers per heap limit: one for compactions and one for flushes, so a flush
 * never queues behind a long compaction (the install still waits for both, in a fixed order, so
 * what is written does not depend on which finishes first). With the event loop mostly idle on a
 * write load, the two workers use both cores of a two-core machine. Databases opened with the
 * same `compactionWorkerHeapBytes` (normally all of them) share the pair.
 */
const workers = new Map<string, SharedWorker>();

function sharedWorker(kind: 'compaction' | 'flush', heapMb: number): SharedWorker {
  const key = `${kind}:${heapMb}`;
  let w = workers.get(key);
  if (!w) workers.set(key, (w = new SharedWorker(heapMb)));
  return w;
}

/** Executes one database's compactions; `close()` waits for its running job. */
export class CompactionRunner {
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly heapMb: number;

  /** @param workerHeapBytes the heap limit of the worker threads (rounded up to whole MiB). */
  constructor(
    private readonly mode: 'worker' | 'inline',
    private readonly delay?: () => Promise<void>,
    workerHeapBytes: number = DEFAULT_COMPACTION_WORKER_HEAP_BYTES,
  ) {
    this.heapMb = Math.max(1, Math.ceil(workerHeapBytes / (1024 * 1024)));
  }

  /** Runs a compaction and resolves with its outputs. */
  run(job: CompactionJob): Promise<CompactionOutput[]> {
    return this.track(
      this.mode === 'inline'
        ? (async () => {
            if (this.delay) await this.delay();
            return runCompaction(job);
          })()
        : sharedWorker('compaction', this.heapMb).run(job),
    );
  }

  /** Builds and writes a flushed memtable's table (on the worker, off the event loop). */
  async flush(job: FlushJob): Promise<CompactionOutput> {
    const out = await this.track(this.mode === 'inline' ? Promise.resolve([runFlush(job)]) : sharedWorker('flush', this.heapMb).run(job));
    return out[0];
  }

  private track<T>(p: Promise<T>): Promise<T> {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.add(settled);
    void settled.then(() => this.inflight.delete(settled));
    return p;
  }

  /** Waits until no job of this database is running (their outputs are then left to clean up). */
  async close(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }
}
