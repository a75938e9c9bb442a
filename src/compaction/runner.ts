/**
 * Runs compaction and flush jobs inline or on worker threads. The workers serve every open
 * database in the process (starting one costs tens of milliseconds, and far more when it must load
 * TypeScript sources); they are unref'd while idle, so they never keep the process alive.
 * @module
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { CorruptionError, ErrorCode, ProofKVError } from '../errors.js';
import { runCompaction, runFlush, type CompactionJob, type CompactionOutput, type FlushJob } from './compact.js';

interface WorkerReply {
  id: number;
  outputs?: CompactionOutput[];
  error?: { name: string; message: string; code?: string; file?: string };
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

/** The process-wide compaction worker. */
class SharedWorker {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();

  run(job: CompactionJob | FlushJob): Promise<CompactionOutput[]> {
    const w = this.ensure();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.ref();
      // A flush's packed entries move to the worker without a copy.
      w.postMessage({ id, job }, 'packed' in job ? [job.packed.buffer as ArrayBuffer] : []);
    });
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const spec = workerSpawnSpec(import.meta.url);
    const w = new Worker(spec.entry, spec.options);
    w.unref();
    w.on('message', (reply: WorkerReply) => {
      const p = this.waiting.get(reply.id);
      if (!p) return;
      this.waiting.delete(reply.id);
      if (this.waiting.size === 0) w.unref();
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
    const fail = (err: Error) => {
      if (this.worker === w) this.worker = null;
      for (const p of this.waiting.values()) p.reject(new ProofKVError(ErrorCode.IO_ERROR, `compaction worker: ${err.message}`));
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`compaction worker exited with code ${code}`)));
    this.worker = w;
    return w;
  }
}

/**
 * Two process-wide workers: one for compactions and one for flushes, so a flush never queues
 * behind a long compaction (the install still waits for both, in a fixed order, so what is
 * written does not depend on which finishes first). With the event loop mostly idle on a write
 * load, the two workers use both cores of a two-core machine.
 */
let compactionWorker: SharedWorker | null = null;
let flushWorker: SharedWorker | null = null;

/** Executes one database's compactions; `close()` waits for its running job. */
export class CompactionRunner {
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(
    private readonly mode: 'worker' | 'inline',
    private readonly delay?: () => Promise<void>,
  ) {}

  /** Runs a compaction and resolves with its outputs. */
  run(job: CompactionJob): Promise<CompactionOutput[]> {
    return this.track(
      this.mode === 'inline'
        ? (async () => {
            if (this.delay) await this.delay();
            return runCompaction(job);
          })()
        : (compactionWorker ??= new SharedWorker()).run(job),
    );
  }

  /** Builds and writes a flushed memtable's table (on the worker, off the event loop). */
  async flush(job: FlushJob): Promise<CompactionOutput> {
    const out = await this.track(this.mode === 'inline' ? Promise.resolve([runFlush(job)]) : (flushWorker ??= new SharedWorker()).run(job));
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
