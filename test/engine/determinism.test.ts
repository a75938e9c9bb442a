/**
 * Determinism: the table set is a pure function of the sequence of writes and checkpoints.
 * Two engines get the same operations with different timing — one awaits each write and runs
 * compactions inline behind random delays, the other fires writes concurrently (so group commit
 * groups them differently), compacts on the worker thread and is closed and reopened midway —
 * and after every checkpoint their table files are byte-identical, with the same numbers, levels
 * and roots. Run with both level-0 rules of checkpoints: level 0 into level 1 (no byte bound), and
 * level 0 merged into one level-0 table under a byte bound and into level 1 at it. The first
 * engine keeps no leaf cache (every compaction hashes every entry); the second reuses its inputs'
 * leaves (src/compaction/leaf_cache.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { mulberry32 } from '../support/prng.js';
import { copyLiveDir, tempDir } from './harness.js';

const prng = mulberry32;

type Op =
  | { t: 'put'; key: string; value: string }
  | { t: 'putv'; key: string; value: string; version: number }
  | { t: 'del'; key: string }
  | { t: 'checkpoint' };

function workload(seed: number, n: number): Op[] {
  const rnd = prng(seed);
  const ops: Op[] = [];
  let explicit = 1_000_000;
  for (let i = 0; i < n; i++) {
    const key = `key-${Math.floor(rnd() * 400)
      .toString()
      .padStart(4, '0')}`;
    const r = rnd();
    if (r < 0.01) ops.push({ t: 'checkpoint' });
    else if (r < 0.1) ops.push({ t: 'del', key });
    else if (r < 0.15) ops.push({ t: 'putv', key: `explicit-${i}`, value: `v${i}`, version: explicit++ });
    else ops.push({ t: 'put', key, value: 'x'.repeat(Math.floor(rnd() * 200)) + i });
  }
  ops.push({ t: 'checkpoint' });
  return ops;
}

const BASE_SHAPE: DBOptions = {
  writeBufferSize: 16 * 1024,
  targetFileSize: 8 * 1024,
  blockSize: 512,
  level0CompactionTrigger: 3,
  maxBytesForLevelBase: 32 * 1024,
};

interface Snap {
  /** The checkpoint's MasterRoot and seq: what replicas co-sign. */
  masterRoot: string;
  seq: number;
  tables: Array<{ level: number; position: number; number: number; root: string; entryCount: number }>;
  files: Map<string, string>;
}

function snapshotOf(db: ProofDB, dir: string, cp: { seq: number; checkpoint: { masterRoot: Uint8Array } }): Snap {
  const tables = db.tables().map((t) => ({
    level: t.level,
    position: t.position,
    number: t.number,
    root: Buffer.from(t.root).toString('hex'),
    entryCount: t.entryCount,
  }));
  const files = new Map<string, string>();
  for (const t of tables) {
    const name = `${String(t.number).padStart(6, '0')}.sst`;
    files.set(name, fs.readFileSync(path.join(dir, name)).toString('base64'));
  }
  return { masterRoot: Buffer.from(cp.checkpoint.masterRoot).toString('hex'), seq: cp.seq, tables, files };
}

/** Commit time of op `i`: explicit, so the tables do not depend on the clock of the run. */
const at = (i: number) => ({ time: 1_700_000_000_000 + 3 * i });

async function runPaced(ops: Op[], dir: string, seed: number, SHAPE: DBOptions, stats?: (s: ReturnType<ProofDB['stats']>) => void): Promise<Snap[]> {
  const rnd = prng(seed);
  const delay = () => new Promise<void>((r) => setTimeout(r, Math.floor(rnd() * 15)));
  // No leaf cache: every compaction hashes every entry it writes (the other run reuses leaves).
  const db = await ProofDB.open(dir, { ...SHAPE, compactionThread: 'inline', compactionDelay: delay, leafCacheSize: 0 });
  const snaps: Snap[] = [];
  try {
    for (const [i, op] of ops.entries()) {
      if (rnd() < 0.02) await delay();
      switch (op.t) {
        case 'put':
          await db.put(op.key, op.value, at(i));
          break;
        case 'putv':
          await db.putWithVersion(op.key, op.value, op.version, at(i));
          break;
        case 'del':
          await db.delete(op.key, at(i));
          break;
        case 'checkpoint':
          snaps.push(snapshotOf(db, dir, await db.checkpoint()));
          break;
      }
    }
    stats?.(db.stats());
  } finally {
    await db.close();
  }
  return snaps;
}

async function runConcurrent(ops: Op[], startDir: string, SHAPE: DBOptions, reused?: (n: number) => void): Promise<Snap[]> {
  const options = { ...SHAPE, compactionThread: 'worker' as const };
  let dir = startDir;
  let db = await ProofDB.open(dir, options);
  const snaps: Snap[] = [];
  let inflight: Promise<unknown>[] = [];
  let crashed = false;
  let reopened = false;
  try {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      // Writes are issued without waiting, in order; the pipeline keeps their order.
      if (op.t === 'put') inflight.push(db.put(op.key, op.value, at(i)));
      else if (op.t === 'putv') inflight.push(db.putWithVersion(op.key, op.value, op.version, at(i)));
      else if (op.t === 'del') inflight.push(db.delete(op.key, at(i)));
      else {
        await Promise.all(inflight);
        inflight = [];
        snaps.push(snapshotOf(db, dir, await db.checkpoint()));
        continue;
      }
      if (!crashed && i > ops.length / 3) {
        // From here until the crash, writes are awaited one by one so the copy holds exactly ops[0..i].
        await Promise.all(inflight);
        inflight = [];
      }
      const st = crashed ? undefined : db.stats();
      if (st && i > ops.length / 3 && st.flushing && st.compactionPending) {
        // A crash while a flush and a compaction are in flight: copy the directory as it is on
        // disk now and carry on from the copy. Its replay refills the frozen memtable and freezes
        // it, so recovery must make the very install (compaction, then flush) the live engine makes.
        const copy = `${startDir}-crash`;
        copyLiveDir(dir, copy);
        await db.close();
        dir = copy;
        db = await ProofDB.open(dir, options);
        crashed = true;
      } else if (crashed && !reopened && i > (ops.length * 2) / 3) {
        // A clean restart as well.
        await Promise.all(inflight);
        inflight = [];
        await db.close();
        db = await ProofDB.open(dir, options);
        reopened = true;
      }
    }
    await Promise.all(inflight);
    expect(crashed && reopened, 'the run crashed and restarted once each').toBe(true);
    reused?.(db.stats().compactionLeavesReused);
  } finally {
    await db.close();
    fs.rmSync(`${startDir}-crash`, { recursive: true, force: true });
  }
  return snaps;
}

describe.each([
  { rule: 'level 0 into level 1', checkpointLevel0Bytes: 0, checkpointLevel0Tables: 1, checkpointLevel0SizeRatio: 0, level0CompactionTrigger: 3 },
  { rule: 'level 0 merged within level 0 under a byte bound', checkpointLevel0Bytes: 24 * 1024, checkpointLevel0Tables: 1, checkpointLevel0SizeRatio: 0, level0CompactionTrigger: 3 },
  // Two tables allowed: the policy must let level 0 reach three (trigger 4) for a checkpoint to merge.
  { rule: 'level 0 merged size-tiered within level 0, two tables allowed', checkpointLevel0Bytes: 24 * 1024, checkpointLevel0Tables: 2, checkpointLevel0SizeRatio: 100, level0CompactionTrigger: 4 },
])('determinism ($rule)', ({ checkpointLevel0Bytes, checkpointLevel0Tables, checkpointLevel0SizeRatio, level0CompactionTrigger }) => {
  it('same writes and checkpoints give byte-identical tables, roots and MasterRoots under different timing', async () => {
    const seed = Number(process.env.DETERMINISM_SEED ?? 7);
    const ops = workload(seed, 6000);
    const SHAPE = { ...BASE_SHAPE, checkpointLevel0Bytes, checkpointLevel0Tables, checkpointLevel0SizeRatio, level0CompactionTrigger };
    const a = tempDir();
    const b = tempDir();
    try {
      let stats: ReturnType<ProofDB['stats']> | undefined;
      let reused = 0;
      const [paced, concurrent] = await Promise.all([runPaced(ops, a.dir, seed, SHAPE, (s) => (stats = s)), runConcurrent(ops, b.dir, SHAPE, (n) => (reused = n))]);
      // One run hashed every entry it compacted, the other took leaves from its leaf cache
      // (since its last reopen): the tables below are the same all the same.
      expect(stats!.compactionLeavesReused).toBe(0);
      expect(reused).toBeGreaterThan(0);
      // Which rule ran, and (with a byte bound) that merges and compactions into level 1 at the bound both happened.
      if (checkpointLevel0Bytes === 0) {
        expect(stats!.checkpointLevel0Merges).toBe(0);
        expect(stats!.checkpointCompactions).toBeGreaterThan(0);
      } else {
        expect(stats!.checkpointLevel0Merges).toBeGreaterThan(5);
        expect(stats!.checkpointCompactions).toBeGreaterThan(stats!.checkpointLevel0Merges);
      }
      // At most checkpointLevel0Tables level-0 tables in every checkpoint's table set.
      for (const snap of paced) expect(snap.tables.filter((t) => t.level === 0).length).toBeLessThanOrEqual(checkpointLevel0Tables);
      expect(paced.length).toBe(ops.filter((o) => o.t === 'checkpoint').length);
      expect(concurrent.length).toBe(paced.length);
      // The workload must really exercise flushes and compactions across levels.
      const last = paced[paced.length - 1];
      expect(new Set(last.tables.map((t) => t.level)).size, 'levels used').toBeGreaterThanOrEqual(2);
      expect(last.tables.length).toBeGreaterThan(4);
      for (let i = 0; i < paced.length; i++) {
        expect(concurrent[i].tables, `table set after checkpoint ${i}`).toEqual(paced[i].tables);
        expect(concurrent[i].masterRoot, `MasterRoot of checkpoint ${i}`).toBe(paced[i].masterRoot);
        expect(concurrent[i].seq).toBe(paced[i].seq);
        for (const [name, bytes] of paced[i].files) {
          expect(concurrent[i].files.get(name) === bytes, `bytes of ${name} after checkpoint ${i}`).toBe(true);
        }
      }
    } finally {
      a.cleanup();
      b.cleanup();
    }
  });
});
