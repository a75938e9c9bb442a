/**
 * Obsolete table files (docs/engine.md § Obsolete table files): deleted from the set of tables
 * edits removed, never by listing the directory after open; unlinked off the event loop; never
 * while a pinned version references them; failures counted, not thrown; `close` waits for the
 * unlinks in flight. Syscalls are counted by replacing `fs.readdirSync` (ESM bindings synced) and
 * `fs.promises.unlink`.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { copyLiveDir, str, tempDir, TINY } from './harness.js';

const realReaddir = fs.readdirSync;
const realUnlink = fs.promises.unlink;
const realCopy = fs.copyFileSync;
let listed = 0;
let unlinked: string[] = [];
/** When set, an unlink of a table calls this instead of unlinking. */
let onUnlink: ((file: string) => Promise<void>) | null = null;

beforeEach(() => {
  listed = 0;
  unlinked = [];
  onUnlink = null;
  fs.readdirSync = ((...args: Parameters<typeof fs.readdirSync>) => {
    listed++;
    return realReaddir(...args);
  }) as typeof fs.readdirSync;
  fs.promises.unlink = async (file) => {
    unlinked.push(path.basename(String(file)));
    if (onUnlink) return onUnlink(String(file));
    return realUnlink(file);
  };
  syncBuiltinESMExports();
});
afterEach(() => {
  fs.readdirSync = realReaddir;
  fs.promises.unlink = realUnlink;
  fs.copyFileSync = realCopy;
  syncBuiltinESMExports();
});

const key = (i: number) => `k${String(i).padStart(3, '0')}`;
const tableFiles = (dir: string) => realReaddir(dir).filter((n) => /^\d+\.sst$/.test(n)).sort();
const tableName = (n: number) => `${String(n).padStart(6, '0')}.sst`;

async function loaded(dir: string): Promise<ProofDB> {
  const db = await ProofDB.open(dir, TINY);
  for (let i = 0; i < 200; i++) await db.put(key(i), `v0-${i}`);
  await db.waitForCompactions();
  listed = 0; // the open lists the directory (leftovers of a crash); nothing after it may
  return db;
}

/** Runs `body` on a loaded database in a fresh directory; closes it and removes the directory. */
async function withLoaded(body: (db: ProofDB, dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('proofkv-obsolete-');
  const db = await loaded(dir);
  try {
    await body(db, dir);
  } finally {
    await db.close();
    cleanup();
  }
}

/** Overwrites every key until the table set shares no table with `pinned`. */
async function replaceTables(db: ProofDB, pinned: Set<number>): Promise<void> {
  for (let round = 1; db.tables().some((t) => pinned.has(t.number)); round++) {
    expect(round).toBeLessThan(20);
    for (let i = 0; i < 200; i++) await db.put(key(i), `v${round}-${i}`);
    await db.waitForCompactions();
  }
}

describe('obsolete table files', () => {
  it('an iterator opened before compactions reads its tables after them; they go only at its release', () =>
    withLoaded(async (db, dir) => {
      const it = db.iterator();
      const pinned = new Set(db.tables().map((t) => t.number));
      const first = await it.nextv(5);
      await replaceTables(db, pinned);
      expect(db.stats().compactions).toBeGreaterThan(0);
      // The pinned tables are still on disk; the tables made and replaced meanwhile are not.
      const onDisk = new Set(tableFiles(dir));
      for (const n of pinned) expect(onDisk.has(tableName(n))).toBe(true);
      const live = new Set([...db.tables().map((t) => t.number), ...pinned]);
      expect([...onDisk].sort()).toEqual([...live].map(tableName).sort());
      expect(unlinked.some((name) => pinned.has(Number(name.slice(0, -4))))).toBe(false);

      const rest = await it.all();
      expect([...first, ...rest].map((e) => [str(e.key), str(e.value)])).toEqual(Array.from({ length: 200 }, (_, i) => [key(i), `v0-${i}`]));
      it.close();
      await db.waitForCompactions();
      expect(tableFiles(dir)).toEqual(db.tables().map((t) => tableName(t.number)).sort());
      for (const n of pinned) expect(unlinked).toContain(tableName(n));
      // Nothing listed the directory after open.
      expect(listed).toBe(0);
      expect(db.stats().obsoleteTableDeleteErrors).toBe(0);
    }));

  it('releasing a current version, or one whose tables another pin still holds, makes no syscall', () =>
    withLoaded(async (db) => {
      unlinked = [];
      for (let i = 0; i < 20; i++) expect((await db.iterator({ limit: 3 }).all()).length).toBe(3);
      await db.waitForCompactions();
      expect(unlinked).toEqual([]);

      const a = db.iterator();
      const b = db.iterator();
      const pinned = new Set(db.tables().map((t) => t.number));
      await replaceTables(db, pinned);
      const before = unlinked.length;
      b.close(); // `a` pins the same version
      await db.waitForCompactions();
      expect(unlinked.length).toBe(before);
      a.close();
      await db.waitForCompactions();
      expect(unlinked.slice(before).sort()).toEqual([...pinned].map(tableName).sort());
      expect(listed).toBe(0);
    }));

  it('a failed unlink is counted, not thrown; writes go on and the next open removes the file', async () => {
    const { dir, cleanup } = tempDir('proofkv-obsolete-');
    let db = await loaded(dir);
    try {
      let failed: string | null = null;
      onUnlink = async (file) => {
        if (failed === null) {
          failed = path.basename(file);
          throw Object.assign(new Error('EACCES: permission denied, unlink'), { code: 'EACCES', errno: -13, syscall: 'unlink' });
        }
        return realUnlink(file);
      };
      await replaceTables(db, new Set(db.tables().map((t) => t.number)));
      expect(failed).not.toBeNull();
      expect(db.stats().obsoleteTableDeleteErrors).toBe(1);
      expect(tableFiles(dir)).toContain(failed);
      expect(tableFiles(dir).length).toBe(db.tables().length + 1);
      await db.put('after', 'x');
      await db.close();
      db = await ProofDB.open(dir, TINY);
      expect(tableFiles(dir)).toEqual(db.tables().map((t) => tableName(t.number)).sort());
      expect(str(await db.get('after'))).toBe('x');
      expect(str(await db.get(key(7)))).toMatch(/^v\d+-7$/);
    } finally {
      await db.close();
      cleanup();
    }
  });

  it('close waits for the unlinks in flight', () =>
    withLoaded(async (db, dir) => {
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      let started = 0;
      onUnlink = async (file) => {
        started++;
        await held;
        return realUnlink(file);
      };
      try {
        const it = db.iterator();
        const pinned = new Set(db.tables().map((t) => t.number));
        // Compactions run to the end: their unlinks wait on `held` without blocking them.
        for (let i = 0; i < 200; i++) await db.put(key(i), `v1-${i}`);
        for (const t of db.tables()) pinned.delete(t.number);
        it.close();
        expect(started).toBe(1); // one unlink at a time
        let closed = false;
        const closing = db.close().then(() => (closed = true));
        for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
        expect(closed).toBe(false);
        release();
        await closing;
        for (const n of pinned) expect(tableFiles(dir)).not.toContain(tableName(n));
      } finally {
        release(); // a failed expectation must not leave the close waiting
      }
    }));

  it('copyLiveDir skips a table that vanishes during the copy, and fails on any other file', () => {
    const { dir, cleanup } = tempDir('proofkv-obsolete-copy-');
    try {
      const from = path.join(dir, 'from');
      fs.mkdirSync(path.join(from, 'raft'), { recursive: true });
      for (const name of ['000007.sst', 'MANIFEST-000002', 'raft/seg-1']) fs.writeFileSync(path.join(from, name), name);
      let vanish = '000007.sst';
      fs.copyFileSync = ((src: fs.PathLike, dest: fs.PathLike, mode?: number) => {
        if (path.basename(String(src)) === vanish) fs.rmSync(src);
        realCopy(src, dest, mode);
      }) as typeof fs.copyFileSync;
      syncBuiltinESMExports();
      expect(copyLiveDir(from, path.join(dir, 'a'))).toEqual(['000007.sst']);
      expect(fs.readFileSync(path.join(dir, 'a', 'raft', 'seg-1'), 'utf8')).toBe('raft/seg-1');
      vanish = 'MANIFEST-000002';
      expect(() => copyLiveDir(from, path.join(dir, 'b'))).toThrow(/ENOENT/);
    } finally {
      cleanup();
    }
  });
});
