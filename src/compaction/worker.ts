/**
 * Entry point of the compaction worker thread: receives {@link CompactionJob}s and {@link FlushJob}s,
 * runs them with {@link runCompaction} / {@link runFlush} and posts back the outputs (or the error). Keeping compaction here keeps the
 * Merkle hashing and merging off the event loop that serves reads and writes.
 * @module
 */
import { parentPort } from 'node:worker_threads';
import { runCompaction, runFlush, type CompactionJob, type FlushJob } from './compact.js';

interface Request {
  id: number;
  job: CompactionJob | FlushJob;
}

parentPort?.on('message', (req: Request) => {
  try {
    const outputs = 'packed' in req.job ? [runFlush(req.job)] : runCompaction(req.job);
    parentPort?.postMessage({ id: req.id, outputs });
  } catch (err) {
    const e = err as Error & { code?: string; file?: string };
    parentPort?.postMessage({ id: req.id, error: { name: e.name, message: e.message, code: e.code, file: e.file } });
  }
});
