/**
 * Honest get, history and scan proofs always verify, and prove what the database holds at the
 * checkpoint. Random operation sequences (puts, explicit versions, deletes, batches, several
 * checkpoints) run against a TINY-option engine, so the checkpoint's tables spread over several
 * levels; then every key of interest (present, deleted, absent, before / between / after all
 * tables) is read with proofs at many versions and checked against a plain model at the
 * checkpoint's seq, with `verifyGetProof` / `verifyHistoryProof` and their default hasher
 * (node:crypto, which importing `src/index.ts` installs; sha256_install.test.ts cross-checks it
 * against noble).
 *
 * Replay a failure with PROOFKV_SEED=<seed> (the seed is printed in the failure message).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Reason, type Verified } from '../../proofs/errors.js';
import { verifyGetProof, verifyHistoryProof, type GetFacts, type HistoryFacts, type ProvenEntry } from '../../proofs/lsm_proof.js';
import { verifyScanProof, type ScanFacts } from '../../proofs/lsm_scan.js';
import { ProofDB, WriteBatch, type VersionEntry } from '../../src/index.js';
import { Model, tempDir, TINY, type ModelEntry } from '../engine/harness.js';
import { dec, enc, norm, World } from './lsm_helpers.js';

const MAX = Number.MAX_SAFE_INTEGER;
const KEYS = ['a', 'b', 'c', 'k1', 'k10', 'k2', 'k3', 'key', 'key0', 'm', 'p', 'z', 'zz', 'long-key-'.repeat(6)];
/** Keys never written: before every table, between keys, a prefix, after every table. */
const PROBES = ['0', 'k15', 'k', 'zzz'];

type Trust = { publicKeys: Uint8Array[]; quorum: number };

const asModel = (e: ProvenEntry | VersionEntry | undefined): ModelEntry | undefined =>
  e && { version: e.version, seq: e.seq, kind: e.kind, value: dec(e.value) };

function ok<T extends object>(r: Verified<T>, what: string): T {
  if (!r.ok) return expect.fail(`${what}: ${r.reason}: ${r.message}`);
  return r;
}

/** Versions worth asking for a key: 0, 1, the middle, the latest, just above, far above. */
function versionsFor(model: Model, key: string, seq: number): number[] {
  const h = model.visible(key, seq);
  const latest = h.length ? h[h.length - 1].version : 0;
  const mid = h.length ? h[Math.floor(h.length / 2)].version : 3;
  const some = [mid - 1, latest + 1, 2 ** 40][Math.floor(h.length % 3)];
  return [...new Set([0, 1, mid, latest, Math.max(0, some), MAX])];
}

/** Every get and history check for one checkpoint. */
async function checkCheckpoint(db: ProofDB, model: Model, seq: number, trust: Trust, world: World | undefined, opts: { full: boolean }): Promise<void> {
  const cpIndex = db.latestCheckpoint().checkpoint.index;
  await checkScans(db, model, seq, trust, world);
  for (const key of [...KEYS, ...PROBES]) {
    const k = enc(key);
    const versions = opts.full ? versionsFor(model, key, seq) : [0, MAX];
    for (const version of versions) {
      const { proof, entry } = await db.getWithProof(key, { version: version === MAX ? undefined : version });
      const facts = ok<GetFacts>(verifyGetProof(proof, { key: k, version }, { trust }), `get ${key}@${version}`);
      const want = model.getWithVersion(key, version, seq);
      expect(asModel(facts.entry), `proven get ${key}@${version}`).toEqual(want);
      expect(asModel(entry), `returned get ${key}@${version}`).toEqual(want);
      expect(facts.checkpoint.index).toBe(cpIndex);
      expect(facts.checkpoint.seq).toBe(seq);
      if (world) expect(norm(proof.body), `reference prover ${key}@${version}`).toEqual(norm(world.refGet(k, version).body));
    }
    // Whole history, then in pieces.
    const full = model.history(key, 0, MAX, undefined, seq);
    const h = await db.getVersionHistoryWithProof(key);
    const hf = ok<HistoryFacts>(verifyHistoryProof(h.proof, { key: k }, { trust }), `history ${key}`);
    expect(hf.entries.map(asModel), `history ${key}`).toEqual(full);
    expect(h.entries.map(asModel)).toEqual(full);
    expect(hf.nextMinVersion).toBeUndefined();
    if (!opts.full) continue;
    if (full.length > 0) {
      const lo = full[Math.floor(full.length / 3)].version;
      const hi = full[Math.floor((2 * full.length) / 3)].version;
      const r = await db.getVersionHistoryWithProof(key, { minVersion: lo, maxVersion: hi });
      const rf = ok<HistoryFacts>(verifyHistoryProof(r.proof, { key: k, minVersion: lo, maxVersion: hi }, { trust }), `history ${key} [${lo}, ${hi}]`);
      expect(rf.entries.map(asModel)).toEqual(model.history(key, lo, hi, undefined, seq));
    }
    // Continuations: a limit that takes a few steps (1 for short histories).
    for (const limit of [Math.max(1, Math.ceil(full.length / 4))]) {
      const got: ModelEntry[] = [];
      let min = 0;
      for (let step = 0; ; step++) {
        expect(step, 'continuations terminate').toBeLessThanOrEqual(full.length + 1);
        const q = { key: k, minVersion: min, limit };
        const r = await db.getVersionHistoryWithProof(key, { minVersion: min, limit });
        const rf = ok<HistoryFacts>(verifyHistoryProof(r.proof, q, { trust }), `history ${key} from ${min} limit ${limit}`);
        expect(rf.entries.map(asModel)).toEqual(model.history(key, min, rf.bound, undefined, seq));
        expect(rf.entries.length).toBeLessThanOrEqual(limit);
        expect(r.nextMinVersion).toBe(rf.nextMinVersion);
        expect(r.entries.map(asModel)).toEqual(rf.entries.map(asModel));
        got.push(...rf.entries.map((e) => asModel(e)!));
        if (rf.nextMinVersion === undefined) break;
        min = rf.nextMinVersion;
      }
      expect(got, `history ${key} rebuilt from limit ${limit} continuations`).toEqual(full);
    }
  }
}

/** Ranges worth scanning: all, a prefix, inner ranges, ranges between, before and after all keys. */
const SCAN_RANGES: Array<{ start: string; end?: string }> = [
  { start: '' },
  { start: 'k', end: 'l' },
  { start: 'b', end: 'm' },
  { start: 'k10', end: 'k3' },
  { start: 'key', end: 'zz' },
  { start: 'k15', end: 'k16' },
  { start: '', end: '0' },
  { start: 'zzz' },
];

/** The newest entry of every key in [start, end) at `seq`, tombstones too, in key order. */
function modelScan(model: Model, seq: number, start: string, end: string | undefined): Array<{ key: string; e: ModelEntry }> {
  const out: Array<{ key: string; e: ModelEntry }> = [];
  const keys = [...model.keys.keys()].filter((k) => k >= start && (end === undefined || k < end)).sort((a, b) => Buffer.compare(enc(a), enc(b)));
  for (const key of keys) {
    const e = model.getWithVersion(key, MAX, seq);
    if (e) out.push({ key, e });
  }
  return out;
}

/** Every scan check for one checkpoint: whole ranges, pages chained by their proven cursor, tombstones, edges. */
async function checkScans(db: ProofDB, model: Model, seq: number, trust: Trust, world: World | undefined): Promise<void> {
  const cert = (await db.getWithProof('a')).proof.certificate;
  for (const range of SCAN_RANGES) {
    const end = range.end === undefined ? undefined : enc(range.end);
    const want = modelScan(model, seq, range.start, range.end);
    for (const includeTombstones of [false, true]) {
      const expected = want.filter((x) => includeTombstones || x.e.kind === 'put').map((x) => ({ key: x.key, ...x.e }));
      for (const limit of [undefined, 1, 3]) {
        const got: Array<ModelEntry & { key: string }> = [];
        let start = enc(range.start);
        for (let page = 0; ; page++) {
          expect(page, 'scan pages terminate').toBeLessThanOrEqual(want.length + 1);
          const edges = page % 2 === 1;
          const q = { start, end, limit, includeTombstones, edges };
          const r = await db.scanWithProof(q);
          const what = `scan [${range.start}, ${range.end}) page ${page} limit ${limit} tombstones ${includeTombstones}`;
          const f = ok<ScanFacts>(verifyScanProof(r.proof, q, { trust }), what);
          expect(f.keysCovered, what).toBeLessThanOrEqual(limit ?? Infinity);
          expect(f.entries.map((e) => dec(e.key)), what).toEqual(r.entries.map((e) => dec(e.key)));
          if (world) expect(norm(r.proof), `reference prover: ${what}`).toEqual(norm(world.scanProof(cert, q)));
          got.push(...f.entries.map((e) => ({ key: dec(e.key), ...asModel(e)! })));
          expect(r.nextStart && norm(r.nextStart)).toEqual(f.nextStart && norm(f.nextStart));
          if (!f.nextStart) break;
          start = f.nextStart;
        }
        expect(got, `scan [${range.start}, ${range.end}) by pages of ${limit}`).toEqual(expected);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

const key = fc.constantFrom(...KEYS);
const value = fc.oneof(fc.string({ maxLength: 10 }), fc.string({ minLength: 100, maxLength: 300 }));
const op = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('put' as const), key, value }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('putv' as const), key, value, bump: fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constant(1_000_000)) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), key }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('batch' as const),
      ops: fc.array(fc.record({ del: fc.boolean(), key, value, bump: fc.option(fc.integer({ min: 1, max: 3 })) }), { minLength: 1, maxLength: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('checkpoint' as const) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

async function apply(db: ProofDB, model: Model, o: Op): Promise<void> {
  switch (o.t) {
    case 'put':
      await db.put(o.key, o.value);
      model.apply([{ kind: 'put', key: o.key, value: o.value }]);
      return;
    case 'putv': {
      const version = model.latest(o.key) + o.bump;
      if (version < 1) return;
      const accepted = model.apply([{ kind: 'put', key: o.key, value: o.value, version }]);
      if (accepted) await db.putWithVersion(o.key, o.value, version);
      else await expect(db.putWithVersion(o.key, o.value, version)).rejects.toThrow();
      return;
    }
    case 'del':
      await db.delete(o.key);
      model.apply([{ kind: 'delete', key: o.key }]);
      return;
    case 'batch': {
      const b = new WriteBatch();
      const mops: Parameters<Model['apply']>[0] = [];
      const local = new Map<string, number>();
      for (const x of o.ops) {
        const latest = local.get(x.key) ?? model.latest(x.key);
        if (x.del) {
          b.delete(x.key);
          mops.push({ kind: 'delete', key: x.key });
          local.set(x.key, latest + 1);
        } else if (x.bump === null) {
          b.put(x.key, x.value);
          mops.push({ kind: 'put', key: x.key, value: x.value });
          local.set(x.key, latest + 1);
        } else {
          b.putWithVersion(x.key, x.value, latest + x.bump);
          mops.push({ kind: 'put', key: x.key, value: x.value, version: latest + x.bump });
          local.set(x.key, latest + x.bump);
        }
      }
      expect(model.apply(mops)).toBe(true);
      await db.write(b);
      return;
    }
    case 'checkpoint':
      await db.checkpoint();
      return;
  }
}

function seedFor(name: string): number {
  const env = process.env.PROOFKV_SEED;
  return env !== undefined ? Number(env) : (Date.now() ^ name.length * 0x9e3779b1) >>> 0;
}

/** fc.assert with the seed in the failure message. */
async function property<T>(name: string, arb: fc.Arbitrary<T>, run: (t: T) => Promise<void>, numRuns: number): Promise<void> {
  const seed = seedFor(name);
  try {
    await fc.assert(fc.asyncProperty(arb, run), { seed, numRuns, endOnFailure: true });
  } catch (e) {
    throw new Error(`${name} failed; replay with PROOFKV_SEED=${seed}\n${(e as Error).message}`, { cause: e });
  }
}

describe('honest proofs over random databases', () => {
  it('every get, history and scan proof verifies and agrees with the model at the checkpoint', async () => {
    const shapes: number[][] = [];
    // Checkpoints compact level 0 when it holds more than `levels0` tables; 64 leaves it as the
    // compaction policy left it (several overlapping level-0 tables). Two properties, so that both
    // shapes occur in every run of the test whatever the seed.
    const run = (name: string, levels0: fc.Arbitrary<number>, triggers: fc.Arbitrary<number>, numRuns: number) =>
      property(
        name,
        fc.record({
          ops: fc.array(op, { minLength: 40, maxLength: 250, size: 'max' }),
          endWithEmptyMemtable: fc.boolean(),
          writeAfter: fc.boolean(),
          // Level 0 compacted at 2 tables (TINY) or allowed to keep up to 3 overlapping ones.
          level0CompactionTrigger: triggers,
          checkpointLevel0Tables: levels0,
        }),
        async ({ ops, endWithEmptyMemtable, writeAfter, level0CompactionTrigger, checkpointLevel0Tables }) => {
          const { dir, cleanup } = tempDir('proofkv-honest-');
          const db = await ProofDB.open(dir, { ...TINY, level0CompactionTrigger, checkpointLevel0Tables });
          try {
            const model = new Model();
            for (const o of ops) await apply(db, model, o);
            const cp = await db.checkpoint();
            // A second checkpoint right away: the memtable is empty, the table set unchanged.
            if (endWithEmptyMemtable) await db.checkpoint();
            const world = World.load(db, db.latestCheckpoint().checkpoint.masterRoot);
            shapes.push(world.counts);
            const trust = { publicKeys: [db.publicKey()], quorum: 1 };
            // Writes after the checkpoint are not in its proofs.
            if (writeAfter) for (const k of KEYS.slice(0, 4)) await db.put(k, 'after the checkpoint');
            await checkCheckpoint(db, model, cp.seq, trust, world, { full: true });
          } finally {
            await db.close();
            cleanup();
          }
        },
        numRuns,
      );
    await run('random ops, level 0 compacted at checkpoints', fc.constantFrom(0, 1), fc.constantFrom(2, 4), 8);
    const before = shapes.length;
    await run('random ops, level 0 as the policy left it', fc.constant(64), fc.constantFrom(2, 4, 4), 8);
    // Not vacuous: some runs put tables in several levels, with several tables in level 0 or 1.
    expect(shapes.some((c) => c.filter((n) => n > 0).length >= 2), JSON.stringify(shapes)).toBe(true);
    expect(shapes.some((c) => c.reduce((a, b) => a + b, 0) >= 5), JSON.stringify(shapes)).toBe(true);
    // Level 0 beside deeper levels (several overlapping level-0 tables are covered by the fixed
    // scenarios of lsm_edges / lsm_adversarial, which keep them with checkpointLevel0Tables 64).
    expect(shapes.slice(before).some((c) => c[0] >= 1 && c[0] + c[1] >= 2), JSON.stringify(shapes)).toBe(true);
  });

  it('a fixed long run (seed 42) reaches several levels and still proves everything', async () => {
    // One fixed long run: the TINY options must yield tables in at least three levels.
    const { dir, cleanup } = tempDir('proofkv-honest-');
    const db = await ProofDB.open(dir, TINY);
    try {
      const model = new Model();
      const ops = fc.sample(fc.array(op, { minLength: 250, maxLength: 250 }), { numRuns: 1, seed: 42 })[0];
      for (const o of ops) await apply(db, model, o);
      const cp = await db.checkpoint();
      const world = World.load(db, cp.checkpoint.masterRoot);
      expect(world.counts.filter((c) => c > 0).length, JSON.stringify(world.counts)).toBeGreaterThanOrEqual(2);
      expect(world.tables.length).toBeGreaterThanOrEqual(4);
      await checkCheckpoint(db, model, cp.seq, { publicKeys: [db.publicKey()], quorum: 1 }, world, { full: false });
    } finally {
      await db.close();
      cleanup();
    }
  });
});

describe('honest proofs: edge cases', () => {
  it('a completely empty database proves every key absent with an empty history', async () => {
    const { dir, cleanup } = tempDir('proofkv-honest-');
    const db = await ProofDB.open(dir, TINY);
    try {
      const cp = await db.checkpoint();
      expect(cp.tables).toEqual([]);
      const trust = { publicKeys: [db.publicKey()], quorum: 1 };
      await checkCheckpoint(db, new Model(), cp.seq, trust, World.load(db, cp.checkpoint.masterRoot), { full: true });
      const { proof } = await db.getWithProof('a');
      expect(proof.body.descriptors).toEqual([]);
      expect(proof.body.windows).toEqual([]);
    } finally {
      await db.close();
      cleanup();
    }
  });

  it('a checkpoint with an empty memtable, several checkpoints and consistency from each older head', async () => {
    const { dir, cleanup } = tempDir('proofkv-honest-');
    const db = await ProofDB.open(dir, TINY);
    try {
      const model = new Model();
      const trust = { publicKeys: [db.publicKey()], quorum: 1 };
      const heads = [];
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 30; i++) {
          const k = KEYS[(i * 7 + round) % KEYS.length];
          const v = `r${round}-${i}-${'p'.repeat(i * 3)}`;
          await db.put(k, v);
          model.apply([{ kind: 'put', key: k, value: v }]);
        }
        heads.push((await db.checkpoint()).head);
        heads.push((await db.checkpoint()).head); // memtable empty
      }
      const seq = db.latestCheckpoint().checkpoint.seq;
      await checkCheckpoint(db, model, seq, trust, undefined, { full: false });
      const { proof } = await db.getWithProof('k1');
      const latest = proof.certificate.head;
      for (const trusted of heads) {
        const consistency = trusted.size === latest.size ? [] : db.consistencyProof(trusted.size, latest.size);
        ok(verifyGetProof(proof, { key: enc('k1') }, { trust, trustedHead: trusted, consistency }), `from head ${trusted.size}`);
      }
      // And the honest proof is bound to the latest checkpoint only.
      const r = verifyGetProof(proof, { key: enc('k1') }, { trust, checkpointIndex: latest.size - 2 });
      expect(r.ok ? 'ok' : r.reason).toBe(Reason.CHECKPOINT_MISMATCH);
    } finally {
      await db.close();
      cleanup();
    }
  });

  it('proofs survive a reopen (pinned tables, persisted log)', async () => {
    const { dir, cleanup } = tempDir('proofkv-honest-');
    let db = await ProofDB.open(dir, TINY);
    try {
      const model = new Model();
      for (let i = 0; i < 120; i++) {
        const k = KEYS[i % KEYS.length];
        if (i % 9 === 4) {
          await db.delete(k);
          model.apply([{ kind: 'delete', key: k }]);
        } else {
          await db.put(k, `v${i}`.padEnd(40, '.'));
          model.apply([{ kind: 'put', key: k, value: `v${i}`.padEnd(40, '.') }]);
        }
      }
      const cp = await db.checkpoint();
      await db.put('k1', 'unflushed');
      await db.close();
      db = await ProofDB.open(dir, TINY);
      await checkCheckpoint(db, model, cp.seq, { publicKeys: [db.publicKey()], quorum: 1 }, undefined, { full: false });
    } finally {
      await db.close();
      cleanup();
    }
  });
});
