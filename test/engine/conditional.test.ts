/**
 * Conditional writes (`ifVersion`, `ifAbsent`) and appends, model-based: random sequences mixing
 * put, putWithVersion, delete, batches, conditional operations and appends (and checkpoints and
 * reopens; single writes also issued several at once, so one group commit holds them) against a
 * plain model, in journal mode and in external-log mode. Every write's outcome
 * (its version, or which error it got) and every key's newest version and value must match.
 */
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConditionFailedError, ProofDB, ProofKVError, type WriteCondition, type WriteResult } from '../../src/index.js';
import { str, tempDir, TINY } from './harness.js';

const KEYS = ['a', 'b', 'c', 'k1'];
const MAX_VALUE = 64;
const key = fc.constantFrom(...KEYS);
const value = fc.string({ maxLength: 24 });
/** Versions near where keys are in a short run, so conditions both hold and fail. */
const cond: fc.Arbitrary<WriteCondition> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({}) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 8 }).map((v) => ({ ifVersion: v })) },
  { weight: 2, arbitrary: fc.constant({ ifAbsent: true }) },
);
const delCond: fc.Arbitrary<WriteCondition> = fc.oneof(fc.constant({}), fc.integer({ min: 0, max: 8 }).map((v) => ({ ifVersion: v })));

type Op =
  | { t: 'put'; key: string; value: string; c: WriteCondition }
  | { t: 'putv'; key: string; value: string; version: number; c: WriteCondition }
  | { t: 'del'; key: string; c: WriteCondition }
  | { t: 'append'; key: string; value: string; c: WriteCondition };

const single: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('put' as const), key, value, c: cond }),
  fc.record({ t: fc.constant('putv' as const), key, value, version: fc.integer({ min: 1, max: 10 }), c: cond }),
  fc.record({ t: fc.constant('del' as const), key, c: delCond }),
  fc.record({ t: fc.constant('append' as const), key, value, c: cond }),
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: single },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('batch' as const), ops: fc.array(single, { minLength: 1, maxLength: 5 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('group' as const), ops: fc.array(single, { minLength: 2, maxLength: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('checkpoint' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reopen' as const) }) },
);

/** Newest version, liveness and value of every key, and its whole history (oldest first). */
type State = Map<string, { version: number; live: boolean; value: string; history: Array<[number, 'put' | 'delete', string]> }>;
type Outcome = { versions: number[] } | { error: string; index?: number; currentVersion?: number; absent?: boolean };

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** The model: applies a batch to a copy of `state` and returns the outcome and the new state. */
function modelApply(state: State, ops: Op[]): { outcome: Outcome; state: State } {
  const next: State = new Map(state);
  const versions: number[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    const cur = next.get(op.key) ?? { version: 0, live: false, value: '', history: [] };
    if (op.c.ifVersion !== undefined && op.c.ifVersion !== cur.version) {
      return { outcome: { error: 'CONDITION_FAILED', index: i, currentVersion: cur.version, absent: !cur.live }, state };
    }
    if (op.c.ifAbsent && cur.live) return { outcome: { error: 'CONDITION_FAILED', index: i, currentVersion: cur.version, absent: false }, state };
    let version = cur.version + 1;
    if (op.t === 'putv') {
      version = op.version;
      if (version <= cur.version) return { outcome: { error: 'VERSION_NOT_INCREASING' }, state };
    }
    let v = op.t === 'del' ? '' : op.value;
    if (op.t === 'append') {
      v = (cur.live ? cur.value : '') + op.value;
      if (bytes(v) > MAX_VALUE) return { outcome: { error: 'VALUE_TOO_LARGE' }, state };
    }
    const kind = op.t === 'del' ? ('delete' as const) : ('put' as const);
    next.set(op.key, { version, live: op.t !== 'del', value: v, history: [...cur.history, [version, kind, v]] });
    versions.push(version);
  }
  return { outcome: { versions }, state: next };
}

function outcomeOf(err: unknown): Outcome {
  if (err instanceof ConditionFailedError) {
    return { error: err.code, index: err.index, currentVersion: err.currentVersion, absent: err.absent };
  }
  if (err instanceof ProofKVError) return { error: err.code };
  throw err;
}

type Step = Op | { t: 'batch'; ops: Op[] } | { t: 'group'; ops: Op[] } | { t: 'checkpoint' } | { t: 'reopen' };

async function run(mode: 'journal' | 'external', steps: Step[]): Promise<void> {
  const { dir, cleanup } = tempDir();
  const options = { ...TINY, maxValueSize: MAX_VALUE, ...(mode === 'external' ? { writeAheadLog: 'external' as const } : {}) };
  let db = await ProofDB.open(dir, options);
  let logIndex = 0;
  const wo = () => (mode === 'external' ? { logIndex: ++logIndex } : {});
  let state: State = new Map();
  try {
    for (const s of steps) {
      if (s.t === 'checkpoint') {
        await db.checkpoint(wo());
        continue;
      }
      if (s.t === 'reopen') {
        // External-log mode: only checkpointed state survives (the caller's log holds the rest), so reopen only in journal mode.
        if (mode === 'external') continue;
        await db.close();
        db = await ProofDB.open(dir, options);
        continue;
      }
      // A batch is one write; a group is several single writes issued at once (no await between
      // them), so the pipeline takes them as one group commit, in call order.
      const writes: Op[][] = s.t === 'batch' ? [s.ops] : s.t === 'group' ? s.ops.map((o) => [o]) : [[s]];
      const wanted: Outcome[] = [];
      for (const w of writes) {
        const r = modelApply(state, w);
        wanted.push(r.outcome);
        state = r.state;
      }
      const settle = (p: Promise<WriteResult[]>): Promise<Outcome> =>
        p.then((rs) => ({ versions: rs.map((r) => r.version) }), outcomeOf);
      const issued = writes.map((w) => {
        try {
          if (s.t === 'batch') {
            const b = db.batch();
            for (const o of w) {
              if (o.t === 'put') b.put(o.key, o.value, o.c);
              else if (o.t === 'putv') b.putWithVersion(o.key, o.value, o.version, o.c);
              else if (o.t === 'del') b.delete(o.key, o.c);
              else b.append(o.key, o.value, o.c);
            }
            return settle(db.write(b, wo()));
          }
          const o = w[0];
          const opts = { ...o.c, ...wo() };
          const one =
            o.t === 'put'
              ? db.put(o.key, o.value, opts)
              : o.t === 'putv'
                ? db.putWithVersion(o.key, o.value, o.version, opts)
                : o.t === 'del'
                  ? db.delete(o.key, opts)
                  : db.append(o.key, o.value, opts);
          return settle(one.then((r) => [r]));
        } catch (err) {
          return Promise.resolve(outcomeOf(err));
        }
      });
      expect(await Promise.all(issued), JSON.stringify(s)).toEqual(wanted);
      for (const k of KEYS) {
        const e = await db.getWithVersion(k, Number.MAX_SAFE_INTEGER);
        const m = state.get(k);
        expect(e?.version ?? 0, `version of ${k}`).toBe(m?.version ?? 0);
        expect(e ? e.kind === 'put' : false, `liveness of ${k}`).toBe(m?.live ?? false);
        expect(str(await db.get(k)), `value of ${k}`).toBe(m?.live ? m.value : undefined);
        const history = (await db.getVersionHistory(k)).map((h) => [h.version, h.kind, h.kind === 'put' ? str(h.value) : '']);
        expect(history, `history of ${k}`).toEqual(m?.history ?? []);
      }
    }
  } finally {
    await db.close();
    cleanup();
  }
}

describe('conditional writes and appends against a plain model', () => {
  for (const mode of ['journal', 'external'] as const) {
    it(`agree on every outcome and value (${mode} mode)`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 60 }), (steps) => run(mode, steps)),
        { numRuns: 40 },
      );
    }, 120_000);
  }
});

describe('appends in one group commit', () => {
  it('keep the bytes a group journals within the group bound, and every append lands', async () => {
    const { dir, cleanup } = tempDir();
    const db = await ProofDB.open(dir, { compactionThread: 'inline' });
    try {
      await db.put('big', new Uint8Array(900_000).fill(97));
      // Record the pending bytes of every journal flush (one flush per group commit), on every
      // journal: a freeze opens a new one.
      type Journal = { pendingBytes: number; flush: (o: unknown) => Promise<void> };
      const proto = Object.getPrototypeOf((db as unknown as { core: { journal: Journal } }).core.journal) as Journal;
      const flushed: number[] = [];
      const flush = proto.flush;
      proto.flush = function (this: Journal, o: unknown) {
        flushed.push(this.pendingBytes);
        return flush.call(this, o);
      };
      onTestFinished(() => {
        proto.flush = flush;
      });
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => db.append('big', String.fromCharCode(65 + i))));
      expect(results.map((r) => r.version)).toEqual(Array.from({ length: 12 }, (_, i) => i + 2));
      const v = (await db.get('big'))!;
      expect(v.length).toBe(900_012);
      expect(Buffer.from(v.subarray(900_000)).toString()).toBe('ABCDEFGHIJKL');
      // Each append journals its whole ~900 KB value: a group holds at most 4 of them (4 MiB), so
      // 12 appends need at least 3 groups, none above the bound (plus record framing).
      expect(flushed.length).toBeGreaterThanOrEqual(3);
      for (const b of flushed) expect(b).toBeLessThan(4 * 1024 * 1024 + 64 * 1024);
    } finally {
      await db.close();
      cleanup();
    }
  });
});
