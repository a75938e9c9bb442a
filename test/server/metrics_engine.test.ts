/**
 * The engine's counters in `/metrics` follow `ProofDB.stats()`: a checkpoint that compacts level 0
 * (docs/engine.md § Checkpoints, step 4) shows in `proofkv_checkpoint_compactions_total`, and a
 * policy compaction it dropped in `proofkv_dropped_compactions_total`; the merges within level 0
 * in `proofkv_checkpoint_level0_merges_total`.
 */
import { describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { Metrics } from '../../server/metrics.js';
import { tempDir } from '../engine/harness.js';

/** The value of an unlabelled sample `name` in Prometheus text. */
function sample(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no sample ${name} in:\n${text}`);
  return Number(m[1]);
}

describe('engine counters in /metrics', () => {
  it('count the level-0 compactions checkpoints made, and the policy compactions they dropped', async () => {
    const { dir, cleanup } = tempDir('proofkv-metrics-');
    // Small tables, and a policy that never compacts level 0 below 8 tables: only checkpoints do.
    const db = await ProofDB.open(dir, { writeBufferSize: 1024, targetFileSize: 1024, blockSize: 256, level0CompactionTrigger: 8, maxBytesForLevelBase: 1024, compactionThread: 'inline' });
    try {
      const metrics = new Metrics(db, { defaultMetrics: false });
      const before = await metrics.registry.metrics();
      expect(sample(before, 'proofkv_checkpoint_compactions_total')).toBe(0);
      expect(sample(before, 'proofkv_dropped_compactions_total')).toBe(0);
      expect(sample(before, 'proofkv_checkpoint_level0_merges_total')).toBe(0);
      let t = 1_700_000_000_000;
      for (let round = 0; round < 12; round++) {
        // Rounds of single puts (several flushes: several level-0 tables) and big batches (the
        // memtable frozen right after: the checkpoint finds the policy's compaction pending).
        if (round % 3 === 2) {
          const b = db.batch();
          for (let i = 0; i < 40; i++) b.put(`key-${(round * 7 + i) % 60}`, 'b'.repeat(40) + round);
          await db.write(b, { time: t++ });
        } else {
          for (let i = 0; i < 30; i++) await db.put(`key-${(round * 11 + i) % 60}`, 'v'.repeat(40) + round, { time: t++ });
        }
        await db.checkpoint();
      }
      const stats = db.stats();
      expect(stats.checkpointCompactions).toBeGreaterThan(0);
      const after = await metrics.registry.metrics();
      expect(sample(after, 'proofkv_checkpoint_compactions_total')).toBe(stats.checkpointCompactions);
      expect(sample(after, 'proofkv_checkpoint_level0_merges_total')).toBe(stats.checkpointLevel0Merges);
      expect(stats.checkpointLevel0Merges).toBeLessThanOrEqual(stats.checkpointCompactions);
      expect(sample(after, 'proofkv_dropped_compactions_total')).toBe(stats.droppedCompactions);
      expect(sample(after, 'proofkv_compactions_total')).toBeGreaterThanOrEqual(stats.checkpointCompactions);
      // Compactions made tables obsolete; their unlinks are counted once they ran.
      await db.waitForCompactions();
      const done = db.stats();
      expect(done.obsoleteTablesDeleted).toBeGreaterThan(0);
      const last = await metrics.registry.metrics();
      expect(sample(last, 'proofkv_obsolete_tables_deleted_total')).toBe(done.obsoleteTablesDeleted);
      expect(sample(last, 'proofkv_obsolete_table_delete_errors_total')).toBe(0);
    } finally {
      await db.close();
      cleanup();
    }
  });

  it('count the merges of level 0 within level 0 apart', async () => {
    const { dir, cleanup } = tempDir('proofkv-metrics-');
    // A level 1 that keeps what the first checkpoints put there: later level 0s are smaller and merge.
    const db = await ProofDB.open(dir, { writeBufferSize: 4096, targetFileSize: 4096, blockSize: 256, maxBytesForLevelBase: 1 << 20, compactionThread: 'inline' });
    try {
      const metrics = new Metrics(db, { defaultMetrics: false });
      let t = 1_700_000_000_000;
      for (let round = 0; round < 10; round++) {
        const n = round < 2 ? 300 : 10;
        for (let i = 0; i < n; i++) await db.put(`key-${(round * 13 + i) % 300}`, 'v'.repeat(40) + round, { time: t++ });
        await db.checkpoint();
      }
      const stats = db.stats();
      const after = await metrics.registry.metrics();
      expect(stats.checkpointLevel0Merges).toBeGreaterThan(0);
      expect(stats.checkpointCompactions).toBeGreaterThanOrEqual(stats.checkpointLevel0Merges);
      expect(sample(after, 'proofkv_checkpoint_level0_merges_total')).toBe(stats.checkpointLevel0Merges);
      expect(sample(after, 'proofkv_checkpoint_compactions_total')).toBe(stats.checkpointCompactions);
      // The merges took their inputs' leaves (leaf_cache.ts) rather than hashing them again.
      expect(stats.compactionLeavesReused).toBeGreaterThan(0);
      expect(sample(after, 'proofkv_compaction_leaves_reused_total')).toBe(stats.compactionLeavesReused);
    } finally {
      await db.close();
      cleanup();
    }
  });
});
