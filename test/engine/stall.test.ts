/**
 * The write stall of issue 13: up to `maxFrozenMemtables` frozen memtables wait for their flush
 * installs (which wait for the compactions picked before them) before a write that fills the
 * memtable waits too. That bound is never exceeded, and it changes only when writers wait, never
 * what is written: the table set after each checkpoint is the same with any bound and any
 * compaction timing (docs/engine.md § Compaction scheduling).
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { mulberry32 } from '../support/prng.js';
import { tempDir } from './harness.js';

/** The default shape's proportions (issue 13) at 1/4096 of its size, so a test fills many memtables. */
const SHAPE: DBOptions = {
  writeBufferSize: 16 * 1024,
  targetFileSize: 16 * 1024,
  maxBytesForLevelBase: 64 * 1024,
  blockSize: 512,
};

const at = (i: number) => ({ time: 1_700_000_000_000 + i });

const realSync = fs.fdatasyncSync;
const realAsync = fs.fdatasync;
afterEach(() => {
  fs.fdatasyncSync = realSync;
  fs.fdatasync = realAsync;
  syncBuiltinESMExports();
});

const eio = () => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });

/** The next sync called from a manifest append (the manifest syncs in the threadpool) throws EIO. */
function failNextManifestSync(): () => number {
  let failed = 0;
  const fail = () => failed === 0 && (new Error().stack ?? '').includes('VersionSet.logAndApply') && ++failed > 0;
  fs.fdatasyncSync = (fd: number) => {
    if (fail()) throw eio();
    realSync(fd);
  };
  fs.fdatasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    if (fail()) process.nextTick(cb, eio());
    else realAsync(fd, cb);
  }) as typeof fs.fdatasync;
  syncBuiltinESMExports();
  return () => failed;
}

/** A gate the inline compactions wait at (`compactionDelay`) until it is opened. */
function gate(): { wait: () => Promise<void>; open: () => void; waiting: () => number } {
  let opened = false;
  let waiting = 0;
  const waiters: Array<() => void> = [];
  return {
    wait: () => {
      if (opened) return Promise.resolve();
      waiting++;
      return new Promise<void>((r) => waiters.push(r));
    },
    open: () => {
      opened = true;
      for (const w of waiters.splice(0)) w();
    },
    waiting: () => waiting,
  };
}

/** 20 batches of 50 puts (~140 accounted bytes each): about 7 KiB a batch. */
function batchOf(db: ProofDB, b: number) {
  const batch = db.batch();
  for (let j = 0; j < 50; j++) batch.put(`k${((b * 50 + j) * 7919) % 100_003}`, `${b}:${j}:`.padEnd(100, 'v'));
  return batch;
}

/** Table sets after each checkpoint of a fixed workload, writes issued without waiting. */
async function run(options: DBOptions, delay: () => Promise<void>, maxSeen: { frozen: number }): Promise<unknown[]> {
  const t = tempDir();
  const db = await ProofDB.open(t.dir, { ...SHAPE, ...options, compactionThread: 'inline', compactionDelay: delay });
  const sets: unknown[] = [];
  try {
    for (let round = 0; round < 3; round++) {
      const writes: Promise<unknown>[] = [];
      for (let b = 0; b < 60; b++) {
        const i = round * 60 + b;
        writes.push(db.write(batchOf(db, i), at(i)));
        const st = db.stats();
        maxSeen.frozen = Math.max(maxSeen.frozen, st.frozenMemtables);
        if (b % 7 === 0) await Promise.resolve();
      }
      await Promise.all(writes);
      await db.checkpoint();
      sets.push(db.tables());
    }
  } finally {
    await db.close();
    t.cleanup();
  }
  return sets;
}

describe('write stall', () => {
  it('frozen memtables queue up to maxFrozenMemtables while compactions are held, then the writer waits; nothing exceeds the bound', async () => {
    const t = tempDir();
    const g = gate();
    const db = await ProofDB.open(t.dir, { ...SHAPE, maxFrozenMemtables: 3, compactionThread: 'inline', compactionDelay: g.wait });
    try {
      let settled = 0;
      const writes: Promise<unknown>[] = [];
      // ~15 memtables of writes: level 0 reaches its trigger after 4 flushes and the compaction is held.
      for (let b = 0; b < 35; b++) writes.push(db.write(batchOf(db, b), at(b)).then(() => settled++));
      for (let i = 0; i < 400 && settled < writes.length; i++) {
        await new Promise((r) => setTimeout(r, 5));
        const st = db.stats();
        expect(st.frozenMemtables).toBeLessThanOrEqual(3);
        expect(st.frozenBytes).toBeLessThanOrEqual(3 * (16 * 1024 + 50 * 160));
        // Stopped: the compaction is held, three frozen memtables wait, a write waits for them.
        if (g.waiting() > 0 && st.frozenMemtables === 3 && settled < writes.length) break;
      }
      expect(g.waiting(), 'a compaction is held').toBeGreaterThan(0);
      expect(db.stats().frozenMemtables).toBe(3);
      expect(settled, 'the writer waits once three memtables are frozen').toBeLessThan(writes.length);
      g.open();
      await Promise.all(writes);
      await db.waitForCompactions();
      expect(db.stats().frozenMemtables).toBe(0);
      expect(db.stats().stallMs).toBeGreaterThan(0);
    } finally {
      g.open();
      await db.close();
      t.cleanup();
    }
  }, 60_000);

  it('a failed install with frozen memtables queued behind it: recovery installs them in freeze order and nothing is lost', async () => {
    const writeAll = async (db: ProofDB) => {
      const writes: Promise<unknown>[] = [];
      for (let b = 0; b < 35; b++) writes.push(db.write(batchOf(db, b), at(b)));
      return writes;
    };

    const t = tempDir();
    const g = gate();
    const db = await ProofDB.open(t.dir, { ...SHAPE, maxFrozenMemtables: 3, compactionThread: 'inline', compactionDelay: g.wait });
    try {
      const writes = (await writeAll(db)).map((w) => w.catch((e: Error) => e));
      for (let i = 0; i < 400 && !(g.waiting() > 0 && db.stats().frozenMemtables === 3); i++) await new Promise((res) => setTimeout(res, 5));
      expect(db.stats().frozenMemtables, 'three frozen memtables wait behind a held compaction').toBe(3);
      // The held compaction's install fails; the three flush installs behind it fail with it.
      const failed = failNextManifestSync();
      g.open();
      for (let i = 0; i < 2000 && db.writeFault() === undefined; i++) await new Promise((res) => setTimeout(res, 5));
      expect(failed()).toBe(1);
      expect(db.writeFault()?.component).toBe('flush');
      for (let i = 0; i < 2000 && db.writeFault() !== undefined; i++) await new Promise((res) => setTimeout(res, 10));
      expect(db.writeFault()).toBeUndefined();
      expect(db.stats().faultRecoveries).toBe(1);
      // Writes refused during the fault are sent again, in order, as a client would.
      const results = await Promise.all(writes);
      for (const [b, res] of results.entries()) if (res instanceof Error) await db.write(batchOf(db, b), at(b));
      await db.checkpoint();
      expect(db.stats().frozenMemtables).toBe(0);
      // Every write is there, once, and the database reopens to the same.
      const check = async (d: ProofDB) => {
        for (let b = 0; b < 35; b++) {
          for (let j = 0; j < 50; j += 7) {
            const e = await d.getWithVersion(`k${((b * 50 + j) * 7919) % 100_003}`, Number.MAX_SAFE_INTEGER);
            expect(e?.version, `batch ${b} op ${j}`).toBe(1);
            expect(new TextDecoder().decode(e!.value)).toBe(`${b}:${j}:`.padEnd(100, 'v'));
          }
        }
      };
      await check(db);
      expect(db.stats().lastSeq).toBe(35 * 50);
      await db.close();
      const again = await ProofDB.open(t.dir, { compactionThread: 'inline' });
      await check(again);
      await again.close();
    } finally {
      g.open();
      await db.close();
      t.cleanup();
    }
  }, 120_000);

  it('the table set after each checkpoint is the same with any bound and any compaction timing', async () => {
    const rnd = mulberry32(13);
    const slow = () => new Promise<void>((r) => setTimeout(r, Math.floor(rnd() * 20)));
    const now = () => Promise.resolve();
    const seen = { frozen: 0 };
    const reference = await run({ maxFrozenMemtables: 1 }, now, { frozen: 0 });
    const queued = await run({ maxFrozenMemtables: 4 }, slow, seen);
    const defaults = await run({}, slow, { frozen: 0 });
    expect(reference.length).toBe(3);
    expect((reference[2] as unknown[]).length, 'tables at the end').toBeGreaterThan(3);
    expect(queued).toEqual(reference);
    expect(defaults).toEqual(reference);
    expect(seen.frozen).toBeLessThanOrEqual(4);
  }, 120_000);
});
