/**
 * WalStorage: what save() writes survives a reopen (entries, truncation, snapshots, compaction
 * with its margin, the hard state); a save is one write and at most one fdatasync; segments are
 * cut, preallocated ahead and deleted behind a compaction; a torn tail (zeros, garbage or a bad
 * CRC at every offset of the last record) is cut back while a bad record before a whole one is a
 * typed error that changes nothing; a failed write is undone by reopen(); and a RawNode driven
 * over it recovers after a restart.
 */

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { SeededRand } from '../../src/raft/rand.js';
import { RaftError, RaftErrorCode, isRaftError } from '../../src/raft/types.js';
import { WalStorage, segmentName } from '../../src/raft/wal_storage.js';
import { RecordType, encodeRecords, framedSize, scanSegment } from '../../src/raft/wal_format.js';
import { entryBytes } from '../../src/raft/codec.js';
import { EntryType } from '../../src/raft/types.js';
import { ent, rawNodeRecoversAfterRestart } from './helpers.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'raft-wal-'));
  dirs.push(d);
  return join(d, 'wal');
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const cs = { voters: [1, 2, 3], learners: [4] };
const td = new TextDecoder();
const SMALL = { segmentBytes: 4096 };

/** Index, term and data of every entry the storage holds. */
function dump(s: WalStorage): Array<[number, number, string]> {
  if (s.lastIndex() < s.firstIndex()) return [];
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity).map((e) => [e.index, e.term, td.decode(e.data)]);
}

/** Everything a reopen must give back. */
function state(s: WalStorage): unknown {
  return { first: s.firstIndex(), last: s.lastIndex(), ents: dump(s), init: s.initialState(), snap: s.snapshot(), term0: s.term(s.firstIndex() - 1) };
}

/** Counts the fdatasync calls of the storage's open segment. */
function countSyncs(s: WalStorage): { n: number } {
  const c = { n: 0 };
  const fh = (s as unknown as { fh: { datasync(): Promise<void> } }).fh;
  const orig = fh.datasync.bind(fh);
  fh.datasync = () => { c.n++; return orig(); };
  return c;
}

describe('WalStorage', () => {
  test('entries and hard state survive a reopen; a conflicting append truncates the suffix', async () => {
    const dir = await tempDir();
    let s = await WalStorage.open(dir, cs);
    expect(s.initialState().confState).toEqual(cs);
    await s.save({ entries: [ent(1, 1, 'a'), ent(2, 1, 'b'), ent(3, 2, 'c'), ent(4, 2, 'd')], hardState: { term: 2, vote: 3, commit: 2 } });
    await s.save({ entries: [ent(3, 3, 'C')], hardState: { term: 3, vote: 1, commit: 2 } });
    expect(s.lastIndex()).toBe(3);
    await s.close();
    s = await WalStorage.open(dir);
    expect(s.initialState()).toEqual({ hardState: { term: 3, vote: 1, commit: 2 }, confState: cs });
    expect(dump(s)).toEqual([[1, 1, 'a'], [2, 1, 'b'], [3, 3, 'C']]);
    await s.close();
  });

  test('one save is one fdatasync however many entries it holds; a commit-only hard state none', async () => {
    const dir = await tempDir();
    const s = await WalStorage.open(dir, cs);
    const syncs = countSyncs(s);
    expect(await s.save({ entries: Array.from({ length: 50 }, (_, i) => ent(i + 1, 1, `v${i}`)), hardState: { term: 1, vote: 1, commit: 0 } })).toBe(true);
    expect(syncs.n).toBe(1);
    expect(await s.save({ entries: [], hardState: { term: 1, vote: 1, commit: 50 }, mustSync: false })).toBe(false);
    expect(syncs.n).toBe(1);
    expect(await s.save({ entries: [ent(51, 1)] }, { sync: false })).toBe(false);
    expect(syncs.n).toBe(1);
    await s.close();
    const r = await WalStorage.open(dir);
    // The pending commit went out with the next write.
    expect(r.initialState().hardState).toEqual({ term: 1, vote: 1, commit: 50 });
    expect(r.lastIndex()).toBe(51);
    await r.close();
  });

  test('a synced save with nothing unsynced before it is one O_DSYNC write; after an unsynced write it is a write and an fdatasync of the file', async () => {
    const dir = await tempDir();
    const s = await WalStorage.open(dir, cs);
    const syncs = countSyncs(s);
    const dsync = () => (s as unknown as { dsync: unknown }).dsync;
    // Since the open, the segment may hold bytes not synced (a previous process's): fdatasync.
    await s.save({ entries: [ent(1, 1, 'a')], hardState: { term: 1, vote: 1, commit: 0 } });
    expect(syncs.n).toBe(1);
    expect(dsync()).toBeNull();
    await s.save({ entries: [ent(2, 1, 'b')] });
    expect(syncs.n).toBe(1);
    expect(dsync()).not.toBeNull();
    // An unsynced write: the next synced save must sync it too (an O_DSYNC write syncs only its own range).
    expect(await s.save({ entries: [ent(3, 1, 'c')] }, { sync: false })).toBe(false);
    await s.save({ entries: [ent(4, 1, 'd')] });
    expect(syncs.n).toBe(2);
    await s.save({ entries: [ent(5, 1, 'e')], hardState: { term: 1, vote: 1, commit: 5 } });
    expect(syncs.n).toBe(2);
    await s.close();
    const r = await WalStorage.open(dir);
    expect(r.lastIndex()).toBe(5);
    expect(r.entries(1, 6, Infinity).map((e) => new TextDecoder().decode(e.data))).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(r.initialState().hardState).toEqual({ term: 1, vote: 1, commit: 5 });
    await r.close();
  });

  test('an installed snapshot replaces the log; createSnapshot and compact keep the margin behind it across a reopen', async () => {
    const dir = await tempDir();
    let s = await WalStorage.open(dir, cs);
    await s.save({ entries: [1, 2, 3, 4, 5, 6].map((i) => ent(i, 1, `e${i}`)), hardState: { term: 1, vote: 1, commit: 6 } });
    await s.createSnapshot(5, cs, Uint8Array.of(9));
    await s.compact(2);
    const before = state(s);
    expect(s.firstIndex()).toBe(3);
    await s.close();
    s = await WalStorage.open(dir);
    expect(state(s)).toEqual(before);
    await expect(s.compact(6)).rejects.toThrow(/beyond snapshot/);
    // A snapshot from the leader: the log is replaced.
    const snap = { metadata: { index: 10, term: 2, confState: { voters: [1, 2], learners: [] } }, data: Uint8Array.of(1, 2) };
    await s.save({ snapshot: snap, entries: [ent(11, 2, 'x')], hardState: { term: 2, vote: 0, commit: 11 } });
    const after = state(s);
    expect(s.firstIndex()).toBe(11);
    await s.close();
    s = await WalStorage.open(dir);
    expect(state(s)).toEqual(after);
    await s.close();
  });

  test('segments are cut when full, preallocated ahead, and deleted once compaction passes them', async () => {
    const dir = await tempDir();
    let s = await WalStorage.open(dir, cs, SMALL);
    const big = 'x'.repeat(300);
    let i = 1;
    for (; i <= 60; i++) await s.save({ entries: [ent(i, 1, `${i}${big}`)], hardState: { term: 1, vote: 1, commit: i } });
    const seqs = s.segmentSeqs();
    expect(seqs.length).toBeGreaterThanOrEqual(4);
    expect(seqs).toEqual(seqs.map((_, k) => seqs[0] + k));
    // Every full segment stayed at its preallocated size; the next one waits under a temporary name.
    for (const q of seqs) expect((await readFile(join(dir, segmentName(q)))).length).toBe(4096);
    const lastSeq = seqs[seqs.length - 1];
    // Past half of the newest segment, the next one is being preallocated under a temporary name.
    const internals = s as unknown as { next: Promise<unknown> | null; offset: number };
    while (internals.offset <= 2048) await s.save({ entries: [ent(i, 1, `${i++}${big}`)] });
    expect(s.segmentSeqs().at(-1)).toBe(lastSeq);
    expect(internals.next).not.toBeNull();
    await internals.next;
    expect((await readFile(join(dir, `${segmentName(lastSeq + 1)}.tmp`))).length).toBe(4096);
    while (s.segmentSeqs().at(-1) === lastSeq) await s.save({ entries: [ent(i, 1, `${i++}${big}`)] });
    expect(existsSync(join(dir, `${segmentName(lastSeq + 1)}.tmp`))).toBe(false);
    expect((await readFile(join(dir, segmentName(lastSeq + 1)))).length).toBe(4096);
    const all = s.segmentSeqs();
    await s.createSnapshot(55, cs, Uint8Array.of(5));
    await s.compact(50);
    const kept = s.segmentSeqs();
    expect(kept.length).toBeLessThan(all.length - 1);
    expect(kept[kept.length - 1]).toBe(all[all.length - 1]);
    const files = (await readdir(dir)).filter((n) => n.endsWith('.wal'));
    expect(files).toEqual(kept.map(segmentName));
    const before = state(s);
    expect(s.firstIndex()).toBe(51);
    await s.close();
    s = await WalStorage.open(dir, undefined, SMALL);
    expect(state(s)).toEqual(before);
    // And it goes on: a truncation across a segment boundary, then more segments.
    await s.save({ entries: [ent(58, 2, 'new58')], hardState: { term: 2, vote: 1, commit: 57 } });
    for (i = 59; i <= 100; i++) await s.save({ entries: [ent(i, 2, `${i}${big}`)] });
    const again = state(s);
    await s.close();
    s = await WalStorage.open(dir, undefined, SMALL);
    expect(state(s)).toEqual(again);
    expect(dump(s).find(([k]) => k === 58)).toEqual([58, 2, 'new58']);
    await s.close();
  });

  test('a single save larger than a segment grows it', async () => {
    const dir = await tempDir();
    let s = await WalStorage.open(dir, cs, SMALL);
    await s.save({ entries: [ent(1, 1, 'a')] });
    await s.save({ entries: [ent(2, 1, 'y'.repeat(10_000)), ent(3, 1, 'b')] });
    await s.save({ entries: [ent(4, 1, 'c')] });
    const before = state(s);
    await s.close();
    s = await WalStorage.open(dir, undefined, SMALL);
    expect(state(s)).toEqual(before);
    await s.close();
  });

  test('reopen() after a failed write: the records of the failed save do not come back', async () => {
    const dir = await tempDir();
    const s = await WalStorage.open(dir, cs);
    await s.save({ entries: [ent(1, 1, 'a'), ent(2, 1, 'b')], hardState: { term: 1, vote: 1, commit: 2 } });
    const fh = (s as unknown as { fh: { datasync(): Promise<void> } }).fh;
    const orig = fh.datasync.bind(fh);
    // The write reaches the file, its sync fails (EIO): the save did not happen. (As after an
    // unsynced write: the save takes the write-and-fdatasync way.)
    (s as unknown as { unsynced: boolean }).unsynced = true;
    fh.datasync = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await expect(s.save({ entries: [ent(2, 3, 'other'), ent(3, 3, 'c')], hardState: { term: 3, vote: 2, commit: 2 } })).rejects.toThrow(/EIO/);
    fh.datasync = orig;
    expect(s.lastIndex()).toBe(2);
    await s.reopen(2);
    await s.save({ entries: [ent(3, 1, 'd')] });
    await s.close();
    const r = await WalStorage.open(dir);
    expect(dump(r)).toEqual([[1, 1, 'a'], [2, 1, 'b'], [3, 1, 'd']]);
    expect(r.initialState().hardState).toEqual({ term: 1, vote: 1, commit: 2 });
    await r.close();
  });

  test('reopen() after a failed O_DSYNC write: the records of the failed save do not come back', async () => {
    const dir = await tempDir();
    const s = await WalStorage.open(dir, cs);
    await s.save({ entries: [ent(1, 1, 'a')], hardState: { term: 1, vote: 1, commit: 1 } });
    await s.save({ entries: [ent(2, 1, 'b')] });
    const d = (s as unknown as { dsync: { write(...a: unknown[]): Promise<unknown> } | null }).dsync;
    expect(d).not.toBeNull();
    const write = d!.write.bind(d);
    // The bytes reach the file, the write reports EIO (its sync failed): the save did not happen.
    d!.write = async (...a: unknown[]) => {
      await write(...a);
      throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    };
    await expect(s.save({ entries: [ent(2, 3, 'other'), ent(3, 3, 'c')], hardState: { term: 3, vote: 2, commit: 2 } })).rejects.toThrow(/EIO/);
    expect(s.lastIndex()).toBe(2);
    await s.reopen(2);
    // The failed descriptor is closed; the reopen's own synced hard state opened a new one.
    expect((s as unknown as { dsync: unknown }).dsync).not.toBe(d);
    await s.save({ entries: [ent(3, 1, 'd')] });
    await s.save({ entries: [ent(4, 1, 'e')] });
    await s.close();
    const r = await WalStorage.open(dir);
    expect(dump(r)).toEqual([[1, 1, 'a'], [2, 1, 'b'], [3, 1, 'd'], [4, 1, 'e']]);
    expect(r.initialState().hardState).toEqual({ term: 1, vote: 1, commit: 1 });
    await r.close();
  });

  test('a new log is created atomically: a crash before its rename leaves no log, and the next open starts over', async () => {
    const dir = await tempDir();
    // What a crash while creating it leaves: the temporary directory with a torn segment.
    await mkdir(`${dir}.tmp`, { recursive: true });
    await writeFile(join(`${dir}.tmp`, segmentName(0)), Buffer.from('torn'));
    const s = await WalStorage.open(dir, cs);
    expect(existsSync(`${dir}.tmp`)).toBe(false);
    expect(s.initialState().confState).toEqual(cs);
    expect(s.lastIndex()).toBe(0);
    await s.close();
    // A segment directory whose segments are gone is not a new log.
    for (const n of await readdir(dir)) await rm(join(dir, n));
    await expect(WalStorage.open(dir, cs)).rejects.toMatchObject({ code: RaftErrorCode.Corrupt });
  });

  test('bad options are refused', async () => {
    const dir = await tempDir();
    await expect(WalStorage.open(dir, cs, { segmentBytes: 100 })).rejects.toThrow(/segmentBytes/);
    expect(existsSync(dir)).toBe(false);
  });

  test('a single-node RawNode persists through WalStorage and recovers after restart', async () => {
    const dir = await tempDir();
    await rawNodeRecoversAfterRestart((voters) => WalStorage.open(dir, voters ? { voters, learners: [] } : undefined));
  });
});

/** A log of a few saves whose last save is one entry record; returns its file and the extent of that record. */
async function logWithLastRecord(): Promise<{ dir: string; file: string; start: number; end: number; before: unknown; full: unknown }> {
  const dir = await tempDir();
  const s = await WalStorage.open(dir, cs, SMALL);
  await s.save({ entries: [ent(1, 1, 'one'), ent(2, 1, 'two')], hardState: { term: 1, vote: 1, commit: 1 } });
  await s.save({ entries: [ent(3, 1, 'three')], hardState: { term: 1, vote: 1, commit: 2 } });
  const before = state(s);
  await s.save({ entries: [ent(4, 1, 'the last record')] });
  const full = state(s);
  const seq = s.segmentSeqs()[s.segmentSeqs().length - 1];
  await s.close();
  const file = join(dir, segmentName(seq));
  const scanned = scanSegment(segmentName(seq), seq, await readFile(file), true);
  const last = scanned.records[scanned.records.length - 1];
  return { dir, file, start: last.offset, end: scanned.end, before, full };
}

describe('WAL frames', () => {
  test('an entry written in place is the entry record of its index and entryBytes, byte for byte; the scan reads it back', () => {
    const entries = [ent(7, 2, ''), ent(8, 2, 'x'.repeat(300)), { index: 2 ** 40, term: 2 ** 33, type: EntryType.ConfChange, data: Uint8Array.of(0, 1, 2) }];
    const hard = Uint8Array.from({ length: 24 }, (_, i) => i);
    const asBodies = encodeRecords([
      ...entries.map((e) => {
        const body = new Uint8Array(8 + entryBytes(e).length);
        new DataView(body.buffer).setBigUint64(0, BigInt(e.index));
        body.set(entryBytes(e), 8);
        return [RecordType.Entry, body] as const;
      }),
      [RecordType.HardState, hard] as const,
    ]);
    const inPlace = encodeRecords([...entries, [RecordType.HardState, hard] as const]);
    expect(Buffer.from(inPlace).equals(Buffer.from(asBodies))).toBe(true);
    expect(framedSize([...entries, [RecordType.HardState, hard] as const])).toBe(inPlace.length);
    const segment = [RecordType.Segment, new Uint8Array(8)] as const;
    const scanned = scanSegment('x', 0, encodeRecords([segment, ...entries]), false);
    expect(scanned.records.map((r) => r.type)).toEqual([RecordType.Segment, RecordType.Entry, RecordType.Entry, RecordType.Entry]);
    expect(Buffer.from(scanned.records[2].body.subarray(8 + 9)).toString()).toBe('x'.repeat(300));
  });
});

describe('WalStorage: crash safety on open', () => {
  test('a torn last record (zeros, garbage or a flipped byte at every offset) is cut back to the last whole record', async () => {
    const { dir, file, start, end, before, full } = await logWithLastRecord();
    const orig = await readFile(file);
    const rand = new SeededRand(7);
    const damages: Array<[string, (b: Buffer, p: number) => void]> = [
      ['zeros from', (b, p) => b.fill(0, p, end)],
      ['garbage from', (b, p) => { for (let k = p; k < end; k++) b[k] = rand.u32() & 0xff; }],
      ['flipped byte at', (b, p) => { b[p] ^= 0x5a; }],
    ];
    let checked = 0;
    for (const [what, damage] of damages) {
      for (let p = start; p < end; p++) {
        const b = Buffer.from(orig);
        damage(b, p);
        await writeFile(file, b);
        const s = await WalStorage.open(dir, undefined, SMALL);
        expect(state(s), `${what} ${p}`).toEqual(before);
        // The tail was zeroed: a new write after it reads back.
        await s.save({ entries: [ent(4, 2, 'again')] });
        await s.close();
        const r = await WalStorage.open(dir, undefined, SMALL);
        expect(dump(r).at(-1), `${what} ${p}`).toEqual([4, 2, 'again']);
        await r.close();
        checked++;
      }
    }
    expect(checked).toBe(3 * (end - start));
    // Untouched, the last record is there.
    await writeFile(file, orig);
    const s = await WalStorage.open(dir, undefined, SMALL);
    expect(state(s)).toEqual(full);
    await s.close();
  });

  test('a bad record before a whole one is corruption: a typed error, and the file is unchanged', async () => {
    const { dir, file, start } = await logWithLastRecord();
    const orig = await readFile(file);
    const scanned = scanSegment('x', 0, orig, true);
    // Every byte of every record before the last, one at a time.
    const firstEntry = scanned.records.find((r) => r.type === 2)!.offset;
    for (let p = firstEntry; p < start; p++) {
      const b = Buffer.from(orig);
      b[p] ^= 0x01;
      await writeFile(file, b);
      let err: unknown;
      try { await WalStorage.open(dir, undefined, SMALL); } catch (e) { err = e; }
      expect(err, `byte ${p}`).toBeInstanceOf(RaftError);
      expect(isRaftError(err, RaftErrorCode.Corrupt), `byte ${p}`).toBe(true);
      expect((err as Error).message).toMatch(/bad frame before a whole one/);
      expect(Buffer.compare(await readFile(file), b), `byte ${p}`).toBe(0);
    }
  });

  test('an older segment with a bad tail, a missing segment, or a segment under another name is corruption', async () => {
    const dir = await tempDir();
    const s = await WalStorage.open(dir, cs, SMALL);
    for (let i = 1; i <= 40; i++) await s.save({ entries: [ent(i, 1, 'z'.repeat(300))] });
    const seqs = s.segmentSeqs();
    await s.close();
    expect(seqs.length).toBeGreaterThanOrEqual(3);
    const f0 = join(dir, segmentName(seqs[0]));
    const orig0 = await readFile(f0);
    const end0 = scanSegment('x', seqs[0], orig0, false).end;
    const b = Buffer.from(orig0);
    b[end0] = 0x33; // not zeros after the last record of a segment that is not the newest
    await writeFile(f0, b);
    await expect(WalStorage.open(dir, undefined, SMALL)).rejects.toMatchObject({ code: RaftErrorCode.Corrupt });
    await writeFile(f0, orig0);
    const f1 = join(dir, segmentName(seqs[1]));
    const orig1 = await readFile(f1);
    await rm(f1);
    await expect(WalStorage.open(dir, undefined, SMALL)).rejects.toThrow(/is missing/);
    await writeFile(f1, orig0);
    await expect(WalStorage.open(dir, undefined, SMALL)).rejects.toThrow(/not the header of segment/);
    await writeFile(f1, orig1);
    const r = await WalStorage.open(dir, undefined, SMALL);
    expect(r.lastIndex()).toBe(40);
    await r.close();
  });

  test('a newest segment left empty (a crash right after it was begun) is begun again', async () => {
    const dir = await tempDir();
    const s = await WalStorage.open(dir, cs, SMALL);
    await s.save({ entries: [ent(1, 1, 'a')], hardState: { term: 1, vote: 1, commit: 1 } });
    const before = state(s);
    await s.close();
    await writeFile(join(dir, segmentName(1)), Buffer.alloc(4096));
    let r = await WalStorage.open(dir, undefined, SMALL);
    expect(state(r)).toEqual(before);
    await r.save({ entries: [ent(2, 1, 'b')] });
    await r.close();
    r = await WalStorage.open(dir, undefined, SMALL);
    expect(dump(r)).toEqual([[1, 1, 'a'], [2, 1, 'b']]);
    await r.close();
  });
});

