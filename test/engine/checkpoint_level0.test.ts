/**
 * The checkpoint's level-0 rule (docs/engine.md § Checkpoints): a checkpoint leaves at most
 * `checkpointLevel0Tables` level-0 tables, after the policy's compactions have drained — both
 * after its own flush and when it finds the memtable empty (flushed by size, with the policy's
 * compactions possibly still running) — by merging all of level 0 into one level-0 table while
 * level 0 is under `checkpointLevel0Bytes`, or by compacting all of level 0 into level 1 (always, with
 * `checkpointLevel0Bytes` 0, the rule before the merge). Both rules are run: the table sets stay a pure
 * function of the writes (worker thread vs inline compactions with random delays; in external-log
 * mode, a crash between a checkpoint's flush and its level-0 compaction replays to byte-identical
 * checkpoints and tables), and every proof against them (get, absence, history) verifies. A third
 * rule merges size-tiered (`checkpointLevel0SizeRatio`, two level-0 tables allowed): the newest
 * tables only, so an older level-0 table can stay through a merge.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { Kind, verifyGetProof, verifyHistoryProof } from '../../proofs/index.js';
import { encodeInternalKey } from '../../src/keys.js';
import type { TableMeta } from '../../src/version/edit.js';
import { pickCheckpointLevel0 } from '../../src/version/picker.js';
import { Version } from '../../src/version/version.js';
import { mulberry32 } from '../support/prng.js';
import { copyLiveDir, tempDir } from './harness.js';

/** Level 0 is never compacted by the policy below 8 tables: only checkpoints keep it small. */
const BASE: DBOptions = {
  writeBufferSize: 1024,
  targetFileSize: 1024,
  blockSize: 256,
  level0CompactionTrigger: 8,
  maxBytesForLevelBase: 1024,
  compactionThread: 'inline',
};

/**
 * The two level-0 rules: level 0 into level 1 (no byte bound), and level 0 merged within level 0
 * under a byte bound (with a level 1 that can hold more than it: merges need level 0 smaller than
 * level 1).
 */
const RULES = [
  { name: 'into level 1', checkpointLevel0Bytes: 0, maxBytesForLevelBase: 1024, checkpointLevel0SizeRatio: 0, tables: 1 },
  { name: 'merged within level 0', checkpointLevel0Bytes: 6 * 1024, maxBytesForLevelBase: 16 * 1024, checkpointLevel0SizeRatio: 0, tables: 1 },
  // Two level-0 tables allowed, the merge size-tiered: the newest tables, not always all of level 0.
  // A larger bound, so that the old level-0 table outgrows a round's flushes before it reaches it.
  { name: 'merged size-tiered within level 0', checkpointLevel0Bytes: 24 * 1024, maxBytesForLevelBase: 64 * 1024, checkpointLevel0SizeRatio: 200, tables: 2 },
] as const;

const te = new TextEncoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Round {
  /** Puts written one by one (`single`) or as one batch. */
  puts: Array<[string, string]>;
  batch: boolean;
}

/**
 * Seeded rounds of puts over 80 keys, each followed by a checkpoint. A batch of more than
 * `writeBufferSize` bytes freezes the memtable right after it, so its round's checkpoint finds
 * the memtable empty and the compaction pending then was picked by the policy.
 */
function rounds(seed: number, n: number): Round[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const batch = r() < 0.4;
    const count = batch ? 25 + Math.floor(r() * 20) : 1 + Math.floor(r() * 30);
    const puts: Array<[string, string]> = [];
    for (let i = 0; i < count; i++) puts.push([`key-${String(Math.floor(r() * 80)).padStart(2, '0')}`, 'v'.repeat(10 + Math.floor(r() * 50)) + Math.floor(r() * 1e6)]);
    return { puts, batch };
  });
}

interface Run {
  /** Level-0 table count of each checkpoint's table set. */
  level0: number[];
  /** `checkpointLevel0Merges` after each checkpoint. */
  merges: number[];
  /** Each checkpoint's tables: level, number, root. */
  tables: string[][];
  masterRoots: string[];
  stats: ReturnType<ProofDB['stats']>;
}

async function run(opts: DBOptions, plan: Round[], verify: boolean): Promise<Run> {
  const { dir, cleanup } = tempDir('proofkv-cpl0-');
  const db = await ProofDB.open(dir, opts);
  const out: Run = { level0: [], merges: [], tables: [], masterRoots: [], stats: db.stats() };
  const latest = new Map<string, string>();
  const written = new Map<string, string[]>();
  // Commit times are explicit, so the tables do not depend on the clock of the run.
  let tick = 0;
  const at = () => ({ time: 1_700_000_000_000 + 3 * tick++ });
  try {
    for (const round of plan) {
      if (round.batch) {
        const b = db.batch();
        for (const [k, v] of round.puts) b.put(k, v);
        await db.write(b, at());
      } else {
        for (const [k, v] of round.puts) await db.put(k, v, at());
      }
      for (const [k, v] of round.puts) {
        latest.set(k, v);
        written.set(k, [...(written.get(k) ?? []), v]);
      }
      const cp = await db.checkpoint();
      out.level0.push(cp.tables.filter((t) => t.level === 0).length);
      out.merges.push(db.stats().checkpointLevel0Merges);
      out.tables.push(cp.tables.map((t) => `${t.level}:${t.number}:${hex(t.root)}`));
      out.masterRoots.push(hex(cp.checkpoint.masterRoot));
    }
    if (verify) {
      const trust = { publicKeys: [db.publicKey()], quorum: 1 };
      for (let i = 0; i < 80; i++) {
        const k = `key-${String(i).padStart(2, '0')}`;
        const { proof } = await db.getWithProof(k);
        const res = verifyGetProof(proof, { key: te.encode(k) }, { trust });
        expect(res.ok, `${k}: ${JSON.stringify(res)}`).toBe(true);
        const want = latest.get(k);
        if (res.ok) expect(res.entry?.value === undefined ? undefined : new TextDecoder().decode(res.entry.value)).toBe(want);
        // Every version the key ever had is still there and proven (merges drop nothing).
        if (i % 4 === 0) {
          const h = await db.getVersionHistoryWithProof(k);
          const hv = verifyHistoryProof(h.proof, { key: te.encode(k) }, { trust });
          expect(hv.ok, `history of ${k}: ${JSON.stringify(hv)}`).toBe(true);
          if (hv.ok) expect(hv.entries.map((e) => (e.value === undefined ? undefined : new TextDecoder().decode(e.value)))).toEqual(written.get(k) ?? []);
        }
      }
      // Absence: a key never written proves absent.
      const { proof: none } = await db.getWithProof('absent-key');
      const nv = verifyGetProof(none, { key: te.encode('absent-key') }, { trust });
      expect(nv.ok && nv.entry === undefined, JSON.stringify(nv)).toBe(true);
    }
    out.stats = db.stats();
    await db.close();
    // Nothing left behind: no temporary outputs (a dropped compaction's included), no unreferenced table.
    const names = fs.readdirSync(dir);
    expect(names.filter((n) => n.endsWith('.tmp'))).toEqual([]);
  } finally {
    cleanup();
  }
  return out;
}

/**
 * Checkpoints after which level 0 kept a table that was in level 0 at the checkpoint before, although
 * a merge within level 0 ran in between: only a size-tiered merge (the newest tables) leaves one.
 */
function keptThroughMerge(r: Run): number {
  let n = 0;
  for (let i = 1; i < r.tables.length; i++) {
    if (r.merges[i] === r.merges[i - 1]) continue;
    const before = new Set(r.tables[i - 1].filter((t) => t.startsWith('0:')));
    if (r.tables[i].some((t) => before.has(t))) n++;
  }
  return n;
}

describe.each(RULES)('checkpoints leave level 0 small: $name', ({ checkpointLevel0Bytes, maxBytesForLevelBase, checkpointLevel0SizeRatio, tables }) => {
  const plan = rounds(20261129, 60);
  const base: DBOptions = { ...BASE, checkpointLevel0Bytes, maxBytesForLevelBase, checkpointLevel0SizeRatio };

  it('with the rule off, level 0 grows to several tables at checkpoints (the control)', async () => {
    const off = await run({ ...base, checkpointLevel0Tables: 64 }, plan, false);
    expect(Math.max(...off.level0)).toBeGreaterThanOrEqual(4);
    expect(off.stats.checkpointCompactions).toBe(0);
  });

  for (const k of [0, 1, 2]) {
    it(`checkpointLevel0Tables ${k}: no checkpoint leaves more than ${k} level-0 tables; every key proves its newest value, its history and an absent key its absence`, async () => {
      const res = await run({ ...base, checkpointLevel0Tables: k }, plan, true);
      expect(Math.max(...res.level0)).toBeLessThanOrEqual(k);
      expect(res.stats.checkpointCompactions).toBeGreaterThan(0);
      // The checkpoint waits for the policy's compactions instead of dropping one.
      expect(res.stats.droppedCompactions).toBe(0);
      // Which rule ran: merges only with a byte bound and a level-0 table allowed (0 tables
      // allowed: a merge into one level-0 table would not do, so level 0 goes into level 1).
      if (checkpointLevel0Bytes === 0 || k === 0) expect(res.stats.checkpointLevel0Merges).toBe(0);
      else {
        expect(res.stats.checkpointLevel0Merges).toBeGreaterThan(0);
        // Level 0 still moves on (never 8 tables here): checkpoints that found it at its byte
        // bound compacted it into level 1.
        expect(res.stats.checkpointCompactions).toBeGreaterThan(res.stats.checkpointLevel0Merges);
        expect(res.tables[res.tables.length - 1].some((t) => !t.startsWith('0:'))).toBe(true);
      }
      // A merge that takes all of level 0 keeps no level-0 table through it; a size-tiered one
      // with two tables allowed does (the large old table stays while recent ones merge).
      if (checkpointLevel0SizeRatio > 0 && k >= 2 && checkpointLevel0Bytes > 0) expect(keptThroughMerge(res)).toBeGreaterThan(0);
      else expect(keptThroughMerge(res)).toBe(0);
    });
  }

  it('the same table sets and MasterRoots with the worker thread as with inline compactions at random delays', async () => {
    const r = mulberry32(7);
    const delayed = await run(
      { ...base, checkpointLevel0Tables: tables, compactionDelay: () => new Promise((res) => setTimeout(res, Math.floor(r() * 3))) },
      plan,
      false,
    );
    const worker = await run({ ...base, checkpointLevel0Tables: tables, compactionThread: 'worker' }, plan, false);
    expect(worker.tables).toEqual(delayed.tables);
    expect(worker.masterRoots).toEqual(delayed.masterRoots);
    // Not vacuous: the policy compacted too (its compactions run before each checkpoint's rule).
    expect(delayed.stats.compactions).toBeGreaterThan(delayed.stats.checkpointCompactions);
    expect(delayed.stats.checkpointCompactions).toBeGreaterThan(0);
    // With a byte bound, both of the rule's kinds ran: merges, and compactions into level 1 at the bound.
    if (checkpointLevel0Bytes > 0) {
      expect(delayed.stats.checkpointLevel0Merges).toBeGreaterThan(0);
      expect(delayed.stats.checkpointCompactions).toBeGreaterThan(delayed.stats.checkpointLevel0Merges);
    }
    // The size-tiered rule merged only the newest tables at least once.
    if (checkpointLevel0SizeRatio > 0) expect(keptThroughMerge(delayed)).toBeGreaterThan(0);
  });

  it('external-log mode: a crash while a checkpoint compacts level 0 replays to the same checkpoint', async () => {
    // No flush by size (1 MiB memtable): the first compaction job a checkpoint starts is its
    // level-0 compaction (the drain has levelled everything before its flush), so the directory
    // copied when that job starts is the state right after the checkpoint's flush install — what
    // a SIGKILL then leaves. A tiny level budget makes the policy compact level 1 after it, at
    // the reopen as in the live run.
    const { dir: root, cleanup } = tempDir('proofkv-cpl0-crash-');
    let armed: string | null = null;
    const opts: DBOptions = {
      ...base,
      writeBufferSize: 1 << 20,
      checkpointLevel0Tables: tables,
      writeAheadLog: 'external',
      compactionDelay: async () => {
        if (armed !== null) copyLiveDir(dir, armed);
        armed = null;
      },
    };
    const dir = path.join(root, 'live');
    const r = mulberry32(42);
    type Cmd = { put: [string, string] } | { checkpoint: true };
    const log: Cmd[] = [];
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 20; i++) log.push({ put: [`key-${String(Math.floor(r() * 80)).padStart(2, '0')}`, 'v'.repeat(10 + Math.floor(r() * 40))] });
      log.push({ checkpoint: true });
    }
    const apply = async (db: ProofDB, from: number) => {
      for (let index = from; index <= log.length; index++) {
        const c = log[index - 1];
        if ('put' in c) await db.put(c.put[0], c.put[1], { logIndex: index, time: 1_700_000_000_000 + index });
        else await db.checkpoint({ logIndex: index });
      }
    };
    const fingerprint = (db: ProofDB, d: string) => ({
      checkpoints: fs.readFileSync(path.join(d, 'CHECKPOINTS')).toString('hex'),
      tables: db.tables().map((t) => `${t.level}:${t.number}:${hex(t.root)}`),
    });
    try {
      const copies: Array<{ dir: string; index: number }> = [];
      let db = await ProofDB.open(dir, opts);
      for (let index = 1; index <= log.length; index++) {
        const c = log[index - 1];
        if ('put' in c) {
          await db.put(c.put[0], c.put[1], { logIndex: index, time: 1_700_000_000_000 + index });
          continue;
        }
        const copy = path.join(root, `crash-${index}`);
        armed = copy;
        await db.checkpoint({ logIndex: index });
        armed = null;
        if (fs.existsSync(copy)) copies.push({ dir: copy, index });
      }
      const ref = fingerprint(db, dir);
      // Not vacuous for the merge: the live run merged level 0 at some checkpoints.
      if (checkpointLevel0Bytes > 0) expect(db.stats().checkpointLevel0Merges).toBeGreaterThan(0);
      await db.close();
      expect(copies.length).toBeGreaterThanOrEqual(3);

      let replayed = 0;
      for (const c of copies) {
        db = await ProofDB.open(c.dir, { ...opts, compactionDelay: undefined });
        try {
          // The checkpoint's flush is installed (its writes are durable), the checkpoint is not.
          expect(db.logIndex().durable).toBe(c.index - 1);
          // The checkpoint's rule applies: the replay compacts level 0 again, as the live run did.
          const mustCompact = db.tables().filter((t) => t.level === 0).length > tables;
          await apply(db, c.index);
          expect(fingerprint(db, c.dir)).toEqual(ref);
          if (mustCompact) {
            expect(db.stats().compactions).toBeGreaterThanOrEqual(1);
            expect(db.stats().droppedCompactions).toBe(0);
            replayed++;
          }
        } finally {
          await db.close();
        }
      }
      // Not vacuous: some replays had to compact level 0 again.
      expect(replayed).toBeGreaterThan(0);
    } finally {
      cleanup();
    }
  });
});

describe('the level-0 rule\'s options', () => {
  /** A table of `size` bytes over user keys [lo, hi]. */
  const table = (number: number, size: number, lo: string, hi: string): TableMeta => ({
    number,
    size,
    entryCount: 1,
    smallest: encodeInternalKey(te.encode(lo), 1, number, Kind.PUT),
    largest: encodeInternalKey(te.encode(hi), 1, number, Kind.PUT),
    root: new Uint8Array(32),
  });
  // Level 0: three tables of 1,000 bytes; level 1: two tables, one overlapping level 0.
  const v = Version.empty().apply({
    added: [
      [0, table(7, 1000, 'b', 'd')],
      [0, table(8, 1000, 'a', 'c')],
      [0, table(9, 1000, 'c', 'e')],
      [1, table(3, 5000, 'a', 'f')],
      [1, table(4, 5000, 'x', 'z')],
    ],
  });
  const pointers = new Map<number, Uint8Array>();

  it('pickCheckpointLevel0: a merge within level 0 under the byte bound and level 1\'s bytes, level 0 into level 1 at either, nothing at or under the table count', () => {
    const merge = pickCheckpointLevel0(v, pointers, { checkpointLevel0Tables: 1, checkpointLevel0Bytes: 3001, checkpointLevel0SizeRatio: 0 })!;
    expect([merge.level, merge.outputLevel, merge.trivialMove]).toEqual([0, 0, false]);
    expect(merge.inputs.map((t) => t.number)).toEqual([9, 8, 7]);
    expect(merge.nextInputs).toEqual([]);
    expect(merge.pointer).toBeUndefined();
    // At the bound (3000 bytes of level 0), or with no bound, or when no level-0 table may stay: into level 1.
    for (const opts of [
      { checkpointLevel0Tables: 1, checkpointLevel0Bytes: 3000, checkpointLevel0SizeRatio: 0 },
      { checkpointLevel0Tables: 2, checkpointLevel0Bytes: 0, checkpointLevel0SizeRatio: 200 },
      { checkpointLevel0Tables: 0, checkpointLevel0Bytes: 1 << 30, checkpointLevel0SizeRatio: 200 },
    ]) {
      const into = pickCheckpointLevel0(v, pointers, opts)!;
      expect([into.level, into.outputLevel], JSON.stringify(opts)).toEqual([0, 1]);
      expect(into.inputs.map((t) => t.number)).toEqual([9, 8, 7]);
      expect(into.nextInputs.map((t) => t.number)).toEqual([3]);
    }
    // Level 1 no larger than level 0 (2,500 bytes against 3,000): into level 1 even under the bound.
    const small = Version.empty().apply({ added: [[0, table(7, 1000, 'b', 'd')], [0, table(8, 1000, 'a', 'c')], [0, table(9, 1000, 'c', 'e')], [1, table(3, 2500, 'a', 'f')]] });
    const early = pickCheckpointLevel0(small, pointers, { checkpointLevel0Tables: 1, checkpointLevel0Bytes: 1 << 30, checkpointLevel0SizeRatio: 0 })!;
    expect([early.outputLevel, early.nextInputs.map((t) => t.number)]).toEqual([1, [3]]);
    // Three level-0 tables are allowed: no compaction at all.
    expect(pickCheckpointLevel0(v, pointers, { checkpointLevel0Tables: 3, checkpointLevel0Bytes: 1 << 30, checkpointLevel0SizeRatio: 200 })).toBeNull();
  });

  it('pickCheckpointLevel0, size-tiered: the newest tables that leave checkpointLevel0Tables, then each older one at most checkpointLevel0SizeRatio % of the bytes taken', () => {
    // Level 0 newest first: 12 (100 B), 11 (150 B), 10 (400 B), 9 (3,000 B); a large level 1.
    const l0 = Version.empty().apply({
      added: [
        [0, table(9, 3000, 'a', 'z')],
        [0, table(10, 400, 'a', 'z')],
        [0, table(11, 150, 'a', 'z')],
        [0, table(12, 100, 'a', 'z')],
        [1, table(3, 100_000, 'a', 'z')],
      ],
    });
    const merged = (tables: number, ratio: number) => {
      const c = pickCheckpointLevel0(l0, pointers, { checkpointLevel0Tables: tables, checkpointLevel0Bytes: 1 << 30, checkpointLevel0SizeRatio: ratio });
      expect(c === null ? null : [c.level, c.outputLevel, c.nextInputs.length]).toEqual([0, 0, 0]);
      return c!.inputs.map((t) => t.number);
    };
    // Two tables allowed: the three newest (650 B); table 9 (3,000 B) is more than 200 % of them: it stays.
    expect(merged(2, 200)).toEqual([12, 11, 10]);
    // At 500 % (3,250 B) table 9 is small enough: all of level 0.
    expect(merged(2, 500)).toEqual([12, 11, 10, 9]);
    // Three allowed: the two newest (250 B), then 10 (400 B <= 500 B at 200 %), not 9.
    expect(merged(3, 200)).toEqual([12, 11, 10]);
    // ...and at 100 % 10 (400 B > 250 B) stays too.
    expect(merged(3, 100)).toEqual([12, 11]);
    // Ratio 0 (the rule before) and one table allowed (whatever the ratio): all of level 0.
    expect(merged(2, 0)).toEqual([12, 11, 10, 9]);
    expect(merged(1, 200)).toEqual([12, 11, 10, 9]);
    // At the byte bound: all of level 0 into level 1, whatever the ratio.
    const into = pickCheckpointLevel0(l0, pointers, { checkpointLevel0Tables: 2, checkpointLevel0Bytes: 3650, checkpointLevel0SizeRatio: 200 })!;
    expect([into.outputLevel, into.inputs.map((t) => t.number)]).toEqual([1, [12, 11, 10, 9]]);
  });

  for (const [option, rule, bads] of [
    ['checkpointLevel0SizeRatio', 'a negative or fractional', [-1, 0.5, Number.NaN]],
    ['checkpointLevel0Bytes', 'other than 0 or an integer >= 1024', [1, 1023, -1, 2048.5, Number.NaN]],
    ['checkpointLevel0Tables', 'a negative or fractional', [-1, 0.5, Number.NaN]],
  ] as const) {
    it(`refuses ${rule} ${option} with INVALID_ARGUMENT and creates nothing`, async () => {
      const { dir, cleanup } = tempDir('proofkv-cpl0-');
      try {
        fs.rmSync(dir, { recursive: true, force: true });
        for (const bad of bads) {
          await expect(ProofDB.open(dir, { [option]: bad })).rejects.toBeInstanceOf(InvalidArgumentError);
          expect(fs.existsSync(dir)).toBe(false);
        }
      } finally {
        cleanup();
      }
    });
  }
});
