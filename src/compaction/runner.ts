/**
 * Runs compaction jobs inline or on one long-lived worker thread. The worker is created lazily and
 * unref'd, so an idle database never keeps the process alive.
 * @module
 */
import { Worker } from 'node:worker_threads';
import { CorruptionError, ErrorCode, ProofKVError } from '../errors.js';
import { runCompaction, type CompactionJob, type CompactionOutput } from './compact.js';

interface WorkerReply {
  id: number;
  outputs?: CompactionOutput[];
  error?: { name: string; message: string; code?: string; file?: string };
}

/** Executes compactions; `close()` stops the worker. */
export class CompactionRunner {
  private worker: Worker | null = null;
  private nextId = 1;
  private waiting = new Map<number, { resolve: (o: CompactionOutput[]) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly mode: 'worker' | 'inline',
    private readonly delay?: () => Promise<void>,
  ) {}

  /** Runs `job` and resolves with its outputs. */
  async run(job: CompactionJob): Promise<CompactionOutput[]> {
    if (this.mode === 'inline') {
      if (this.delay) await this.delay();
      return runCompaction(job);
    }
    const w = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ id, job });
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const self = import.meta.url;
    const isTs = self.endsWith('.ts');
    const url = new URL(isTs ? './worker.ts' : './worker.js', self);
    // Running from TypeScript sources (tests, tsx): the worker loads its entry through tsx's API.
    const w = isTs
      ? new Worker(`import('tsx/esm/api').then((api) => api.tsImport(${JSON.stringify(url.href)}, ${JSON.stringify(self)}))`, {
          eval: true,
        })
      : new Worker(url);
    w.unref();
    w.on('message', (reply: WorkerReply) => {
      const p = this.waiting.get(reply.id);
      if (!p) return;
      this.waiting.delete(reply.id);
      if (this.waiting.size === 0) w.unref();
      if (reply.outputs) {
        // Structured clone turns Uint8Array subclasses into plain Uint8Arrays; nothing else to fix.
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
    w.on('error', (err) => this.failAll(err));
    w.on('exit', (code) => {
      this.worker = null;
      if (code !== 0) this.failAll(new Error(`compaction worker exited with code ${code}`));
    });
    this.worker = w;
    return w;
  }

  private failAll(err: Error): void {
    for (const p of this.waiting.values()) p.reject(new ProofKVError(ErrorCode.IO_ERROR, `compaction worker: ${err.message}`));
    this.waiting.clear();
  }

  /** Stops the worker; pending jobs fail. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    this.failAll(new Error('database closed'));
    if (w) await w.terminate();
  }
}
