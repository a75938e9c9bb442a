/**
 * Commit times (docs/engine.md § Commit times), model-based: random puts, deletes, appends,
 * batches, refused writes, checkpoints (flushes and compactions) and reopens, with explicit times
 * that sometimes go backwards and writes without a time. A model keeps, per key, every version
 * with the time it must have: `max(given, previous commit time)`. After every step that can move
 * data (checkpoint, reopen) and at the end, every key's history — times included — must equal
 * the model's, times must never decrease with the version, and proofs must carry the same times.
 * Also: a directory from before commit times is refused, unchanged.
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProofDB, WriteBatch } from '../../src/index.js';
import { backupDatabase, restoreDatabase } from '../../src/backup/backup.js';
import { encodeBatch } from '../../src/journal/batch.js';
import { JournalWriter } from '../../src/journal/writer.js';
import { Kind } from '../../proofs/hash.js';
import { tempDir, TINY } from './harness.js';

type Op =
  | { t: 'put' | 'append'; key: string; value: string; dt: number | null }
  | { t: 'del'; key: string; dt: number | null }
  | { t: 'batch'; ops: Array<{ key: string; value: string | null }>; dt: number | null }
  | { t: 'refused'; key: string; dt: number }
  | { t: 'checkpoint' }
  | { t: 'reopen' };

const key = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const value = fc.string({ maxLength: 40 });
/** A step of the caller's clock: forwards mostly, sometimes backwards; null = no time given. */
const dt = fc.option(fc.integer({ min: -5_000, max: 20_000 }), { nil: null });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constantFrom('put' as const, 'append' as const), key, value, dt }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), key, dt }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('batch' as const), ops: fc.array(fc.record({ key, value: fc.option(value, { nil: null }) }), { minLength: 1, maxLength: 4 }), dt }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('refused' as const), key, dt: fc.integer({ min: -5_000, max: 20_000 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'checkpoint' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
);

const T0 = 1_800_000_000_000;

describe('commit times against a model', () => {
  it('every version keeps the time max(given, previous); times survive checkpoints, compactions and reopens', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 10, maxLength: 70 }), async (ops) => {
        const { dir, cleanup } = tempDir();
        const options = { ...TINY, compactionThread: 'inline' as const };
        let db = await ProofDB.open(dir, options);
        /** Per key: the time of each version, oldest first. */
        const model = new Map<string, number[]>();
        let clock = T0;
        let last = 0;
        const versions = (k: string) => model.get(k) ?? [];
        const check = async () => {
          for (const [k, times] of model) {
            const h = await db.getVersionHistory(k);
            expect(h.map((e) => e.time), `times of ${k}`).toEqual(times);
            for (let i = 1; i < h.length; i++) expect(h[i].time).toBeGreaterThanOrEqual(h[i - 1].time);
          }
        };
        try {
          for (const o of ops) {
            if (o.t === 'checkpoint') {
              await db.checkpoint();
              await check();
              continue;
            }
            if (o.t === 'reopen') {
              await db.close();
              db = await ProofDB.open(dir, options);
              await check();
              continue;
            }
            if (o.dt !== null) clock += o.dt;
            const given = o.dt === null ? undefined : clock;
            const opt = given === undefined ? {} : { time: given };
            const before = Date.now();
            let times: number[];
            let keys: string[];
            switch (o.t) {
              case 'put':
              case 'append':
                times = [(o.t === 'put' ? await db.put(o.key, o.value, opt) : await db.append(o.key, o.value, opt)).time];
                keys = [o.key];
                break;
              case 'del':
                times = [(await db.delete(o.key, opt)).time];
                keys = [o.key];
                break;
              case 'refused':
                // A failed condition writes nothing and does not move the time.
                await expect(db.put(o.key, 'x', { time: clock + o.dt, ifVersion: versions(o.key).length + 7 })).rejects.toMatchObject({ code: 'CONDITION_FAILED' });
                continue;
              case 'batch': {
                const b = new WriteBatch();
                for (const x of o.ops) x.value === null ? b.delete(x.key) : b.put(x.key, x.value);
                times = (await db.write(b, opt)).map((r) => r.time);
                keys = o.ops.map((x) => x.key);
                break;
              }
            }
            const after = Date.now();
            // One batch, one time: max(given, previous); without one, the clock's, never below the previous.
            expect(new Set(times).size).toBe(1);
            const t = times[0];
            if (given !== undefined) expect(t).toBe(Math.max(given, last));
            else {
              expect(t).toBeGreaterThanOrEqual(Math.max(last, before));
              expect(t).toBeLessThanOrEqual(Math.max(last, after));
            }
            last = t;
            for (const k of keys) model.set(k, [...versions(k), t]);
          }
          await db.checkpoint();
          await check();
          // Proofs carry the same times.
          for (const [k, times] of model) {
            const p = await db.getVersionHistoryWithProof(k);
            expect(p.entries.map((e) => e.time), `proven times of ${k}`).toEqual(times);
          }
          // The last commit time is known after a restart: a write with an older time gets it.
          await db.close();
          db = await ProofDB.open(dir, options);
          expect((await db.put('z', 'after', { time: 1 })).time).toBe(Math.max(last, 1));
        } finally {
          await db.close();
          cleanup();
        }
      }),
      { numRuns: 15 },
    );
  }, 120_000);

  it('refuses a time that is not a non-negative safe integer, and consumes nothing', async () => {
    const { dir, cleanup } = tempDir();
    const db = await ProofDB.open(dir, TINY);
    try {
      for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, '5' as unknown as number]) {
        await expect(db.put('k', 'v', { time: bad })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
      expect(await db.getVersionHistory('k')).toEqual([]);
      expect((await db.put('k', 'v', { time: 5 })).version).toBe(1);
    } finally {
      await db.close();
      cleanup();
    }
  });

  it('a restored backup resumes commit times from its tables (never below the latest restored time)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const src = path.join(dir, 'src');
      const db = await ProofDB.open(src, TINY);
      await db.put('k', 'a', { time: T0 + 5 });
      await db.put('k', 'b', { time: T0 + 9 });
      await db.checkpoint();
      await db.close();
      await backupDatabase(src, path.join(dir, 'bak'));
      await restoreDatabase(path.join(dir, 'bak'), path.join(dir, 'restored'), { nodeKey: fs.readFileSync(path.join(src, 'NODE_KEY')) });
      const r = await ProofDB.open(path.join(dir, 'restored'), TINY);
      try {
        expect((await r.getVersionHistory('k')).map((e) => e.time)).toEqual([T0 + 5, T0 + 9]);
        expect((await r.put('k', 'c', { time: 1 })).time).toBe(T0 + 9);
      } finally {
        await r.close();
      }
    } finally {
      cleanup();
    }
  });

  it('refuses a directory whose journal was written before commit times (OUTDATED_FORMAT), leaving it unchanged', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = await ProofDB.open(dir, TINY);
      await db.close();
      const journals = fs.readdirSync(dir).filter((n) => n.endsWith('.log'));
      expect(journals.length).toBe(1);
      // A record as the previous release wrote it: tag 0x10, no time (the journal written anew).
      fs.rmSync(path.join(dir, journals[0]));
      const w = JournalWriter.open(path.join(dir, journals[0]), { syncMode: 'blocking' });
      w.addRecord(encodeBatch(1, [{ kind: Kind.PUT, key: new TextEncoder().encode('old'), version: 1, value: new TextEncoder().encode('v') }]));
      await w.flush({ sync: true });
      await w.close();
      const files = () => fs.readdirSync(dir).filter((n) => n !== 'LOCK').map((n) => [n, fs.readFileSync(path.join(dir, n)).toString('hex')]);
      const before = files();
      await expect(ProofDB.open(dir, TINY)).rejects.toMatchObject({ code: 'OUTDATED_FORMAT' });
      expect(files()).toEqual(before);
    } finally {
      cleanup();
    }
  });
});
