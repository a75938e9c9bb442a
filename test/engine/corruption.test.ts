/**
 * Corruption test: damaged files must never read as different data.
 *
 * (a) A byte flipped in a table file: every read (get, history, getWithVersion, scans) returns
 *     exactly the original data or throws CorruptionError.
 * (b) A byte flipped in the middle of a journal (valid records follow): open throws CorruptionError.
 * (c) A torn or damaged last journal record: open succeeds, the earlier writes are intact.
 * (d) CURRENT or the manifest damaged: open throws CorruptionError.
 * (e) A table file named by the manifest missing: reads that need it fail with a ProofKVError
 *     (CORRUPTION or IO_ERROR), never return less data.
 * A failed open must not change the directory's data files.
 *
 * Seeded: `CORRUPTION_SEED=<n> npx vitest run test/engine/corruption.test.ts` replays a run.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptionError, ProofDB, ProofKVError } from '../../src/index.js';
import { prng } from './crash-child.js';
import { asModel, Model, str, tempDir, TINY } from './harness.js';

const SEED = process.env.CORRUPTION_SEED !== undefined ? Number(process.env.CORRUPTION_SEED) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isSafeInteger(SEED)) throw new Error(`CORRUPTION_SEED must be an integer, got ${process.env.CORRUPTION_SEED}`);
const REPLAY = `CORRUPTION_SEED=${SEED} npx vitest run test/engine/corruption.test.ts`;
/**
 * Once known bugs, now asserted always: a failed open leaves the directory byte-identical; a
 * missing CURRENT next to database files is corruption; a damaged manifest tail that would roll
 * the table set back is corruption (or every write is intact).
 */
const STRICT = true;

const rnd = prng(SEED);
const int = (n: number) => Math.floor(rnd() * n);
const OPTIONS = { ...TINY };
/** Journal cases reopen with TINY too, so replay flushes (and numbers journals) during recovery. */
const JOPTIONS = OPTIONS;

type Op = { kind: 'put' | 'delete'; key: string; value?: string; version?: number };

function hashFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) {
    if (f === 'LOCK') continue;
    out[f] = createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex');
  }
  return out;
}

/**
 * Temporary directories on tmpfs when there is one: every open syncs a new manifest, and the
 * table-flip loop opens the database hundreds of times; detection does not depend on the medium.
 */
function scratchDir(prefix: string): { dir: string; cleanup: () => void } {
  if (!fs.existsSync('/dev/shm')) return tempDir(prefix);
  const dir = fs.mkdtempSync(path.join('/dev/shm', prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

function copyDir(from: string): { dir: string; cleanup: () => void } {
  const t = scratchDir('proofkv-corrupt-');
  fs.cpSync(from, t.dir, { recursive: true });
  return t;
}

function flipByte(file: string, pos: number, mask: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, pos);
    b[0] ^= mask;
    fs.writeSync(fd, b, 0, 1, pos);
  } finally {
    fs.closeSync(fd);
  }
}

/** Applies random writes (with checkpoints) to `db` and `model`. */
async function writeRandom(db: ProofDB, model: Model, keys: string[], n: number, opts: { checkpointEvery?: number; bigValues?: boolean } = {}) {
  for (let i = 0; i < n; i++) {
    const key = keys[int(keys.length)];
    const value = () => {
      if (opts.bigValues && rnd() < 0.08) return `${key}:${i}:`.padEnd(33_000 + int(40_000), String.fromCharCode(97 + int(26)));
      return `${key}:${i}:${'v'.repeat(int(opts.bigValues ? 3000 : 120))}`;
    };
    const r = rnd();
    if (r < 0.55) {
      const v = value();
      await db.put(key, v);
      expect(model.apply([{ kind: 'put', key, value: v }])).toBe(true);
    } else if (r < 0.7) {
      const v = value();
      const version = model.latest(key) + 1 + int(10);
      await db.putWithVersion(key, v, version);
      expect(model.apply([{ kind: 'put', key, value: v, version }])).toBe(true);
    } else if (r < 0.8) {
      await db.delete(key);
      expect(model.apply([{ kind: 'delete', key }])).toBe(true);
    } else {
      const ops: Op[] = [];
      const b = db.batch();
      for (let j = 0, m = 2 + int(4); j < m; j++) {
        const k = keys[int(keys.length)];
        if (rnd() < 0.2) {
          ops.push({ kind: 'delete', key: k });
          b.delete(k);
        } else {
          const v = value();
          ops.push({ kind: 'put', key: k, value: v });
          b.put(k, v);
        }
      }
      await db.write(b);
      expect(model.apply(ops)).toBe(true);
    }
    if (opts.checkpointEvery && i % opts.checkpointEvery === opts.checkpointEvery - 1) await db.checkpoint();
  }
}

/**
 * Every read of `keys` and the full scans, each compared with the model. With `tolerate`, a read
 * may instead throw CorruptionError (counted); anything else, including different data, fails.
 */
async function readAll(
  db: ProofDB,
  model: Model,
  keys: string[],
  tolerate: (err: unknown) => boolean,
  ctx: string,
  historyFraction = 1,
): Promise<number> {
  let failed = 0;
  const attempt = async (what: string, read: () => Promise<unknown>, want: unknown) => {
    let got: unknown;
    try {
      got = await read();
    } catch (err) {
      if (!tolerate(err)) throw new Error(`${ctx}: ${what} threw ${String(err)} (${(err as Error)?.constructor?.name})`, { cause: err });
      failed++;
      return;
    }
    expect(got, `${ctx}: ${what} returned different data`).toEqual(want);
  };
  for (const k of keys) {
    await attempt(`get(${k})`, async () => str(await db.get(k)), model.get(k));
    if (historyFraction >= 1 || rnd() < historyFraction) {
      await attempt(`history(${k})`, async () => (await db.getVersionHistory(k)).map(asModel), model.history(k));
    }
    const v = int(model.latest(k) + 2);
    await attempt(`getWithVersion(${k}, ${v})`, async () => asModel(await db.getWithVersion(k, v)), model.getWithVersion(k, v));
  }
  await attempt('scan', async () => (await db.iterator().all()).map((e) => [str(e.key), str(e.value)]), model.scan());
  await attempt(
    'reverse scan',
    async () => (await db.iterator({ reverse: true }).all()).map((e) => [str(e.key), str(e.value)]),
    model.scan().reverse(),
  );
  const allWant: Array<[string, number, number]> = [];
  for (const k of [...model.keys.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
    for (const e of model.history(k).slice().reverse()) allWant.push([k, e.version, e.seq]);
  }
  await attempt(
    'all-versions scan',
    async () => (await db.iterator({ allVersions: true }).all()).map((e) => [str(e.key), e.version, e.seq]),
    allWant,
  );
  return failed;
}

const isCorruption = (err: unknown) => err instanceof CorruptionError && err.code === 'CORRUPTION';
const never = () => false;

async function expectOpenCorruption(dir: string, ctx: string, strictFiles = true, options: object = OPTIONS): Promise<void> {
  const before = hashFiles(dir);
  let err: unknown;
  try {
    const db = await ProofDB.open(dir, options);
    await db.close();
  } catch (e) {
    err = e;
  }
  expect(err, `${ctx}: open must fail`).toBeDefined();
  if (!isCorruption(err)) throw new Error(`${ctx}: open threw ${String(err)}, want CorruptionError`, { cause: err });
  const after = hashFiles(dir);
  if (strictFiles || STRICT) {
    expect(after, `${ctx}: a failed open changed files`).toEqual(before);
  } else {
    // Today's behaviour (see KNOWN BUGS): only the manifest's name and CURRENT change.
    const data = (h: Record<string, string>) => Object.entries(h).filter(([f]) => f !== 'CURRENT' && !f.startsWith('MANIFEST-'));
    expect(data(after), `${ctx}: a failed open changed data files`).toEqual(data(before));
    const manifest = (h: Record<string, string>) => Object.entries(h).filter(([f]) => f.startsWith('MANIFEST-')).map(([, x]) => x);
    expect(manifest(after), `${ctx}: a failed open changed the manifest's contents`).toEqual(manifest(before));
  }
}

/** Physical records of a journal file: [start, end) and type. */
function physicalRecords(bytes: Uint8Array): Array<{ start: number; end: number; type: number }> {
  const out: Array<{ start: number; end: number; type: number }> = [];
  let pos = 0;
  while (pos < bytes.length) {
    const left = 32768 - (pos % 32768);
    if (left < 7) {
      pos += left;
      continue;
    }
    const len = bytes[pos + 4] | (bytes[pos + 5] << 8);
    out.push({ start: pos, end: pos + 7 + len, type: bytes[pos + 6] });
    pos += 7 + len;
  }
  return out;
}

describe(`corruption (CORRUPTION_SEED=${SEED})`, () => {
  // A database whose data is all in tables, over several levels.
  const base = scratchDir('proofkv-corrupt-base-');
  const keys = Array.from({ length: 120 }, (_, i) => `key-${String(i).padStart(3, '0')}${i % 7 === 0 ? '-long'.repeat(8) : ''}`);
  const model = new Model();

  beforeAll(async () => {
    const db = await ProofDB.open(base.dir, OPTIONS);
    await writeRandom(db, model, keys, 900, { checkpointEvery: 150 });
    await db.checkpoint();
    const levels = new Set(db.tables().map((t) => t.level));
    expect(db.tables().length, 'several tables').toBeGreaterThanOrEqual(6);
    expect(levels.size, 'tables on several levels').toBeGreaterThanOrEqual(2);
    await db.close();
  });
  afterAll(() => base.cleanup());

  it('reads the undamaged database exactly', async () => {
    const { dir, cleanup } = copyDir(base.dir);
    const db = await ProofDB.open(dir, OPTIONS);
    await readAll(db, model, keys, never, 'undamaged');
    await db.close();
    cleanup();
  });

  it('(a) a flipped byte in a table never reads as different data', async () => {
    const { dir, cleanup } = copyDir(base.dir);
    const tables = fs.readdirSync(dir).filter((f) => f.endsWith('.sst')).sort().map((f) => ({ f, size: fs.statSync(path.join(dir, f)).size }));
    const total = tables.reduce((n, t) => n + t.size, 0);
    const flips: Array<{ f: string; pos: number; mask: number }> = [];
    for (let i = 0; i < 200; i++) {
      const mask = 1 << int(8);
      if (i % 5 === 4) {
        // The tail: footer, metaindex, properties, Merkle and filter blocks.
        const t = tables[int(tables.length)];
        flips.push({ f: t.f, pos: t.size - 1 - int(Math.min(t.size, 400)), mask });
        continue;
      }
      let at = int(total);
      const t = tables.find((x) => (at < x.size ? true : ((at -= x.size), false)))!;
      flips.push({ f: t.f, pos: at, mask });
    }
    let detected = 0;
    const undetected: string[] = [];
    try {
      for (const { f, pos, mask } of flips) {
        const file = path.join(dir, f);
        const ctx = `[${REPLAY}] ${f}@${pos}^${mask}`;
        flipByte(file, pos, mask);
        try {
          let db: ProofDB;
          try {
            db = await ProofDB.open(dir, OPTIONS);
          } catch (err) {
            if (!isCorruption(err)) throw err;
            detected++;
            continue;
          }
          try {
            // Histories (the costly read) of a sample of keys; the scans cover every version anyway.
            const n = await readAll(db, model, keys, isCorruption, ctx, 0.2);
            if (n > 0) detected++;
            else undetected.push(`${f}@${pos}`);
          } finally {
            await db.close();
          }
        } finally {
          flipByte(file, pos, mask); // restore
        }
      }
    } finally {
      cleanup();
    }
    console.log(`[corruption seed ${SEED}] table flips: ${detected}/${flips.length} detected; undetected: ${undetected.join(' ') || 'none'}`);
    expect(detected, 'some flips were detected').toBeGreaterThan(0);
    // Every byte of a table is covered by a checksum or a format check, and readAll touches every block.
    expect(undetected, `[${REPLAY}] flips no read noticed`).toEqual([]);
  });

  describe('journal', () => {
    // A database whose data is all in one journal spanning several 32 KiB blocks.
    const jbase = scratchDir('proofkv-corrupt-journal-');
    const jkeys = keys.slice(0, 40);
    const before = new Model(); // every write but the last
    const all = new Model();
    let journal = '';
    let lastStart = 0;
    let records: Array<{ start: number; end: number; type: number }> = [];
    const lastValue = 'the last write'.padEnd(900, '!');

    beforeAll(async () => {
      const db = await ProofDB.open(jbase.dir, { writeBufferSize: 64 * 1024 * 1024 });
      await writeRandom(db, before, jkeys, 160, { bigValues: true });
      await db.put('zz-last', lastValue);
      await db.close();
      for (const [k, h] of before.keys) for (const e of h) all.keys.set(k, [...(all.keys.get(k) ?? []), e]);
      all.lastSeq = before.lastSeq;
      expect(all.apply([{ kind: 'put', key: 'zz-last', value: lastValue }])).toBe(true);
      const logs = fs.readdirSync(jbase.dir).filter((f) => f.endsWith('.log'));
      expect(logs.length, 'one journal').toBe(1);
      journal = logs[0];
      const bytes = fs.readFileSync(path.join(jbase.dir, journal));
      expect(bytes.length, 'journal spans several blocks').toBeGreaterThan(4 * 32768);
      records = physicalRecords(bytes);
      expect(records[records.length - 1].end).toBe(bytes.length);
      let i = records.length - 1;
      while (records[i].type !== 1 && records[i].type !== 2) i--; // FULL or FIRST
      lastStart = records[i].start;
      expect(records.some((r) => r.type === 3), 'some records span blocks (MIDDLE fragments)').toBe(true);
    });
    afterAll(() => jbase.cleanup());

    const readKeys = () => [...jkeys, 'zz-last'];

    it('reads the undamaged journal exactly', async () => {
      const { dir, cleanup } = copyDir(jbase.dir);
      const db = await ProofDB.open(dir, JOPTIONS);
      await readAll(db, all, readKeys(), never, 'undamaged journal');
      await db.close();
      cleanup();
    });

    it('(b) a flipped byte in the middle of a journal fails the open with CorruptionError', async () => {
      // Bytes of records before the last logical record (trailer padding is unchecked by design).
      const inRecords = records.filter((r) => r.end <= lastStart);
      for (let i = 0; i < 30; i++) {
        const r = inRecords[i < 3 ? i : int(inRecords.length)];
        const pos = i % 3 === 0 ? r.start + int(7) : r.start + int(r.end - r.start); // header or anywhere
        const mask = 1 << int(8);
        const { dir, cleanup } = copyDir(jbase.dir);
        try {
          flipByte(path.join(dir, journal), pos, mask);
          await expectOpenCorruption(dir, `[${REPLAY}] ${journal}@${pos}^${mask}`, false, JOPTIONS);
        } finally {
          cleanup();
        }
      }
    });

    const tornCases: Array<[string, (file: string, size: number) => void]> = [
      ['truncated inside the last record', (file) => fs.truncateSync(file, lastStart + 1 + int(records[records.length - 1].end - lastStart - 1))],
      ['truncated inside the last header', (file) => fs.truncateSync(file, lastStart + 1 + int(6))],
      // Flipped in the last record's final fragment. (A damaged earlier fragment followed by
      // intact ones is a complete, acknowledged record that was damaged: corruption, not a torn
      // write — test/journal/recovery.test.ts covers that rule.)
      [
        'a byte of the last record flipped',
        (file, size) => {
          const from = Math.max(lastStart, Math.floor((size - 1) / 32768) * 32768);
          flipByte(file, from + int(size - from), 1 << int(8));
        },
      ],
    ];
    for (const [name, damage] of tornCases) {
      it(`(c) torn tail, ${name}: open succeeds without the last write, earlier writes intact`, async () => {
        const { dir, cleanup } = copyDir(jbase.dir);
        try {
          const file = path.join(dir, journal);
          damage(file, fs.statSync(file).size);
          let db = await ProofDB.open(dir, JOPTIONS);
          expect(fs.statSync(file).size, 'torn tail truncated').toBe(lastStart);
          await readAll(db, before, readKeys(), never, `[${REPLAY}] ${name}`);
          expect(db.stats().lastSeq).toBe(before.lastSeq);
          const r = await db.put('after', 'x');
          expect(r.seq).toBe(before.lastSeq + 1);
          await db.checkpoint();
          await db.close();
          db = await ProofDB.open(dir, JOPTIONS);
          expect(str(await db.get('after'))).toBe('x');
          expect(await db.get('zz-last')).toBeUndefined();
          await db.close();
        } finally {
          cleanup();
        }
      });
    }

    it('(c) zeros or garbage after the last record: open succeeds with every write', async () => {
      for (const tail of [new Uint8Array(100), Uint8Array.from({ length: 37 }, () => int(256))]) {
        const { dir, cleanup } = copyDir(jbase.dir);
        try {
          fs.appendFileSync(path.join(dir, journal), tail);
          const db = await ProofDB.open(dir, JOPTIONS);
          await readAll(db, all, readKeys(), never, `[${REPLAY}] garbage tail`);
          await db.close();
        } finally {
          cleanup();
        }
      }
    });
  });

  describe('(d) CURRENT and manifest', () => {
    const cases: Array<[string, (dir: string) => void]> = [
      ['CURRENT empty', (d) => fs.writeFileSync(path.join(d, 'CURRENT'), '')],
      ['CURRENT garbage', (d) => fs.writeFileSync(path.join(d, 'CURRENT'), 'hello world\n')],
      ['CURRENT binary', (d) => fs.writeFileSync(path.join(d, 'CURRENT'), Uint8Array.of(0, 255, 10, 77))],
      ['CURRENT without newline', (d) => fs.writeFileSync(path.join(d, 'CURRENT'), fs.readFileSync(path.join(d, 'CURRENT'), 'utf8').trim())],
      ['CURRENT names a missing manifest', (d) => fs.writeFileSync(path.join(d, 'CURRENT'), 'MANIFEST-999999\n')],
      ['CURRENT byte flipped', (d) => flipByte(path.join(d, 'CURRENT'), int(fs.statSync(path.join(d, 'CURRENT')).size), 1 << int(7))],
      ['manifest deleted', (d) => fs.rmSync(path.join(d, manifestOf(d)))],
      ['manifest empty', (d) => fs.writeFileSync(path.join(d, manifestOf(d)), '')],
      [
        'manifest truncated inside its first record',
        (d) => {
          const first = physicalRecords(fs.readFileSync(path.join(d, manifestOf(d))))[0];
          fs.truncateSync(path.join(d, manifestOf(d)), 1 + int(first.end - 1));
        },
      ],
    ];
    const manifestOf = (d: string) => fs.readFileSync(path.join(d, 'CURRENT'), 'utf8').trim();
    for (const [name, damage] of cases) {
      it(`${name}: open throws CorruptionError and changes nothing`, async () => {
        const { dir, cleanup } = copyDir(base.dir);
        try {
          damage(dir);
          await expectOpenCorruption(dir, `[${REPLAY}] ${name}`);
        } finally {
          cleanup();
        }
      });
    }

    it('a flipped byte in a manifest record followed by valid ones: CorruptionError, nothing changed', async () => {
      const manifest = manifestOf(base.dir);
      const recs = physicalRecords(fs.readFileSync(path.join(base.dir, manifest)));
      expect(recs.length, 'the manifest holds several edits').toBeGreaterThan(3);
      for (let i = 0; i < 20; i++) {
        const r = recs[int(recs.length - 1)]; // never the last one (a torn last edit is ignored)
        const pos = r.start + int(r.end - r.start);
        const mask = 1 << int(8);
        const { dir, cleanup } = copyDir(base.dir);
        try {
          flipByte(path.join(dir, manifest), pos, mask);
          await expectOpenCorruption(dir, `[${REPLAY}] ${manifest}@${pos}^${mask}`);
        } finally {
          cleanup();
        }
      }
    });

    if (STRICT) {
      it('CURRENT missing next to a manifest and tables: CorruptionError, nothing deleted', async () => {
        const { dir, cleanup } = copyDir(base.dir);
        try {
          fs.rmSync(path.join(dir, 'CURRENT'));
          await expectOpenCorruption(dir, `[${REPLAY}] CURRENT missing`);
        } finally {
          cleanup();
        }
      });

      it('a manifest cut after its first record (later edits lost): CorruptionError or every write intact', async () => {
        const { dir, cleanup } = copyDir(base.dir);
        try {
          const manifest = manifestOf(dir);
          fs.truncateSync(path.join(dir, manifest), physicalRecords(fs.readFileSync(path.join(dir, manifest)))[0].end);
          let db: ProofDB | undefined;
          try {
            db = await ProofDB.open(dir, OPTIONS);
          } catch (err) {
            expect(isCorruption(err), String(err)).toBe(true);
            return;
          }
          try {
            await readAll(db, model, keys, never, `[${REPLAY}] manifest cut after its first record`);
          } finally {
            await db.close();
          }
        } finally {
          cleanup();
        }
      });

      it('a flipped byte in the last manifest record: CorruptionError or every write intact', async () => {
        const { dir, cleanup } = copyDir(base.dir);
        try {
          const manifest = manifestOf(dir);
          const recs = physicalRecords(fs.readFileSync(path.join(dir, manifest)));
          const last = recs[recs.length - 1];
          flipByte(path.join(dir, manifest), last.start + 7 + int(last.end - last.start - 7), 1 << int(8));
          let db: ProofDB | undefined;
          try {
            db = await ProofDB.open(dir, OPTIONS);
          } catch (err) {
            expect(isCorruption(err), String(err)).toBe(true);
            return;
          }
          try {
            await readAll(db, model, keys, never, `[${REPLAY}] last manifest record`);
          } finally {
            await db.close();
          }
        } finally {
          cleanup();
        }
      });
    }
  });

  it('(e) a missing table file: reads that need it fail, never with less data', async () => {
    const probe = copyDir(base.dir);
    const db0 = await ProofDB.open(probe.dir, OPTIONS);
    const infos = db0.tables();
    await db0.close();
    probe.cleanup();
    // One table of level 0 if any, one of the deepest level, one at random.
    const deepest = Math.max(...infos.map((t) => t.level));
    const pick = [
      infos.find((t) => t.level === 0) ?? infos[0],
      infos.find((t) => t.level === deepest)!,
      infos[int(infos.length)],
    ];
    for (const t of pick) {
      const name = `${String(t.number).padStart(6, '0')}.sst`;
      const { dir, cleanup } = copyDir(base.dir);
      try {
        fs.rmSync(path.join(dir, name));
        let db: ProofDB;
        try {
          db = await ProofDB.open(dir, OPTIONS);
        } catch (err) {
          expect(err instanceof ProofKVError && (err.code === 'CORRUPTION' || err.code === 'IO_ERROR'), String(err)).toBe(true);
          continue;
        }
        const errors: unknown[] = [];
        try {
          const failed = await readAll(
            db,
            model,
            keys,
            (err) => {
              errors.push(err);
              return err instanceof ProofKVError && (err.code === 'CORRUPTION' || err.code === 'IO_ERROR');
            },
            `[${REPLAY}] missing ${name} (level ${t.level})`,
          );
          expect(failed, `missing ${name}: some read must fail`).toBeGreaterThan(0);
        } finally {
          await db.close();
        }
        const kinds = new Set(errors.map((e) => (e instanceof ProofKVError ? `ProofKVError:${e.code}` : `${(e as Error).constructor.name}:${(e as NodeJS.ErrnoException).code}`)));
        console.log(`[corruption seed ${SEED}] missing ${name} (level ${t.level}): read errors ${[...kinds].join(', ')}`);
      } finally {
        cleanup();
      }
    }
  });
});
