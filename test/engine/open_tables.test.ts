/**
 * The bound on open table files (`maxOpenTables`): with far more tables than the bound, every
 * read, iterator, history and proof agrees with the reference model while descriptors are closed
 * and reopened under them, the process never holds more table descriptors than the bound, and a
 * table file changed on disk between a close and the reopen is reported as corruption.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyGetProof, verifyHistoryProof, verifyScanProof } from '../../proofs/index.js';
import { ProofDB, ProofKVError } from '../../src/index.js';
import { OpenFiles, type Reopenable } from '../../src/table/open_files.js';
import { asModel, Model, str, tempDir, TINY } from './harness.js';

const enc = new TextEncoder();
const LIMIT = 4;
const KEYS = Array.from({ length: 120 }, (_, i) => `k${String(i).padStart(3, '0')}`);

/** Table files of `dir` this process holds open, counted from /proc/self/fd. */
function openTableFds(dir: string): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed since the listing (the listing's own descriptor)
    }
    if (target.startsWith(dir + path.sep) && target.endsWith('.sst')) n++;
  }
  return n;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function openDb(extra: Record<string, unknown>): Promise<{ db: ProofDB; dir: string }> {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  // tableMemoryBytes 0: every table is read from its file, so every table needs a descriptor.
  const db = await ProofDB.open(dir, { ...TINY, tableMemoryBytes: 0, blockCacheSize: 0, proofBlockCacheBytes: 0, ...extra });
  return { db, dir };
}

describe('OpenFiles', () => {
  it('closes the least recently used holder to admit one more, and never holds more than its limit', () => {
    const released: string[] = [];
    const holder = (name: string): Reopenable => ({ release: () => released.push(name) });
    const files = new OpenFiles(2);
    const [a, b, c] = [holder('a'), holder('b'), holder('c')];
    files.admit(a);
    files.admit(b);
    files.touch(a); // b is now the least recently used
    files.admit(c);
    expect(released).toEqual(['b']);
    expect(files.count).toBe(2);
    files.forget(a);
    files.admit(b);
    expect(released).toEqual(['b']); // room left by a: nothing closed
    expect(() => new OpenFiles(0)).toThrow(RangeError);
  });
});

describe('maxOpenTables', () => {
  it('rejects a bound below 1', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    await expect(ProofDB.open(dir, { maxOpenTables: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('with many more tables than the bound, every read, scan, history and proof agrees with the model', async () => {
    const { db, dir } = await openDb({ maxOpenTables: LIMIT });
    const model = new Model();
    const trust = { publicKeys: [db.publicKey()], quorum: 1 };
    const check = () => {
      expect(openTableFds(dir)).toBeLessThanOrEqual(LIMIT);
      expect(db.openTables().open).toBeLessThanOrEqual(LIMIT);
    };
    try {
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < KEYS.length; i++) {
          const k = KEYS[(i * 37 + round * 11) % KEYS.length];
          if ((i + round) % 9 === 0) {
            await db.delete(k);
            model.apply([{ kind: 'delete', key: k }]);
          } else {
            const v = `r${round}-${i}-${'x'.repeat(40)}`;
            await db.put(k, v);
            model.apply([{ kind: 'put', key: k, value: v }]);
          }
        }
        await db.checkpoint();
        check();
      }
      const tables = db.tables().length;
      expect(tables).toBeGreaterThan(LIMIT * 3);

      // An iterator spanning every table, stepped while point reads evict its tables' descriptors.
      const it = db.iterator();
      const scanned: Array<[string | undefined, string | undefined]> = [];
      let step = 0;
      for await (const e of it) {
        scanned.push([str(e.key), str(e.value)]);
        const k = KEYS[(step++ * 53) % KEYS.length];
        expect(str(await db.get(k)), `get ${k} during scan`).toEqual(model.get(k));
        check();
      }
      expect(scanned).toEqual(model.scan());
      const rev = (await db.iterator({ reverse: true }).all()).map((e) => [str(e.key), str(e.value)]);
      expect(rev).toEqual(model.scan().reverse());
      check();

      for (const k of KEYS) {
        expect(str(await db.get(k)), `get ${k}`).toEqual(model.get(k));
        expect((await db.getVersionHistory(k)).map(asModel), `history ${k}`).toEqual(model.history(k));
        expect(asModel(await db.getWithVersion(k, 2)), `get ${k}@2`).toEqual(model.getWithVersion(k, 2));
        check();
      }

      // Proofs against the latest checkpoint (all writes are in it), built while descriptors come and go.
      for (let i = 0; i < KEYS.length; i += 3) {
        const k = KEYS[i];
        const { proof, entry } = await db.getWithProof(k);
        const want = model.getWithVersion(k, Number.MAX_SAFE_INTEGER);
        expect(entry ? asModel(entry) : undefined, `proven get ${k}`).toEqual(want);
        expect(verifyGetProof(proof, { key: enc.encode(k) }, { trust }).ok, `get proof ${k}`).toBe(true);
        const h = await db.getVersionHistoryWithProof(k);
        expect(h.entries.map(asModel)).toEqual(model.history(k));
        expect(verifyHistoryProof(h.proof, { key: enc.encode(k) }, { trust }).ok, `history proof ${k}`).toBe(true);
        await db.get(KEYS[(i * 71) % KEYS.length]); // evicts a descriptor the next proof needs
        check();
      }
      const scan = await db.scanWithProof({ start: 'k010', end: 'k090' });
      expect(scan.entries.map((e) => [str(e.key), str(e.value)])).toEqual(model.scan(Infinity, 'k010', 'k090'));
      expect(verifyScanProof(scan.proof, { start: enc.encode('k010'), end: enc.encode('k090') }, { trust }).ok).toBe(true);
      check();

      const stats = db.openTables();
      expect(stats.limit).toBe(LIMIT);
      expect(stats.reopens).toBeGreaterThan(0); // the bound really closed descriptors that were needed again
    } finally {
      await db.close();
    }
    expect(openTableFds(dir)).toBe(0);
  });

  it('tables held in memory keep no descriptor', async () => {
    const { db, dir } = await openDb({ maxOpenTables: LIMIT, tableMemoryBytes: 64 * 1024 * 1024 });
    try {
      for (let i = 0; i < 400; i++) await db.put(KEYS[i % KEYS.length], `v${i}-${'y'.repeat(40)}`);
      for (const k of KEYS) await db.get(k);
      expect(db.tables().length).toBeGreaterThan(LIMIT);
      expect(db.openTables().open).toBe(0);
      expect(openTableFds(dir)).toBe(0);
    } finally {
      await db.close();
    }
  });

  async function expectCorruption(p: Promise<unknown>): Promise<void> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProofKVError);
    expect((err as ProofKVError).code).toBe('CORRUPTION');
  }

  /** A db with at least two tables, each holding keys the other does not; a read of `a` opened last. */
  async function twoTables(): Promise<{ db: ProofDB; dir: string; a: string; b: string; aFile: string; bFile: string }> {
    // The checkpoint compacts level 0 into level 1 (no merge within level 0: checkpointLevel0Bytes
    // 0), which cuts it into key-disjoint tables at TINY's targetFileSize.
    const { db, dir } = await openDb({ maxOpenTables: 1, level0CompactionTrigger: 100, maxBytesForLevelBase: 1 << 30, checkpointLevel0Bytes: 0 });
    for (const k of KEYS.slice(0, 40)) await db.put(k, `first-${k}-${'z'.repeat(40)}`);
    for (const k of KEYS.slice(80)) await db.put(k, `second-${k}-${'z'.repeat(40)}`);
    await db.checkpoint();
    const tables = db.tables();
    const holding = (key: string) => tables.find((t) => str(t.smallest.key)! <= key && key <= str(t.largest.key)!)!;
    const ta = holding(KEYS[0]);
    const tb = holding(KEYS[119]);
    expect(ta.number).not.toBe(tb.number);
    const file = (n: number) => path.join(dir, `${String(n).padStart(6, '0')}.sst`);
    expect(fs.existsSync(file(ta.number))).toBe(true);
    return { db, dir, a: KEYS[0], b: KEYS[119], aFile: file(ta.number), bFile: file(tb.number) };
  }

  it('a table file replaced on disk while its descriptor was closed is reported as corruption', async () => {
    const { db, a, b, aFile, bFile } = await twoTables();
    try {
      expect(str(await db.get(a))).toBe(`first-${a}-${'z'.repeat(40)}`);
      expect(str(await db.get(b))).toBe(`second-${b}-${'z'.repeat(40)}`); // closes a's descriptor
      fs.copyFileSync(bFile, aFile); // another valid table under a's name
      await expectCorruption(db.get(a));
    } finally {
      await db.close();
    }
  });

  it('a table file changed in place (same size) while its descriptor was closed is reported as corruption', async () => {
    const { db, a, b, aFile } = await twoTables();
    try {
      await db.get(a);
      await db.get(b); // closes a's descriptor
      const bytes = fs.readFileSync(aFile);
      bytes[bytes.length - 60] ^= 0xff; // inside the meta blocks near the footer
      fs.writeFileSync(aFile, bytes);
      await expectCorruption(db.get(a));
    } finally {
      await db.close();
    }
  });
});
