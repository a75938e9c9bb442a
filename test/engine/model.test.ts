/**
 * Property test: random operation sequences (writes, batches, explicit versions including
 * rejected ones, deletes, checkpoints, close/reopen, snapshots) against the reference model, with
 * and without a tight bound on open table files.
 * Every read of every kind must agree with the model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProofDB, WriteBatch, type Snapshot } from '../../src/index.js';
import { asModel, Model, str, tempDir, TINY } from './harness.js';

const KEYS = ['a', 'b', 'k1', 'k10', 'k2', 'key', 'key0', 'z', 'zz', '\u00e9t\u00e9'];
const key = fc.constantFrom(...KEYS);
const value = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ minLength: 100, maxLength: 300 }));

const op = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('put' as const), key, value }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('putv' as const), key, value, bump: fc.integer({ min: -2, max: 5 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), key }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('batch' as const),
      ops: fc.array(fc.record({ del: fc.boolean(), key, value, bump: fc.option(fc.integer({ min: -1, max: 3 })) }), {
        minLength: 1,
        maxLength: 6,
      }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('checkpoint' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reopen' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapshot' as const) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('read' as const), key, v: fc.integer({ min: 0, max: 12 }) }) },
);

async function checkAll(db: ProofDB, model: Model, snap?: { s: Snapshot; seq: number }): Promise<void> {
  for (const k of KEYS) {
    expect(str(await db.get(k)), `get ${k}`).toEqual(model.get(k));
    expect((await db.getVersionHistory(k)).map(asModel), `history ${k}`).toEqual(model.history(k));
    if (snap) {
      expect(str(await snap.s.get(k)), `snapshot get ${k}`).toEqual(model.get(k, snap.seq));
      expect((await snap.s.getVersionHistory(k)).map(asModel)).toEqual(model.history(k, 0, Number.MAX_SAFE_INTEGER, undefined, snap.seq));
    }
  }
  const scan = (await db.iterator().all()).map((e) => [str(e.key), str(e.value)]);
  expect(scan, 'forward scan').toEqual(model.scan());
  const rev = (await db.iterator({ reverse: true }).all()).map((e) => [str(e.key), str(e.value)]);
  expect(rev, 'reverse scan').toEqual(model.scan().reverse());
  const ranged = (await db.iterator({ gte: 'k1', lt: 'key0' }).all()).map((e) => [str(e.key), str(e.value)]);
  expect(ranged, 'range scan').toEqual(model.scan(Infinity, 'k1', 'key0'));
  const all = (await db.iterator({ allVersions: true }).all()).map((e) => [str(e.key), e.version]);
  const want: Array<[string, number]> = [];
  for (const [k] of [...model.keys.entries()].sort((x, y) => Buffer.compare(Buffer.from(x[0]), Buffer.from(y[0])))) {
    for (const e of model.history(k).slice().reverse()) want.push([k, e.version]);
  }
  expect(all, 'all-versions scan').toEqual(want);
  if (snap) {
    const s = (await snap.s.iterator().all()).map((e) => [str(e.key), str(e.value)]);
    expect(s, 'snapshot scan').toEqual(model.scan(snap.seq));
  }
}

describe('engine against the reference model', () => {
  it('agrees on every read for random operation sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 20, maxLength: 120 }), fc.boolean(), fc.boolean(), async (ops, useWorker, fewFds) => {
        const { dir, cleanup } = tempDir();
        // fewFds: every table read from its file, with at most 2 open at once (descriptors closed and reopened under reads).
        const options = {
          ...TINY,
          compactionThread: useWorker ? ('worker' as const) : ('inline' as const),
          ...(fewFds ? { tableMemoryBytes: 0, maxOpenTables: 2 } : {}),
        };
        let db = await ProofDB.open(dir, options);
        const model = new Model();
        let snap: { s: Snapshot; seq: number } | undefined;
        try {
          for (const o of ops) {
            const watchdog = setTimeout(() => {
              console.error('operation hung:', JSON.stringify(o), 'worker:', useWorker, 'fewFds:', fewFds, 'ops:', JSON.stringify(ops));
            }, 10_000);
            try {
            switch (o.t) {
              case 'put': {
                const r = await db.put(o.key, o.value);
                expect(model.apply([{ kind: 'put', key: o.key, value: o.value }])).toBe(true);
                expect(r.version).toBe(model.latest(o.key));
                expect(r.seq).toBe(model.lastSeq);
                break;
              }
              case 'putv': {
                const version = Math.max(1, model.latest(o.key) + o.bump);
                const ok = model.apply([{ kind: 'put', key: o.key, value: o.value, version }]);
                if (ok) expect((await db.putWithVersion(o.key, o.value, version)).version).toBe(version);
                else await expect(db.putWithVersion(o.key, o.value, version)).rejects.toMatchObject({ code: 'VERSION_NOT_INCREASING' });
                break;
              }
              case 'del':
                await db.delete(o.key);
                model.apply([{ kind: 'delete', key: o.key }]);
                break;
              case 'batch': {
                const b = new WriteBatch();
                const mops: Parameters<Model['apply']>[0] = [];
                const local = new Map<string, number>();
                for (const x of o.ops) {
                  const latest = local.get(x.key) ?? model.latest(x.key);
                  const version = x.bump === null ? undefined : Math.max(1, latest + x.bump);
                  local.set(x.key, version ?? latest + 1);
                  if (x.del) {
                    b.delete(x.key);
                    mops.push({ kind: 'delete', key: x.key });
                    local.set(x.key, latest + 1);
                  } else if (version === undefined) {
                    b.put(x.key, x.value);
                    mops.push({ kind: 'put', key: x.key, value: x.value });
                  } else {
                    b.putWithVersion(x.key, x.value, version);
                    mops.push({ kind: 'put', key: x.key, value: x.value, version });
                  }
                }
                if (model.apply(mops)) await db.write(b);
                else await expect(db.write(b)).rejects.toMatchObject({ code: 'VERSION_NOT_INCREASING' });
                break;
              }
              case 'checkpoint': {
                const r = await db.checkpoint();
                expect(r.seq).toBe(model.lastSeq);
                break;
              }
              case 'reopen':
                snap = undefined;
                await db.close();
                db = await ProofDB.open(dir, options);
                break;
              case 'snapshot':
                snap?.s.release();
                snap = { s: db.snapshot(), seq: model.lastSeq };
                break;
              case 'read': {
                const want = model.getWithVersion(o.key, o.v);
                expect(asModel(await db.getWithVersion(o.key, o.v))).toEqual(want);
                const h = await db.getVersionHistory(o.key, { minVersion: o.v, maxVersion: o.v + 3, limit: 2 });
                expect(h.map(asModel)).toEqual(model.history(o.key, o.v, o.v + 3, 2));
                break;
              }
            }
            } finally {
              clearTimeout(watchdog);
            }
          }
          await checkAll(db, model, snap);
          await db.close();
          db = await ProofDB.open(dir, options);
          await checkAll(db, model);
        } finally {
          await db.close();
          cleanup();
        }
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 150), endOnFailure: true },
    );
  });
});
