/**
 * Shape options are recorded in the manifest: a reopen without them takes the recorded shape (not
 * the defaults of the release), an explicit one is taken and recorded, and a database from before
 * shapes were recorded keeps the defaults it was created with (docs/engine.md § Shape options).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { readJournal } from '../../src/journal/reader.js';
import { formatRecords } from '../../src/journal/writer.js';
import { DEFAULT_SHAPE, LEGACY_SHAPE, SHAPE_OPTIONS, resolveOptions, shapeOf } from '../../src/options.js';
import { BlockCache } from '../../src/table/block_cache.js';
import { TableReader } from '../../src/table/table_reader.js';
import { ByteWriter } from '../../src/util/coding.js';
import { decodeEdit, encodeEdit } from '../../src/version/edit.js';
import { VersionSet } from '../../src/version/version_set.js';
import { tempDir } from './harness.js';

/** The manifest `CURRENT` names. */
function manifestPath(dir: string): string {
  return path.join(dir, fs.readFileSync(path.join(dir, 'CURRENT'), 'utf8').trim());
}

/** The shapes the manifest's edits record, in order. */
function recordedShapes(dir: string): unknown[] {
  const file = manifestPath(dir);
  const { records } = readJournal(fs.readFileSync(file), file);
  return records.map((r) => decodeEdit(r, file).shape).filter((s) => s !== undefined);
}

/** Rewrites the manifest as a release from before shapes were recorded wrote it: no shape field. */
function stripShape(dir: string): void {
  const file = manifestPath(dir);
  const { records } = readJournal(fs.readFileSync(file), file);
  const edits = records.map((r) => {
    const e = decodeEdit(r, file);
    delete e.shape;
    return encodeEdit(e);
  });
  fs.writeFileSync(file, formatRecords(edits));
}

/**
 * Rewrites every shape record of the manifest as a release from before the options after the first
 * `count` wrote it: 9 options before `checkpointLevel0Bytes`, 10 before `checkpointLevel0SizeRatio`
 * (the tag-13 field appended after the edit's other fields). Returns how many it rewrote.
 */
function shapeRecordsOf(dir: string, count: number): number {
  let n = 0;
  const file = manifestPath(dir);
  const { records } = readJournal(fs.readFileSync(file), file);
  const edits = records.map((r) => {
    const e = decodeEdit(r, file);
    const shape = e.shape;
    if (shape === undefined) return r;
    n++;
    delete e.shape;
    const w = new ByteWriter();
    w.bytes(encodeEdit(e));
    w.varint(13);
    w.varint(count);
    for (const k of SHAPE_OPTIONS.slice(0, count)) w.varint(shape[k]);
    return w.finish();
  });
  fs.writeFileSync(file, formatRecords(edits));
  return n;
}

/** The `merkleGroup` of every table file in `dir` (0: table format 2, no stored group roots). */
function tableGroups(dir: string): number[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.sst')).map((f) => {
    const t = TableReader.open(path.join(dir, f), { fileNumber: Number.parseInt(f, 10), cache: new BlockCache(1 << 20) });
    try {
      return t.merkleGroup;
    } finally {
      t.close();
    }
  });
}

const value = (i: number) => `${i}:`.padEnd(100, 'v');
const at = (i: number) => ({ time: 1_700_000_000_000 + i });

/** Writes keys [from, to) in batches of 500. */
async function load(db: ProofDB, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i += 500) {
    const batch = db.batch();
    for (let j = i; j < Math.min(to, i + 500); j++) batch.put(`key-${(j * 7919) % 1_000_003}`, value(j));
    await db.write(batch, at(i));
  }
}

/**
 * A database created by the release before `option` joined the shape (its value then 0, its shape
 * record of `recordOf` options), reopened with no shape options, written on: it must keep 0 and
 * build the tables and MasterRoot of a database that ran with 0 throughout. Also returns a fresh
 * database with this release's default, on the same writes. `rounds`: checkpoints before and
 * after the reopen; `puts`: the stride and the puts of a round.
 */
async function upgradeFromOlderRecord(o: {
  shape: DBOptions;
  option: 'checkpointLevel0Bytes' | 'checkpointLevel0SizeRatio';
  recordOf: number;
  rounds: [number, number];
  puts: [number, number];
}): Promise<Record<'upgraded' | 'always' | 'fresh', { value: number; tables: unknown; root: string; merges: number }>> {
  const [stride, count] = o.puts;
  const run = async (dir: string, first: DBOptions, second: DBOptions, strip: boolean) => {
    let db = await ProofDB.open(dir, { ...o.shape, compactionThread: 'inline', ...first });
    for (let i = 0; i < o.rounds[0]; i++) {
      await load(db, i * stride, i * stride + count);
      await db.checkpoint({ time: 1_700_000_000_000 + i });
    }
    await db.close();
    if (strip) expect(shapeRecordsOf(dir, o.recordOf)).toBeGreaterThan(0);
    db = await ProofDB.open(dir, { compactionThread: 'inline', ...second });
    const value = db.options[o.option];
    for (let i = o.rounds[0]; i < o.rounds[1]; i++) {
      await load(db, i * stride, i * stride + count);
      await db.checkpoint({ time: 1_700_000_000_000 + i });
    }
    const out = { value, tables: db.tables(), root: Buffer.from(db.latestCheckpoint().checkpoint.masterRoot).toString('hex'), merges: db.stats().checkpointLevel0Merges };
    await db.close();
    return out;
  };
  const dirs = [tempDir(), tempDir(), tempDir()];
  try {
    const off = { [o.option]: 0 };
    // Created by the release before (its rule: the option 0, its shorter record), reopened with no shape options.
    const upgraded = await run(dirs[0].dir, off, {}, true);
    expect(recordedShapes(dirs[0].dir).every((r) => (r as Record<string, number>)[o.option] === 0)).toBe(true);
    expect(upgraded.value).toBe(0);
    // The same writes with the option 0 throughout: the same tables and MasterRoot.
    const always = await run(dirs[1].dir, off, off, false);
    expect(upgraded.tables).toEqual(always.tables);
    expect(upgraded.root).toBe(always.root);
    // The new default (the caller checks that it builds other tables from the same writes).
    const fresh = await run(dirs[2].dir, {}, {}, false);
    expect(fresh.value).toBe(DEFAULT_SHAPE[o.option]);
    return { upgraded, always, fresh };
  } finally {
    for (const d of dirs) d.cleanup();
  }
}

describe('shape options', () => {
  it('a new database records its shape; a reopen without shape options takes it, an explicit one is recorded', async () => {
    const t = tempDir();
    try {
      const shape = { writeBufferSize: 8192, targetFileSize: 4096, blockSize: 512, level0CompactionTrigger: 3, maxBytesForLevelBase: 16384 };
      let db = await ProofDB.open(t.dir, { ...shape, compactionThread: 'inline' });
      await load(db, 0, 2000);
      const want = shapeOf({ ...DEFAULT_SHAPE, ...shape });
      expect(shapeOf(db.options)).toEqual(want);
      // The write-amplification counters: compactions keep every entry, so they write what they read.
      await db.waitForCompactions();
      const st = db.stats();
      expect(st.flushBytes).toBeGreaterThan(0);
      expect(st.compactions).toBeGreaterThan(0);
      expect(st.compactionBytesWritten / st.compactionBytesRead).toBeGreaterThan(0.9);
      expect(st.compactionBytesWritten / st.compactionBytesRead).toBeLessThan(1.1);
      await db.close();
      expect(recordedShapes(t.dir)).toEqual([want]);
      // A new database writes table format 3 with the default group of 8 entries.
      expect(tableGroups(t.dir).length).toBeGreaterThan(0);
      expect(new Set(tableGroups(t.dir))).toEqual(new Set([8]));

      // No shape options: the recorded ones, not the defaults; the same ones explicitly: nothing new recorded.
      db = await ProofDB.open(t.dir, { compactionThread: 'inline' });
      expect(shapeOf(db.options)).toEqual(want);
      await load(db, 2000, 3000);
      expect(await db.get('key-0')).toBeDefined();
      await db.close();
      db = await ProofDB.open(t.dir, { ...shape, compactionThread: 'inline' });
      expect(shapeOf(db.options)).toEqual(want);
      await db.close();
      expect(recordedShapes(t.dir)).toEqual([want]);

      // An explicit different option is taken and recorded; the next open without options keeps it.
      db = await ProofDB.open(t.dir, { writeBufferSize: 16384, compactionThread: 'inline' });
      const changed = { ...want, writeBufferSize: 16384 };
      expect(shapeOf(db.options)).toEqual(changed);
      await db.close();
      expect(recordedShapes(t.dir)).toEqual([want, changed]);
      db = await ProofDB.open(t.dir, { compactionThread: 'inline' });
      expect(shapeOf(db.options)).toEqual(changed);
      await db.close();
      // What a snapshot install stages with the member's manifest (src/replication/snapshot.ts).
      expect(VersionSet.recordedShape(t.dir)).toEqual(changed);
      const empty = tempDir();
      expect(VersionSet.recordedShape(empty.dir)).toBeUndefined();
      empty.cleanup();
    } finally {
      t.cleanup();
    }
  });

  it('a database with no recorded shape (created before issue 13) reopens with the old defaults and builds the tables it always would', async () => {
    const old = tempDir();
    const ref = tempDir();
    try {
      // 60k entries of ~140 accounted bytes: two 4 MiB memtables flushed under the old defaults.
      const legacyOptions = { ...LEGACY_SHAPE, compactionThread: 'inline' as const };
      let db = await ProofDB.open(old.dir, legacyOptions);
      await load(db, 0, 30_000);
      await db.close();
      stripShape(old.dir);
      expect(recordedShapes(old.dir)).toEqual([]);

      // Reopened with no options, as the server opens it: the old defaults, recorded from now on.
      db = await ProofDB.open(old.dir, { compactionThread: 'inline' });
      expect(shapeOf(db.options)).toEqual(shapeOf(LEGACY_SHAPE));
      expect(recordedShapes(old.dir)).toEqual([shapeOf(LEGACY_SHAPE)]);
      await load(db, 30_000, 60_000);
      const cp = await db.checkpoint();
      expect(db.stats().flushes, 'flushes at 4 MiB memtables').toBeGreaterThanOrEqual(1);
      for (const i of [0, 29_999, 30_000, 59_999]) expect(new TextDecoder().decode(await db.get(`key-${(i * 7919) % 1_000_003}`))).toBe(value(i));
      const tables = db.tables();
      await db.close();
      // It went on writing table format 2 (no stored group roots), as its peers on the old release do.
      expect(tableGroups(old.dir).length).toBeGreaterThan(0);
      expect(new Set(tableGroups(old.dir))).toEqual(new Set([0]));

      // The same writes on a database that ran the old defaults throughout: the same tables.
      const r = await ProofDB.open(ref.dir, legacyOptions);
      await load(r, 0, 30_000);
      await r.close();
      const r2 = await ProofDB.open(ref.dir, legacyOptions);
      await load(r2, 30_000, 60_000);
      const rcp = await r2.checkpoint();
      expect(r2.tables()).toEqual(tables);
      expect(Buffer.from(rcp.checkpoint.masterRoot).equals(Buffer.from(cp.checkpoint.masterRoot))).toBe(true);
      await r2.close();

      // And the next open still finds the old shape, now recorded.
      db = await ProofDB.open(old.dir, { compactionThread: 'inline' });
      expect(shapeOf(db.options)).toEqual(shapeOf(LEGACY_SHAPE));
      await db.close();
      expect(SHAPE_OPTIONS.length).toBe(11);
    } finally {
      old.cleanup();
      ref.cleanup();
    }
  }, 120_000);

  it('a database whose shape record has no checkpointLevel0Bytes (created before it) reopens without a byte bound and builds the tables it always would', async () => {
    // Small shape, many checkpoints: under the new rule their level-0 compactions would be merges
    // (level 1 may grow past level 0).
    const { upgraded, always, fresh } = await upgradeFromOlderRecord({
      shape: { writeBufferSize: 8192, targetFileSize: 4096, blockSize: 512, maxBytesForLevelBase: 256 * 1024, checkpointLevel0Tables: 1 },
      option: 'checkpointLevel0Bytes',
      recordOf: 9,
      rounds: [10, 25],
      puts: [200, 150],
    });
    expect(upgraded.merges).toBe(0);
    expect(fresh.merges).toBeGreaterThan(0);
    expect(fresh.root).not.toBe(always.root);
  }, 120_000);

  it('a database whose shape record has no checkpointLevel0SizeRatio (created before it, two level-0 tables allowed) reopens merging all of level 0 and builds the tables it always would', async () => {
    // Two level-0 tables allowed (the ratio changes nothing with one), a byte bound large against
    // a checkpoint's flush: the size-tiered rule would keep the old level-0 table through merges.
    const { upgraded, always, fresh } = await upgradeFromOlderRecord({
      shape: { writeBufferSize: 64 * 1024, targetFileSize: 4096, blockSize: 512, maxBytesForLevelBase: 1 << 20, checkpointLevel0Bytes: 128 * 1024, checkpointLevel0Tables: 2 },
      option: 'checkpointLevel0SizeRatio',
      recordOf: 10,
      rounds: [10, 40],
      puts: [40, 30],
    });
    expect(upgraded.merges).toBeGreaterThan(0);
    expect(fresh.root).not.toBe(always.root);
  }, 120_000);

  it('a shape record of 8 options (before merkleGroup was one) reads as table format 2, of 8 or 9 as no level-0 byte bound, of 8 to 10 as merges of all of level 0; other counts are corruption', () => {
    const record = (n: number): Uint8Array => {
      const w = new ByteWriter();
      w.varint(13);
      w.varint(n);
      for (let i = 0; i < n; i++) w.varint(1000 + i);
      return w.finish();
    };
    const shape = decodeEdit(record(8), 'MANIFEST').shape;
    expect(shape).toEqual({ ...Object.fromEntries(SHAPE_OPTIONS.slice(0, 8).map((k, i) => [k, 1000 + i])), merkleGroup: 0, checkpointLevel0Bytes: 0, checkpointLevel0SizeRatio: 0 });
    expect(decodeEdit(record(9), 'MANIFEST').shape).toMatchObject({ merkleGroup: 1008, checkpointLevel0Bytes: 0 });
    expect(decodeEdit(record(9), 'MANIFEST').shape).toMatchObject({ checkpointLevel0SizeRatio: 0 });
    expect(decodeEdit(record(10), 'MANIFEST').shape).toMatchObject({ merkleGroup: 1008, checkpointLevel0Bytes: 1009, checkpointLevel0SizeRatio: 0 });
    expect(decodeEdit(record(11), 'MANIFEST').shape).toMatchObject({ checkpointLevel0Bytes: 1009, checkpointLevel0SizeRatio: 1010 });
    for (const n of [7, 12]) expect(() => decodeEdit(record(n), 'MANIFEST')).toThrow(/shape with/);
    // checkpointLevel0Bytes: 0 (off) or at least 1 KiB.
    for (const bad of [1, 1023, -1, 2048.5]) expect(() => resolveOptions({ checkpointLevel0Bytes: bad })).toThrow(/checkpointLevel0Bytes/);
    for (const good of [0, 1024, 64 << 20]) expect(resolveOptions({ checkpointLevel0Bytes: good }).checkpointLevel0Bytes).toBe(good);
    // And the option itself: 0 or a power of two from 2 to 65536.
    for (const bad of [1, 3, 12, 131072, -8, 2.5]) expect(() => resolveOptions({ merkleGroup: bad })).toThrow(/merkleGroup/);
    for (const good of [0, 2, 8, 65536]) expect(resolveOptions({ merkleGroup: good }).merkleGroup).toBe(good);
  });
});
