/**
 * The compaction and flush workers run with a bounded heap (`compactionWorkerHeapBytes`). A worker
 * that runs out of it must not lose data or wedge the engine: its job fails like any compaction
 * failure (a recoverable write fault), reads go on, `close()` returns, and a reopen with room
 * to work finds every acknowledged write.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, ProofDB, WriteFaultError } from '../../src/index.js';
import { setWorkerIdleMsForTests, workerMemoryStats } from '../../src/compaction/runner.js';
import { str, tempDir } from './harness.js';

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups) c();
});

function dir(): string {
  const t = tempDir('proofkv-worker-mem-');
  cleanups.push(t.cleanup);
  return t.dir;
}

const value = (i: number) => `value-${i}-${'x'.repeat(200)}`;

describe('compaction worker heap limit', () => {
  it('a worker out of memory fails the flush as a recoverable fault; nothing is lost', async () => {
    const d = dir();
    const failuresBefore = workerMemoryStats().workerFailures;
    // 1 MiB: far below what the worker's isolate needs, so it dies of its heap limit.
    const db = await ProofDB.open(d, { compactionWorkerHeapBytes: 1024 * 1024 });
    for (let i = 0; i < 300; i++) await db.put(`k${i}`, value(i));
    const err = await db.checkpoint().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WriteFaultError);
    expect((err as WriteFaultError).retryable).toBe(true);
    const fault = db.writeFault();
    expect(fault?.recoverable).toBe(true);
    expect(fault?.component).toBe('flush');
    expect((fault?.error as { code?: string }).code).toBe(ErrorCode.IO_ERROR);
    expect(workerMemoryStats().workerFailures).toBeGreaterThan(failuresBefore);
    // Writes are refused while the fault lasts; reads go on from the memtables.
    await expect(db.put('after', 'x')).rejects.toBeInstanceOf(WriteFaultError);
    expect(str(await db.get('k0'))).toBe(value(0));
    expect(str(await db.get('k299'))).toBe(value(299));
    await db.close(); // does not wedge on the dead worker

    // With room to work, the journal's writes are all there and a checkpoint covers them.
    const again = await ProofDB.open(d);
    try {
      for (const i of [0, 1, 150, 299]) expect(str(await again.get(`k${i}`))).toBe(value(i));
      expect(await again.get('after')).toBeUndefined();
      const c = await again.checkpoint();
      expect(c.seq).toBe(300);
      expect(again.writeFault()).toBeUndefined();
    } finally {
      await again.close();
    }
  });

  it('a database with the default limit is not affected by another one out of memory', async () => {
    const small = await ProofDB.open(dir(), { compactionWorkerHeapBytes: 1024 * 1024 });
    const normal = await ProofDB.open(dir());
    try {
      const jobsBefore = workerMemoryStats().jobs;
      for (let i = 0; i < 100; i++) {
        await small.put(`s${i}`, value(i));
        await normal.put(`n${i}`, value(i));
      }
      const [a, b] = await Promise.allSettled([small.checkpoint(), normal.checkpoint()]);
      expect(a.status).toBe('rejected');
      expect(b.status).toBe('fulfilled');
      expect(normal.writeFault()).toBeUndefined();
      expect(normal.stats().flushes).toBe(1);
      const stats = workerMemoryStats();
      expect(stats.jobs).toBeGreaterThan(jobsBefore);
      // The worker reports its heap at the end of each job, and it stayed within its limit.
      expect(stats.peakJobHeapUsed).toBeGreaterThan(0);
      expect(stats.peakJobHeapUsed).toBeLessThan(64 * 1024 * 1024);
    } finally {
      await small.close();
      await normal.close();
    }
  });

  it('a worker collects its garbage once idle after a job', async () => {
    const db = await ProofDB.open(dir());
    try {
      const before = workerMemoryStats().idleCollections;
      for (let i = 0; i < 2000; i++) await db.put(`k${i}`, value(i));
      await db.checkpoint(); // a flush job: its blocks, builders and output are garbage after it
      // Bounded wait for the idle collection (GC_IDLE_MS after the job), reported by the worker.
      for (let i = 0; i < 600 && workerMemoryStats().idleCollections === before; i++) await new Promise((r) => setTimeout(r, 50));
      const stats = workerMemoryStats();
      expect(stats.idleCollections).toBeGreaterThan(before);
      // What the idle isolate keeps is less than what a job ended with.
      expect(stats.lastIdleHeapUsed).toBeGreaterThan(0);
      expect(stats.lastIdleHeapUsed).toBeLessThan(stats.peakJobHeapUsed);
    } finally {
      await db.close();
    }
  }, 60_000);

  it('ends an idle worker and starts a new one for the next job', async () => {
    setWorkerIdleMsForTests(500);
    const db = await ProofDB.open(dir());
    try {
      await db.put('a', value(1));
      await db.checkpoint(); // a flush job on the flush worker
      const idleBefore = workerMemoryStats().idleExits;
      const jobsBefore = workerMemoryStats().jobs;
      // Bounded wait for the idle timeout to end the worker (its isolate and heap are freed).
      for (let i = 0; i < 200 && workerMemoryStats().idleExits === idleBefore; i++) await new Promise((r) => setTimeout(r, 50));
      expect(workerMemoryStats().idleExits).toBeGreaterThan(idleBefore);
      // The next flush runs on a new worker.
      await db.put('b', value(2));
      const c = await db.checkpoint();
      expect(c.seq).toBe(2);
      expect(workerMemoryStats().jobs).toBeGreaterThan(jobsBefore);
      expect(db.stats().flushes).toBe(2);
      expect(str(await db.get('a'))).toBe(value(1));
    } finally {
      setWorkerIdleMsForTests(null);
      await db.close();
    }
  }, 30_000);

  it('rejects a limit below 1 MiB', async () => {
    await expect(ProofDB.open(dir(), { compactionWorkerHeapBytes: 1024 })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
  });
});
